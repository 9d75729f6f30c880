// `wiz asyncify`: a build-time step that makes a module suspendable anywhere. Binaryen's Asyncify pass lets the
// named imports unwind the whole wasm stack into memory (wiz's own, a second memory, so the program's memory is
// exactly what it would be uninterrupted) and rewind it later; wiz then adds its runtime: accessors that save
// and load the globals and drop segments, and a table of every function, so that snapshots and restores never
// compile anything at run time; and the `__wizer_` exports, so that the module can be snapshotted as it runs.
import { WizError, type WarningHandler } from '../errors.ts';
import { binaryenFailure, loadBinaryen, usedFeatures, type BinaryenModule, type LoadedBinaryen } from '../binaryen/binaryen.ts';
import { appendTo, checkState, exportCount, instrumentationOf, withProbe, WIZER_PREFIX, writeInstrumentationExports } from '../instrument/instrument.ts';
import { assemble } from '../parse/assemble.ts';
import { findSection, parseModule, SectionId } from '../parse/module.ts';
import type { ModuleContext } from '../parse/types.ts';
import { BinaryWriter } from '../parse/writer.ts';
import { compileModule } from '../run/initialize.ts';
import { ASYNCIFY, dropBody, encodeLayout, globalsBody, LAYOUT_FORMAT, LAYOUT_SECTION, RUNTIME, savedGlobals, type DurableLayout } from './layout.ts';

export interface AsyncifyOptions {
  /** The imports that may suspend the program, as `module.name`. */
  suspendOn: readonly string[];
  /** Bytes for the unwound stack (default 1 MiB): the locals of every frame between the export and the import. */
  stackSize?: number;
  /** Run Binaryen's optimizer after the pass (default true: Asyncify's output is much larger without it). */
  optimize?: boolean;
  /** Told what may make runs of the module differ between machines (relaxed SIMD), for the host to warn. */
  onWarning?: WarningHandler;
}

export const DEFAULT_STACK_SIZE = 1 << 20;
const PAGE = 1 << 16;
const EXPORT_KIND = { func: 0, table: 1, memory: 2, global: 3, tag: 4 } as const;

/**
 * Makes `wasm` (a plain module, or one pre-initialized with `--keep-instrumentation`) a durable module: the named
 * imports may suspend it, and it carries wiz's runtime and instrumentation. Needs Binaryen (an optional peer
 * dependency) and compiles the result once to check it: a build-time step.
 */
export async function asyncify(wasm: Uint8Array, options: AsyncifyOptions): Promise<Uint8Array> {
  const input = parseModule(wasm);
  if (input.sections.some((s) => s.id === SectionId.custom && s.name === LAYOUT_SECTION)) {
    throw new WizError('usage', 'the module is already prepared for durable runs (it has a wiz.durable section): use it as it is');
  }
  checkState(input);
  const suspendOn = [...new Set(options.suspendOn)];
  if (suspendOn.length === 0) throw new WizError('usage', 'name at least one import that may suspend (--suspend-on MODULE.NAME)');
  const functions = input.imports.filter((i) => i.kind === 'func').map((i) => `${i.module}.${i.name}`);
  for (const spec of suspendOn) {
    if (!functions.includes(spec)) {
      const list = functions.length === 0 ? 'it imports no functions' : `its function imports: ${functions.slice(0, 8).join(', ')}${functions.length > 8 ? ', …' : ''}`;
      throw new WizError('usage', `--suspend-on ${spec}: the module imports no function "${spec}" (${list})`);
    }
    if (spec.includes(',')) throw new WizError('usage', `--suspend-on ${spec}: Binaryen cannot name an import that contains a comma`);
  }
  const stackSize = options.stackSize ?? DEFAULT_STACK_SIZE;
  if (!Number.isSafeInteger(stackSize) || stackSize < 1024 || stackSize > 1 << 30) {
    throw new WizError('usage', `the unwind stack size must be between 1 KiB and 1 GiB, not ${stackSize}`);
  }
  await compileModule(wasm); // the engine's verdict first, with its own message
  const plain = withoutInstrumentation(input);
  // The save area for globals sits before the unwind buffer: room for every global the module may have after
  // the pass (Asyncify adds two), 16 bytes each at most.
  const reserve = Math.ceil(((input.globals.length + 2) * 16) / 16) * 16;
  const pages = Math.ceil((stackSize + reserve) / PAGE);
  const passed = await runAsyncify(plain, suspendOn, pages, options.optimize ?? true, options);
  const bytes = addRuntime(parseModule(passed.bytes), input.memories.length, suspendOn, reserve, passed.globals);
  await compileModule(bytes).catch((e: WizError) => {
    throw new WizError('invalid', `the asyncified module does not compile here (${e.message}); this is a bug in wiz, please report it with the input module`);
  });
  return bytes;
}

/** The module without any `__wizer_` export (a `--keep-instrumentation` output gets them anew at the end). */
function withoutInstrumentation(context: ModuleContext): Uint8Array {
  const kept = context.exports.filter((e) => !e.name.startsWith(WIZER_PREFIX));
  if (kept.length === context.exports.length) return context.bytes;
  const w = new BinaryWriter().u32(kept.length);
  for (const e of kept) w.name(e.name).byte(EXPORT_KIND[e.kind]).u32(e.index);
  return assemble(context, new Map([[SectionId.export, w]])).finish();
}

/** Binaryen's output, and the indices of Asyncify's own globals in it (state, data pointer). */
interface Asyncified {
  bytes: Uint8Array;
  globals: { state: number; data: number };
  /** Whether indirect calls were left uninstrumented (none can reach a suspending import). */
  ignoredIndirect: boolean;
}

/**
 * Whether no indirect call can reach a suspending import, so that Asyncify may leave indirect calls alone (in C
 * programs that cuts its cost from about +25 % of code to a few %). Binaryen assumes any indirect call may
 * suspend; wiz asks it which functions reach a suspending import by direct calls, and checks that none of them
 * can be called indirectly: an MVP module's tables hold only what its element segments (or, for a table it
 * imports or exports, the host) put there. With reference types anything may flow into a table: no.
 */
function indirectIsSafe(loaded: LoadedBinaryen, wasm: Uint8Array, features: number, suspendOn: readonly string[]): boolean {
  const { binaryen, quiet } = loaded;
  const module = (binaryen.readBinary as (data: Uint8Array, features?: number) => BinaryenModule)(wasm, features);
  try {
    module.setFeatures(features);
    if (module.getNumTables() === 0) return true;
    if (features & (binaryen.Features.ReferenceTypes as number)) return false;
    const targets = new Set<string>();
    for (let i = 0; i < module.getNumElementSegments(); i++) {
      for (const name of binaryen.getElementSegmentInfo(module.getElementSegmentByIndex(i)).data) targets.add(name);
    }
    const sharedTable = Array.from({ length: module.getNumTables() }, (_, i) => binaryen.getTableInfo(module.getTableByIndex(i)))
      .some((t) => t.module) || Array.from({ length: module.getNumExports() }, (_, i) => binaryen.getExportInfo(module.getExportByIndex(i)))
      .some((e) => e.kind === binaryen.ExternalTable);
    if (sharedTable) {
      for (let i = 0; i < module.getNumExports(); i++) {
        const e = binaryen.getExportInfo(module.getExportByIndex(i));
        if (e.kind === binaryen.ExternalFunction) targets.add(e.value);
      }
    }
    binaryen.clearPassArguments();
    binaryen.setPassArgument('asyncify-imports', suspendOn.join(','));
    binaryen.setPassArgument('asyncify-ignore-indirect', 'true');
    binaryen.setPassArgument('asyncify-verbose', 'true');
    quiet.lines = [];
    try {
      module.runPasses(['asyncify']);
    } finally {
      const report = quiet.lines;
      quiet.lines = undefined;
      // "[asyncify] NAME can change the state due to …": NAME reaches a suspending import by direct calls.
      for (const line of report) {
        const m = /^\[asyncify\] (.+) can change the state due to /.exec(line);
        if (m && targets.has(m[1]!)) return false;
      }
    }
    return true;
  } finally {
    binaryen.clearPassArguments();
    module.dispose();
  }
}

async function runAsyncify(wasm: Uint8Array, suspendOn: readonly string[], pages: number, optimize: boolean, options: Pick<AsyncifyOptions, 'onWarning'>): Promise<Asyncified> {
  const loaded = await loadBinaryen('wiz asyncify');
  const { binaryen } = loaded;
  let module: BinaryenModule | undefined;
  try {
    module = (binaryen.readBinary as (data: Uint8Array, features?: number) => BinaryenModule)(wasm, binaryen.Features.All);
    const used = usedFeatures(loaded, module, 'wiz asyncify');
    if (used & (binaryen.Features.RelaxedSIMD as number)) {
      options.onWarning?.('the module uses relaxed SIMD, whose results the engine may choose per machine: a journal replayed on another kind of machine can diverge (wiz stops when that changes a host call, and cannot see it otherwise)', 'relaxed-simd');
    }
    const features = used | (binaryen.Features.MultiMemory as number) | (binaryen.Features.BulkMemory as number);
    module.setFeatures(features);
    const ignoredIndirect = indirectIsSafe(loaded, wasm, features, suspendOn);
    binaryen.clearPassArguments();
    binaryen.setPassArgument('asyncify-imports', suspendOn.join(','));
    if (ignoredIndirect) binaryen.setPassArgument('asyncify-ignore-indirect', 'true');
    binaryen.setPassArgument('asyncify-in-secondary-memory', 'true');
    binaryen.setPassArgument('asyncify-secondary-memory-size', String(pages));
    binaryen.setDebugInfo(false);
    module.runPasses(['asyncify']);
    if (optimize) {
      binaryen.setOptimizeLevel(2);
      binaryen.setShrinkLevel(1);
      module.optimize();
    }
    // Binaryen writes imported globals first, then the defined ones, each in module order.
    const infos = Array.from({ length: module.getNumGlobals() }, (_, i) => binaryen.getGlobalInfo(module!.getGlobalByIndex(i)));
    const order = [...infos.filter((g) => g.module), ...infos.filter((g) => !g.module)].map((g) => g.name);
    const globals = { state: order.indexOf('__asyncify_state'), data: order.indexOf('__asyncify_data') };
    if (globals.state < 0 || globals.data < 0) throw new WizError('unsupported', 'Binaryen\'s Asyncify did not add its globals as expected; this is a bug in wiz');
    return { bytes: module.emitBinary(), globals, ignoredIndirect };
  } catch (e) {
    if (e instanceof WizError) throw e;
    throw new WizError('unsupported', `Binaryen's Asyncify failed on this module (${binaryenFailure(e)})`);
  } finally {
    binaryen.clearPassArguments();
    module?.dispose();
  }
}

/**
 * Adds wiz's runtime to an asyncified module: the function table and dropped-segment test (the probe, kept for
 * good under wiz's names), accessors that save and load the globals in wiz's memory and drop segments, the
 * instrumentation exports and the layout section.
 */
function addRuntime(passed: ModuleContext, ownMemories: number, suspendOn: readonly string[], reserve: number, asyncifyGlobals: Asyncified['globals']): Uint8Array {
  if (passed.memories.length !== ownMemories + 1) {
    throw new WizError('unsupported', 'Binaryen\'s Asyncify did not add its memory as expected; this is a bug in wiz, please report it with the input module');
  }
  const memory = passed.memories.at(-1)!;
  const probed = withProbe(passed, instrumentationOf(passed), new BinaryWriter(), 0, { functions: RUNTIME.functions, dropped: RUNTIME.dropped });
  const context = parseModule(probed.bytes);
  const { globals, size } = savedGlobals(context);
  if (size > reserve) throw new WizError('unsupported', `the module's globals need ${size} bytes of wiz's save area, more than the ${reserve} reserved`);
  const layout: DurableLayout = {
    format: LAYOUT_FORMAT,
    suspendOn: [...suspendOn],
    memory: memory.index,
    globals,
    buffer: { start: reserve, end: memory.min * PAGE },
    droppable: probed.probe.droppable,
    asyncify: asyncifyGlobals,
  };
  // Two types, three functions: save and load `[] -> []`, drop `[i32] -> []`.
  const voidType = context.types.length;
  const i32Type = voidType + 1;
  const edits = new Map<number, BinaryWriter | null>();
  edits.set(SectionId.type, appendTo(context, SectionId.type, 2).byte(0x60).u32(0).u32(0).byte(0x60).u32(1).byte(0x7f).u32(0));
  edits.set(SectionId.function, appendTo(context, SectionId.function, 3).u32(voidType).u32(voidType).u32(i32Type));
  const first = context.importedFunctions + context.functionTypes.length;
  const code = findSection(context, SectionId.code) ? appendTo(context, SectionId.code, 3) : new BinaryWriter().u32(3);
  code.sized(globalsBody(globals, memory.index, true)).sized(globalsBody(globals, memory.index, false)).sized(dropBody(layout.droppable));
  edits.set(SectionId.code, code);
  if (layout.droppable.some((d) => d.kind === 'data') && context.dataCount === undefined) {
    edits.set(SectionId.dataCount, new BinaryWriter().u32(context.dataSegments.length));
  }
  const exports = context.exports.filter((e) => !e.name.startsWith(WIZER_PREFIX));
  const instrumentation = instrumentationOf(context);
  const w = new BinaryWriter().u32(exports.length + 3 + exportCount(instrumentation));
  for (const e of exports) w.name(e.name).byte(EXPORT_KIND[e.kind]).u32(e.index);
  w.name(RUNTIME.saveGlobals).byte(0).u32(first).name(RUNTIME.loadGlobals).byte(0).u32(first + 1).name(RUNTIME.drop).byte(0).u32(first + 2);
  writeInstrumentationExports(w, instrumentation);
  edits.set(SectionId.export, w);
  for (const name of Object.values(ASYNCIFY)) {
    if (!exports.some((e) => e.name === name)) throw new WizError('unsupported', `Binaryen's Asyncify did not export "${name}"; this is a bug in wiz`);
  }
  const out = assemble(context, edits, new Set([LAYOUT_SECTION]));
  out.section(SectionId.custom, new BinaryWriter().name(LAYOUT_SECTION).raw(encodeLayout(layout)));
  return out.finish();
}
