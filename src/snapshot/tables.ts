import { SectionId, segmentFunctions } from '../parse/module.ts';
import { BinaryReader } from '../parse/reader.ts';
import type { DefinedTable, ElementSegment, ModuleContext, Range } from '../parse/types.ts';
import { BinaryWriter } from '../parse/writer.ts';
import { KEPT_OBJECT, type Ref, type Snapshot } from './state.ts';

/** A slot value the module's bytes do not determine (an initial value or offset computed from a global). */
const UNKNOWN = undefined;

/** `ref.func i` or `ref.null ht` (no `end`), for a value of the reference type encoded as `type`. */
export function refExpr(w: BinaryWriter, type: Uint8Array, ref: Ref): BinaryWriter {
  if (ref !== null) return w.byte(0xd2).u32(ref);
  // The heap type: after the `ref null`/`ref` prefix, or the shorthand byte itself (funcref is `ref null func`).
  return w.byte(0xd0).raw(type[0] === 0x63 || type[0] === 0x64 ? type.subarray(1) : type.subarray(0, 1));
}

export interface TableEditOptions {
  /** Write the element section even when no table changed (keep-instrumentation outputs, see below). */
  rewriteElements: boolean;
  /** Replace the input's trailing active element segments (a previous snapshot's tables). */
  replacePrevious: boolean;
  /**
   * Functions that the rewrite stops referring to elsewhere (the `ref.func`s of replaced global initializers):
   * those no kept segment declares any more are declared by a declarative segment, so that `ref.func` of them
   * in code stays valid.
   */
  undeclared: ReadonlySet<number>;
}

/**
 * Adds the table and element section edits for the snapshot's tables and dropped element segments. A table
 * whose size changed gets its new minimum. A table that holds what the module's own segments put there keeps
 * them ("kept" tables: function tables checked against the segments, tables of objects against what the
 * instance held right after instantiation); when every table is kept and no segment was dropped, the element
 * section is copied. Otherwise the active segments of the other tables and the dropped passive segments become
 * empty declarative ones (dropped, as they were in effect), one declarative segment declares for `ref.func` the
 * functions nothing else declares any more, and new active segments write those tables' contents.
 *
 * Keep-instrumentation outputs always get function tables in this written form, so that in any snapshot wiz
 * reads back the trailing active segments of those tables are the ones it wrote, which the next snapshot
 * replaces instead of piling them up.
 */
export function tableEdits(ctx: ModuleContext, snapshot: Snapshot, options: TableEditOptions, edits: Map<number, BinaryWriter | null>): void {
  if (ctx.tables.length === 0 && snapshot.dropped.elem.size === 0 && options.undeclared.size === 0) return;
  const live = new Map(snapshot.tables.map((t) => [t.index, t.entries]));
  const entriesOf = (t: DefinedTable) => live.get(t.index) ?? new Int32Array(0);
  if (ctx.tables.some((t) => entriesOf(t).length !== t.min)) edits.set(SectionId.table, tableSection(ctx, entriesOf));
  const kept = new Set<number>();
  for (const t of ctx.tables) {
    const entries = entriesOf(t);
    if (entries.includes(KEPT_OBJECT)) kept.add(t.index); // checked whole against the baseline when read
    else if (!(options.rewriteElements && t.top === 'func') && holdsInitialContents(ctx, t, entries)) kept.add(t.index);
  }
  const unchanged = kept.size === ctx.tables.length && snapshot.dropped.elem.size === 0 && options.undeclared.size === 0;
  if (!unchanged) edits.set(SectionId.element, elementSection(ctx, snapshot.dropped.elem, entriesOf, kept, options));
}

function tableSection(ctx: ModuleContext, entriesOf: (t: DefinedTable) => Int32Array): BinaryWriter {
  const w = new BinaryWriter().u32(ctx.tables.length);
  for (const t of ctx.tables) {
    w.raw(ctx.bytes.subarray(t.start, t.limits.start)).byte(t.flags).u32(entriesOf(t).length);
    if (t.max !== undefined) w.u32(t.max);
    w.raw(ctx.bytes.subarray(t.limits.end, t.end));
  }
  return w;
}

/** Whether `entries` is what instantiating the module leaves in table `t` (false when that is not known). */
function holdsInitialContents(ctx: ModuleContext, t: DefinedTable, entries: Int32Array): boolean {
  const fill = initialValue(ctx, t);
  if (fill === UNKNOWN || entries.length < t.min) return false;
  const initial = new Int32Array(t.min).fill(fill);
  for (const s of ctx.elementSegments) {
    if (s.mode !== 'active' || s.table !== t.index) continue;
    const offset = constOffset(ctx, s.offset!);
    const items = segmentItems(ctx, s);
    if (offset === UNKNOWN || items === UNKNOWN || offset + items.length > initial.length) return false;
    initial.set(items, offset);
  }
  for (let i = 0; i < entries.length; i++) {
    if (entries[i] !== (i < initial.length ? initial[i] : fill)) return false;
  }
  return true;
}

/** The value a table's slots start with: null, a function, or unknown (an expression wiz does not evaluate). */
function initialValue(ctx: ModuleContext, t: DefinedTable): number | undefined {
  if (!t.init) return -1;
  return constRef(new BinaryReader(ctx.bytes, t.init.start, t.init.end));
}

/** A constant reference expression `ref.null ht` / `ref.func i` (with its `end`); else unknown. */
function constRef(r: BinaryReader): number | undefined {
  const op = r.u8();
  let value: number;
  if (op === 0xd0) {
    r.s33();
    value = -1;
  } else if (op === 0xd2) {
    value = r.u32();
  } else {
    return UNKNOWN;
  }
  return r.u8() === 0x0b ? value : UNKNOWN;
}

/** An `i32.const` / `i64.const` offset; else unknown. */
function constOffset(ctx: ModuleContext, range: Range): number | undefined {
  const b = ctx.bytes;
  const op = b[range.start];
  if (op !== 0x41 && op !== 0x42) return UNKNOWN;
  let value = 0n;
  let shift = 0n;
  let pos = range.start + 1;
  let byte: number;
  do {
    byte = b[pos++]!;
    value |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
  } while (byte & 0x80 && pos < range.end);
  if (byte & 0x40) value -= 1n << shift; // sign-extend
  if (b[pos] !== 0x0b || pos + 1 !== range.end) return UNKNOWN;
  const unsigned = op === 0x41 ? BigInt.asUintN(32, value) : BigInt.asUintN(64, value);
  return unsigned <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(unsigned) : UNKNOWN;
}

/** A segment's items as function indices (-1 for null); unknown when an item is not a constant reference. */
function segmentItems(ctx: ModuleContext, s: ElementSegment): Int32Array | undefined {
  const r = new BinaryReader(ctx.bytes, s.items, s.end);
  const items = new Int32Array(r.u32());
  for (let i = 0; i < items.length; i++) {
    if (!s.exprs) {
      items[i] = r.u32();
      continue;
    }
    const value = constRef(r);
    if (value === UNKNOWN) return UNKNOWN;
    items[i] = value;
  }
  return items;
}

function firstOfTrailingActive(segments: readonly ElementSegment[]): number {
  let i = segments.length;
  while (i > 0 && segments[i - 1]!.mode === 'active') i--;
  return i;
}

function elementSection(
  ctx: ModuleContext,
  dropped: ReadonlySet<number>,
  entriesOf: (t: DefinedTable) => Int32Array,
  keptTables: ReadonlySet<number>,
  options: TableEditOptions,
): BinaryWriter {
  const segments = ctx.elementSegments;
  // A previous snapshot's segments: the trailing active ones, except those of kept tables, which stay.
  const trailing = options.replacePrevious ? firstOfTrailingActive(segments) : segments.length;
  const added = new BinaryWriter();
  let count = 0;
  const written = new Set<number>(); // functions the new segments hold, and so declare
  for (const t of ctx.tables) {
    if (keptTables.has(t.index)) continue;
    count += writeTable(added, ctx, t, entriesOf(t));
    for (const e of entriesOf(t)) if (e >= 0) written.add(e);
  }

  // What stops being declared: replaced initializers' functions, and those of segments left out or emptied.
  const removed = new Set(options.undeclared);
  const declared = new Set<number>();
  const w = new BinaryWriter();
  segments.forEach((s, i) => {
    const ofKeptTable = s.mode === 'active' && keptTables.has(s.table);
    if (i >= trailing && !ofKeptTable) {
      segmentFunctions(ctx, s, removed);
      return;
    }
    count++;
    const applied = (s.mode === 'active' && !ofKeptTable) || (s.mode === 'passive' && dropped.has(i));
    if (!applied) {
      w.raw(ctx.bytes.subarray(s.start, s.end));
      segmentFunctions(ctx, s, declared);
      return;
    }
    writeApplied(w, ctx, s);
    segmentFunctions(ctx, s, removed);
  });
  const missing = [...removed].filter((f) => !declared.has(f) && !written.has(f)).sort((a, b) => a - b);
  if (missing.length > 0) {
    // Before the new active segments, so that these stay the trailing run a later snapshot replaces.
    w.byte(0x03).byte(0x00).u32(missing.length);
    for (const f of missing) w.u32(f);
    count++;
  }
  return new BinaryWriter().u32(count).append(w).append(added);
}

/**
 * A segment that instantiation already applied, or that was dropped, written as one that behaves the same from
 * now on: an empty declarative segment of the same element type (dropped at instantiation: `table.init` of it
 * traps unless it copies nothing, as before). The functions it declared are declared again by the caller where
 * nothing else does.
 */
function writeApplied(w: BinaryWriter, ctx: ModuleContext, s: ElementSegment): void {
  if (!s.exprs) {
    w.byte(0x03).byte(0x00).u32(0);
    return;
  }
  w.byte(0x07);
  if (s.elemType) w.raw(ctx.bytes.subarray(s.elemType.start, s.elemType.end));
  else w.byte(0x70);
  w.u32(0);
}

/**
 * Writes active segments that fill table `t` with `entries`, one per run of slots that differ from the
 * table's initial value (every slot when that is not known). Returns how many.
 */
function writeTable(w: BinaryWriter, ctx: ModuleContext, t: DefinedTable, entries: Int32Array): number {
  const fill = initialValue(ctx, t);
  const type = ctx.bytes.subarray(t.refType.start, t.refType.end);
  const plainFuncref = type.length === 1 && type[0] === 0x70;
  let written = 0;
  for (let start = 0; start < entries.length;) {
    if (entries[start] === fill) {
      start++;
      continue;
    }
    let end = start;
    let hasNull = false;
    for (; end < entries.length && entries[end] !== fill; end++) {
      if (entries[end] === -1) hasNull = true;
    }
    written++;
    const indices = plainFuncref && !hasNull;
    // Flags: 0/4 for table 0 of funcref (the MVP encodings), 2 (function indices) or 6 (expressions) otherwise.
    const flags = (indices ? 0 : 4) | (t.index === 0 && plainFuncref ? 0 : 2);
    w.byte(flags);
    if (flags & 2) w.u32(t.index);
    if (t.table64) w.byte(0x42).s64(BigInt(start));
    else w.byte(0x41).s32(start);
    w.byte(0x0b);
    if (flags === 2) w.byte(0x00);
    if (flags === 6) w.raw(type);
    w.u32(end - start);
    for (let i = start; i < end; i++) {
      const e = entries[i]!;
      if (indices) w.u32(e);
      else refExpr(w, type, e === -1 ? null : e).byte(0x0b);
    }
    start = end;
  }
  return written;
}
