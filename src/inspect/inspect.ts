// What a module holds, as a plain JSON-able object: sizes, memories, globals and their values, data, tables,
// exports, imports, instrumentation and provenance. Static: it reads the bytes and runs nothing.
import { WIZER_PREFIX } from '../instrument/instrument.ts';
import { parseModule, SECTION_NAMES, skipConstExpr } from '../parse/module.ts';
import { BinaryReader } from '../parse/reader.ts';
import type { ExternKind, ModuleContext } from '../parse/types.ts';
import { readProvenance, type Provenance } from '../snapshot/provenance.ts';

/** A constant init expression, decoded. `bits` and `value` are strings so that i64 and NaN survive JSON. */
export type ConstValue =
  /** `bits` as hex of the encoding's width; `value` the number: signed decimal for integers, `nan:0x…`, `-0`, `inf`. */
  | { op: 'const'; type: 'i32' | 'i64' | 'f32' | 'f64' | 'v128'; bits: string; value: string }
  | { op: 'ref.null'; heapType: string }
  | { op: 'ref.func'; func: number }
  | { op: 'global.get'; global: number }
  /** Anything longer (extended-const arithmetic, GC constructors): its bytes as hex. */
  | { op: 'expr'; bytes: string };

export interface SectionInfo {
  id: number;
  /** `type`, `code`… or the custom section's name as `custom "name"`. */
  name: string;
  /** Whole section: id byte, size and content. */
  size: number;
}

export interface MemoryInfo {
  index: number;
  imported: boolean;
  min: number;
  max: number | undefined;
  pageSize: number;
  shared: boolean;
  memory64: boolean;
  exportedAs: string[];
  /**
   * Non-zero bytes the active data segments place in this memory (later segments overwrite earlier ones, as at
   * instantiation). Static: what the start function or code writes later is not counted.
   */
  nonZeroBytes: number;
}

export interface GlobalInfo {
  index: number;
  type: string;
  mutable: boolean;
  init: ConstValue;
  exportedAs: string[];
}

export interface TableInfo {
  index: number;
  imported: boolean;
  type: string;
  min: number;
  max: number | undefined;
}

export interface ModuleInspection {
  /** Bytes of the whole module. */
  size: number;
  sections: SectionInfo[];
  types: number;
  functions: { imported: number; defined: number };
  memories: MemoryInfo[];
  /** Imported globals are counted only: their values come from the host. */
  globals: { imported: number; defined: GlobalInfo[] };
  tables: TableInfo[];
  elementSegments: number;
  data: {
    segments: number;
    active: number;
    passive: number;
    /** Passive segments of length 0: what snapshots leave in place of the active segments they replace. */
    emptyPassive: number;
    /** Payload bytes of all segments. */
    bytes: number;
    /** Active segments whose offset is not a constant (`global.get`, extended-const), so not placed above. */
    unplaced: number;
  };
  exports: { total: number; byKind: Partial<Record<ExternKind, number>> };
  imports: { total: number; byKind: Partial<Record<ExternKind, number>>; modules: string[] };
  start: number | undefined;
  /** The `__wizer_*` exports it carries (as `wiz init --keep-instrumentation` writes them), by what they export. */
  instrumentation: { globals: number; memories: number; tables: number } | undefined;
  provenance: Provenance | undefined;
  /** Exported init functions, of `wizer-initialize`, `wizer.initialize`, `_initialize`. */
  initFunctions: string[];
}

/** The export names that make a module look not yet initialized. */
export const INIT_FUNCTION_NAMES = ['wizer-initialize', 'wizer.initialize', '_initialize'];

/** Reads a module (bytes, or a context already parsed) and describes it. Throws `malformed` as `parseModule` does. */
export function inspectModule(wasm: Uint8Array | ModuleContext): ModuleInspection {
  const ctx = wasm instanceof Uint8Array ? parseModule(wasm) : wasm;
  const exportsOf = (kind: ExternKind, index: number) => ctx.exports.filter((e) => e.kind === kind && e.index === index).map((e) => e.name);

  const memories: MemoryInfo[] = [
    ...ctx.imports.filter((i) => i.kind === 'memory').map((i, index) => ({ ...i.memory!, index, imported: true })),
    ...ctx.memories.map((m) => ({ ...m, imported: false })),
  ].map((m) => ({
    index: m.index, imported: m.imported, min: m.min, max: m.max, pageSize: 2 ** m.pageSizeLog2, shared: m.shared,
    memory64: m.memory64, exportedAs: exportsOf('memory', m.index), nonZeroBytes: 0,
  }));
  const data = readData(ctx, memories);

  const byKind = (items: { kind: ExternKind }[]) => {
    const counts: Partial<Record<ExternKind, number>> = {};
    for (const item of items) counts[item.kind] = (counts[item.kind] ?? 0) + 1;
    return counts;
  };
  const claims = ctx.exports.filter((e) => e.name.startsWith(WIZER_PREFIX));
  const exported = new Set(ctx.exports.filter((e) => e.kind === 'func').map((e) => e.name));

  return {
    size: ctx.bytes.length,
    sections: ctx.sections.map((s) => ({
      id: s.id, name: s.id === 0 ? `custom ${JSON.stringify(s.name)}` : SECTION_NAMES[s.id]!, size: s.end - s.start,
    })),
    types: ctx.types.length,
    functions: { imported: ctx.importedFunctions, defined: ctx.functionTypes.length },
    memories,
    globals: {
      imported: ctx.importedGlobals,
      defined: ctx.globals.map((g) => ({
        index: g.index, type: g.type, mutable: g.mutable, exportedAs: exportsOf('global', g.index),
        init: decodeConstExpr(ctx.bytes.subarray(g.initStart, g.end)),
      })),
    },
    tables: readTables(ctx),
    elementSegments: ctx.elementSegments.length,
    data,
    exports: { total: ctx.exports.length, byKind: byKind(ctx.exports) },
    imports: { total: ctx.imports.length, byKind: byKind(ctx.imports), modules: [...new Set(ctx.imports.map((i) => i.module))] },
    start: ctx.start,
    instrumentation: claims.length === 0 ? undefined : {
      globals: claims.filter((e) => e.kind === 'global').length,
      memories: claims.filter((e) => e.kind === 'memory').length,
      tables: claims.filter((e) => e.kind === 'table').length,
    },
    provenance: readProvenance(ctx),
    initFunctions: INIT_FUNCTION_NAMES.filter((n) => exported.has(n)),
  };
}

const hex = (n: bigint, digits: number) => `0x${n.toString(16).padStart(digits, '0')}`;

/** Signed LEB128 of at most `bits` bits, as a bigint. */
function sleb(r: BinaryReader, bits: number): bigint {
  let result = 0n;
  let shift = 0n;
  let b: number;
  do {
    if (shift >= BigInt(bits + 7)) r.fail('integer representation too long');
    b = r.u8();
    result |= BigInt(b & 0x7f) << shift;
    shift += 7n;
  } while (b & 0x80);
  if (b & 0x40) result -= 1n << shift;
  return BigInt.asIntN(bits, result);
}

/** A float's value as text: `nan:0x<payload>` with its sign, `-0`, `inf`, or the shortest decimal. */
function floatText(value: number, sign: boolean, payload: bigint, payloadDigits: number): string {
  if (Number.isNaN(value)) return `${sign ? '-' : ''}nan:${hex(payload, payloadDigits)}`;
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  return Object.is(value, -0) ? '-0' : String(value);
}

/** Decodes a constant expression (its bytes up to and including `end`). */
export function decodeConstExpr(bytes: Uint8Array): ConstValue {
  const r = new BinaryReader(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const op = r.u8();
  let value: ConstValue | undefined;
  switch (op) {
    case 0x41: { // i32.const
      const v = sleb(r, 32);
      value = { op: 'const', type: 'i32', bits: hex(BigInt.asUintN(32, v), 8), value: String(v) };
      break;
    }
    case 0x42: { // i64.const
      const v = sleb(r, 64);
      value = { op: 'const', type: 'i64', bits: hex(BigInt.asUintN(64, v), 16), value: String(v) };
      break;
    }
    case 0x43: { // f32.const
      const bits = view.getUint32(r.pos, true);
      r.skip(4);
      value = {
        op: 'const', type: 'f32', bits: hex(BigInt(bits), 8),
        value: floatText(view.getFloat32(r.pos - 4, true), bits >>> 31 === 1, BigInt(bits & 0x7fffff), 6),
      };
      break;
    }
    case 0x44: { // f64.const
      const bits = view.getBigUint64(r.pos, true);
      r.skip(8);
      value = {
        op: 'const', type: 'f64', bits: hex(bits, 16),
        value: floatText(view.getFloat64(r.pos - 8, true), bits >> 63n === 1n, bits & 0xfffffffffffffn, 13),
      };
      break;
    }
    case 0xfd: // v128.const (sub-opcode 12)
      if (r.u32() === 12) {
        const lanes = r.bytesView(16);
        // As one 128-bit little-endian number, the way `v128.const i64x2` reads high lane first.
        const text = Array.from(lanes, (b) => b.toString(16).padStart(2, '0')).reverse().join('');
        value = { op: 'const', type: 'v128', bits: `0x${text}`, value: `0x${text}` };
      }
      break;
    case 0xd0: { // ref.null
      const at = r.pos;
      const heap = bytes[at]!;
      const name = ({ 0x70: 'func', 0x6f: 'extern', 0x6e: 'any', 0x6d: 'eq', 0x6c: 'i31', 0x6b: 'struct', 0x6a: 'array', 0x71: 'none', 0x72: 'noextern', 0x73: 'nofunc', 0x69: 'exn', 0x74: 'noexn' } as Record<number, string>)[heap];
      if (name) {
        r.pos++;
        value = { op: 'ref.null', heapType: name };
      } else {
        value = { op: 'ref.null', heapType: String(sleb(r, 33)) };
      }
      break;
    }
    case 0xd2:
      value = { op: 'ref.func', func: r.u32() };
      break;
    case 0x23:
      value = { op: 'global.get', global: r.u32() };
      break;
  }
  if (value && r.pos === bytes.length - 1 && bytes[r.pos] === 0x0b) return value;
  return { op: 'expr', bytes: Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ') };
}

/** Limits: flags, min, optional max (32- or 64-bit), optional page size (memories). */
function readLimits(r: BinaryReader): { min: number; max: number | undefined } {
  const flags = r.u8();
  const is64 = (flags & 0x04) !== 0;
  const min = is64 ? r.u64() : r.u32();
  const max = flags & 0x01 ? (is64 ? r.u64() : r.u32()) : undefined;
  if (flags & 0x08) r.u32();
  return { min, max };
}

/** Imported tables then defined ones. */
function readTables(ctx: ModuleContext): TableInfo[] {
  const imported = ctx.imports.filter((i) => i.kind === 'table').map((i) => ({ ...i.table!, imported: true }));
  return [...imported, ...ctx.tables.map((t) => ({ ...t, imported: false }))]
    .map((t) => ({ index: t.index, imported: t.imported, type: t.type, min: t.min, max: t.max }));
}

/** Counts the data segments, and places the active ones' non-zero bytes in `memories`. */
function readData(ctx: ModuleContext, memories: MemoryInfo[]): ModuleInspection['data'] {
  const data = { segments: ctx.dataSegments.length, active: 0, passive: 0, emptyPassive: 0, bytes: 0, unplaced: 0 };
  const placed: { memory: number; offset: number; payload: Uint8Array }[] = [];
  for (const s of ctx.dataSegments) {
    const r = new BinaryReader(ctx.bytes, s.start, s.end);
    const flag = r.u32();
    if (flag === 2) r.u32();
    let offset: number | undefined;
    if (flag !== 1) {
      const exprStart = r.pos;
      skipConstExpr(r);
      const init = decodeConstExpr(ctx.bytes.subarray(exprStart, r.pos));
      if (init.op === 'const' && (init.type === 'i32' || init.type === 'i64')) {
        offset = Number(BigInt.asUintN(init.type === 'i32' ? 32 : 64, BigInt(init.value)));
      }
    }
    const payload = r.bytesView(r.u32());
    data.bytes += payload.length;
    if (s.mode === 'passive') {
      data.passive++;
      if (payload.length === 0) data.emptyPassive++;
    } else {
      data.active++;
      if (offset === undefined) data.unplaced++;
      else placed.push({ memory: s.memory, offset, payload });
    }
  }
  // Later segments overwrite earlier ones: count each segment's non-zero bytes outside what later ones cover.
  for (const m of memories) {
    const covered: [number, number][] = []; // disjoint, sorted
    let nonZero = 0;
    for (let i = placed.length - 1; i >= 0; i--) {
      const seg = placed[i]!;
      if (seg.memory !== m.index) continue;
      const start = seg.offset;
      const end = seg.offset + seg.payload.length;
      let at = start;
      for (const [cs, ce] of covered) {
        if (ce <= at) continue;
        if (cs >= end) break;
        if (cs > at) nonZero += countNonZero(seg.payload, at - start, cs - start);
        at = Math.max(at, ce);
      }
      if (at < end) nonZero += countNonZero(seg.payload, at - start, end - start);
      if (end > start) insertInterval(covered, start, end);
    }
    m.nonZeroBytes = nonZero;
  }
  return data;
}

function countNonZero(bytes: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (bytes[i] !== 0) n++;
  return n;
}

/** Adds [start, end) to a sorted list of disjoint intervals, merging what it touches. */
export function insertInterval(list: [number, number][], start: number, end: number): void {
  const i = firstEndingAfter(list, start - 1);
  let j = i;
  while (j < list.length && list[j]![0] <= end) {
    start = Math.min(start, list[j]![0]);
    end = Math.max(end, list[j]![1]);
    j++;
  }
  list.splice(i, j - i, [start, end]);
}

/** The index of the first interval of a sorted disjoint list that ends after `pos` (binary search). */
export function firstEndingAfter(list: readonly [number, number][], pos: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]![1] <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
