import { WizError } from '../errors.ts';
import { EntryWriter, decodeEntry, isJournalValue, type JournalEntry, type JournalResult, type JournalValue, type MemoryWrite } from './entry.ts';
import { wasiBefore, wasiCallClass, wasiWrites, type GuestMemory, type SizesOf } from './wasi.ts';

/**
 * Where entries go, told each entry's position (a log that finds that position taken, by another writer, must
 * throw). `append` with `durable` must return only once the entry, and every entry before it, is durable: the
 * guest sees the result after it. Without `durable` (a read, a clock: a call without effects outside the guest)
 * the entry may stay volatile until the next `sync` or durable append: lost in a crash, that call is only made
 * again, since nothing outside saw what it returned. `sync` is called before a call with effects is made, so
 * that what the effect may depend on is durable first; a log without it keeps every entry durable.
 */
export interface JournalLog {
  append(entry: Uint8Array, position: number, durable: boolean): void;
  sync?(): void;
}

/** A log in memory (tests, or a host that persists entries itself). */
export function memoryLog(): JournalLog & { entries: Uint8Array[]; bytes: number } {
  const log = {
    entries: [] as Uint8Array[],
    bytes: 0,
    append(entry: Uint8Array) {
      log.entries.push(entry);
      log.bytes += entry.length;
    },
  };
  return log;
}

export interface JournalOptions {
  /** The guest's memory, asked at each call (the instance does not exist yet when imports are made). */
  memory: () => WebAssembly.Memory;
  log: JournalLog;
  /** Import modules whose functions are WASI preview1 (their memory writes are journaled); default the snapshot's. */
  wasiModules?: readonly string[];
  /** Entries recorded before, in order: they are replayed, then the run goes on live, appending to `log`. */
  replay?: readonly Uint8Array[];
  /**
   * The table entries index, as `module.name`; default every function import in `imports`, sorted. A replay must
   * use the table of the run that recorded (keep `names` beside the log when the imports may differ).
   */
  names?: readonly string[];
  /** The journal position of the first entry of `replay` (or of the first new entry): e.g. a snapshot's. */
  start?: number;
  /**
   * Asked for the entry at `position` once `replay` is used up, before the run goes live: an entry to replay, or
   * undefined to go live. A replica following a worker waits here for the next entry (or for its turn to lead).
   */
  next?: (position: number) => Uint8Array | undefined;
  /** Called once, when replay ends and before the first live call: e.g. to reopen the files the guest holds. */
  onLive?: (position: number) => void;
  /**
   * Told every call once it completed, replayed or live (with what it wrote in guest memory): hosts keep what the
   * guest's calls did to them (open files, deterministic streams) in step through replay.
   */
  observe?: (call: ObservedCall) => void;
}

/** A completed call, as `observe` sees it. */
export interface ObservedCall {
  spec: string;
  /** The function's name within its module (`fd_write`). */
  name: string;
  wasi: boolean;
  args: readonly JournalValue[];
  result: JournalResult;
  writes: readonly MemoryWrite[];
  replayed: boolean;
  position: number;
}

export interface Journal {
  /** The wrapped imports: instantiate with these. */
  readonly imports: WebAssembly.Imports;
  /** The import table entries index into. */
  readonly names: readonly string[];
  /**
   * While a host function runs, the position its call takes in the journal (an idempotency key: a call in flight
   * at a crash runs again under the same position); between calls, the next call's position.
   */
  readonly position: number;
  /** True while recorded entries remain to be replayed (or `next` may still give some). */
  readonly replaying: boolean;
  /**
   * Journals one call of import `spec` (a name of the table) made by the guest: replayed when an entry is due,
   * else performed by `host` and appended. How a host answers a call the journal does not wrap itself (an import
   * that suspended and is answered later). With `deferrable`, a live host's Promise is returned as it is and nothing
   * is appended: the call is journaled when it is answered (by a later `call` at the same position).
   */
  call(spec: string, args: readonly unknown[], host: (...args: unknown[]) => unknown, deferrable?: boolean): unknown;
  /** Whether the entry at the current position is recorded (asks `next` once replay is used up). */
  recorded(): boolean;
  /** The entry at the current position, if recorded. */
  peek(): Uint8Array | undefined;
}

const DEFAULT_WASI = ['wasi_snapshot_preview1'];

type HostFunction = (...args: unknown[]) => unknown;

/**
 * Wraps every function import so that each call is journaled: live, the host is called and the call, its result
 * and the bytes it left in guest memory are appended to the log before the guest sees the result; in replay
 * (`options.replay`), nothing is called: the recorded bytes are written and the recorded result returned, and a
 * call that is not the recorded one (another import, other argument bits) stops the run with a 'trap'.
 */
export function journalImports(imports: WebAssembly.Imports, options: JournalOptions): Journal {
  const wasi = new Set(options.wasiModules ?? DEFAULT_WASI);
  const names = options.names ?? functionNames(imports);
  const indexOf = new Map(names.map((n, i) => [n, i]));
  const replay = [...(options.replay ?? [])];
  const start = options.start ?? 0;
  const writer = new EntryWriter();
  let cursor = 0;
  let inCall = false;
  let live = false;
  const hostModules = new Map<string, Record<string, unknown>>(Object.entries(imports).map(([m, v]) => [m, v as Record<string, unknown>]));

  /** The entry at the cursor, if recorded: from `replay`, else from `next`; going live (once) when there is none. */
  const due = (): Uint8Array | undefined => {
    if (live) return undefined;
    if (cursor < replay.length) return replay[cursor];
    const more = options.next?.(start + cursor);
    if (more) {
      replay.push(more);
      return more;
    }
    live = true;
    options.onLive?.(start + cursor);
    return undefined;
  };

  const journal = {
    imports: {} as Record<string, Record<string, WebAssembly.ImportValue>>,
    names,
    get position() {
      return start + cursor;
    },
    get replaying() {
      return !live && (cursor < replay.length || options.next !== undefined);
    },
    call: (spec: string, args: readonly unknown[], host: (...args: unknown[]) => unknown, deferrable?: boolean): unknown => {
      const dot = spec.indexOf('.');
      const module = spec.slice(0, dot);
      return call(spec, spec.slice(dot + 1), host, wasi.has(module), hostModules.get(module) ?? {}, [...args], deferrable);
    },
    recorded: () => due() !== undefined,
    peek: () => due(),
  };

  const observe = (spec: string, name: string, isWasi: boolean, args: JournalValue[], result: JournalResult, writes: readonly MemoryWrite[], replayed: boolean, position: number) => {
    options.observe?.({ spec, name, wasi: isWasi, args, result, writes, replayed, position });
  };

  const call = (spec: string, name: string, host: HostFunction, isWasi: boolean, hostModule: Record<string, unknown>, args: unknown[], deferrable = false): unknown => {
    if (inCall) throw new WizError('unsupported', `${spec} was called while a journaled host call was running: journaled imports cannot re-enter the guest`);
    const index = indexOf.get(spec);
    if (index === undefined) throw new WizError('usage', `the journal's import table has no ${spec}`);
    for (const a of args) {
      if (!isJournalValue(a)) throw new WizError('unsupported', `${spec} was called with a reference: a journal records numbers and BigInts only`);
    }
    const values = args as JournalValue[];
    const position = start + cursor;
    writer.reset();
    writer.call(index, values);
    const recorded = due();
    if (recorded) {
      const entry = decodeEntry(recorded, position);
      if (entry.import >= names.length) throw new WizError('malformed', `journal entry ${position} names import ${entry.import}, beyond the table of ${names.length}`);
      // Calls encode canonically and self-delimit, so equal leading bytes mean the same import and argument bits.
      if (!startsWith(recorded, writer.view())) {
        throw new WizError('trap', `replay diverged at journal entry ${position}: expected ${formatCall(names[entry.import]!, entry.args)}, got ${formatCall(spec, values)}`);
      }
      cursor++;
      const value = replayed(entry, spec, position, options.memory());
      observe(spec, name, isWasi, values, entry.result, entry.writes, true, position);
      return value;
    }
    let before: unknown;
    try {
      if (isWasi) before = wasiBefore(name, values, guestMemory(spec, options.memory()));
    } catch {
      // An iovec array beyond memory: the host fails the call (EFAULT), which then writes nothing.
    }
    // A call with effects outside the guest (a WASI effect; any user import, whose effects wiz cannot know) is made
    // only once what it may depend on is durable, and its own entry is durable before the guest goes on.
    const durable = !isWasi || wasiCallClass(name) === 'effect';
    if (durable) options.log.sync?.();
    let result: unknown;
    inCall = true;
    try {
      result = host(...args);
    } catch (e) {
      const threw: JournalResult = { kind: 'threw', message: e instanceof Error ? e.message : String(e) };
      writer.result(threw);
      writer.writes([]);
      options.log.append(writer.finish(), position, true);
      cursor++;
      observe(spec, name, isWasi, values, threw, [], false, position);
      throw e;
    } finally {
      inCall = false;
    }
    if (deferrable && typeof (result as { then?: unknown } | null)?.then === 'function') return result;
    const outcome = resultOf(spec, result);
    const writes = isWasi ? wasiMemoryWrites(spec, name, values, result, before, options.memory(), hostModule) : [];
    writer.result(outcome);
    writer.writes(writes);
    options.log.append(writer.finish(), position, durable);
    cursor++;
    observe(spec, name, isWasi, values, outcome, writes, false, position);
    return result;
  };

  for (const [module, values] of Object.entries(imports)) {
    const wrapped: Record<string, WebAssembly.ImportValue> = {};
    for (const [name, value] of Object.entries(values)) {
      if (typeof value !== 'function') {
        wrapped[name] = value;
        continue;
      }
      const spec = `${module}.${name}`;
      const isWasi = wasi.has(module);
      const host = value as HostFunction;
      if (isWasi && !wasiCallClass(name)) {
        // Refused before it runs: an unjournaled effect must not happen.
        wrapped[name] = () => { throw new WizError('unsupported', `the journal does not know the WASI function ${spec}`); };
        continue;
      }
      wrapped[name] = (...args: unknown[]) => call(spec, name, host, isWasi, values as Record<string, unknown>, args);
    }
    journal.imports[module] = wrapped;
  }
  return journal;
}

/** Every function import of `imports` as `module.name`, sorted so that equal import sets give equal tables. */
function functionNames(imports: WebAssembly.Imports): string[] {
  const names: string[] = [];
  for (const [module, values] of Object.entries(imports)) {
    for (const [name, value] of Object.entries(values)) if (typeof value === 'function') names.push(`${module}.${name}`);
  }
  return names.sort();
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

function resultOf(spec: string, result: unknown): JournalResult {
  if (result === undefined) return { kind: 'none' };
  if (isJournalValue(result)) return { kind: 'value', value: result };
  if (Array.isArray(result) && result.every(isJournalValue)) return { kind: 'values', values: result };
  if (typeof (result as { then?: unknown }).then === 'function') {
    throw new WizError('unsupported', `${spec} returned a Promise: a journaled import must return its result at once`);
  }
  throw new WizError('unsupported', `${spec} returned a ${typeof result}: a journal records numbers and BigInts only`);
}

/** Gives the guest what the recorded call gave it. */
function replayed(entry: JournalEntry, spec: string, position: number, memory: WebAssembly.Memory): unknown {
  const bytes = new Uint8Array(memory.buffer);
  for (const w of entry.writes) {
    if (w.address + w.bytes.length > bytes.length) {
      throw new WizError('trap', `replay diverged at journal entry ${position}: ${spec} wrote at ${w.address}, beyond the memory's ${bytes.length} bytes`);
    }
    bytes.set(w.bytes, w.address);
  }
  const r = entry.result;
  switch (r.kind) {
    case 'none':
      return undefined;
    case 'value':
      return r.value;
    case 'values':
      return r.values;
    case 'threw':
      throw new WizError('trap', `${spec} threw at journal entry ${position} of the recorded run: ${r.message}`);
  }
}

/** The bytes a WASI call left in the regions it may write, read now, right after it. */
function wasiMemoryWrites(spec: string, name: string, args: JournalValue[], result: unknown, before: unknown, memory: WebAssembly.Memory, hostModule: Record<string, unknown>): MemoryWrite[] {
  const bytes = new Uint8Array(memory.buffer);
  const sizes: SizesOf = (which) => hostSizes(spec, which, memory, hostModule);
  return wasiWrites(name, args, result, guestMemory(spec, memory), sizes, before).map(([address, length]) => {
    if (address + length > bytes.length) throw new WizError('trap', `${spec} succeeded with a buffer beyond memory (${address}, ${length} bytes)`);
    return { address, bytes: bytes.slice(address, address + length) };
  });
}

/** Reads of guest memory for region computations, bounds checked. */
function guestMemory(spec: string, memory: WebAssembly.Memory): GuestMemory {
  const view = new DataView(memory.buffer);
  return {
    u32: (address) => {
      if (address + 4 > view.byteLength) throw new WizError('trap', `${spec}: a pointer beyond memory (${address})`);
      return view.getUint32(address, true);
    },
  };
}

/**
 * Asks the host how many args/environ entries and bytes it has, to know what `args_get`/`environ_get` wrote: a
 * call of `*_sizes_get` of its own, into 8 bytes of guest memory it puts back (configuration is fixed, so this
 * asks what the guest's call just used).
 */
function hostSizes(spec: string, which: 'args' | 'environ', memory: WebAssembly.Memory, hostModule: Record<string, unknown>): { count: number; bytes: number } {
  const sizesGet = hostModule[`${which}_sizes_get`];
  const bytes = new Uint8Array(memory.buffer);
  if (typeof sizesGet !== 'function' || bytes.length < 8) throw new WizError('unsupported', `${spec} cannot be journaled without the host's ${which}_sizes_get`);
  const saved = bytes.slice(0, 8);
  try {
    const errno = (sizesGet as HostFunction)(0, 4);
    if (errno !== 0) throw new WizError('trap', `${spec}: the host's ${which}_sizes_get failed (errno ${String(errno)})`);
    const view = new DataView(memory.buffer);
    return { count: view.getUint32(0, true), bytes: view.getUint32(4, true) };
  } finally {
    new Uint8Array(memory.buffer).set(saved, 0);
  }
}

/** `env.fetch(3, -0, 5n)`: a call as divergence messages show it (NaNs with their bits). */
export function formatCall(spec: string, args: readonly JournalValue[]): string {
  const view = new DataView(new ArrayBuffer(8));
  const show = (v: JournalValue): string => {
    if (typeof v === 'number' && Number.isNaN(v)) {
      view.setFloat64(0, v);
      return `nan:0x${view.getBigUint64(0).toString(16)}`;
    }
    if (Object.is(v, -0)) return '-0';
    return String(v);
  };
  return `${spec}(${args.map(show).join(', ')})`;
}
