// WASI preview1 from the runtime's `node:wasi`, whichever JS runtime wiz runs on: Node and Deno give an import
// object and bind memory with `finalizeBindings`; Bun gives `wasiImport` and binds with `setMemory`.
import { fstatSync } from 'node:fs';
import { WizError } from '../src/errors.ts';

/** The JS runtime running wiz, by name, for messages. */
export function runtimeName(): string {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun) return `Bun ${versions.bun}`;
  if (versions.deno) return `Deno ${versions.deno}`;
  return `Node.js ${process.versions.node}`;
}

/** The options of `node:wasi`'s constructor that wiz uses. */
export interface WasiOptions {
  env: Record<string, string | undefined>;
  preopens: Record<string, string>;
  stdin: number;
  stdout: number;
  stderr: number;
}

export interface RuntimeWasi {
  /** The `wasi_snapshot_preview1` functions. */
  imports: Record<string, unknown>;
  /** Points WASI at the guest's memory, before any export runs. */
  bind(instance: WebAssembly.Instance, memory: WebAssembly.Memory): void;
}

/** What each runtime's WASI object may have. */
interface AnyWasi {
  getImportObject?(): Record<string, Record<string, unknown>>;
  wasiImport?: Record<string, unknown>;
  finalizeBindings?(instance: WebAssembly.Instance, options: { memory: WebAssembly.Memory }): void;
  setMemory?(memory: WebAssembly.Memory): void;
}

const unsupported = (why: string) =>
  new WizError('usage', `--allow-wasi is not supported on ${runtimeName()}: ${why} (Node.js, Deno and Bun have it)`);

/** WASI preview1 from `node:wasi`, or one line saying why this runtime cannot give it. */
export async function runtimeWasi(options: WasiOptions): Promise<RuntimeWasi> {
  let WASI: new (options: object) => AnyWasi;
  try {
    ({ WASI } = (await import('node:wasi')) as unknown as { WASI: typeof WASI });
  } catch (e) {
    throw unsupported(`node:wasi cannot be loaded (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof WASI !== 'function') throw unsupported('node:wasi has no WASI class');
  const wasi = new WASI({ version: 'preview1', args: [], ...options, returnOnExit: true });
  const imports = wasi.getImportObject ? wasi.getImportObject().wasi_snapshot_preview1 : wasi.wasiImport;
  if (!imports || typeof imports.fd_write !== 'function') throw unsupported('its node:wasi gives no preview1 functions');
  let memory: WebAssembly.Memory | undefined;
  const canonical = canonicalFdstat(imports, [options.stdin, options.stdout, options.stderr], () => memory);
  const bound = (bind: (instance: WebAssembly.Instance, memory: WebAssembly.Memory) => void): RuntimeWasi => ({
    imports: canonical,
    bind: (instance, m) => {
      memory = m;
      bind(instance, m);
    },
  });
  if (wasi.finalizeBindings) return bound((instance, m) => wasi.finalizeBindings!(instance, { memory: m }));
  if (wasi.setMemory) return bound((_, m) => wasi.setMemory!(m));
  throw unsupported('its node:wasi cannot be bound to a module\'s memory');
}

// WASI file types and rights, as in the preview1 specification.
const BLOCK_DEVICE = 1, CHARACTER_DEVICE = 2, DIRECTORY = 3, REGULAR_FILE = 4, SOCKET_STREAM = 6, SYMBOLIC_LINK = 7;
const FD_READ = 1n << 1n, FD_WRITE = 1n << 6n, FD_READDIR = 1n << 14n;
const WRITES = (1n << 0n) | FD_WRITE | (1n << 8n) | (1n << 22n); // datasync, write, allocate, filestat_set_size
const ALL = (1n << 30n) - 1n;
const REGULAR_FILE_BASE = 0x8e001ffn;
const DIRECTORY_BASE = 0xfbffe98n;
const SOCKET_BASE = 0x3820004an;
const TTY_BASE = 0x820004an;

/** The most rights an fd of a type has, base and inheriting: the table of Node's WASI (uvwasi). */
function maxRights(filetype: number, tty: boolean): [bigint, bigint] {
  switch (filetype) {
    case REGULAR_FILE: return [REGULAR_FILE_BASE, 0n];
    case DIRECTORY: return [DIRECTORY_BASE, DIRECTORY_BASE | REGULAR_FILE_BASE];
    case SOCKET_STREAM: return [SOCKET_BASE, ALL];
    case CHARACTER_DEVICE: return tty ? [TTY_BASE, 0n] : [ALL, ALL];
    case BLOCK_DEVICE: return [ALL, ALL];
    default: return [0n, 0n];
  }
}

/** The file type of a host fd, as Node's WASI classifies it (pipes count as stream sockets). */
function hostFiletype(fd: number): number {
  try {
    const s = fstatSync(fd);
    if (s.isFile()) return REGULAR_FILE;
    if (s.isDirectory()) return DIRECTORY;
    if (s.isCharacterDevice()) return CHARACTER_DEVICE;
    if (s.isBlockDevice()) return BLOCK_DEVICE;
    if (s.isSymbolicLink()) return SYMBOLIC_LINK;
    if (s.isFIFO() || s.isSocket()) return SOCKET_STREAM;
  } catch {
    // unknown
  }
  return 0;
}

/**
 * `fd_fdstat_get` gives the same answer on every runtime: each runtime's WASI classifies stdio and grants rights
 * its own way (Deno and Bun call a pipe a character device, which libc takes for a terminal), and Node's reports
 * the host's open(2) flags. A guest keeps these answers in memory, so they reach the snapshot. The answer here is
 * the file type (stdio: from the host fd), the rights Node's WASI grants (for files the guest opened: those it
 * asked for, within the type's), and the fd flags the guest opened it with.
 */
function canonicalFdstat(wasi: Record<string, unknown>, stdio: number[], memory: () => WebAssembly.Memory | undefined): Record<string, unknown> {
  const call = (name: string, args: unknown[]) => (wasi[name] as (...a: unknown[]) => number)(...args);
  const view = () => new DataView(memory()!.buffer);
  /** Files the guest opened: the rights it asked for and its fd flags. */
  const opened = new Map<number, { base: bigint; inheriting: bigint; flags: number }>();
  // Read at the first fd_fdstat_get of each: a terminal is a character device, so other files never load node:tty.
  const stdioTypes: ({ filetype: number; tty: boolean } | undefined)[] = [];
  const stdioType = (fd: number) => {
    if (stdioTypes[fd]) return stdioTypes[fd];
    const filetype = hostFiletype(stdio[fd]!);
    return (stdioTypes[fd] = { filetype, tty: filetype === CHARACTER_DEVICE && isatty(stdio[fd]!) });
  };
  return {
    ...wasi,
    fd_fdstat_get: (...args: unknown[]) => {
      const errno = call('fd_fdstat_get', args);
      if (errno !== 0 || !memory()) return errno;
      const fd = args[0] as number;
      const at = (args[1] as number) >>> 0;
      const mem = view();
      const { filetype, tty } = fd >= 0 && fd < 3 ? stdioType(fd) : { filetype: mem.getUint8(at), tty: false };
      let [base, inheriting] = maxRights(filetype, tty);
      const own = opened.get(fd);
      if (own) {
        base &= own.base;
        inheriting &= own.inheriting;
      }
      mem.setUint8(at, filetype);
      mem.setUint8(at + 1, 0);
      mem.setUint16(at + 2, own?.flags ?? 0, true);
      mem.setUint32(at + 4, 0, true);
      mem.setBigUint64(at + 8, base, true);
      mem.setBigUint64(at + 16, inheriting, true);
      return 0;
    },
    // path_open(dirfd, dirflags, path, path_len, oflags, rights_base, rights_inheriting, fdflags, fd_ptr)
    path_open: (...args: unknown[]) => {
      const errno = call('path_open', args);
      if (errno !== 0 || !memory()) return errno;
      let base = BigInt(args[5] as bigint);
      // As Node's WASI: a file opened only to read loses the write right, and only to write, the read right.
      const reads = (base & (FD_READ | FD_READDIR)) !== 0n;
      const writes = (base & WRITES) !== 0n;
      if (reads && !writes) base &= ~FD_WRITE;
      else if (writes && !reads) base &= ~FD_READ;
      opened.set(view().getUint32((args[8] as number) >>> 0, true), { base, inheriting: BigInt(args[6] as bigint), flags: (args[7] as number) & 0x1f });
      return 0;
    },
    fd_fdstat_set_flags: (...args: unknown[]) => {
      const errno = call('fd_fdstat_set_flags', args);
      const own = opened.get(args[0] as number);
      if (errno === 0 && own) own.flags = (args[1] as number) & 0x1f;
      return errno;
    },
    fd_renumber: (...args: unknown[]) => {
      const errno = call('fd_renumber', args);
      const [from, to] = args as [number, number];
      if (errno === 0) {
        const own = opened.get(from);
        opened.delete(from);
        opened.delete(to);
        if (own) opened.set(to, own);
      }
      return errno;
    },
    fd_close: (...args: unknown[]) => {
      const errno = call('fd_close', args);
      if (errno === 0) opened.delete(args[0] as number);
      return errno;
    },
  };
}

/** node:tty, loaded when WASI is (it brings node:net along, which plain runs do not need). */
const isatty = (fd: number): boolean => (process.getBuiltinModule('node:tty') as typeof import('node:tty')).isatty(fd);
