import { WizError, type WarningHandler } from '../errors.ts';
import { assemble } from '../parse/assemble.ts';
import { findSection, SectionId, skipConstExpr } from '../parse/module.ts';
import { BinaryReader } from '../parse/reader.ts';
import { WIZER_PREFIX, type Instrumentation } from '../instrument/instrument.ts';
import type { DataSegment, DefinedGlobal, ModuleContext } from '../parse/types.ts';
import { BinaryWriter, concat, putS32, putS64, putU32, repeated } from '../parse/writer.ts';
import { stubCodeSection } from './code-context.ts';
import { snapshotSegments, type NewSegment, type SnapshotData } from './segments.ts';
import { refExpr, tableEdits } from './tables.ts';
import type { GlobalBits, Snapshot } from './state.ts';

export interface RewriteOptions {
  /** Exports to leave out: the init function and `_initialize` after `wiz init`. */
  removeExports?: readonly string[];
  /** Export renames, `dst=src` as the reference's `-r`. */
  renames?: readonly string[];
  /**
   * Instrumentation to keep exporting, so that the output can be snapshotted again. Any `__wizer_` export of
   * the input is dropped either way, and only these are written, after the other exports.
   */
  keepInstrumentation?: Instrumentation;
  /**
   * The input is itself a snapshot: its trailing active data and element segments hold the previous snapshot's
   * memories and tables and no code refers to them, so they are replaced rather than kept as empty passive (or
   * declarative) segments, which would pile up one generation after another.
   */
  replacePreviousSegments?: boolean;
  /** The data segments, when the caller computed them already (by default, from the snapshot's memories). */
  segments?: readonly NewSegment[] | SnapshotData;
  /**
   * Leave the new segments' bytes out (each written with length 0): a module that validates exactly when the
   * full one does (bytes cannot make a module invalid), at a fraction of the cost for big memories.
   */
  skeleton?: boolean;
  /**
   * Replace every function body with `unreachable` (with `skeleton`: a module that checks every section but the
   * code, for a snapshot whose code is known to be valid; see code-context.ts). A set: every body but those (by
   * index among defined functions), which are copied.
   */
  stubCode?: boolean | ReadonlySet<number>;
  /** Custom sections written at the end, replacing any input section of the same name. */
  customSections?: readonly { name: string; bytes: Uint8Array }[];
  /** Custom sections of the input to leave out. */
  dropCustomSections?: readonly string[];
  /** Receives one-line warnings (e.g. a rename whose source is not exported). */
  onWarning?: WarningHandler;
}

/**
 * Writes the snapshot module: the original sections, with mutable globals set to their snapshot values,
 * memory minimums at their current size, memory contents as new active data segments (the original active
 * segments become empty passive ones so that segment indices stay valid), dropped passive data segments
 * emptied, tables written when they changed (see `tables.ts`), the start section dropped and the exports
 * edited. Every other section is copied as bytes.
 */
export function rewrite(ctx: ModuleContext, snapshot: Snapshot, options: RewriteOptions): Uint8Array {
  return concat(rewriteParts(ctx, snapshot, options));
}

/**
 * `rewrite`, as chunks in order: views of the input and of the live memories, not copies. Write them out
 * before the instance runs again.
 */
export function rewriteParts(ctx: ModuleContext, snapshot: Snapshot, options: RewriteOptions): Uint8Array[] {
  const renames = parseRenames(options.renames ?? []);
  const given = options.segments ?? snapshotSegments(snapshot.memories);
  const segments: SnapshotData = 'pieces' in given ? given : { count: given.length, pieces: given };
  const kept = options.replacePreviousSegments ? ctx.dataSegments.slice(0, firstOfTrailingActive(ctx)) : ctx.dataSegments;
  const edits = new Map<number, BinaryWriter | null>([
    [SectionId.start, null],
    [SectionId.data, dataSection(ctx, kept, segments, snapshot.dropped.data, options.skeleton ?? false)],
  ]);
  const undeclared = new Set<number>();
  if (ctx.globals.length > 0) edits.set(SectionId.global, globalSection(ctx, snapshot, undeclared));
  tableEdits(ctx, snapshot, {
    rewriteElements: options.keepInstrumentation !== undefined,
    replacePrevious: options.replacePreviousSegments ?? false,
    undeclared,
  }, edits);
  if (ctx.memories.length > 0) edits.set(SectionId.memory, memorySection(ctx, snapshot));
  if (ctx.exports.length > 0 || options.keepInstrumentation) edits.set(SectionId.export, exportSection(ctx, options, renames));
  if (ctx.dataCount !== undefined) edits.set(SectionId.dataCount, new BinaryWriter().u32(kept.length + segments.count));
  if (options.stubCode && findSection(ctx, SectionId.code)) {
    edits.set(SectionId.code, stubCodeSection(ctx, options.stubCode === true ? undefined : options.stubCode));
  }
  const custom = options.customSections ?? [];
  const out = assemble(ctx, edits, new Set([...custom.map((c) => c.name), ...(options.dropCustomSections ?? [])]));
  for (const c of custom) out.section(SectionId.custom, new BinaryWriter().name(c.name).raw(c.bytes));
  return out.parts();
}

/** The index of the first segment of the trailing run of active segments (the count when there is none). */
function firstOfTrailingActive(ctx: ModuleContext): number {
  let i = ctx.dataSegments.length;
  while (i > 0 && ctx.dataSegments[i - 1]!.mode === 'active') i--;
  return i;
}

function memorySection(ctx: ModuleContext, snapshot: Snapshot): BinaryWriter {
  const w = new BinaryWriter().u32(ctx.memories.length);
  ctx.memories.forEach((m, ordinal) => {
    w.byte(m.flags).u32(snapshot.memories[ordinal]?.pages ?? m.min);
    if (m.max !== undefined) w.u32(m.max);
    if (m.flags & 0x08) w.u32(m.pageSizeLog2);
  });
  return w;
}

/** The global section with the snapshot's values; `undeclared` gets the `ref.func`s of replaced initializers. */
function globalSection(ctx: ModuleContext, snapshot: Snapshot, undeclared: Set<number>): BinaryWriter {
  const w = new BinaryWriter().u32(ctx.globals.length);
  for (const g of ctx.globals) {
    const bits = g.mutable ? snapshot.globals.get(g.index) : undefined;
    if (bits) w.raw(ctx.bytes.subarray(g.start, g.initStart)).append(constExpr(g, bits));
    else if (g.mutable && snapshot.refGlobals.has(g.index)) {
      skipConstExpr(new BinaryReader(ctx.bytes, g.initStart, g.end), (f) => undeclared.add(f));
      w.raw(ctx.bytes.subarray(g.start, g.initStart));
      refExpr(w, ctx.bytes.subarray(g.start, g.initStart - 1), snapshot.refGlobals.get(g.index)!).byte(0x0b);
    } else w.raw(ctx.bytes.subarray(g.start, g.end));
  }
  return w;
}

/** `T.const <bits>; end` for a global's snapshot value. */
function constExpr(g: DefinedGlobal, bits: GlobalBits): BinaryWriter {
  const w = new BinaryWriter();
  const view = new DataView(bits.buffer, bits.byteOffset, bits.byteLength);
  switch (g.type) {
    case 'i32': w.byte(0x41).s32(view.getInt32(0, true)); break;
    case 'i64': w.byte(0x42).s64(view.getBigInt64(0, true)); break;
    case 'f32': w.byte(0x43).raw(bits.subarray(0, 4)); break;
    case 'f64': w.byte(0x44).raw(bits.subarray(0, 8)); break;
    case 'v128': w.byte(0xfd).u32(12).raw(bits.subarray(0, 16)); break;
    default: throw new WizError('unsupported', `cannot write a ${g.type} global as a constant`);
  }
  return w.byte(0x0b);
}

const EXPORT_KIND = { func: 0, table: 1, memory: 2, global: 3, tag: 4 } as const;

/** The exports in their order, minus the removed ones and any `__wizer_` ones, with renames applied. */
function exportSection(ctx: ModuleContext, options: RewriteOptions, renames: Map<string, string>): BinaryWriter {
  const removed = new Set(options.removeExports);
  const destinations = new Set(renames.values());
  const names = new Set(ctx.exports.map((e) => e.name));
  for (const [src, dst] of renames) {
    if (!names.has(src)) options.onWarning?.(`rename ${dst}=${src}: the module exports no "${src}"${names.has(dst) ? `; "${dst}" is removed` : ''}`, 'rename-missing');
  }
  const kept: { name: string; kind: number; index: number }[] = [];
  for (const e of ctx.exports) {
    if (removed.has(e.name) || e.name.startsWith(WIZER_PREFIX)) continue;
    const renamed = renames.get(e.name);
    if (renamed === undefined && destinations.has(e.name)) continue; // overwritten by a rename
    kept.push({ name: renamed ?? e.name, kind: EXPORT_KIND[e.kind], index: e.index });
  }
  for (const g of options.keepInstrumentation?.globals ?? []) kept.push({ name: g.exportName, kind: EXPORT_KIND.global, index: g.index });
  for (const m of options.keepInstrumentation?.memories ?? []) kept.push({ name: m.exportName, kind: EXPORT_KIND.memory, index: m.index });
  for (const t of options.keepInstrumentation?.tables ?? []) kept.push({ name: t.exportName, kind: EXPORT_KIND.table, index: t.index });
  const w = new BinaryWriter().u32(kept.length);
  for (const e of kept) w.name(e.name).byte(e.kind).u32(e.index);
  return w;
}

/** Parses `dst=src` renames into a map from source to destination, refusing duplicates as the reference does. */
export function parseRenames(specs: readonly string[]): Map<string, string> {
  const bySource = new Map<string, string>();
  const destinations = new Set<string>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) {
      throw new WizError('usage', `rename "${spec}" is not of the form dst=src`);
    }
    const dst = spec.slice(0, eq);
    const src = spec.slice(eq + 1);
    if (dst.startsWith(WIZER_PREFIX) || src.startsWith(WIZER_PREFIX)) {
      throw new WizError('usage', `rename "${spec}": names starting with ${WIZER_PREFIX} are reserved for wiz`);
    }
    if (bySource.has(src)) throw new WizError('usage', `export "${src}" is renamed more than once`);
    if (destinations.has(dst)) throw new WizError('usage', `more than one export is renamed to "${dst}"`);
    bySource.set(src, dst);
    destinations.add(dst);
  }
  return bySource;
}

/** Kept active and dropped passive segments become empty passive ones; other passive segments stay; the snapshot's follow. */
function dataSection(ctx: ModuleContext, kept: readonly DataSegment[], segments: SnapshotData, dropped: ReadonlySet<number>, skeleton: boolean): BinaryWriter {
  const w = new BinaryWriter().u32(kept.length + segments.count);
  for (const [i, s] of kept.entries()) {
    if (s.mode === 'active' || dropped.has(i)) w.byte(0x01).u32(0);
    else w.raw(ctx.bytes.subarray(s.start, s.end));
  }
  const memory64 = new Map(ctx.memories.map((m) => [m.index, m.memory64]));
  // A snapshot has up to thousands of segments: their headers are encoded into one array here, between views of
  // memory (the writer's per-byte calls were most of this function's time), when the scanner did not encode
  // them. A skeleton's offsets are all 0: a module validates the same whatever their values.
  const headers = new Uint8Array(segments.pieces.length * MAX_HEADER);
  let at = 0;
  let from = 0;
  for (const s of segments.pieces) {
    if ('encoded' in s) {
      // In a skeleton, the same entry each time (a 32-bit memory, offset 0, no bytes).
      const entry = [...(s.memory === 0 ? [0x00] : [0x02, ...new BinaryWriter().u32(s.memory).finish()]), 0x41, 0x00, 0x0b, 0x00];
      w.raw(headers.subarray(from, at)).raw(skeleton ? repeated(entry, s.count) : s.encoded);
      from = at;
      continue;
    }
    if (s.memory === 0) headers[at++] = 0x00;
    else {
      headers[at++] = 0x02;
      at = putU32(headers, at, s.memory);
    }
    const offset = skeleton ? 0 : s.offset;
    if (memory64.get(s.memory)) {
      headers[at++] = 0x42;
      at = putS64(headers, at, BigInt(offset));
    } else {
      headers[at++] = 0x41;
      at = putS32(headers, at, offset | 0);
    }
    headers[at++] = 0x0b;
    if (skeleton) headers[at++] = 0x00;
    else {
      at = putU32(headers, at, s.bytes.length);
      w.raw(headers.subarray(from, at)).raw(s.bytes);
      from = at;
    }
  }
  return w.raw(headers.subarray(from, at));
}

/** The longest segment header: flag, memory index (LEB128: 5), i64.const (1 + 10), end, length (up to 2^53: 8). */
const MAX_HEADER = 26;
