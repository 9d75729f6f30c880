import { WizError, type WarningHandler } from '../errors.ts';
import type { InstrumentedModule } from '../instrument/instrument.ts';
import { writeSnapshot } from '../preinitialize.ts';
import { concat } from '../parse/writer.ts';
import { DEFAULT_INIT_FUNC } from '../run/initialize.ts';
import { instanceReader, KEPT_OBJECT, type StateReader } from '../snapshot/state.ts';
import { parseComponent, type ComponentContext } from './binary.ts';
import { describeResources, instantiateComponent, type ComponentRunOptions, type LiveComponent, type LiveModule } from './run.ts';
import { componentShape } from './shape.ts';
import { jsName, transpile } from './transpile.ts';
import { writeComponentRemoving } from './write.ts';

export interface ComponentPreinitializeOptions extends Pick<ComponentRunOptions, 'imports'> {
  /**
   * The export to run: a top-level function (`wizer-initialize` by default), or an interface's function
   * (`iface#name`), with arguments if it takes any (`name(1, "x")`, JSON values).
   */
  initFunc?: string;
  /** Keep exporting the init function (the component-level export; core exports always stay). */
  keepInitFunc?: boolean;
  /** Keep the `__wizer_` exports of the snapshotted core modules, so that `wiz snapshot` can run them again. */
  keepInstrumentation?: boolean;
  onWarning?: WarningHandler;
}

/** An init function as named on the command line: interface, function, arguments. */
export interface ComponentCall {
  iface: string | undefined;
  name: string;
  args: unknown[];
  /** The text, for messages. */
  spec: string;
}

/** Reads `name`, `iface#name` and either with `(args)`; the arguments are JSON values. */
export function parseComponentCall(spec: string, what = '--init-func'): ComponentCall {
  const open = spec.indexOf('(');
  const head = (open > 0 ? spec.slice(0, open) : spec).trim();
  let args: unknown[] = [];
  if (open > 0) {
    if (!spec.endsWith(')')) throw new WizError('usage', `${what} ${spec}: the arguments must end with ")"`);
    try {
      args = JSON.parse(`[${spec.slice(open + 1, -1)}]`) as unknown[];
    } catch {
      throw new WizError('usage', `${what} ${spec}: the arguments are not JSON values (numbers, "strings", true/false, [lists], {records})`);
    }
  }
  const hash = head.lastIndexOf('#');
  return hash > 0 ? { iface: head.slice(0, hash), name: head.slice(hash + 1), args, spec } : { iface: undefined, name: head, args, spec };
}

/** Checks that the component exports the call's function (or interface) at its top level. */
export function checkCallExported(ctx: ComponentContext, call: ComponentCall, what: string): void {
  const funcs = ctx.exports.filter((e) => e.sort === 'func').map((e) => `"${e.name}"`);
  const instances = ctx.exports.filter((e) => e.sort === 'instance').map((e) => `"${e.name}"`);
  const list = [...funcs, ...instances.map((i) => `${i} (an interface)`)];
  const shown = list.length === 0 ? 'it exports no functions or interfaces' : `its exports: ${list.slice(0, 8).join(', ')}${list.length > 8 ? ', …' : ''}`;
  const name = call.iface ?? call.name;
  const exp = ctx.exports.find((e) => e.name === name);
  if (!exp) throw new WizError('init-func', `the component does not export ${what} "${name}" (${shown}); name one with -f/--init-func`);
  const expected = call.iface ? 'instance' : 'func';
  if (exp.sort !== expected) throw new WizError('init-func', `${what} "${name}" is exported as a ${exp.sort}, not ${call.iface ? 'an interface' : 'a function'}`);
}

/** The JS function of a call on the glue's exports. */
export function callTarget(live: LiveComponent, call: ComponentCall, what: string): (...args: unknown[]) => unknown {
  let holder: Record<string, unknown> = live.exports;
  if (call.iface) {
    const short = call.iface.replace(/@[^/]*$/, '').split(/[/:]/).at(-1)!;
    const found = live.exports[call.iface] ?? live.exports[jsName(short)];
    if (typeof found !== 'object' || found === null) throw new WizError('init-func', `${what} "${call.spec}": the interface "${call.iface}" is not among the component's exports`);
    holder = found as Record<string, unknown>;
  }
  const fn = holder[jsName(call.name)];
  if (typeof fn !== 'function') throw new WizError('init-func', `${what} "${call.spec}": the component exports no function "${call.name}"${call.iface ? ` in "${call.iface}"` : ''}`);
  // jco's glue names each parameter: the function's length is the number the WIT function takes.
  if (fn.length !== call.args.length) {
    throw new WizError('init-func', `${what} "${call.spec}" takes ${fn.length} argument${fn.length === 1 ? '' : 's'}, not ${call.args.length}${call.args.length === 0 ? ` (give them: -f '${call.spec}(…)')` : ''}`);
  }
  return fn as (...args: unknown[]) => unknown;
}

/**
 * Pre-initializes a component: runs it in this host through jco's glue, calls its init function, snapshots
 * every core module the binary holds (but the WASI preview1 adapter, whose state holds handles of this host and
 * is kept as built), and writes the component with those modules replaced. Returns the output as chunks.
 */
export async function preinitializeComponentParts(bytes: Uint8Array, options: ComponentPreinitializeOptions = {}): Promise<Uint8Array[]> {
  const ctx = parseComponent(bytes);
  const call = parseComponentCall(options.initFunc ?? DEFAULT_INIT_FUNC);
  checkCallExported(ctx, call, 'the init function');
  const live = await instantiateComponent(ctx, { imports: options.imports });
  const what = `the init function "${call.spec}"`;
  live.call(callTarget(live, call, 'the init function'), call.args, what);
  warnOpenResources(live, what, options.onWarning);
  return snapshotComponentParts(ctx, live, {
    keepInstrumentation: options.keepInstrumentation,
    removeExport: options.keepInitFunc || call.iface ? undefined : call.name,
    onWarning: options.onWarning,
  });
}

/** `preinitializeComponentParts`, concatenated. */
export async function preinitializeComponent(bytes: Uint8Array, options: ComponentPreinitializeOptions = {}): Promise<Uint8Array> {
  return concat(await preinitializeComponentParts(bytes, options));
}

export interface ComponentSnapshotOptions {
  keepInstrumentation?: boolean;
  /** A top-level function export to remove (the init function after init). */
  removeExport?: string;
  onWarning?: WarningHandler;
}

/**
 * Writes the component with the state of its live core instances. Each core export stays (the component's
 * aliases name them); the start sections of snapshotted modules are dropped (they ran).
 */
export async function snapshotComponentParts(ctx: ComponentContext, live: LiveComponent, options: ComponentSnapshotOptions): Promise<Uint8Array[]> {
  const modules = new Map<number, Uint8Array[]>();
  // What the shape is made of: each written module's stub skeleton where wiz made one, else the module itself.
  const shapes = new Map<number, Uint8Array[]>();
  for (const m of live.modules) {
    if (m.role !== 'snapshot' || !m.instrumented || !m.instance) continue;
    if (isStateless(m.instrumented) && !m.instrumented.reparsed) continue;
    const parts = await writeSnapshot(m.instrumented, async () => componentReader(m, await instanceReader(m.instrumented!, m.instance!, m.baseline)), {
      keepInstrumentation: options.keepInstrumentation,
      provenance: false,
      removeExports: [],
      onWarning: options.onWarning,
      onStub: (stub) => shapes.set(m.section.ordinal, [stub]),
    }, true).catch((e: unknown) => {
      throw e instanceof WizError ? new WizError(e.code, `core module ${m.section.ordinal}: ${e.message}`) : e;
    });
    modules.set(m.section.ordinal, parts);
    if (!shapes.has(m.section.ordinal)) shapes.set(m.section.ordinal, parts);
  }
  const { parts, kept } = writeComponentRemoving(ctx, modules, options.removeExport);
  if (kept) options.onWarning?.(`the component keeps exporting "${options.removeExport}": ${kept}`, 'init-func-kept');
  // Never write an invalid component: every module was validated as it was written (the others are the input's,
  // validated when it ran); the transpiler checks the rest on the output's shape, which has the same types.
  await transpile(componentShape(ctx, shapes, kept ? undefined : options.removeExport)).catch((e: unknown) => {
    const why = e instanceof WizError ? e.message : String(e);
    throw new WizError('invalid', `the snapshot came out invalid (${why}) (a bug in wiz: please report it with the input component)`);
  });
  return parts;
}

/**
 * Warns when the component holds host resources (a file it did not close, a stream, a socket): the snapshot
 * keeps their handle numbers, which the host that runs it never gave out, so using them fails there.
 */
function warnOpenResources(live: LiveComponent, what: string, onWarning: WarningHandler | undefined): void {
  const open = live.openResources();
  if (open.length === 0) return;
  const these = open.length === 1 ? 'its handle means' : 'their handles mean';
  onWarning?.(`${what} left ${describeResources(open)} of this host open: the snapshot keeps ${open.length === 1 ? 'it' : 'them'}, but ${these} nothing to the host that runs it; close ${open.length === 1 ? 'it' : 'them'} before init returns`, 'host-resources');
}

/** A module with no state and no start function: its section is kept byte for byte. */
function isStateless(m: InstrumentedModule): boolean {
  return m.globals.length === 0 && m.memories.length === 0 && m.tables.length === 0 && m.probe.droppable.length === 0 && m.context.start === undefined;
}

/**
 * The reader of one core instance of a component. A table slot that holds what instantiation put there
 * (possibly another instance's function, placed by that instance's segments) is kept; a table that also
 * changed during init cannot be kept as its segments make it, nor written (a module names only its own
 * functions), and is refused.
 */
function componentReader(m: LiveModule, reader: StateReader): StateReader {
  return {
    ...reader,
    readTable(ordinal) {
      const entries = reader.readTable(ordinal);
      if (entries.includes(KEPT_OBJECT)) {
        const changed = entries.findIndex((e) => e >= 0);
        if (changed >= 0) {
          const t = m.instrumented!.tables[ordinal]!;
          throw new WizError('unsupported', `table ${t.index} changed during init (slot ${changed}) and also holds functions that instantiation put there from other instances: wiz can keep such a table only as instantiation left it`);
        }
      }
      return entries;
    },
  };
}

export interface ComponentSnapshotRunOptions extends Pick<ComponentRunOptions, 'imports'> {
  /** Calls to make before the snapshot, in order: `name`, `iface#name`, with `(JSON args)`. */
  invoke?: readonly string[];
  keepInstrumentation?: boolean;
  onWarning?: WarningHandler;
  /** Receives `name(args) = result` for each call. */
  onResult?: (line: string) => void;
}

/**
 * `wiz snapshot` on a component written with `--keep-instrumentation`: every module's instrumentation is
 * verified, the component instantiated (its snapshotted modules' start sections were dropped: nothing runs
 * again), the calls made, and the state written as `wiz init` writes it.
 */
export async function snapshotComponent(bytes: Uint8Array, options: ComponentSnapshotRunOptions = {}): Promise<Uint8Array[]> {
  const ctx = parseComponent(bytes);
  const calls = (options.invoke ?? []).map((spec) => parseComponentCall(spec, '--invoke'));
  for (const call of calls) checkCallExported(ctx, call, '--invoke');
  const live = await instantiateComponent(ctx, { imports: options.imports, reparse: true });
  if (!live.modules.some((m) => m.instrumented?.reparsed && !isStateless(m.instrumented))) {
    throw new WizError('instrumentation', 'the component carries no instrumentation (no __wizer_ exports in its core modules); pre-initialize it with wiz init --keep-instrumentation first');
  }
  for (const call of calls) {
    const result = live.call(callTarget(live, call, '--invoke'), call.args, `the export "${call.spec}"`);
    options.onResult?.(result === undefined ? call.spec : `${call.spec} = ${showResult(result)}`);
  }
  warnOpenResources(live, calls.length ? 'the calls' : 'instantiation', options.onWarning);
  return snapshotComponentParts(ctx, live, { keepInstrumentation: options.keepInstrumentation, onWarning: options.onWarning });
}

/** A component function's result as JSON (BigInts as numbers, byte arrays as lists). */
function showResult(v: unknown): string {
  return JSON.stringify(v, (_, x: unknown) => (typeof x === 'bigint' ? (Number.isSafeInteger(Number(x)) ? Number(x) : x.toString()) : ArrayBuffer.isView(x) ? Array.from(x as Uint8Array) : x)) ?? String(v);
}
