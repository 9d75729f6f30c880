// What differs between the states two modules start with (what instantiation makes before any code runs), or
// between two state images: globals bit for bit, memory bytes, table slots, sizes. Static: nothing is run.
import { IMAGE_FORMAT, type ImageChunks, type ImageGlobal, type StateImage } from '../durable/image.ts';
import { WizError } from '../errors.ts';
import { decodeConstExpr, firstEndingAfter, insertInterval, type ConstValue } from '../inspect/inspect.ts';
import { parseModule, skipConstExpr } from '../parse/module.ts';
import { BinaryReader } from '../parse/reader.ts';
import type { ModuleContext, Range } from '../parse/types.ts';

/** A global's value. Strings throughout, so that i64 and NaN payloads survive JSON. */
export interface GlobalValue {
  type: string;
  /** The bits as hex of the type's width (numbers and vectors); absent for references and other expressions. */
  bits?: string;
  /**
   * Integers in signed decimal, floats as `nan:0x…` (with sign), `-0`, `inf` or the shortest decimal, v128 as its
   * bits; otherwise the expression: `ref.func 3`, `ref.null func`, `global.get 0`, `expr 41 01 0b`.
   */
  value: string;
}

export interface GlobalDiff {
  /** Index in the global index space. */
  index: number;
  /** The names the new state's module exports it as (the old one's when the new has no such global). */
  exportedAs: string[];
  /** Present when the old module exports it under other names. */
  oldExportedAs?: string[];
  /** Absent when the global is not defined on that side. */
  old?: GlobalValue;
  new?: GlobalValue;
}

/** Bytes [start, end) of a memory, in which `bytes` bytes differ (ranges merge across small gaps of equal bytes). */
export interface MemoryDiff {
  memory: number;
  start: number;
  end: number;
  bytes: number;
}

/** A table slot: a function index, null, or an expression wiz does not evaluate (`expr fb 00 …`). */
export type TableRef = number | null | string;

/** Consecutive slots [start, end) of a table that all differ, with their old and new contents. */
export interface TableDiff {
  table: number;
  start: number;
  end: number;
  old: TableRef[];
  new: TableRef[];
}

/** A memory's size in pages or a table's in slots; absent on the side that does not define it. */
export interface SizeChange {
  kind: 'memory' | 'table';
  index: number;
  old?: number;
  new?: number;
}

export interface StateDiff {
  /** True when nothing below differs. */
  same: boolean;
  globals: GlobalDiff[];
  memories: MemoryDiff[];
  tables: TableDiff[];
  sizes: SizeChange[];
  /** Other differences, one line each: segments at offsets not known statically, dropped segments, image modules. */
  notes: string[];
}

export interface DiffOptions {
  /** Differing bytes at most this far apart are reported as one range (default 16). */
  mergeGap?: number;
}

export const DEFAULT_MERGE_GAP = 16;

/** Compares the state two modules start with: defined globals' initial values, memories, tables, global exports. */
export function diffModules(a: Uint8Array | ModuleContext, b: Uint8Array | ModuleContext, options: DiffOptions = {}): StateDiff {
  const ca = a instanceof Uint8Array ? parseModule(a) : a;
  const cb = b instanceof Uint8Array ? parseModule(b) : b;
  const out = emptyDiff();
  const gap = options.mergeGap ?? DEFAULT_MERGE_GAP;

  const globalsA = moduleGlobals(ca);
  const globalsB = moduleGlobals(cb);
  for (const index of unionKeys(globalsA, globalsB)) {
    const ga = globalsA.get(index);
    const gb = globalsB.get(index);
    const valueDiffers = !sameValue(ga?.value, gb?.value);
    const namesDiffer = (ga?.names ?? []).join('\0') !== (gb?.names ?? []).join('\0') && ga !== undefined && gb !== undefined;
    if (!valueDiffers && !namesDiffer) continue;
    const d: GlobalDiff = { index, exportedAs: (gb ?? ga)!.names };
    if (namesDiffer) d.oldExportedAs = ga!.names;
    if (ga) d.old = ga.value;
    if (gb) d.new = gb.value;
    out.globals.push(d);
  }

  const memA = moduleMemories(ca);
  const memB = moduleMemories(cb);
  for (const index of unionKeys(memA, memB)) {
    const ma = memA.get(index);
    const mb = memB.get(index);
    if (ma?.pages !== mb?.pages) out.sizes.push(sizeChange('memory', index, ma?.pages, mb?.pages));
    diffMemory(index, ma?.pieces ?? [], mb?.pieces ?? [], gap, out.memories);
    const ua = ma?.unplaced ?? [];
    const ub = mb?.unplaced ?? [];
    if (ua.length !== ub.length || ua.some((s, i) => !equalBytes(s, ub[i]!))) {
      out.notes.push(`memory ${index}: the active data segments wiz cannot place (offset not a constant, or the memory imported) differ: ${ua.length} in a, ${ub.length} in b`);
    }
  }

  const tabA = moduleTables(ca);
  const tabB = moduleTables(cb);
  for (const index of unionKeys(tabA, tabB)) {
    const ta = tabA.get(index);
    const tb = tabB.get(index);
    if (ta?.size !== tb?.size) out.sizes.push(sizeChange('table', index, ta?.size, tb?.size));
    diffTable(index, ta, tb, out.tables);
    const ua = ta?.unplaced ?? [];
    const ub = tb?.unplaced ?? [];
    if (ua.length !== ub.length || ua.some((s, i) => !equalBytes(s, ub[i]!))) {
      out.notes.push(`table ${index}: the active element segments wiz cannot place (offset not a constant, or the table imported) differ: ${ua.length} in a, ${ub.length} in b`);
    }
  }
  return finished(out);
}

/**
 * Compares two state images: globals' bits, memory sizes and contents (only chunks whose digests differ are read,
 * then compared byte for byte), table slots and sizes, dropped segments. `chunks` holds the chunks of both
 * images, unless the second image's are given apart in `chunksB`.
 */
export function diffImages(a: StateImage, b: StateImage, chunks: ImageChunks, chunksB: ImageChunks = chunks, options: DiffOptions = {}): StateDiff {
  for (const [side, image] of [['a', a], ['b', b]] as const) {
    if (image.format !== IMAGE_FORMAT) throw new WizError('malformed', `image ${side} is not a ${IMAGE_FORMAT} state image (format ${JSON.stringify(image.format)})`);
  }
  const out = emptyDiff();
  const gap = options.mergeGap ?? DEFAULT_MERGE_GAP;
  if (a.module !== b.module) out.notes.push(`the images belong to different modules: ${a.module} and ${b.module}`);

  const globalsA = new Map(a.globals.map((g) => [g.index, imageGlobal(g)]));
  const globalsB = new Map(b.globals.map((g) => [g.index, imageGlobal(g)]));
  for (const index of unionKeys(globalsA, globalsB)) {
    const ga = globalsA.get(index);
    const gb = globalsB.get(index);
    if (sameValue(ga, gb)) continue;
    const d: GlobalDiff = { index, exportedAs: [] };
    if (ga) d.old = ga;
    if (gb) d.new = gb;
    out.globals.push(d);
  }

  const memA = new Map(a.memories.map((m) => [m.index, m]));
  const memB = new Map(b.memories.map((m) => [m.index, m]));
  for (const index of unionKeys(memA, memB)) {
    const ma = memA.get(index);
    const mb = memB.get(index);
    if (ma?.pages !== mb?.pages) out.sizes.push(sizeChange('memory', index, ma?.pages, mb?.pages));
    const pa = ma ? chunkPieces('a', a.chunkSize, ma, chunks) : [];
    const pb = mb ? chunkPieces('b', b.chunkSize, mb, chunksB) : [];
    diffMemory(index, pa, pb, gap, out.memories);
  }

  const tabA = new Map(a.tables.map((t) => [t.index, imageTable(t)]));
  const tabB = new Map(b.tables.map((t) => [t.index, imageTable(t)]));
  for (const index of unionKeys(tabA, tabB)) {
    const ta = tabA.get(index);
    const tb = tabB.get(index);
    if (ta?.size !== tb?.size) out.sizes.push(sizeChange('table', index, ta?.size, tb?.size));
    diffTable(index, ta, tb, out.tables);
  }

  for (const kind of ['data', 'elem'] as const) {
    const da = new Set(a.dropped[kind]);
    const db = new Set(b.dropped[kind]);
    for (const i of [...new Set([...da, ...db])].sort((x, y) => x - y)) {
      if (da.has(i) !== db.has(i)) out.notes.push(`${kind} segment ${i}: ${da.has(i) ? 'dropped' : 'kept'} -> ${db.has(i) ? 'dropped' : 'kept'}`);
    }
  }
  if (JSON.stringify(a.suspended ?? null) !== JSON.stringify(b.suspended ?? null)) {
    const what = (s: StateImage['suspended']) => (s ? `suspended in ${s.pending.name}(${s.pending.args.join(', ')}) (entered by ${s.entry.name}(${s.entry.args.join(', ')}))` : 'not suspended');
    out.notes.push(`call: ${what(a.suspended)} -> ${what(b.suspended)}`);
  }
  return finished(out);
}

function emptyDiff(): StateDiff {
  return { same: true, globals: [], memories: [], tables: [], sizes: [], notes: [] };
}

function finished(d: StateDiff): StateDiff {
  d.same = d.globals.length + d.memories.length + d.tables.length + d.sizes.length + d.notes.length === 0;
  return d;
}

function sizeChange(kind: SizeChange['kind'], index: number, old: number | undefined, now: number | undefined): SizeChange {
  const c: SizeChange = { kind, index };
  if (old !== undefined) c.old = old;
  if (now !== undefined) c.new = now;
  return c;
}

/** Keys of both maps, in ascending order. */
function unionKeys(a: ReadonlyMap<number, unknown>, b: ReadonlyMap<number, unknown>): number[] {
  return [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x - y);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- globals ----

function sameValue(a: GlobalValue | undefined, b: GlobalValue | undefined): boolean {
  if (!a || !b) return a === b;
  return a.type === b.type && a.bits === b.bits && a.value === b.value;
}

function fromConst(type: string, c: ConstValue): GlobalValue {
  switch (c.op) {
    case 'const': return { type, bits: c.bits, value: c.value };
    case 'ref.null': return { type, value: `ref.null ${c.heapType}` };
    case 'ref.func': return { type, value: `ref.func ${c.func}` };
    case 'global.get': return { type, value: `global.get ${c.global}` };
    case 'expr': return { type, value: `expr ${c.bytes}` };
  }
}

function moduleGlobals(ctx: ModuleContext): Map<number, { value: GlobalValue; names: string[] }> {
  const names = new Map<number, string[]>();
  for (const e of ctx.exports) if (e.kind === 'global') names.set(e.index, [...(names.get(e.index) ?? []), e.name]);
  return new Map(ctx.globals.map((g) => [g.index, {
    value: fromConst(g.type, decodeConstExpr(ctx.bytes.subarray(g.initStart, g.end))),
    names: names.get(g.index) ?? [],
  }]));
}

const CONST_OPCODE: Record<string, number[]> = { f32: [0x43], f64: [0x44], v128: [0xfd, 12] };
const WIDTH: Record<string, number> = { i32: 4, i64: 8, f32: 4, f64: 8, v128: 16 };

/** An image global's value, decoded as the same constant expression a module would hold. */
function imageGlobal(g: ImageGlobal): GlobalValue {
  if ('ref' in g) return { type: g.type, value: g.ref === null ? 'ref.null' : `ref.func ${g.ref}` };
  const width = WIDTH[g.type];
  if (width === undefined || g.bits.length !== 2 * width || !/^[0-9a-f]*$/i.test(g.bits)) {
    return { type: g.type, value: `bits ${g.bits}` };
  }
  // The image holds the bits in memory order (little-endian bytes), as the snapshot reads them.
  const bytes = Array.from({ length: width }, (_, i) => parseInt(g.bits.slice(2 * i, 2 * i + 2), 16));
  let expr: number[];
  if (g.type === 'i32' || g.type === 'i64') {
    let v = 0n;
    for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    expr = [g.type === 'i32' ? 0x41 : 0x42, ...sleb(BigInt.asIntN(width * 8, v))];
  } else {
    expr = [...CONST_OPCODE[g.type]!, ...bytes];
  }
  return fromConst(g.type, decodeConstExpr(new Uint8Array([...expr, 0x0b])));
}

function sleb(v: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

// ---- memories ----

/** A run of known contents: `data[offset …]` holds what lies at [start, end). Outside every piece: zeros. */
interface Piece<T> {
  start: number;
  end: number;
  data: T;
  offset: number;
  /** Equal keys at the same place mean equal contents (chunk digests). */
  key?: string;
}

interface MemoryView {
  /** Undefined for an imported memory. */
  pages: number | undefined;
  pieces: Piece<Uint8Array>[];
  /** Entries of active segments whose offsets are not constants, or that write an imported memory. */
  unplaced: Uint8Array[];
}

/** Each defined memory's size and what its active data segments place there, later segments over earlier ones. */
function moduleMemories(ctx: ModuleContext): Map<number, MemoryView> {
  const views = new Map<number, MemoryView>(ctx.memories.map((m) => [m.index, { pages: m.min, pieces: [], unplaced: [] }]));
  const placed = new Map<number, Piece<Uint8Array>[]>();
  for (const s of ctx.dataSegments) {
    if (s.mode !== 'active') continue;
    let view = views.get(s.memory);
    if (!view) {
      // An imported memory: what its segments write is compared as segments, not as contents.
      views.set(s.memory, { pages: undefined, pieces: [], unplaced: [ctx.bytes.subarray(s.start, s.end)] });
      continue;
    }
    if (view.pages === undefined) {
      view.unplaced.push(ctx.bytes.subarray(s.start, s.end));
      continue;
    }
    const r = new BinaryReader(ctx.bytes, s.start, s.end);
    if (r.u32() === 2) r.u32();
    const exprStart = r.pos;
    skipConstExpr(r);
    const offset = constOffset(ctx, { start: exprStart, end: r.pos });
    const payload = r.bytesView(r.u32());
    if (offset === undefined) view.unplaced.push(ctx.bytes.subarray(s.start, s.end));
    else if (payload.length > 0) {
      let list = placed.get(s.memory);
      if (!list) placed.set(s.memory, (list = []));
      list.push({ start: offset, end: offset + payload.length, data: payload, offset: 0 });
    }
  }
  for (const [index, list] of placed) views.get(index)!.pieces = resolveOverlaps(list);
  return views;
}

/** An `i32.const`/`i64.const` offset, unsigned; undefined for any other expression or beyond 2^53. */
function constOffset(ctx: ModuleContext, range: Range): number | undefined {
  const c = decodeConstExpr(ctx.bytes.subarray(range.start, range.end));
  if (c.op !== 'const' || (c.type !== 'i32' && c.type !== 'i64')) return undefined;
  const v = BigInt(c.bits);
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
}

/**
 * Turns pieces written in order (later ones over earlier ones) into disjoint pieces sorted by start, each the part
 * of a write that no later write covers.
 */
function resolveOverlaps<T>(writes: Piece<T>[]): Piece<T>[] {
  let disjoint = true;
  for (let i = 1; i < writes.length && disjoint; i++) disjoint = writes[i]!.start >= writes[i - 1]!.end;
  if (disjoint) return writes; // the usual case: ascending, non-overlapping segments
  const covered: [number, number][] = []; // sorted, disjoint, merged
  const out: Piece<T>[] = [];
  for (let w = writes.length - 1; w >= 0; w--) {
    const p = writes[w]!;
    const i = firstEndingAfter(covered, p.start);
    let at = p.start;
    for (let k = i; k < covered.length && covered[k]![0] < p.end; k++) {
      const [cs, ce] = covered[k]!;
      if (cs > at) out.push({ ...p, start: at, end: cs, offset: p.offset + (at - p.start) });
      at = Math.max(at, ce);
    }
    if (at < p.end) out.push({ ...p, start: at, end: p.end, offset: p.offset + (at - p.start) });
    insertInterval(covered, p.start, p.end);
  }
  return out.sort((x, y) => x.start - y.start);
}

/** Index of the first interval whose end is above `pos`. */

/** Image memory as pieces: one per non-zero chunk (all-zero chunks are no piece). */
function chunkPieces(side: string, chunkSize: number, m: StateImage['memories'][number], chunks: ImageChunks): Piece<Uint8Array>[] {
  const pieces: Piece<Uint8Array>[] = [];
  m.chunks.forEach((digest, i) => {
    if (digest === null) return;
    const data = chunks.get(digest);
    if (!data) throw new WizError('malformed', `image ${side}: memory ${m.index} chunk ${i} (${digest}) is not in the chunk store`);
    if (data.length > chunkSize) throw new WizError('malformed', `image ${side}: memory ${m.index} chunk ${i} holds ${data.length} bytes, more than the chunk size ${chunkSize}`);
    if (data.length > 0) pieces.push({ start: i * chunkSize, end: i * chunkSize + data.length, data, offset: 0, key: digest });
  });
  return pieces;
}

/**
 * Calls `visit` for each range where at least one side has a piece, with the piece of each side there (or none:
 * zeros). Both lists are disjoint and sorted.
 */
function sweep<T>(pa: readonly Piece<T>[], pb: readonly Piece<T>[], visit: (start: number, end: number, a: Piece<T> | undefined, b: Piece<T> | undefined) => void): void {
  let i = 0;
  let j = 0;
  let pos = -Infinity;
  while (i < pa.length || j < pb.length) {
    const a = pa[i];
    const b = pb[j];
    if (a && a.end <= pos) {
      i++;
      continue;
    }
    if (b && b.end <= pos) {
      j++;
      continue;
    }
    const aIn = a !== undefined && a.start <= pos;
    const bIn = b !== undefined && b.start <= pos;
    if (!aIn && !bIn) {
      pos = Math.min(a?.start ?? Infinity, b?.start ?? Infinity);
      continue;
    }
    const end = Math.min(a ? (aIn ? a.end : a.start) : Infinity, b ? (bIn ? b.end : b.start) : Infinity);
    visit(pos, end, aIn ? a : undefined, bIn ? b : undefined);
    pos = end;
  }
}

/** Collects differing bytes, in ascending order, into ranges merged across gaps of at most `gap` equal bytes. */
class RangeCollector {
  private readonly memory: number;
  private readonly gap: number;
  private readonly out: MemoryDiff[];
  private current: MemoryDiff | undefined;

  constructor(memory: number, gap: number, out: MemoryDiff[]) {
    this.memory = memory;
    this.gap = gap;
    this.out = out;
  }

  add(at: number): void {
    const c = this.current;
    if (c && at - c.end <= this.gap) {
      c.end = at + 1;
      c.bytes++;
    } else {
      this.current = { memory: this.memory, start: at, end: at + 1, bytes: 1 };
      this.out.push(this.current);
    }
  }
}

function diffMemory(index: number, pa: Piece<Uint8Array>[], pb: Piece<Uint8Array>[], gap: number, out: MemoryDiff[]): void {
  const collector = new RangeCollector(index, gap, out);
  sweep(pa, pb, (start, end, a, b) => {
    if (a && b && a.key !== undefined && a.key === b.key && a.start === b.start && a.end === b.end) return;
    const view = (p: Piece<Uint8Array> | undefined) => p?.data.subarray(p.offset + start - p.start, p.offset + end - p.start);
    diffBytes(view(a) ?? view(b)!, a && b ? view(b) : undefined, start, collector);
  });
}

/** Blocks of at most this many bytes are compared as 32-bit words through one view. */
const BLOCK = 1 << 16;
let scratch: Uint8Array | undefined;

/**
 * Reports each byte where `x` and `y` (the same length; undefined: zeros) differ, at address `base + i`. Compares
 * 32-bit words, aligning `y` through a copy when its alignment differs from `x`'s.
 */
function diffBytes(x: Uint8Array, y: Uint8Array | undefined, base: number, out: RangeCollector): void {
  const n = x.length;
  let i = 0;
  const head = Math.min(n, (4 - (x.byteOffset & 3)) & 3);
  for (; i < head; i++) if (x[i] !== (y ? y[i] : 0)) out.add(base + i);
  while (n - i >= 4) {
    const words = Math.min((n - i) >> 2, BLOCK >> 2);
    const xw = new Int32Array(x.buffer, x.byteOffset + i, words);
    if (!y) {
      for (let k = 0; k < words; k++) {
        if (xw[k] !== 0) for (let at = i + 4 * k; at < i + 4 * k + 4; at++) if (x[at] !== 0) out.add(base + at);
      }
    } else {
      let yb = y.subarray(i, i + 4 * words);
      if ((yb.byteOffset & 3) !== 0) {
        scratch ??= new Uint8Array(BLOCK);
        scratch.set(yb);
        yb = scratch.subarray(0, 4 * words);
      }
      const yw = new Int32Array(yb.buffer, yb.byteOffset, words);
      for (let k = 0; k < words; k++) {
        if (xw[k] !== yw[k]) for (let at = 4 * k; at < 4 * k + 4; at++) if (x[i + at] !== yb[at]) out.add(base + i + at);
      }
    }
    i += 4 * words;
  }
  for (; i < n; i++) if (x[i] !== (y ? y[i] : 0)) out.add(base + i);
}

// ---- tables ----

interface TableView {
  /** Undefined for an imported table. */
  size: number | undefined;
  /** What slots outside every piece hold (the table's initial value). */
  fill: TableRef;
  pieces: Piece<TableRef[]>[];
  /** Entries of active segments whose offsets are not constants, or that write an imported table. */
  unplaced: Uint8Array[];
}

/** A constant reference expression as a slot value. */
function refOf(c: ConstValue): TableRef {
  if (c.op === 'ref.null') return null;
  if (c.op === 'ref.func') return c.func;
  const v = fromConst('', c).value;
  return v.startsWith('expr ') ? v : `expr ${v}`;
}

/** Each defined table's size and the slots its active element segments fill, later segments over earlier ones. */
function moduleTables(ctx: ModuleContext): Map<number, TableView> {
  const views = new Map<number, TableView>(ctx.tables.map((t) => [t.index, {
    size: t.min,
    fill: t.init ? refOf(decodeConstExpr(ctx.bytes.subarray(t.init.start, t.init.end))) : null,
    pieces: [],
    unplaced: [],
  }]));
  const placed = new Map<number, Piece<TableRef[]>[]>();
  for (const s of ctx.elementSegments) {
    if (s.mode !== 'active') continue;
    const view = views.get(s.table);
    if (!view) {
      views.set(s.table, { size: undefined, fill: null, pieces: [], unplaced: [ctx.bytes.subarray(s.start, s.end)] });
      continue;
    }
    const offset = view.size === undefined ? undefined : constOffset(ctx, s.offset!);
    if (offset === undefined) {
      view.unplaced.push(ctx.bytes.subarray(s.start, s.end));
      continue;
    }
    const r = new BinaryReader(ctx.bytes, s.items, s.end);
    const items: TableRef[] = [];
    for (let n = r.u32(); n > 0; n--) {
      if (!s.exprs) {
        items.push(r.u32());
        continue;
      }
      const at = r.pos;
      skipConstExpr(r);
      items.push(refOf(decodeConstExpr(ctx.bytes.subarray(at, r.pos))));
    }
    if (items.length === 0) continue;
    let list = placed.get(s.table);
    if (!list) placed.set(s.table, (list = []));
    list.push({ start: offset, end: offset + items.length, data: items, offset: 0 });
  }
  for (const [index, list] of placed) views.get(index)!.pieces = resolveOverlaps(list);
  return views;
}

/** Image table runs as pieces; slots in no run are null. */
function imageTable(t: StateImage['tables'][number]): TableView {
  const pieces = t.runs.filter(([, , length]) => length > 0).map(([slot, first, length, step]) => ({
    start: slot, end: slot + length, offset: 0, data: Array.from({ length }, (_, k) => first + step * k) as TableRef[],
  }));
  pieces.sort((x, y) => x.start - y.start);
  return { size: t.size, fill: null, pieces, unplaced: [] };
}

/** The table's slots [0, size) as pieces without gaps: its own pieces, and fill pieces (one value) between them. */
function coverTable(t: TableView | undefined): Piece<TableRef[]>[] {
  if (!t || t.size === undefined) return [];
  const size = t.size;
  const out: Piece<TableRef[]>[] = [];
  let at = 0;
  const fill = (end: number) => {
    if (end > at) out.push({ start: at, end, data: [t.fill], offset: 0, key: 'fill' });
  };
  for (const p of t.pieces) {
    if (p.start >= size) break;
    fill(p.start);
    const end = Math.min(p.end, size);
    out.push({ ...p, end });
    at = end;
  }
  fill(size);
  return out;
}

/** Slots beyond a table's size count as null, as bytes beyond a memory's size count as zeros. */
function diffTable(index: number, ta: TableView | undefined, tb: TableView | undefined, out: TableDiff[]): void {
  let current: TableDiff | undefined;
  const slot = (p: Piece<TableRef[]> | undefined, at: number): TableRef => {
    if (!p) return null;
    return p.key === 'fill' ? p.data[0]! : p.data[p.offset + at - p.start]!;
  };
  sweep(coverTable(ta), coverTable(tb), (start, end, a, b) => {
    if (a?.key === 'fill' && b?.key === 'fill' && a.data[0] === b.data[0]) return;
    for (let at = start; at < end; at++) {
      const old = slot(a, at);
      const now = slot(b, at);
      if (old === now) continue;
      if (!current || current.end !== at) out.push((current = { table: index, start: at, end: at, old: [], new: [] }));
      current.end = at + 1;
      current.old.push(old);
      current.new.push(now);
    }
  });
}
