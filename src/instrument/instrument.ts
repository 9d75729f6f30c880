import { WizError } from '../errors.ts';
import { assemble } from '../parse/assemble.ts';
import { entriesAfterCount, findSection, parseModule, refTop, SectionId } from '../parse/module.ts';
import type { ModuleContext, RefTop, ValType } from '../parse/types.ts';
import { BinaryWriter } from '../parse/writer.ts';
import { BinaryReader } from '../parse/reader.ts';

export const WIZER_PREFIX = '__wizer_';

/**
 * A defined mutable global exported for the host: `__wizer_global_{index}`. `top` is set for reference-typed
 * globals (their value is read as a reference, not as bits).
 */
export interface InstrumentedGlobal {
  index: number;
  type: ValType;
  top?: RefTop;
  exportName: string;
}

/** A defined memory exported for the host: `__wizer_memory_{ordinal}`. */
export interface InstrumentedMemory {
  index: number;
  ordinal: number;
  pageSizeLog2: number;
  exportName: string;
}

/** A defined table exported for the host: `__wizer_table_{ordinal}`. */
export interface InstrumentedTable {
  index: number;
  ordinal: number;
  type: ValType;
  top: RefTop;
  /** 64-bit indices: the JS API takes and gives them as BigInts. */
  table64: boolean;
  exportName: string;
}

/** A passive segment whose dropping the probe can detect. */
export interface DroppableSegment {
  kind: 'data' | 'elem';
  /** Index among the module's data or element segments. */
  index: number;
}

/**
 * What wiz adds to the module it instantiates for one run and never writes into an output: a table holding
 * every function of the module at its own index (so that a reference read from the instance can be named), and
 * a function that traps exactly when passive segment `k` of `droppable` was dropped. Both are appended after
 * everything the module defines, so the module's own (validated) code cannot refer to them.
 */
export interface Probe {
  /** Export name of the function table, when the module's state can hold function references. */
  functions: string | undefined;
  /** Export name of the dropped-segment probe, when the module has passive segments. */
  dropped: string | undefined;
  droppable: DroppableSegment[];
}

/** The original module's context, the instrumented module's bytes, and the names instrumentation added. */
export interface InstrumentedModule {
  /** The context of the module state is written into: the original, or the re-parsed snapshot. */
  context: ModuleContext;
  /** The module to instantiate. */
  bytes: Uint8Array;
  globals: InstrumentedGlobal[];
  memories: InstrumentedMemory[];
  tables: InstrumentedTable[];
  probe: Probe;
  /** True when `context` is itself an instrumented snapshot, read back by `parseInstrumented`. */
  reparsed: boolean;
}

export type Instrumentation = Pick<InstrumentedModule, 'globals' | 'memories' | 'tables'>;

export const PROBE_FUNCTIONS = `${WIZER_PREFIX}probe_functions`;
export const PROBE_DROPPED = `${WIZER_PREFIX}probe_dropped`;

const NUMERIC: ReadonlySet<ValType> = new Set(['i32', 'i64', 'f32', 'f64', 'v128']);

/**
 * Adds the exports through which a host reads a module's state: each defined mutable global `i` as
 * `__wizer_global_{i}` and each defined memory `k` as `__wizer_memory_{k}`, as the reference does, and each
 * defined table `k` as `__wizer_table_{k}`; plus, for this run only, the probe (see `Probe`). A module without
 * tables, reference-typed globals or passive segments gets exactly the reference's instrumentation.
 */
export function instrument(wasm: Uint8Array | ModuleContext): InstrumentedModule {
  const context = wasm instanceof Uint8Array ? parseModule(wasm) : wasm;
  checkState(context);
  for (const exp of context.exports) {
    if (exp.name.startsWith(WIZER_PREFIX)) {
      throw new WizError('instrumentation', `the module already exports "${exp.name}": names starting with ${WIZER_PREFIX} are reserved for wiz (to snapshot an instrumented module again, use wiz snapshot)`);
    }
  }
  const instrumentation = instrumentationOf(context);
  const added = new BinaryWriter();
  writeInstrumentationExports(added, instrumentation);
  const { bytes, probe } = withProbe(context, instrumentation, added, exportCount(instrumentation));
  return { context, bytes, ...instrumentation, probe, reparsed: false };
}

/** The instrumentation a module gets: its defined mutable globals, memories and tables, by name. */
export function instrumentationOf(context: ModuleContext): Instrumentation {
  return {
    globals: context.globals
      .filter((g) => g.mutable)
      .map((g) => {
        const top = NUMERIC.has(g.type) ? undefined : refTop(context, g.type);
        return { index: g.index, type: g.type, ...(top && { top }), exportName: `${WIZER_PREFIX}global_${g.index}` };
      }),
    memories: context.memories.map((m, ordinal) => ({
      index: m.index, ordinal, pageSizeLog2: m.pageSizeLog2, exportName: `${WIZER_PREFIX}memory_${ordinal}`,
    })),
    tables: context.tables.map((t, ordinal) => ({
      index: t.index, ordinal, type: t.type, top: t.top, table64: t.table64, exportName: `${WIZER_PREFIX}table_${ordinal}`,
    })),
  };
}

/** How many exports `writeInstrumentationExports` writes. */
export function exportCount(i: Instrumentation): number {
  return i.globals.length + i.memories.length + i.tables.length;
}

/** Writes the instrumentation's export entries: globals, then memories, then tables. */
export function writeInstrumentationExports(w: BinaryWriter, i: Instrumentation): void {
  for (const g of i.globals) w.name(g.exportName).byte(0x03).u32(g.index);
  for (const m of i.memories) w.name(m.exportName).byte(0x02).u32(m.index);
  for (const t of i.tables) w.name(t.exportName).byte(0x01).u32(t.index);
}

/** Element types of the probe tables that `table.init` needs for each kind of passive element segment. */
const TOP_TABLE_TYPE: Record<RefTop, number> = { func: 0x70, extern: 0x6f, any: 0x6e, exn: 0x69 };

/**
 * The module to instantiate: `context`'s sections, its exports plus `extraExports` (`extraCount` entries),
 * and the probe when the module needs one.
 */
export function withProbe(
  context: ModuleContext,
  instrumentation: Instrumentation,
  extraExports: BinaryWriter,
  extraCount: number,
  names: { functions: string; dropped: string } = { functions: PROBE_FUNCTIONS, dropped: PROBE_DROPPED },
): { bytes: Uint8Array; probe: Probe } {
  const needsFunctions = instrumentation.tables.some((t) => t.top === 'func') || instrumentation.globals.some((g) => g.top === 'func');
  const memory = context.memories[0];
  const droppable: (DroppableSegment & { top?: RefTop })[] = [];
  if (memory) {
    context.dataSegments.forEach((s, index) => {
      if (s.mode === 'passive' && s.length > 0) droppable.push({ kind: 'data', index });
    });
  }
  context.elementSegments.forEach((s, index) => {
    if (s.mode === 'passive' && s.count > 0) droppable.push({ kind: 'elem', index, top: s.top });
  });

  const probe: Probe = { functions: undefined, dropped: undefined, droppable: droppable.map(({ kind, index }) => ({ kind, index })) };
  if (!needsFunctions && droppable.length === 0 && extraCount === 0) return { bytes: context.bytes, probe };
  const edits = new Map<number, BinaryWriter | null>();
  const exports = new BinaryWriter();
  let exportTotal = context.exports.length + extraCount;
  const existing = findSection(context, SectionId.export);
  if (existing) exports.raw(entriesAfterCount(context, existing.contentStart, existing.end));
  exports.append(extraExports);

  if (needsFunctions || droppable.length > 0) {
    const functionCount = context.importedFunctions + context.functionTypes.length;
    // Probe tables: one per hierarchy needed, the function table first.
    const tops: RefTop[] = [];
    if (needsFunctions || droppable.some((d) => d.top === 'func')) tops.push('func');
    for (const d of droppable) if (d.top && !tops.includes(d.top)) tops.push(d.top);
    const tableIndex = new Map<RefTop, number>();
    const tables = appendTo(context, SectionId.table, tops.length);
    for (const top of tops) {
      tableIndex.set(top, context.importedTables + context.tables.length + tableIndex.size);
      const size = top === 'func' && needsFunctions ? functionCount : 0;
      tables.byte(TOP_TABLE_TYPE[top]).byte(0x00).u32(size);
    }
    edits.set(SectionId.table, tables);
    if (needsFunctions) {
      probe.functions = names.functions;
      exports.name(names.functions).byte(0x01).u32(tableIndex.get('func')!);
      exportTotal++;
      if (functionCount > 0) {
        const elements = appendTo(context, SectionId.element, 1);
        elements.byte(0x02).u32(tableIndex.get('func')!).byte(0x41).byte(0x00).byte(0x0b).byte(0x00).u32(functionCount);
        for (let f = 0; f < functionCount; f++) elements.u32(f);
        edits.set(SectionId.element, elements);
      }
    }
    if (droppable.length > 0) {
      const typeIndex = context.types.length;
      edits.set(SectionId.type, appendTo(context, SectionId.type, 1).byte(0x60).u32(1).byte(0x7f).u32(0));
      edits.set(SectionId.function, appendTo(context, SectionId.function, 1).u32(typeIndex));
      const code = appendTo(context, SectionId.code, 1);
      code.sized(droppedProbeBody(context, droppable, tableIndex));
      edits.set(SectionId.code, code);
      if (context.dataCount === undefined && droppable.some((d) => d.kind === 'data')) {
        edits.set(SectionId.dataCount, new BinaryWriter().u32(context.dataSegments.length));
      }
      probe.dropped = names.dropped;
      exports.name(names.dropped).byte(0x00).u32(context.importedFunctions + context.functionTypes.length);
      exportTotal++;
    }
  }
  edits.set(SectionId.export, new BinaryWriter().u32(exportTotal).append(exports));
  return { bytes: assemble(context, edits).finish(), probe };
}

/** A vector section's body with its entries copied and `added` more counted: append the new entries to it. */
export function appendTo(context: ModuleContext, id: number, added: number): BinaryWriter {
  const section = findSection(context, id);
  if (!section) return new BinaryWriter().u32(added);
  const r = new BinaryReader(context.bytes, section.contentStart, section.end);
  const count = r.u32();
  return new BinaryWriter().u32(count + added).raw(context.bytes.subarray(r.pos, section.end));
}

/**
 * `(func (param i32))` that, for `k`, runs `memory.init` / `table.init` of the k-th droppable segment with
 * source offset 1 and length 0: a bounds check that fails exactly when the segment was dropped (a dropped
 * segment has length 0; these segments are not empty).
 */
function droppedProbeBody(context: ModuleContext, droppable: readonly (DroppableSegment & { top?: RefTop })[], tables: Map<RefTop, number>): BinaryWriter {
  const k = droppable.length;
  const body = new BinaryWriter().u32(0); // no locals
  for (let i = 0; i <= k; i++) body.byte(0x02).byte(0x40); // block
  body.byte(0x20).u32(0).byte(0x0e).u32(k); // local.get 0; br_table 0 … k-1, default k
  for (let i = 0; i <= k; i++) body.u32(i);
  const memory = context.memories[0];
  droppable.forEach((d) => {
    body.byte(0x0b); // end of the block this case's label branches to
    if (d.kind === 'data') {
      if (memory!.memory64) body.byte(0x42).byte(0x00);
      else body.byte(0x41).byte(0x00);
      body.byte(0x41).byte(0x01).byte(0x41).byte(0x00).byte(0xfc).u32(8).u32(d.index).u32(0);
    } else {
      body.byte(0x41).byte(0x00).byte(0x41).byte(0x01).byte(0x41).byte(0x00).byte(0xfc).u32(12).u32(d.index).u32(tables.get(d.top!)!);
    }
    body.byte(0x0f); // return
  });
  body.byte(0x0b).byte(0x0b); // the outermost block (the default), the function
  return body;
}

/** Refuses what wiz cannot snapshot whatever runs: state that lives outside the module, reserved names. */
export function checkState(ctx: ModuleContext): void {
  for (const imp of ctx.imports) {
    if (imp.module.startsWith(WIZER_PREFIX) || imp.name.startsWith(WIZER_PREFIX)) {
      throw new WizError('instrumentation', `the module already imports "${imp.module}" "${imp.name}": names starting with ${WIZER_PREFIX} are reserved for wiz`);
    }
    if (imp.kind === 'memory' || imp.kind === 'global' || imp.kind === 'table') {
      throw new WizError('unsupported', `the module imports ${imp.kind} "${imp.module}" "${imp.name}": wiz cannot snapshot state that lives outside the module`);
    }
  }
}

/**
 * Names a module's `__wizer_` exports after what they now export: for a module that a tool such as an
 * optimizer rewrote (renumbering globals, say) after wiz instrumented it. `parseInstrumented` then accepts it.
 */
export function renameInstrumentation(wasm: Uint8Array): Uint8Array {
  const context = parseModule(wasm);
  const section = findSection(context, SectionId.export);
  if (!section || !context.exports.some((e) => e.name.startsWith(WIZER_PREFIX))) return wasm;
  const w = new BinaryWriter().u32(context.exports.length);
  for (const e of context.exports) {
    let name = e.name;
    if (name.startsWith(WIZER_PREFIX)) {
      if (e.kind === 'global') name = `${WIZER_PREFIX}global_${e.index}`;
      else if (e.kind === 'memory') name = `${WIZER_PREFIX}memory_${context.memories.findIndex((m) => m.index === e.index)}`;
      else if (e.kind === 'table') name = `${WIZER_PREFIX}table_${context.tables.findIndex((t) => t.index === e.index)}`;
    }
    w.name(name).byte(['func', 'table', 'memory', 'global', 'tag'].indexOf(e.kind)).u32(e.index);
  }
  return assemble(context, new Map([[SectionId.export, w]])).finish();
}
