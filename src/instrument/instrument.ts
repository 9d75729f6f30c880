import { WizError } from '../errors.ts';
import { assemble } from '../parse/assemble.ts';
import { entriesAfterCount, findSection, parseModule, SectionId } from '../parse/module.ts';
import type { ModuleContext, ValType } from '../parse/types.ts';
import { BinaryWriter } from '../parse/writer.ts';

export const WIZER_PREFIX = '__wizer_';

/** A defined mutable global exported for the host: `__wizer_global_{index}`. */
export interface InstrumentedGlobal {
  index: number;
  type: ValType;
  exportName: string;
}

/** A defined memory exported for the host: `__wizer_memory_{ordinal}`. */
export interface InstrumentedMemory {
  index: number;
  ordinal: number;
  pageSizeLog2: number;
  exportName: string;
}

/** The original module's context, the instrumented module's bytes, and the names instrumentation added. */
export interface InstrumentedModule {
  /** The context of the module state is written into: the original, or the re-parsed snapshot. */
  context: ModuleContext;
  /** The module to instantiate. */
  bytes: Uint8Array;
  globals: InstrumentedGlobal[];
  memories: InstrumentedMemory[];
  /** True when `context` is itself an instrumented snapshot, read back by `parseInstrumented`. */
  reparsed: boolean;
}

/** Value types whose bits a host can read from a global (reference-typed state cannot be written as a constant). */
const SNAPSHOTTABLE: ReadonlySet<ValType> = new Set(['i32', 'i64', 'f32', 'f64', 'v128']);

/**
 * Adds the exports through which a host reads a module's state, as the reference does: each defined mutable
 * global `i` as `__wizer_global_{i}` and each defined memory `k` as `__wizer_memory_{k}`. Only the export
 * section changes; every other section is copied.
 */
export function instrument(wasm: Uint8Array | ModuleContext): InstrumentedModule {
  const context = wasm instanceof Uint8Array ? parseModule(wasm) : wasm;
  checkState(context);
  for (const exp of context.exports) {
    if (exp.name.startsWith(WIZER_PREFIX)) {
      throw new WizError('instrumentation', `the module already exports "${exp.name}": names starting with ${WIZER_PREFIX} are reserved for wiz (to snapshot an instrumented module again, use wiz snapshot)`);
    }
  }
  const { globals, memories } = instrumentationOf(context);

  const exports = new BinaryWriter().u32(context.exports.length + globals.length + memories.length);
  const existing = findSection(context, SectionId.export);
  if (existing) exports.raw(entriesAfterCount(context, existing.contentStart, existing.end));
  for (const g of globals) exports.name(g.exportName).byte(0x03).u32(g.index);
  for (const m of memories) exports.name(m.exportName).byte(0x02).u32(m.index);

  const bytes = assemble(context, new Map([[SectionId.export, exports]])).finish();
  return { context, bytes, globals, memories, reparsed: false };
}

/** The instrumentation a module gets: its defined mutable globals and its defined memories, by name. */
export function instrumentationOf(context: ModuleContext): Pick<InstrumentedModule, 'globals' | 'memories'> {
  return {
    globals: context.globals
      .filter((g) => g.mutable)
      .map((g) => ({ index: g.index, type: g.type, exportName: `${WIZER_PREFIX}global_${g.index}` })),
    memories: context.memories.map((m, ordinal) => ({
      index: m.index, ordinal, pageSizeLog2: m.pageSizeLog2, exportName: `${WIZER_PREFIX}memory_${ordinal}`,
    })),
  };
}


/** Refuses what the reference refuses: state outside the module or that cannot be written, reserved names. */
export function checkState(ctx: ModuleContext): void {
  for (const imp of ctx.imports) {
    if (imp.module.startsWith(WIZER_PREFIX) || imp.name.startsWith(WIZER_PREFIX)) {
      throw new WizError('instrumentation', `the module already imports "${imp.module}" "${imp.name}": names starting with ${WIZER_PREFIX} are reserved for wiz`);
    }
    if (imp.kind === 'memory' || imp.kind === 'global' || imp.kind === 'table') {
      throw new WizError('unsupported', `the module imports ${imp.kind} "${imp.module}" "${imp.name}": wiz cannot snapshot state that lives outside the module`);
    }
  }
  for (const g of ctx.globals) {
    if (g.mutable && !SNAPSHOTTABLE.has(g.type)) {
      throw new WizError('unsupported', `global ${g.index} is a mutable ${g.type} global: wiz cannot snapshot reference-typed globals yet`);
    }
  }
}
