import { WizError } from '../errors.ts';
import { exportCount, instrumentationOf, withProbe, writeInstrumentationExports, WIZER_PREFIX, type InstrumentedModule } from '../instrument/instrument.ts';
import { checkClaims } from '../instrument/reparse.ts';
import { assemble } from '../parse/assemble.ts';
import { entriesAfterCount, findSection, parseModule, SectionId } from '../parse/module.ts';
import type { ModuleContext } from '../parse/types.ts';
import { BinaryWriter } from '../parse/writer.ts';
import { compileModule } from '../run/initialize.ts';
import type { TableBaseline } from '../snapshot/state.ts';
import type { ComponentContext, CoreModuleSection } from './binary.ts';
import { componentShape, shapeOrdinal } from './shape.ts';
import { CAPTURE_TABLES, loadGlue, transpile, witName, type Transpiled } from './transpile.ts';

/** The export through which wiz runs a snapshotted module's start function itself (never written out). */
const START_EXPORT = `${WIZER_PREFIX}start`;

/** Why a core module of the component is or is not snapshotted. */
export type ModuleRole = 'snapshot' | 'adapter' | 'unused';

/** A core module section of the component and, once instantiated, its live instance. */
export interface LiveModule {
  section: CoreModuleSection;
  role: ModuleRole;
  /** The instrumented module (snapshotted modules only). */
  instrumented?: InstrumentedModule;
  instance?: WebAssembly.Instance;
  /** Table contents as instantiation left them, before any start function ran (see `RunOptions`). */
  baseline: TableBaseline;
}

export interface ComponentRunOptions {
  /**
   * Implementations of the component's imports, by interface name as jco's glue names them
   * (`wasi:cli/environment`, without version), e.g. preview2-shim's `WASIShim#getImportObject()`. A call to
   * anything not given fails the run with one line naming it.
   */
  imports?: Record<string, unknown>;
  /**
   * The component is a `--keep-instrumentation` output (wiz snapshot): each module's `__wizer_` exports are
   * verified against what they claim (untrusted input), then used as they are.
   */
  reparse?: boolean;
}

/** A component instantiated by wiz: its JS exports (jco's glue) and every core module with its instance. */
export interface LiveComponent {
  exports: Record<string, unknown>;
  modules: LiveModule[];
  transpiled: Transpiled;
  /** Calls an export, reporting failures as one-line `WizError`s; `what` names it in errors. */
  call(fn: (...args: unknown[]) => unknown, args: readonly unknown[], what: string): unknown;
  /**
   * The host resources the component holds now (own handles to objects of this host), by type name: their
   * handles mean nothing to the host that runs the snapshot. Not counted: the stdio streams, terminals and
   * preopened directories of the WASI preview1 adapter, whose state is kept as built (it gets them again).
   */
  openResources(): string[];
}

/** Host functions whose results the preview1 adapter keeps for its whole life, by interface. */
const ADAPTER_KEEPS: Record<string, readonly string[]> = {
  'wasi:cli/stdin': ['getStdin'],
  'wasi:cli/stdout': ['getStdout'],
  'wasi:cli/stderr': ['getStderr'],
  'wasi:cli/terminal-stdin': ['getTerminalStdin'],
  'wasi:cli/terminal-stdout': ['getTerminalStdout'],
  'wasi:cli/terminal-stderr': ['getTerminalStderr'],
  'wasi:filesystem/preopens': ['getDirectories'],
};

/** The WASI preview1 adapter: it exports preview1 functions and imports WASI 0.2 interfaces. */
export function isPreview1Adapter(ctx: ModuleContext): boolean {
  return ctx.exports.some((e) => e.kind === 'func' && /^(fd_write|environ_get|proc_exit|clock_time_get)$/.test(e.name))
    && ctx.imports.some((i) => i.module.startsWith('wasi:'));
}

/**
 * The module wiz instantiates for a snapshotted module: instrumented as a core module is (imported memories,
 * tables and globals allowed: their owner is snapshotted), with its start section turned into an export, so that
 * wiz can read the tables before any start function runs and then run it.
 */
export function instrumentModule(ctx: ModuleContext, existing?: InstrumentedModule): InstrumentedModule {
  let instrumented: InstrumentedModule;
  if (existing) instrumented = existing;
  else {
    for (const e of ctx.exports) {
      if (e.name.startsWith(WIZER_PREFIX)) throw new WizError('instrumentation', `a core module of the component already exports "${e.name}": names starting with ${WIZER_PREFIX} are reserved for wiz (to snapshot an instrumented component again, use wiz snapshot)`);
    }
    const instrumentation = instrumentationOf(ctx);
    const added = new BinaryWriter();
    writeInstrumentationExports(added, instrumentation);
    const { bytes, probe } = withProbe(ctx, instrumentation, added, exportCount(instrumentation));
    instrumented = { context: ctx, bytes, ...instrumentation, probe, reparsed: false };
  }
  if (ctx.start === undefined) return instrumented;
  const run = parseModule(instrumented.bytes);
  const exports = new BinaryWriter().u32(run.exports.length + 1);
  const section = findSection(run, SectionId.export);
  if (section) exports.raw(entriesAfterCount(run, section.contentStart, section.end));
  exports.name(START_EXPORT).byte(0x00).u32(ctx.start);
  const bytes = assemble(run, new Map([[SectionId.start, null], [SectionId.export, exports]])).finish();
  return { ...instrumented, bytes };
}

/**
 * A core module of a `--keep-instrumentation` component, read back as `parseInstrumented` reads a module (the
 * whole module validated, every claim checked), but with imported memories, tables and globals allowed.
 */
async function reparseModule(ctx: ModuleContext): Promise<InstrumentedModule> {
  await compileModule(ctx.bytes);
  const expected = instrumentationOf(ctx);
  checkClaims(ctx, expected);
  const { bytes, probe } = withProbe(ctx, expected, new BinaryWriter(), 0);
  return { context: ctx, bytes, ...expected, probe, reparsed: true };
}

/** Reads the contents of the module's tables into its baseline (once per table). */
function takeBaseline(m: LiveModule): void {
  if (!m.instrumented || !m.instance) return;
  for (const t of m.instrumented.tables) {
    if (m.baseline.has(t.ordinal)) continue;
    const table = m.instance.exports[t.exportName];
    if (!(table instanceof WebAssembly.Table)) continue;
    const get = table.get.bind(table) as (i: number | bigint) => unknown;
    const values: unknown[] = [];
    try {
      for (let slot = 0; slot < Number(table.length); slot++) values.push(get(t.table64 ? BigInt(slot) : slot));
    } catch {
      continue; // unreadable here (exnref): no baseline, so its contents must be writable as constants
    }
    m.baseline.set(t.ordinal, values);
  }
}

/**
 * Instantiates a component through jco's glue, handing it wiz's instrumented core modules and keeping every
 * core instance. The glue is written for the component's shape: each module it asks for is a stub naming its
 * section of the binary, whose real module wiz compiles instead. The glue may add core modules of its own
 * (adapters it generates), which name no section and run as they are.
 */
export async function instantiateComponent(ctx: ComponentContext, options: ComponentRunOptions = {}): Promise<LiveComponent> {
  // The glue is written for the component's shape (its modules stubbed, see shape.ts); each stub names its section.
  const transpiled = await transpile(componentShape(ctx));
  const modules: LiveModule[] = [];
  const bySection = new Map<number, LiveModule>();
  const byModule = new Map<WebAssembly.Module, LiveModule>();

  const sectionOf = (bytes: Uint8Array): CoreModuleSection | undefined => {
    const ordinal = shapeOrdinal(bytes);
    return ordinal === undefined || bySection.has(ordinal) ? undefined : ctx.modules[ordinal];
  };

  const getCoreModule = async (name: string): Promise<WebAssembly.Module> => {
    const bytes = transpiled.files.get(name);
    if (!bytes) throw new WizError('unsupported', `jco's glue asked for a core module "${name}" it did not produce`);
    const section = sectionOf(bytes);
    if (!section) return compileModule(bytes); // the glue's own
    const ctx = parseModule(section.bytes);
    const role: ModuleRole = isPreview1Adapter(ctx) ? 'adapter' : 'snapshot';
    const live: LiveModule = { section, role, baseline: new Map() };
    let module: WebAssembly.Module;
    if (role === 'snapshot') {
      const inModule = (e: unknown) => {
        throw e instanceof WizError ? new WizError(e.code, `core module ${section.ordinal}: ${e.message}`) : e;
      };
      const existing = options.reparse ? await reparseModule(ctx).catch(inModule) : undefined;
      live.instrumented = instrumentModule(ctx, existing);
      module = await compileModule(live.instrumented.bytes, section.bytes).catch(inModule);
    } else module = await compileModule(section.bytes);
    bySection.set(section.ordinal, live);
    byModule.set(module, live);
    return module;
  };

  const calls: WizError[] = [];
  const captureTables: Map<unknown, unknown>[] = [];
  const adapterKept = new WeakSet<object>();
  const instantiateCore = async (module: WebAssembly.Module, imports?: WebAssembly.Imports): Promise<WebAssembly.Instance> => {
    const live = byModule.get(module);
    if (live?.instance) {
      throw new WizError('unsupported', `core module ${live.section.ordinal} is instantiated more than once: one module section cannot hold the state of two instances, so wiz cannot snapshot this component`);
    }
    let instance: WebAssembly.Instance;
    try {
      instance = await WebAssembly.instantiate(module, imports ?? {});
    } catch (e) {
      throw runFailure(`instantiating core module ${live?.section.ordinal ?? '(jco\'s own)'}`, e, calls);
    }
    if (!live) return instance;
    live.instance = instance;
    const start = instance.exports[START_EXPORT];
    if (typeof start === 'function') {
      // Tables as the segments of every module instantiated so far left them: what the output recreates.
      for (const m of modules) takeBaseline(m);
      takeBaseline(live);
      try {
        (start as () => void)();
      } catch (e) {
        throw runFailure(`the start function of core module ${live.section.ordinal}`, e, calls);
      }
      if (calls[0]) throw calls[0];
    }
    modules.push(live);
    return instance;
  };

  const { instantiate } = await loadGlue(transpiled.js);
  const imports = hostImports(transpiled.imports, options.imports ?? {}, calls, adapterKept);
  (imports as Record<symbol, unknown>)[CAPTURE_TABLES] = (table: Map<unknown, unknown>) => captureTables.push(table);
  let exports: Record<string, unknown>;
  try {
    exports = await instantiate(getCoreModule, imports, instantiateCore);
  } catch (e) {
    throw runFailure('instantiating the component', e, calls);
  }
  for (const m of modules) takeBaseline(m);
  // Sections the glue never asked for, or never instantiated, keep their bytes: valid ones (the transpiler saw stubs).
  for (const section of ctx.modules) {
    if (bySection.has(section.ordinal) || WebAssembly.validate(section.bytes as Uint8Array<ArrayBuffer>)) continue;
    await compileModule(section.bytes).catch((e: unknown) => {
      throw e instanceof WizError ? new WizError(e.code, `core module ${section.ordinal}: ${e.message}`) : e;
    });
  }
  const all = ctx.modules.map((section) => bySection.get(section.ordinal) ?? { section, role: 'unused' as const, baseline: new Map() });
  for (const m of all) if (m.role === 'snapshot' && !m.instance) m.role = 'unused';
  const hasAdapter = all.some((m) => m.role === 'adapter');
  return {
    exports,
    modules: all,
    transpiled,
    call(fn, args, what) {
      let result: unknown;
      try {
        result = fn(...args);
      } catch (e) {
        throw runFailure(what, e, calls);
      }
      if (calls[0]) throw calls[0];
      return result;
    },
    openResources() {
      const open: string[] = [];
      for (const table of captureTables) {
        for (const held of table.values()) {
          if (hasAdapter && typeof held === 'object' && held !== null && adapterKept.has(held)) continue;
          open.push((held as object | null)?.constructor?.name || 'resource');
        }
      }
      return open;
    },
  };
}

/** Describes open resources as "a Descriptor" or "2 InputStreams and a Pollable". */
export function describeResources(names: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  const parts = [...counts].map(([n, k]) => (k === 1 ? `${/^[aeiou]/i.test(n) ? 'an' : 'a'} ${n}` : `${k} ${n}s`));
  return parts.length <= 1 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
}

/**
 * The imports the glue gets: what the host gave, and for every other interface an object whose functions fail
 * the run with one line naming the call. (Functions, not arrow functions: the glue uses resource classes with
 * `instanceof`.)
 */
function hostImports(names: readonly string[], given: Record<string, unknown>, calls: WizError[], adapterKept: WeakSet<object>): Record<string, unknown> {
  const imports: Record<string, unknown> = {};
  for (const name of names) {
    const unversioned = name.replace(/@[^/]*$/, '');
    const provided = given[name] ?? given[unversioned];
    const kept = ADAPTER_KEEPS[unversioned];
    imports[name] = provided && kept ? markingResults(provided as Record<string, unknown>, kept, adapterKept) : provided ?? new Proxy({}, {
      get(_, prop) {
        if (typeof prop !== 'string') return undefined;
        return function stub() {
          const wasi = name.startsWith('wasi:');
          const error = new WizError('import-call', `the component called the import "${name}" "${witName(prop)}" during initialization, which wiz does not provide${wasi ? '; pass --allow-wasi to provide WASI' : ' (imports may be declared but not called during init)'}`);
          calls.push(error);
          throw error;
        };
      },
    });
  }
  return imports;
}

/** The interface with the functions `names` wrapped: every object they return (or list) goes into `into`. */
function markingResults(iface: Record<string, unknown>, names: readonly string[], into: WeakSet<object>): Record<string, unknown> {
  const mark = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(mark);
    else if (typeof v === 'object' && v !== null) into.add(v);
  };
  const wrapped: Record<string, unknown> = { ...iface };
  for (const name of names) {
    const fn = iface[name];
    if (typeof fn !== 'function') continue;
    wrapped[name] = function (this: unknown, ...args: unknown[]) {
      const result: unknown = Reflect.apply(fn, this, args);
      mark(result);
      return result;
    };
  }
  return wrapped;
}

/** One line for why a run failed: a call to a missing import, a trap, a thrown error. */
function runFailure(what: string, e: unknown, calls: readonly WizError[]): WizError {
  if (calls[0]) return calls[0];
  if (e instanceof WizError) return e;
  if (typeof e === 'symbol') return new WizError('trap', `${what} exited the program instead of returning`);
  if (e instanceof WebAssembly.RuntimeError) return new WizError('trap', `${what} trapped: ${e.message}`);
  if (e instanceof RangeError && /call stack/i.test(e.message)) return new WizError('trap', `${what} trapped: call stack exhausted`);
  if (e instanceof WebAssembly.LinkError) return new WizError('invalid', `${what} failed: ${e.message.replace(/^WebAssembly\.\w+\(\): /, '')}`);
  const message = e instanceof Error ? e.message : typeof e === 'object' && e !== null && 'tag' in e ? JSON.stringify(e) : String(e);
  return new WizError('trap', `${what} failed: ${message}`);
}
