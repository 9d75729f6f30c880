import { WizError, type WarningHandler } from '../errors.ts';
import type { InstrumentedModule } from '../instrument/instrument.ts';
import { functionType } from '../parse/module.ts';
import type { ModuleContext } from '../parse/types.ts';

export const DEFAULT_INIT_FUNC = 'wizer-initialize';
/** The name Wizer v10 and older toolchains used. */
export const LEGACY_INIT_FUNC = 'wizer.initialize';

export interface InitializeOptions {
  /** The export to run; by default `wizer-initialize`, or `wizer.initialize` when only that one is exported. */
  initFunc?: string;
  /**
   * Host imports to provide during init, by module and name. Function imports not given here are stubs that
   * fail the run when called.
   */
  imports?: WebAssembly.Imports;
  /** Called with the new instance before any export runs (e.g. to bind a WASI implementation to its memory). */
  onInstantiated?: (instance: WebAssembly.Instance) => void;
  onWarning?: WarningHandler;
}

/** Which export is the init function, checked to be an exported function of type `[] -> []`. */
export function resolveInitFunc(ctx: ModuleContext, options: Pick<InitializeOptions, 'initFunc' | 'onWarning'> = {}): string {
  let name = options.initFunc ?? DEFAULT_INIT_FUNC;
  let exp = ctx.exports.find((e) => e.name === name);
  if (!exp && options.initFunc === undefined) {
    const legacy = ctx.exports.find((e) => e.name === LEGACY_INIT_FUNC);
    if (legacy) {
      options.onWarning?.(`the module exports no "${DEFAULT_INIT_FUNC}"; running its "${LEGACY_INIT_FUNC}" as the init function`, 'legacy-init-func');
      name = LEGACY_INIT_FUNC;
      exp = legacy;
    }
  }
  if (!exp) {
    const funcs = ctx.exports.filter((e) => e.kind === 'func').map((e) => `"${e.name}"`);
    const list = funcs.length === 0 ? 'it exports no functions' : `its exported functions: ${funcs.slice(0, 8).join(', ')}${funcs.length > 8 ? ', …' : ''}`;
    throw new WizError('init-func', `the module does not export the init function "${name}" (${list}); name one with -f/--init-func`);
  }
  if (exp.kind !== 'func') {
    throw new WizError('init-func', `the init function "${name}" is exported as a ${exp.kind}, not a function`);
  }
  const type = functionType(ctx, exp.index);
  if (type?.kind !== 'func' || type.params.length > 0 || type.results.length > 0) {
    const shown = type?.kind === 'func' ? `[${type.params.join(' ')}] -> [${type.results.join(' ')}]` : 'not a function type';
    throw new WizError('init-func', `the init function "${name}" must take no parameters and return nothing, but its type is ${shown}`);
  }
  return name;
}

/** Compiles a module, explaining a failure in one line (invalid module, or a feature the engine lacks). */
export async function compileModule(bytes: Uint8Array, original?: Uint8Array): Promise<WebAssembly.Module> {
  try {
    return await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    if (original && original !== bytes) {
      // Report the input's own error, with offsets into the input rather than into the instrumented copy.
      await compileModule(original);
    }
    throw compileError(e);
  }
}

/** Features V8 gates behind `--experimental-wasm-*` flags, and the Node release that enables each by default. */
const FEATURE_NODE: Record<string, string> = {
  memory64: 'Node 24', multi_memory: 'Node 22', extended_const: 'Node 22', relaxed_simd: 'Node 22', gc: 'Node 22',
  typed_funcref: 'Node 22', imported_strings: 'Node 24', exnref: 'Node 25', stringref: 'no Node release',
  custom_page_sizes: 'no Node release', fp16: 'no Node release',
};

/**
 * Why the engine refuses `bytes` (its message), or undefined when they are valid. Validated, not just compiled: an
 * engine that validates function bodies lazily (wiz's command line turns that on) compiles a module whose invalid
 * bodies have not run; compiling only gives the reason.
 */
export async function invalidity(bytes: Uint8Array): Promise<string | undefined> {
  if (WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) return undefined;
  return WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>).then(() => 'WebAssembly.validate refused it', (e: unknown) => String((e as Error)?.message ?? e));
}

/** The engine's refusal of a module, as one line. */
export function compileError(e: unknown): WizError {
  const message = String((e as Error)?.message ?? e).replace(/^WebAssembly\.\w+\(\): /, '');
  // Edge runtimes (workerd, Vercel Edge) refuse every module compiled from bytes, valid or not.
  if (/code generation disallowed/i.test(message)) {
    return new WizError('unsupported', `compiling WebAssembly at run time is forbidden here (${message}); give the module precompiled at deploy time (loadDurable(bytes, { module }))`);
  }
  const flag = /--experimental-wasm-([\w-]+)/.exec(message) ?? (/memory limits flags 0x[89a-f]\b/.test(message) ? [, 'custom_page_sizes'] : null);
  if (flag) {
    const feature = flag[1]!.replace(/-/g, '_');
    const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
    const name = feature.replace(/_/g, '-');
    // Outside Node (a browser, a worker) the Node release that has the feature is no help.
    if (!node) return new WizError('unsupported', `the module uses the WebAssembly ${name} feature, which this engine does not enable: ${message}`);
    const has = FEATURE_NODE[feature] ?? 'a newer Node release';
    return new WizError('unsupported', `the module uses the WebAssembly ${name} feature, which Node ${node} does not enable (${has} does): ${message}`);
  }
  return new WizError('invalid', `invalid module: ${message}`);
}

/** A stub for a function import the host does not provide: calling it during init fails the run. */
class UnknownImportCall extends WizError {
  constructor(module: string, name: string, run: boolean) {
    const hint = /^wasi_(snapshot_preview1|unstable)$/.test(module)
      ? `; pass --allow-wasi to provide WASI${run ? '' : ' during init'}`
      : run ? ' (name it with --suspend-on to answer it, or provide it with --preload)' : ' (imports may be declared but not called during init)';
    super('import-call', `the module called the import "${module}" "${name}" ${run ? 'while it ran' : 'during initialization'}, which wiz does not provide${hint}`);
  }
}

/** A live instance whose calls report failures as one-line `WizError`s. */
export interface LiveInstance {
  instance: WebAssembly.Instance;
  /** Calls an export; `what` names it in errors (default: `the export "name"`). */
  call(name: string, args?: readonly unknown[], what?: string): unknown;
}

/**
 * Instantiates a module with the host's imports and trapping stubs for the other function imports (its start
 * function runs). A call to a stub fails the run, even if the module catches the exception it throws.
 */
export async function instantiate(
  ctx: ModuleContext,
  module: WebAssembly.Module,
  options: Pick<InitializeOptions, 'imports' | 'onInstantiated'> & { /** A run rather than init: errors say so. */ run?: boolean } = {},
): Promise<LiveInstance> {
  const called: UnknownImportCall[] = [];
  const imports = hostImports(ctx, options.imports ?? {}, called, options.run ?? false);
  let instance: WebAssembly.Instance;
  try {
    instance = await WebAssembly.instantiate(module, imports);
  } catch (e) {
    if (ctx.start === undefined && !called[0]) {
      const message = e instanceof Error ? e.message.replace(/^WebAssembly\.\w+\(\): /, '') : String(e);
      throw new WizError(e instanceof WebAssembly.RuntimeError ? 'trap' : 'invalid', `cannot instantiate the module: ${message}`);
    }
    throw failure('the start function', e, called);
  }
  options.onInstantiated?.(instance);
  return {
    instance,
    call(name, args = [], what = `the export "${name}"`) {
      const fn = instance.exports[name];
      if (typeof fn !== 'function') throw new WizError('usage', `the module exports no function "${name}"`);
      let result: unknown;
      try {
        result = (fn as (...a: readonly unknown[]) => unknown)(...args);
      } catch (e) {
        throw failure(what, e, called);
      }
      if (called[0]) throw called[0];
      return result;
    },
  };
}

/**
 * Instantiates the instrumented module (its start function runs), calls `_initialize` if the module exports
 * it, then calls the init function. Returns the live instance whose state is to be snapshotted.
 */
export async function initialize(
  instrumented: InstrumentedModule,
  module: WebAssembly.Module,
  initFunc: string,
  options: InitializeOptions = {},
): Promise<WebAssembly.Instance> {
  const live = await instantiate(instrumented.context, module, options);
  if (initFunc !== '_initialize' && typeof live.instance.exports._initialize === 'function') {
    live.call('_initialize', [], 'the init function "_initialize"');
  }
  live.call(initFunc, [], `the init function "${initFunc}"`);
  return live.instance;
}

function hostImports(ctx: ModuleContext, given: WebAssembly.Imports, called: UnknownImportCall[], run: boolean): WebAssembly.Imports {
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const imp of ctx.imports) {
    const provided = given[imp.module]?.[imp.name];
    const ns = (imports[imp.module] ??= {});
    if (provided !== undefined) {
      ns[imp.name] = provided;
    } else if (imp.kind === 'func') {
      ns[imp.name] = () => {
        const error = new UnknownImportCall(imp.module, imp.name, run);
        called.push(error);
        throw error;
      };
    } else if (imp.kind === 'tag') {
      ns[imp.name] = newTag(ctx, imp.typeIndex!, `${imp.module}" "${imp.name}`);
    }
  }
  return imports;
}

/** A fresh tag of the imported tag's type: tags carry no state, so any tag of that type will do during init. */
function newTag(ctx: ModuleContext, typeIndex: number, name: string): WebAssembly.ImportValue {
  const Tag = (WebAssembly as unknown as { Tag?: new (t: { parameters: string[] }) => WebAssembly.ImportValue }).Tag;
  const type = ctx.types[typeIndex];
  const jsTypes: Record<string, string> = { i32: 'i32', i64: 'i64', f32: 'f32', f64: 'f64', v128: 'v128', externref: 'externref', funcref: 'anyfunc' };
  const parameters = type?.kind === 'func' ? type.params.map((p) => jsTypes[p]) : undefined;
  if (!Tag || !parameters || parameters.some((p) => p === undefined)) {
    throw new WizError('unsupported', `cannot provide the imported tag "${name}" during init in this engine`);
  }
  return new Tag({ parameters: parameters as string[] });
}

/** One line for why a run failed: a trap, a stack overflow, an uncaught exception, or a call to a stub. */
function failure(what: string, e: unknown, called: UnknownImportCall[]): WizError {
  if (called[0]) return called[0];
  // Node's WASI ends proc_exit by throwing a symbol.
  if (typeof e === 'symbol') return new WizError('trap', `${what} exited the program (proc_exit) instead of returning`);
  if (e instanceof WizError) return e;
  if (e instanceof WebAssembly.RuntimeError) return new WizError('trap', `${what} trapped: ${e.message}`);
  if (e instanceof RangeError && /call stack/i.test(e.message)) {
    return new WizError('trap', `${what} trapped: call stack exhausted`);
  }
  const Exception = (WebAssembly as unknown as { Exception?: new (...a: never[]) => unknown }).Exception;
  if (Exception && e instanceof Exception) return new WizError('trap', `${what} threw a WebAssembly exception that nothing caught`);
  if (e instanceof WebAssembly.LinkError) return new WizError('invalid', `cannot instantiate the module: ${e.message.replace(/^WebAssembly\.\w+\(\): /, '')}`);
  return new WizError('trap', `${what} failed: ${e instanceof Error ? e.message : String(e)}`);
}
