// What the host provides during init: WASI (the JS runtime's node:wasi, see wasi.ts), preloaded modules, determinism.
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { WizError } from '../src/errors.ts';
import type { WorkerOptions } from '../src/durable/worker.ts';
import type { WizWarningCode } from '../src/errors.ts';
import { runtimeWasi, type RuntimeWasi } from './wasi.ts';
import { traceFiles, type FileTrace } from './build/trace.ts';

/** Host options, as plain data (they cross to a child process when a time limit is set). */
export interface HostOptions {
  allowWasi: boolean;
  inheritStdio: boolean;
  inheritEnv: boolean;
  dirs: string[];
  mapdirs: string[];
  preloads: string[];
  deterministic: boolean;
  /** Added to every clock_time_get reading (`--check-determinism` runs init again with a later clock). */
  clockOffsetNs?: bigint;
  /** A durable run, not init: reading a clock or random bytes is nothing to warn about. */
  run?: boolean;
  /** Where `--deterministic`'s streams stand (a durable run resumed goes on from where it was saved). */
  streams?: DeterministicStreams;
  /** The module goes to stdout: the guest's stdout must go elsewhere (stderr). */
  stdoutTaken: boolean;
  /** Record the paths init reaches and whether it read a clock or random bytes (for a cache). */
  trace?: boolean;
}

/** What init saw of the host, when traced: the files it reached, and the host inputs a cache cannot key on. */
export interface HostTrace extends FileTrace {
  /** Read a clock or random bytes (never with --deterministic, whose streams are the same every time). */
  nondeterministic: ('clock' | 'random')[];
}

/** The host flags as commander parses them (`wiz init`, `snapshot`, `run`, `resume`). */
export interface HostFlags {
  allowWasi?: boolean;
  inheritStdio: boolean;
  inheritEnv?: boolean;
  dir: string[];
  mapdir: string[];
  preload: string[];
  deterministic?: boolean;
}

/** The host options those flags give; `stdoutTaken` when the command writes its output to stdout. */
export function hostOptionsOf(flags: HostFlags, stdoutTaken: boolean): HostOptions {
  return {
    allowWasi: flags.allowWasi ?? false,
    inheritStdio: flags.inheritStdio,
    inheritEnv: flags.inheritEnv ?? false,
    dirs: flags.dir,
    mapdirs: flags.mapdir,
    preloads: flags.preload,
    deterministic: flags.deterministic ?? false,
    stdoutTaken,
  };
}

/** `--deterministic`'s random stream (xorshift32 state) and clock (nanoseconds, decimal), as saved with a program. */
export interface DeterministicStreams {
  random: number;
  clock: string;
}

export interface Host {
  imports: WebAssembly.Imports;
  /** Where `--deterministic`'s streams stand now (undefined without it). */
  streams(): DeterministicStreams | undefined;
  /** Binds WASI to the instance's memory, before any export runs. */
  bind(instance: WebAssembly.Instance): void;
  /** The runtime's WASI functions (without the nondeterminism watch), to reopen files a recovered guest holds; undefined without WASI. */
  wasi: Record<string, unknown> | undefined;
  /** What init saw, with `trace` (empty otherwise). */
  trace(): HostTrace;
  /** Tells the host a WASI call was replayed from a journal: `--deterministic`'s streams move on as if it was made. */
  replayed(name: string, args: readonly unknown[]): void;
  close(): void;
}

const WASI_MODULE = 'wasi_snapshot_preview1';

/** Checks the options and builds the host, failing with one line on a bad value. */
export async function createHost(options: HostOptions, warn: (line: string, code: WizWarningCode) => void): Promise<Host> {
  const imports: Record<string, WebAssembly.ModuleImports> = {};
  const fds: number[] = [];
  let wasi: RuntimeWasi | undefined;
  let raw: Record<string, unknown> | undefined;
  let watched: ReturnType<typeof watchNondeterminism> | undefined;
  let traced: ReturnType<typeof traceFiles> | undefined;
  if (options.allowWasi) {
    quietExperimentalWarning('WASI');
    const preopens: Record<string, string> = {};
    for (const dir of options.dirs) preopens[dir] = directory('--dir', dir, dir);
    for (const spec of options.mapdirs) {
      const sep = spec.indexOf('::');
      if (sep <= 0 || sep === spec.length - 2) throw new WizError('usage', `--mapdir "${spec}" is not of the form GUEST::HOST`);
      preopens[spec.slice(0, sep)] = directory('--mapdir', spec, spec.slice(sep + 2));
    }
    let stdio = [0, options.stdoutTaken ? 2 : 1, 2];
    if (!options.inheritStdio) {
      stdio = [openSync('/dev/null', 'r'), openSync('/dev/null', 'w'), openSync('/dev/null', 'w')];
      fds.push(...stdio);
    }
    // Loaded only when asked for: it is experimental, and not free.
    wasi = await runtimeWasi({ env: options.inheritEnv ? sortedEnv() : {}, preopens, stdin: stdio[0]!, stdout: stdio[1]!, stderr: stdio[2]! });
    raw = wasi.imports;
    watched = watchNondeterminism(raw as WebAssembly.ModuleImports, options, options.run ? () => {} : warn, () => memory);
    imports[WASI_MODULE] = watched.imports;
    if (options.trace) {
      traced = traceFiles(watched.imports, Object.entries(preopens), () => memory);
      imports[WASI_MODULE] = traced.imports;
    }
  } else if (options.dirs.length + options.mapdirs.length > 0 || options.deterministic) {
    throw new WizError('usage', '--dir, --mapdir and --deterministic need --allow-wasi');
  }
  for (const spec of options.preloads) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new WizError('usage', `--preload "${spec}" is not of the form name=file.wasm`);
    const name = spec.slice(0, eq);
    const path = spec.slice(eq + 1);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch {
      throw new WizError('usage', `--preload ${name}: cannot read "${path}"`);
    }
    try {
      const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
      // Preloads see the modules preloaded before them, nothing else: WASI here is bound to the main module's memory.
      const earlier = Object.fromEntries(Object.entries(imports).filter(([m]) => m !== WASI_MODULE));
      const instance = await WebAssembly.instantiate(module, stubsFor(module, earlier, name));
      imports[name] = instance.exports as WebAssembly.ModuleImports;
    } catch (e) {
      throw new WizError('invalid', `--preload ${name}: ${(e as Error).message.replace(/^WebAssembly\.\w+\(\): /, '')}`);
    }
  }
  let memory: WebAssembly.Memory | undefined;
  return {
    imports,
    streams: () => (options.deterministic ? watched?.streams() : undefined),
    trace: () => ({ paths: [], ...traced?.trace(), nondeterministic: options.deterministic ? [] : [...(watched?.read ?? [])] }),
    wasi: raw,
    replayed: (name, args) => {
      if (options.deterministic) watched?.replayed(name, args);
    },
    bind(instance) {
      if (!wasi) return;
      // WASI reads and writes the guest's memory: its `memory` export by convention, else its first memory.
      const candidates = [instance.exports.memory, instance.exports.__wizer_memory_0, ...Object.values(instance.exports)];
      memory = candidates.find((m): m is WebAssembly.Memory => m instanceof WebAssembly.Memory);
      wasi.bind(instance, memory ?? new WebAssembly.Memory({ initial: 0 }));
    },
    close() {
      for (const fd of fds) closeSync(fd);
    },
  };
}

/** wiz's environment, by name: runtimes list process.env in different orders, and the guest keeps the order it saw. */
function sortedEnv(): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(process.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Node's experimental modules (WASI, SQLite) announce themselves when loaded; wiz users did not ask for that line. */
const quieted = new Set<string>();
export function quietExperimentalWarning(feature: string): void {
  if (quieted.has(feature)) return;
  quieted.add(feature);
  const emit = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String(warning).includes(`${feature} is an experimental feature`)) return;
    (emit as (...a: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
}

function directory(flag: string, spec: string, path: string): string {
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new WizError('usage', `${flag} ${spec}: "${path}" is not a directory`);
  return path;
}

/** A preload's imports: what is already provided, and stubs that fail for the rest. */
function stubsFor(module: WebAssembly.Module, provided: Record<string, WebAssembly.ModuleImports>, preload: string): WebAssembly.Imports {
  const imports: Record<string, WebAssembly.ModuleImports> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    const value = provided[imp.module]?.[imp.name];
    (imports[imp.module] ??= {})[imp.name] = value ?? (() => {
      throw new WizError('import-call', `the preloaded module "${preload}" called its import "${imp.module}" "${imp.name}", which wiz does not provide`);
    });
  }
  return imports;
}

const CLOCK_FUNCS = ['clock_time_get', 'clock_res_get'];
/** WASI's errno for "try again" (a full or empty non-blocking pipe). */
const EAGAIN = 6;
const nap = new Int32Array(new SharedArrayBuffer(4));

/**
 * Randomness or clock readings taken during init are baked into every instance made from the snapshot. Say
 * so once per kind; with `deterministic`, serve a fixed random stream and a clock that starts at 0 and advances
 * 1 ms per reading instead.
 */
function watchNondeterminism(
  wasi: WebAssembly.ModuleImports,
  { deterministic, clockOffsetNs = 0n, streams }: Pick<HostOptions, 'deterministic' | 'clockOffsetNs' | 'streams'>,
  warn: (line: string, code: WizWarningCode) => void,
  memory: () => WebAssembly.Memory | undefined,
): { imports: WebAssembly.ModuleImports; streams(): DeterministicStreams; replayed(name: string, args: readonly unknown[]): void; read: Set<'clock' | 'random'> } {
  const read = new Set<'clock' | 'random'>();
  const once = (key: 'clock' | 'random', line: string) => {
    if (!deterministic && !read.has(key)) {
      read.add(key);
      warn(line, key === 'clock' ? 'clock-read' : 'random-read');
    }
  };
  let state = streams?.random ?? 0x2545f491; // xorshift32 seed: the same stream on every run
  let now = streams ? BigInt(streams.clock) : 0n;
  const EOVERFLOW = 61; // what Node's WASI returns for a range outside guest memory
  const EINVAL = 28;
  /** A view of guest memory, or undefined when the range is out of bounds. */
  const guest = (ptr: number, len: number) => {
    const mem = memory();
    const start = ptr >>> 0;
    return mem && start + len <= mem.buffer.byteLength ? new DataView(mem.buffer, start, len) : undefined;
  };
  const wrapped: WebAssembly.ModuleImports = { ...wasi };
  // stdin/stdout may be non-blocking pipes or sockets another process drains: Node's WASI then fails a call with
  // EAGAIN, and libc drops the output (or reads an end of input). The guest waits instead, as on a blocking pipe.
  for (const name of ['fd_write', 'fd_read'] as const) {
    const call = wasi[name] as (...a: unknown[]) => number;
    wrapped[name] = (...args: unknown[]) => {
      for (;;) {
        const errno = call(...args);
        if (errno !== EAGAIN) return errno;
        Atomics.wait(nap, 0, 0, 1);
      }
    };
  }
  const nextByte = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state & 0xff;
  };
  const forward = (name: string, args: unknown[]) => (wasi[name] as (...a: unknown[]) => number)(...args);
  wrapped.random_get = (...args: unknown[]) => {
    once('random', 'the module read random bytes (random_get) during init: every instance of the snapshot starts with the same ones (pass --deterministic for reproducible builds, and reseed at run time)');
    if (!deterministic) return forward('random_get', args);
    const [ptr, len] = args as [number, number];
    const view = guest(ptr, len >>> 0);
    if (!view) return EOVERFLOW;
    for (let i = 0; i < view.byteLength; i++) view.setUint8(i, nextByte());
    return 0;
  };
  for (const name of CLOCK_FUNCS) {
    // clock_time_get(id, precision, result_ptr) and clock_res_get(id, result_ptr)
    wrapped[name] = (...args: unknown[]) => {
      once('clock', `the module read a clock (${name}) during init: the time it read is baked into the snapshot (pass --deterministic for reproducible builds)`);
      const shift = (errno: number) => {
        const view = errno === 0 && name === 'clock_time_get' && clockOffsetNs !== 0n ? guest(args[2] as number, 8) : undefined;
        view?.setBigUint64(0, BigInt.asUintN(64, view.getBigUint64(0, true) + clockOffsetNs), true);
        return errno;
      };
      if (!deterministic) return shift(forward(name, args));
      const id = args[0] as number;
      if (id < 0 || id > 3) return EINVAL;
      const view = guest(args[args.length - 1] as number, 8);
      if (!view) return EOVERFLOW;
      view.setBigUint64(0, name === 'clock_time_get' ? (now += 1_000_000n) : 1_000_000n, true);
      return shift(0);
    };
  }
  return {
    imports: wrapped,
    read,
    streams: () => ({ random: state, clock: String(now) }),
    // A replayed call is given its recorded bytes; the streams move on as the call made live would have moved them.
    replayed: (name, args) => {
      if (name === 'random_get') {
        for (let i = (args[1] as number) >>> 0; i > 0; i--) nextByte();
      } else if (name === 'clock_time_get') {
        const id = args[0] as number;
        if (id >= 0 && id <= 3) now += 1_000_000n;
      }
    },
  };
}

/** The host of a durable run, as a worker takes it, and the record to save with the program. */
export interface DurableHost {
  options: WorkerOptions;
  /** What to save with the program now: where `--deterministic`'s streams stand. */
  record(): Record<string, unknown> | undefined;
  host: Host;
}

/**
 * The host the flags describe, for a durable run: `--deterministic`'s streams go on from where the program's saved
 * record (`saved`) left them. Close its `host` when done.
 */
export async function durableHost(
  flags: HostFlags,
  stdoutTaken: boolean,
  warn: (line: string) => void,
  saved: Record<string, unknown> | undefined,
): Promise<DurableHost> {
  const streams = saved?.deterministic as DeterministicStreams | undefined;
  if (streams !== undefined && !(Number.isSafeInteger(streams?.random) && typeof streams.clock === 'string' && /^(0|[1-9][0-9]{0,19})$/.test(streams.clock))) {
    throw new WizError('malformed', 'the program\'s host record has --deterministic streams that are not a number and a clock reading');
  }
  if (streams && !flags.deterministic) warn('the program ran with --deterministic before; without it, it now reads the real clock and random bytes');
  const host = await createHost({ ...hostOptionsOf(flags, stdoutTaken), run: true, ...(flags.deterministic && streams && { streams }) }, warn);
  return {
    options: { imports: host.imports, onInstantiated: (i) => host.bind(i) },
    record: () => {
      const now = host.streams();
      return now ? { deterministic: now } : undefined;
    },
    host,
  };
}

/** Runs `work` with a durable run's host (`durableHost`), closed however it ends. */
export async function withHost(
  flags: HostFlags,
  stdoutTaken: boolean,
  warn: (line: string) => void,
  saved: Record<string, unknown> | undefined,
  work: (options: WorkerOptions, saveHost: () => Record<string, unknown> | undefined) => Promise<void>,
): Promise<void> {
  const { options, record, host } = await durableHost(flags, stdoutTaken, warn, saved);
  try {
    await work(options, record);
  } finally {
    host.close();
  }
}
