import { WizError } from './errors.ts';
import { instrument, type InstrumentedModule } from './instrument/instrument.ts';
import { compileError, compileModule, initialize, invalidity, resolveInitFunc, type InitializeOptions } from './run/initialize.ts';
import { encodeProvenance, PROVENANCE_SECTION, provenanceOf } from './snapshot/provenance.ts';
import { rewrite, rewriteParts, type RewriteOptions } from './snapshot/rewrite.ts';
import { concat } from './parse/writer.ts';
import { snapshotData } from './snapshot/segments.ts';
import { bodiesToValidate } from './snapshot/code-context.ts';
import { parseModule } from './parse/module.ts';
import { instanceReader, tableBaseline, takeSnapshot, type StateReader, type TableBaseline } from './snapshot/state.ts';

export interface PreinitializeOptions extends InitializeOptions, Pick<SnapshotOptions, 'provenance'> {
  /** Keep the init function exported in the output (the reference's `--keep-init-func`). */
  keepInitFunc?: boolean;
  /** Export renames `dst=src` (the reference's `-r`/`--rename-func`). */
  renames?: readonly string[];
  /** Keep the `__wizer_` exports, so that the output can be snapshotted again (and record provenance). */
  keepInstrumentation?: boolean;
  /**
   * Settles once the caller has validated `wasm` whole, and rejects with the engine's error if it is invalid: e.g.
   * `WebAssembly.compile(wasm)`, started before this call, so that the engine validates in its background threads
   * while wiz instruments. wiz awaits it before compiling the module it runs, and does not validate the input on
   * its own again. This is what lets a host compile that module without validating function bodies ahead of time
   * (wiz's command line turns on V8's `--wasm-lazy-validation` once it settles).
   */
  validated?: PromiseLike<unknown>;
}

export interface SnapshotOptions extends Pick<RewriteOptions, 'removeExports' | 'renames' | 'onWarning' | 'customSections' | 'dropCustomSections'> {
  /** Keep the `__wizer_` exports, so that the output can be snapshotted again. */
  keepInstrumentation?: boolean;
  /**
   * Record a `wiz.provenance` custom section (generation, digest of the parent). Default: where WebCrypto is
   * available (browsers: secure contexts only), when keeping the
   * instrumentation or snapshotting a re-parsed module; plain `wiz init` output stays identical to the reference's.
   */
  provenance?: boolean;
  /**
   * `tableBaseline(instrumented, instance)` taken right after instantiating, before anything ran: lets a table of
   * objects (externref, GC) that nothing changed be kept as the module's own segments make it. Without it, a
   * non-null object in a table is refused.
   */
  baseline?: TableBaseline;
  /**
   * Receives the output's skeleton with stub code (every body `unreachable`, every new data segment empty) when
   * wiz makes one to validate the output: what the module looks like from outside, without a copy of its code
   * or memory (a component's shape is made of these).
   */
  onStub?: (stub: Uint8Array) => void;
}

/**
 * The whole job: instrument `wasm`, instantiate it in this host's engine, run its init function, and return a
 * module whose state is the state after init.
 */
export async function preinitialize(wasm: Uint8Array, options: PreinitializeOptions = {}): Promise<Uint8Array> {
  return concat(await preinitializeParts(wasm, options));
}

/** `preinitialize`, returning the output as chunks in order (views, not copies), e.g. to write them to a file. */
export async function preinitializeParts(wasm: Uint8Array, options: PreinitializeOptions = {}): Promise<Uint8Array[]> {
  const validated = options.validated && Promise.resolve(options.validated);
  validated?.catch(() => {}); // awaited below, unless instrumenting fails first
  const instrumented = instrument(wasm);
  if (validated) await validated.catch((e: unknown) => { throw compileError(e); });
  // With the probe appended, the module's own validity is checked on its own (at the same time): code that
  // refers to indices past the module's (the probe's table, segment or function) is invalid, and must not run.
  // A caller that validated the input has done that check.
  const probed = !validated && (instrumented.probe.functions !== undefined || instrumented.probe.dropped !== undefined);
  const [module] = await Promise.all([compileModule(instrumented.bytes, wasm), probed ? compileModule(wasm) : undefined]);
  const initFunc = resolveInitFunc(instrumented.context, options);
  let baseline: TableBaseline | undefined;
  const instance = await initialize(instrumented, module, initFunc, {
    ...options,
    onInstantiated: (i) => {
      baseline = tableBaseline(instrumented, i);
      options.onInstantiated?.(i);
    },
  });
  return snapshotParts(instrumented, instance, {
    ...options,
    baseline,
    removeExports: options.keepInitFunc ? ['_initialize'] : [initFunc, '_initialize'],
  });
}

/**
 * Writes a module whose state is the state of `instance`: a live instance of `instrumented.bytes` (from
 * `instrument` or `parseInstrumented`) that the host instantiated and ran as it liked.
 */
export async function snapshot(
  instrumented: InstrumentedModule,
  instance: WebAssembly.Instance,
  options: SnapshotOptions = {},
): Promise<Uint8Array> {
  return concat(await writeSnapshot(instrumented, instance, options, false));
}

/**
 * `snapshot`, returning the output as chunks in order. They include views of the instance's memories: nothing
 * may run the instance until they are written out.
 */
export function snapshotParts(
  instrumented: InstrumentedModule,
  instance: WebAssembly.Instance,
  options: SnapshotOptions = {},
): Promise<Uint8Array[]> {
  return writeSnapshot(instrumented, instance, options, true);
}

/**
 * The snapshot as chunks: views of live memory when `views`, else one array copied before anything awaits. The
 * state comes from a live instance, or from a reader made ready beforehand (a state image, wiz's runtime).
 */
export async function writeSnapshot(
  instrumented: InstrumentedModule,
  source: WebAssembly.Instance | (() => Promise<StateReader>),
  options: SnapshotOptions,
  views: boolean,
): Promise<Uint8Array[]> {
  const { context, reparsed } = instrumented;
  // Everything asynchronous first; then the state is read and written in one synchronous run, so that nothing
  // (a host task, a timer) can change the instance between reading one part of its state and another.
  const customSections = [...(options.customSections ?? [])];
  const record = options.provenance ?? ((options.keepInstrumentation || reparsed) && !!globalThis.crypto?.subtle);
  if (options.provenance === undefined && !record && (options.keepInstrumentation || reparsed)) {
    // Browsers offer WebCrypto only in secure contexts (https, localhost): the default gives way there.
    options.onWarning?.('provenance not recorded: this context lacks WebCrypto (crypto.subtle), which browsers offer only on https and localhost', 'no-provenance');
  }
  // Without a record of its own, a snapshot carries none: its parent's would be stale.
  const dropCustomSections = [...(options.dropCustomSections ?? []), ...(record || !reparsed ? [] : [PROVENANCE_SECTION])];
  if (record) {
    customSections.push({ name: PROVENANCE_SECTION, bytes: encodeProvenance(await provenanceOf(context, reparsed)) });
  }
  const reader = typeof source === 'function' ? await source() : await instanceReader(instrumented, source, options.baseline);
  const state = takeSnapshot(instrumented, reader);
  const rewriteOptions = {
    ...options,
    keepInstrumentation: options.keepInstrumentation ? instrumented : undefined,
    replacePreviousSegments: reparsed,
    customSections,
    dropCustomSections,
    segments: snapshotData(state.memories, (index) => context.memories.find((m) => m.index === index)?.memory64 ?? false),
  };
  const parts = rewriteParts(context, state, rewriteOptions);
  const output = views ? parts : [concat(parts)];
  // Never write an invalid module. Validating its skeleton (the segments' bytes left out) is equivalent and
  // does not copy hundreds of MB of memory into the engine once more.
  try {
    // When nothing the code refers to changed, the code (copied byte for byte) is valid as it was: a skeleton with
    // stubs for code checks the rest, and the few bodies that may refer to a function no longer declared are
    // validated among stubs. Otherwise the whole skeleton, code included.
    const skeleton = { ...rewriteOptions, skeleton: true, onWarning: undefined };
    const stub = reparsed ? undefined : rewrite(context, state, { ...skeleton, stubCode: true }) as Uint8Array<ArrayBuffer>;
    const bodies = stub && WebAssembly.validate(stub) ? bodiesToValidate(context, parseModule(stub, { dataSegments: false })) : 'all';
    if (stub) options.onStub?.(stub);
    const valid = bodies !== 'all' && (bodies.size === 0 || WebAssembly.validate(rewrite(context, state, { ...skeleton, stubCode: bodies }) as Uint8Array<ArrayBuffer>));
    if (!valid) {
      // Validation first: it works where compiling at run time is forbidden (edge platforms); compiling gives the reason.
      const why = await invalidity(rewrite(context, state, skeleton));
      if (why !== undefined) throw new Error(why);
    }
  } catch (e) {
    // The module wiz ran carried the probe; a module whose code is valid only with the probe appended (it
    // refers to indices past its own) fails here, and is reported as what it is.
    if (!reparsed) await compileModule(context.bytes);
    const why = String((e as Error).message ?? e).replace(/^WebAssembly\.\w+\(\): /, '');
    // The one way an input can cause it: code that refers to the data segments holding a previous snapshot
    // (which wiz replaces), in a re-parsed module that wiz did not write.
    const hint = reparsed && context.dataSegments.at(-1)?.mode === 'active'
      ? ': the module\'s code may refer to the data segments that hold its previous snapshot, which wiz never writes'
      : ' (a bug in wiz: please report it with the input module)';
    throw new WizError('invalid', `the snapshot came out invalid (${why})${hint}`);
  }
  return output;
}
