// What the host provides during init: WASI (Node's own implementation), preloaded modules, determinism.
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { WizError } from '../src/errors.ts';

/** Host options, as plain data (they cross to a worker thread when a time limit is set). */
export interface HostOptions {
  allowWasi: boolean;
  inheritStdio: boolean;
  inheritEnv: boolean;
  dirs: string[];
  mapdirs: string[];
  preloads: string[];
  deterministic: boolean;
  /** The module goes to stdout: the guest's stdout must go elsewhere (stderr). */
  stdoutTaken: boolean;
}

export interface Host {
  imports: WebAssembly.Imports;
  /** Binds WASI to the instance's memory, before any export runs. */
  bind(instance: WebAssembly.Instance): void;
  close(): void;
}

const WASI_MODULE = 'wasi_snapshot_preview1';

/** Checks the options and builds the host, failing with one line on a bad value. */
export async function createHost(options: HostOptions, warn: (line: string) => void): Promise<Host> {
  const imports: Record<string, WebAssembly.ModuleImports> = {};
  const fds: number[] = [];
  let wasi: import('node:wasi').WASI | undefined;
  if (options.allowWasi) {
    quietWasiWarning();
    const { WASI } = await import('node:wasi'); // loaded only when asked for: it is experimental, and not free
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
    wasi = new WASI({
      version: 'preview1',
      args: [],
      env: options.inheritEnv ? process.env : {},
      preopens,
      stdin: stdio[0],
      stdout: stdio[1],
      stderr: stdio[2],
      returnOnExit: true,
    });
    imports[WASI_MODULE] = watchNondeterminism((wasi.getImportObject() as Record<string, WebAssembly.ModuleImports>)[WASI_MODULE]!, options.deterministic, warn, () => memory);
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
      const instance = await WebAssembly.instantiate(module, stubsFor(module, imports, name));
      imports[name] = instance.exports as WebAssembly.ModuleImports;
    } catch (e) {
      throw new WizError('invalid', `--preload ${name}: ${(e as Error).message.replace(/^WebAssembly\.\w+\(\): /, '')}`);
    }
  }
  let memory: WebAssembly.Memory | undefined;
  return {
    imports,
    bind(instance) {
      if (!wasi) return;
      const exported = instance.exports.memory ?? instance.exports.__wizer_memory_0;
      memory = exported instanceof WebAssembly.Memory ? exported : undefined;
      wasi.finalizeBindings(instance, memory ? { memory } : undefined);
    },
    close() {
      for (const fd of fds) closeSync(fd);
    },
  };
}

/** Node's WASI announces itself as experimental when loaded; wiz users did not ask for that line. */
function quietWasiWarning(): void {
  const emit = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String(warning).includes('WASI is an experimental feature')) return;
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

/**
 * Randomness or clock readings taken during init are baked into every instance made from the snapshot. Say
 * so once per kind; with `deterministic`, serve a fixed random stream and a clock that starts at 0 and advances
 * 1 ms per reading instead.
 */
function watchNondeterminism(
  wasi: WebAssembly.ModuleImports,
  deterministic: boolean,
  warn: (line: string) => void,
  memory: () => WebAssembly.Memory | undefined,
): WebAssembly.ModuleImports {
  const warned = new Set<string>();
  const once = (key: string, line: string) => {
    if (!deterministic && !warned.has(key)) {
      warned.add(key);
      warn(line);
    }
  };
  let state = 0x2545f491; // xorshift32 seed: the same stream on every run
  let now = 0n;
  const wrapped: WebAssembly.ModuleImports = { ...wasi };
  wrapped.random_get = (ptr: number, len: number) => {
    once('random', 'the module read random bytes (random_get) during init: every instance of the snapshot starts with the same ones (pass --deterministic for reproducible builds, and reseed at run time)');
    const mem = memory();
    if (!deterministic || !mem) return (wasi.random_get as (p: number, l: number) => number)(ptr, len);
    const view = new Uint8Array(mem.buffer, ptr >>> 0, len >>> 0);
    for (let i = 0; i < view.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      view[i] = state & 0xff;
    }
    return 0;
  };
  for (const name of CLOCK_FUNCS) {
    wrapped[name] = (id: number, precisionOrPtr: bigint | number, ptr?: number) => {
      once('clock', `the module read a clock (${name}) during init: the time it read is baked into the snapshot (pass --deterministic for reproducible builds)`);
      const mem = memory();
      if (!deterministic || !mem) return (wasi[name] as (...a: unknown[]) => number)(id, precisionOrPtr, ptr);
      const out = name === 'clock_time_get' ? ptr! : (precisionOrPtr as number);
      const value = name === 'clock_time_get' ? (now += 1_000_000n) : 1_000_000n;
      new DataView(mem.buffer).setBigUint64(out >>> 0, value, true);
      return 0;
    };
  }
  return wrapped;
}
