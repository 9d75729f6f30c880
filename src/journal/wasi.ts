import { WizError } from '../errors.ts';
import type { JournalValue } from './entry.ts';

/**
 * What a WASI preview1 call is to a durable run (ARCHITECTURE §7): what its journal entry stands for, and what
 * performing it twice would mean.
 * - `time` (clocks, randomness): values only the journal can give back.
 * - `input` (reads): bytes from outside; they move a file offset or consume a stream.
 * - `host-state` (stat, prestat, seek, tell): what the host says about its own state.
 * - `handle` (path_open, sock_accept): a new descriptor number becomes guest state.
 * - `scheduling` (poll_oneoff, sched_yield): which events fired, in order.
 * - `configuration` (args, environment): fixed for a process, recorded anyway.
 * - `effect`: changes outside the guest (writes, file system, exit). A completed one is never performed again on
 *   replay; one in flight at a crash (performed, not yet journaled) is performed once more on recovery.
 */
export type WasiCallClass = 'time' | 'input' | 'host-state' | 'handle' | 'scheduling' | 'configuration' | 'effect';

/** A guest memory view the region functions read pointers and counts from (after the call). */
export interface GuestMemory {
  u32(address: number): number;
}

/** Where a call left its outputs: [address, length] pairs, in the order they are journaled. */
export type Regions = Array<[number, number]>;

/** Sizes the host reports for args/environ (`args_get` and `environ_get` need them to know what they wrote). */
export type SizesOf = (which: 'args' | 'environ') => { count: number; bytes: number };

type RegionsOf = (a: number[], mem: GuestMemory, sizes: SizesOf, before: unknown) => Regions;

interface WasiCall {
  class: WasiCallClass;
  /** What must be read from memory before the call (iovec arrays), passed to `writes`. */
  before?: (a: number[], mem: GuestMemory) => unknown;
  /** Outputs of a successful call (errno 0); a failing call defines none, so none are journaled. */
  writes: RegionsOf;
}

const none: RegionsOf = () => [];
/** `size` bytes at the out-pointer in argument `at`. */
const out = (at: number, size: number): RegionsOf => (a) => [[a[at]!, size]];

/** An iovec array as it is before the call (the call may overwrite it, e.g. with its count). */
function iovecList(mem: GuestMemory, iovs: number, count: number): Regions {
  const list: Regions = [];
  for (let i = 0; i < count; i++) list.push([mem.u32(iovs + 8 * i), mem.u32(iovs + 8 * i + 4)]);
  return list;
}

/** The buffers of an iovec list, filled in order up to `total` bytes. */
function filled(list: Regions | undefined, total: number): Regions {
  if (!list) throw new WizError('trap', 'a WASI read succeeded with its iovec array beyond memory');
  const regions: Regions = [];
  for (const [buf, size] of list) {
    if (total <= 0) break;
    const len = Math.min(size, total);
    regions.push([buf, len]);
    total -= len;
  }
  return regions;
}

/** A read into iovecs (the array at `iovsAt`, its length next): the bytes read (the count at `countAt`) and the count. */
const readv = (iovsAt: number, countAt: number): Pick<WasiCall, 'before' | 'writes'> => ({
  before: (a, mem) => iovecList(mem, a[iovsAt]!, a[iovsAt + 1]!),
  writes: (a, mem, _sizes, iovs) => [...filled(iovs as Regions | undefined, mem.u32(a[countAt]!)), [a[countAt]!, 4]],
});

/** A read into one buffer: up to its `bufused` count, and the count. */
const readBuf = (bufAt: number, usedAt: number): RegionsOf => (a, mem) => [
  [a[bufAt]!, Math.min(mem.u32(a[usedAt]!), a[bufAt + 1]!)],
  [a[usedAt]!, 4],
];

const list = (which: 'args' | 'environ'): RegionsOf => (a, _mem, sizes) => {
  const { count, bytes } = sizes(which);
  return [[a[0]!, 4 * count], [a[1]!, bytes]];
};

const FDSTAT = 24, FILESTAT = 64, PRESTAT = 8, EVENT = 32;

/** Every wasi_snapshot_preview1 function (witx of the 2020 snapshot), by name. */
export const WASI_CALLS: Readonly<Record<string, WasiCall>> = {
  args_get: { class: 'configuration', writes: list('args') },
  args_sizes_get: { class: 'configuration', writes: (a) => [[a[0]!, 4], [a[1]!, 4]] },
  environ_get: { class: 'configuration', writes: list('environ') },
  environ_sizes_get: { class: 'configuration', writes: (a) => [[a[0]!, 4], [a[1]!, 4]] },
  clock_res_get: { class: 'time', writes: out(1, 8) },
  clock_time_get: { class: 'time', writes: out(2, 8) },
  random_get: { class: 'time', writes: (a) => [[a[0]!, a[1]!]] },
  fd_read: { class: 'input', ...readv(1, 3) },
  fd_pread: { class: 'input', ...readv(1, 4) },
  fd_readdir: { class: 'input', writes: readBuf(1, 4) },
  path_readlink: { class: 'input', writes: readBuf(3, 5) },
  sock_recv: {
    class: 'input',
    before: (a, mem) => iovecList(mem, a[1]!, a[2]!),
    writes: (a, mem, _sizes, iovs) => [...filled(iovs as Regions | undefined, mem.u32(a[4]!)), [a[4]!, 4], [a[5]!, 2]],
  },
  fd_fdstat_get: { class: 'host-state', writes: out(1, FDSTAT) },
  fd_filestat_get: { class: 'host-state', writes: out(1, FILESTAT) },
  path_filestat_get: { class: 'host-state', writes: out(4, FILESTAT) },
  fd_prestat_get: { class: 'host-state', writes: out(1, PRESTAT) },
  fd_prestat_dir_name: { class: 'host-state', writes: (a) => [[a[1]!, a[2]!]] },
  fd_seek: { class: 'host-state', writes: out(3, 8) },
  fd_tell: { class: 'host-state', writes: out(1, 8) },
  path_open: { class: 'handle', writes: out(8, 4) },
  sock_accept: { class: 'handle', writes: out(2, 4) },
  poll_oneoff: { class: 'scheduling', writes: (a, mem) => [[a[1]!, EVENT * mem.u32(a[3]!)], [a[3]!, 4]] },
  sched_yield: { class: 'scheduling', writes: none },
  // Effects still report a count: the guest reads it, so replay must give it back.
  fd_write: { class: 'effect', writes: out(3, 4) },
  fd_pwrite: { class: 'effect', writes: out(4, 4) },
  sock_send: { class: 'effect', writes: out(4, 4) },
  fd_advise: { class: 'effect', writes: none },
  fd_allocate: { class: 'effect', writes: none },
  fd_close: { class: 'effect', writes: none },
  fd_datasync: { class: 'effect', writes: none },
  fd_sync: { class: 'effect', writes: none },
  fd_fdstat_set_flags: { class: 'effect', writes: none },
  fd_fdstat_set_rights: { class: 'effect', writes: none },
  fd_filestat_set_size: { class: 'effect', writes: none },
  fd_filestat_set_times: { class: 'effect', writes: none },
  fd_renumber: { class: 'effect', writes: none },
  path_create_directory: { class: 'effect', writes: none },
  path_filestat_set_times: { class: 'effect', writes: none },
  path_link: { class: 'effect', writes: none },
  path_remove_directory: { class: 'effect', writes: none },
  path_rename: { class: 'effect', writes: none },
  path_symlink: { class: 'effect', writes: none },
  path_unlink_file: { class: 'effect', writes: none },
  proc_exit: { class: 'effect', writes: none },
  proc_raise: { class: 'effect', writes: none },
  sock_shutdown: { class: 'effect', writes: none },
};

/** The class of a WASI preview1 function, or undefined for a name preview1 does not have. */
export function wasiCallClass(name: string): WasiCallClass | undefined {
  return Object.hasOwn(WASI_CALLS, name) ? WASI_CALLS[name]!.class : undefined;
}

/**
 * The calls whose repetition the outside world can see: one in flight at a crash runs again on recovery (a line
 * written twice, a file renamed twice). Every other call repeated only re-reads what the journal then records.
 */
export const WASI_EFFECTS: readonly string[] = Object.keys(WASI_CALLS).filter((n) => WASI_CALLS[n]!.class === 'effect');

function callOf(name: string): WasiCall {
  const call = Object.hasOwn(WASI_CALLS, name) ? WASI_CALLS[name]! : undefined;
  if (!call) throw new WizError('unsupported', `the journal does not know the WASI function ${name}`);
  return call;
}

/** Pointers and lengths arrive as signed i32 numbers; i64 arguments (offsets, rights) are BigInts no region uses. */
const unsigned = (args: readonly JournalValue[]) => args.map((v) => (typeof v === 'number' ? v >>> 0 : 0));

/** What a call of `name` needs read from memory before it runs (its iovec array), for `wasiWrites`. */
export function wasiBefore(name: string, args: readonly JournalValue[], mem: GuestMemory): unknown {
  const call = callOf(name);
  return call.before?.(unsigned(args), mem);
}

/**
 * The guest-memory regions a successful call of `name` wrote, from its arguments, what `wasiBefore` read and the
 * memory after it. A failing call (errno ≠ 0) has no defined outputs: nothing.
 */
export function wasiWrites(name: string, args: readonly JournalValue[], result: unknown, mem: GuestMemory, sizes: SizesOf, before?: unknown): Regions {
  const call = callOf(name);
  if (result !== 0) return [];
  return call.writes(unsigned(args), mem, sizes, before).filter(([, length]) => length > 0);
}
