// The files a WASI guest holds open, kept beside its journal: a host that recovers a guest by replay (the host
// calls not made again) must still hold what the guest believes it holds. The table follows each completed call
// (live or replayed) and reopens the files in a new host, at the same descriptor numbers and offsets, when the
// run goes live again.
import { WizError } from '../errors.ts';
import type { ObservedCall } from './journal.ts';

/** One file the guest opened with `path_open`, as the host must reopen it. */
export interface OpenFile {
  fd: number;
  /** The descriptor it was opened relative to (a preopen, or another open directory). */
  dirfd: number;
  dirflags: number;
  path: string;
  /** `path_open`'s flags without CREAT, EXCL and TRUNC: those were effects of the first open, not to be repeated. */
  oflags: number;
  rightsBase: string;
  rightsInheriting: string;
  fdflags: number;
  /** The file position, decimal (an u64). */
  offset: string;
}

const OFLAGS_ONCE = 1 | 4 | 8; // CREAT, EXCL, TRUNC
const FDFLAG_APPEND = 1;
const WHENCE_SET = 0;

type WasiFunction = (...args: unknown[]) => unknown;

/** Reads and writes of guest memory the table needs. */
export interface FileTableMemory {
  (): WebAssembly.Memory;
}

export class OpenFiles {
  private readonly files = new Map<number, OpenFile>();
  private readonly memory: FileTableMemory;

  constructor(memory: FileTableMemory, saved?: unknown) {
    this.memory = memory;
    if (saved === undefined) return;
    if (!Array.isArray(saved)) throw new WizError('malformed', 'the program\'s host record lists its open files as something other than a list');
    for (const f of saved as OpenFile[]) {
      const ok = f && [f.fd, f.dirfd, f.dirflags, f.oflags, f.fdflags].every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff)
        && typeof f.path === 'string' && [f.rightsBase, f.rightsInheriting, f.offset].every((v) => typeof v === 'string' && /^(0|[1-9][0-9]{0,19})$/.test(v));
      if (!ok) throw new WizError('malformed', 'the program\'s host record lists an open file that is not a descriptor, a path and an offset');
      this.files.set(f.fd, { ...f });
    }
  }

  /** The table as the host record keeps it (by descriptor number). */
  toJSON(): OpenFile[] {
    return [...this.files.values()].sort((a, b) => a.fd - b.fd).map((f) => ({ ...f }));
  }

  get size(): number {
    return this.files.size;
  }

  /** Follows one completed WASI call. */
  observe(call: ObservedCall): void {
    if (!call.wasi || call.result.kind !== 'value' || call.result.value !== 0) return;
    const a = call.args as number[];
    const view = () => new DataView(this.memory().buffer);
    switch (call.name) {
      case 'path_open': {
        const fd = view().getUint32(a[8]! >>> 0, true);
        const path = new TextDecoder().decode(new Uint8Array(this.memory().buffer, a[2]! >>> 0, a[3]! >>> 0));
        const fdflags = a[7]! >>> 0;
        this.files.set(fd, {
          fd, dirfd: a[0]! >>> 0, dirflags: a[1]! >>> 0, path, oflags: (a[4]! >>> 0) & ~OFLAGS_ONCE,
          rightsBase: String(BigInt.asUintN(64, BigInt(call.args[5] as bigint))),
          rightsInheriting: String(BigInt.asUintN(64, BigInt(call.args[6] as bigint))),
          fdflags, offset: '0',
        });
        break;
      }
      case 'fd_close':
        this.files.delete(a[0]! >>> 0);
        break;
      case 'fd_renumber': {
        const from = this.files.get(a[0]! >>> 0);
        this.files.delete(a[1]! >>> 0);
        this.files.delete(a[0]! >>> 0);
        if (from) this.files.set(a[1]! >>> 0, { ...from, fd: a[1]! >>> 0 });
        break;
      }
      case 'fd_seek': {
        const f = this.files.get(a[0]! >>> 0);
        if (f) f.offset = String(view().getBigUint64(a[3]! >>> 0, true));
        break;
      }
      case 'fd_read':
      case 'fd_write': {
        const f = this.files.get(a[0]! >>> 0);
        if (f && !(f.fdflags & FDFLAG_APPEND)) f.offset = String(BigInt(f.offset) + BigInt(view().getUint32(a[3]! >>> 0, true)));
        break;
      }
      case 'fd_fdstat_set_flags': {
        const f = this.files.get(a[0]! >>> 0);
        if (f) f.fdflags = a[1]! & 0xffff;
        break;
      }
    }
  }

  /**
   * Opens every file of the table in the host `wasi` (a fresh one, with the same preopens), at its descriptor
   * number and offset. Guest memory is borrowed for the paths and put back.
   */
  reopen(wasi: Record<string, unknown>): void {
    if (this.files.size === 0) return;
    const fn = (name: string) => {
      const f = wasi[name];
      if (typeof f !== 'function') throw new WizError('unsupported', `the host's WASI has no ${name}: the files the program holds cannot be reopened`);
      return f as WasiFunction;
    };
    const [pathOpen, fdClose, fdSeek] = [fn('path_open'), fn('fd_close'), fn('fd_seek')];
    const memory = this.memory();
    const longest = Math.max(...[...this.files.values()].map((f) => new TextEncoder().encode(f.path).length));
    const scratch = 16 + longest;
    if (memory.buffer.byteLength < scratch) throw new WizError('unsupported', 'the program\'s memory is too small to reopen its files');
    const saved = new Uint8Array(memory.buffer, 0, scratch).slice();
    const placeholders: number[] = [];
    try {
      for (const f of [...this.files.values()].sort((x, y) => x.fd - y.fd)) {
        const path = new TextEncoder().encode(f.path);
        for (;;) {
          new Uint8Array(memory.buffer).set(path, 16);
          const errno = pathOpen(f.dirfd, f.dirflags, 16, path.length, f.oflags, BigInt(f.rightsBase), BigInt(f.rightsInheriting), f.fdflags, 0);
          if (errno !== 0) throw new WizError('journal', `cannot reopen "${f.path}", which the program holds open as descriptor ${f.fd} (WASI errno ${String(errno)})`);
          const got = new DataView(memory.buffer).getUint32(0, true);
          if (got === f.fd) break;
          // The host gives the lowest free number: one below the wanted is a hole, kept open until all are placed.
          if (got > f.fd) throw new WizError('journal', `cannot reopen "${f.path}" as descriptor ${f.fd}: the host gave ${got}`);
          placeholders.push(got);
        }
        if (!(f.fdflags & FDFLAG_APPEND) && f.offset !== '0') {
          const errno = fdSeek(f.fd, BigInt(f.offset), WHENCE_SET, 0);
          if (errno !== 0) throw new WizError('journal', `cannot seek "${f.path}" (descriptor ${f.fd}) back to ${f.offset} (WASI errno ${String(errno)})`);
        }
      }
    } finally {
      for (const fd of placeholders) fdClose(fd);
      new Uint8Array(memory.buffer).set(saved, 0);
    }
  }
}
