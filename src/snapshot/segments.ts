import type { MemoryState } from './state.ts';
import { SCAN_IN_PLACE_WASM_BASE64, SCAN_SHARED_WASM_BASE64, SCAN_WASM_BASE64 } from './scan-wasm.ts';

/** A data segment to write: a view of a memory's bytes at an offset. */
export interface NewSegment {
  memory: number;
  offset: number;
  bytes: Uint8Array;
}

/**
 * Segments already encoded as entries of a data section (headers and bytes, in order): `count` segments of
 * memory `memory`. The scanner writes them for a memory with many small segments.
 */
export interface EncodedSegments {
  memory: number;
  count: number;
  encoded: Uint8Array;
}

/** The data segments of a snapshot, in order: single segments (views of memory) and runs of encoded ones. */
export interface SnapshotData {
  count: number;
  pieces: readonly (NewSegment | EncodedSegments)[];
}

/**
 * Gaps of zeros this short are cheaper to write than a new segment: a segment costs at least 4 bytes (memory
 * index, `i32.const`, its offset and the length).
 */
export const MAX_MERGED_GAP = 4;

/** Engines cap the number of data segments in a module; the reference keeps at most this many. */
export const MAX_DATA_SEGMENTS = 10_000;

/**
 * Turns memories into data segments: each run of non-zero bytes, merged with its neighbour when the zeros
 * between them number at most `MAX_MERGED_GAP`; then, while more than `limit` segments remain, the segments
 * separated by the smallest gaps are merged (on equal gaps, the earliest first).
 *
 * It runs in at most two scans and keeps at most `limit` segments in memory, so sparse memories of hundreds of
 * MB (millions of runs) stay cheap.
 */
export function snapshotSegments(memories: readonly MemoryState[], limit = MAX_DATA_SEGMENTS): NewSegment[] {
  const data = scannedData(memories, limit, () => false);
  return data ? data.pieces as NewSegment[] : scriptSegments(memories, limit);
}

/**
 * `snapshotSegments` as a data section's entries: where a 32-bit memory (not `memory64(index)`) has many small
 * segments, the scanner encodes them (headers and a copy of their bytes, up to `ENCODE_MAX_BYTES`), so that
 * nothing is done per segment in JavaScript.
 */
export function snapshotData(memories: readonly MemoryState[], memory64: (index: number) => boolean = () => false): SnapshotData {
  const data = scannedData(memories, MAX_DATA_SEGMENTS, (m, bytes, count) => !memory64(m.index) && bytes <= ENCODE_MAX_BYTES && count >= ENCODE_MIN_COUNT);
  if (data) return data;
  const pieces = scriptSegments(memories);
  return { count: pieces.length, pieces };
}

/** The scanner's result, encoding a memory's segments where `encode` says; undefined where it cannot run. */
function scannedData(memories: readonly MemoryState[], limit: number, encode: Encode): SnapshotData | undefined {
  const scanner = limit <= SCANNER_CAPACITY && memories.length < SCANNER_CAPACITY - limit ? loadScanner() : undefined;
  const readingOf = (m: MemoryState): Reading => {
    const inPlace = inPlaceScanner(m);
    return inPlace ? { scanner: inPlace, inPlace: true } : { scanner: scanner!, inPlace: false };
  };
  return (scanner && scanSegments(memories, limit, readingOf, SCANNER_WINDOW_SIZE, encode)) || undefined;
}

/** Whether the scanner encodes the `count` segments it keeps of memory `m` (`bytes` in all). */
type Encode = (m: MemoryState, bytes: number, count: number) => boolean;

/**
 * A memory's segments are encoded by the scanner when they hold at most this many bytes: the copy costs about
 * what JavaScript's work on 10,000 segments does at 16–32 MB (measured: a byte every 8 in 16 MiB, 240 → 230 ms;
 * a byte every 4 KiB in 64 MiB, 26 MB kept, 280 → 270 ms)...
 */
const ENCODE_MAX_BYTES = 32 << 20;
/** ...and are at least this many (below, JavaScript's work per segment does not matter). */
const ENCODE_MIN_COUNT = 64;
/** The longest header the scanner writes: flags, memory index (5), i32.const and its offset (1 + 5), end, length (5). */
const ENCODED_HEADER_MAX = 18;

/** snapshotSegments in JavaScript: where WebAssembly cannot be compiled at run time (edge platforms). */
export function scriptSegments(memories: readonly MemoryState[], limit = MAX_DATA_SEGMENTS): NewSegment[] {
  const gaps = new GapHistogram();
  let total = 0;
  let kept: NewSegment[] | undefined = [];
  for (const m of memories) {
    mergeRuns(m.bytes, MAX_MERGED_GAP + 1, 0, (offset, end, gapBefore) => {
      total++;
      if (gapBefore >= 0) gaps.add(gapBefore);
      if (kept && kept.length < limit) kept.push({ memory: m.index, offset, bytes: m.bytes.subarray(offset, end) });
      else kept = undefined;
    });
  }
  if (kept) return kept;

  // Too many: merge the `excess` smallest gaps. Gaps below `threshold` all merge; of those equal to it, the
  // first `quota` do.
  const { threshold, quota } = gaps.smallest(total - limit);
  let left = quota;
  const merged: NewSegment[] = [];
  for (const m of memories) {
    left = mergeRuns(m.bytes, threshold, left, (offset, end) => {
      merged.push({ memory: m.index, offset, bytes: m.bytes.subarray(offset, end) });
    });
  }
  return merged;
}

/**
 * Calls `emit` for each segment of a memory: runs of non-zero bytes joined across gaps shorter than
 * `threshold`, and across gaps equal to it while `quota` lasts (the earliest first). Returns the quota left.
 * One loop scans and merges, 4 bytes at a time where it can: sparse memories have millions of runs.
 */
function mergeRuns(
  bytes: Uint8Array,
  threshold: number,
  quota: number,
  emit: (offset: number, end: number, gapBefore: number) => void,
): number {
  const n = bytes.length;
  const words = bytes.byteOffset % 4 === 0 ? new Uint32Array(bytes.buffer, bytes.byteOffset, Math.floor(n / 4)) : undefined;
  const wordCount = words ? words.length : 0;
  let start = -1;
  let end = -1;
  let gapBefore = -1;
  let i = 0;
  while (i < n) {
    // Skip zeros.
    if (bytes[i] === 0) {
      i++;
      if (words) {
        while (i < n && (i & 3) !== 0 && bytes[i] === 0) i++;
        if ((i & 3) === 0) {
          let w = i / 4; // plain arithmetic, not shifts: memories may be 4 GiB and more
          while (w < wordCount && words[w] === 0) w++;
          i = w * 4;
        }
      }
      while (i < n && bytes[i] === 0) i++;
      if (i >= n) break;
    }
    // A non-zero run starts at i.
    const runStart = i;
    i++;
    if (words) {
      while (i < n && (i & 3) !== 0 && bytes[i] !== 0) i++;
      if ((i & 3) === 0) {
        let w = i / 4;
        while (w < wordCount && !hasZeroByte(words[w]!)) w++;
        i = w * 4;
      }
    }
    while (i < n && bytes[i] !== 0) i++;
    // Merge it into the current segment, or start a new one.
    if (start >= 0) {
      const gap = runStart - end;
      if (gap < threshold || (gap === threshold && quota > 0)) {
        if (gap === threshold) quota--;
        end = i;
        continue;
      }
      emit(start, end, gapBefore);
      gapBefore = gap;
    }
    start = runStart;
    end = i;
  }
  if (start >= 0) emit(start, end, gapBefore);
  return quota;
}

/** The exports of scan.wat (see there). */
interface Scanner {
  memory: WebAssembly.Memory;
  clear(): void;
  begin(mode: number, threshold: bigint, quota: bigint, cap: number): void;
  scan(shift: bigint, from: number, len: number): void;
  finish(size: bigint): void;
  encode(n: number, memory: number, base: number, dst: number): number;
  count(): bigint;
  quota(): bigint;
  longGap(): number;
}

/** How a memory is scanned: by a scanner that imports it (in place), or copied into the window scanner's window. */
interface Reading {
  scanner: Scanner;
  inPlace: boolean;
}

/** Where scan.wat keeps its histogram, output and window, and how many segments the output holds. */
const SCANNER_HISTOGRAM = 0;
const SCANNER_OUTPUT = 65536 * 4;
const SCANNER_CAPACITY = 16384;
const SCANNER_WINDOW = SCANNER_OUTPUT + SCANNER_CAPACITY * 16;
const SCANNER_WINDOW_SIZE = 4 << 20;
/** The histogram's last bucket counts every gap at least this long. */
const SCANNER_LONG_GAP = 65535;
/**
 * Memories smaller than this are copied into the window rather than read in place: making a scanner for one costs
 * about 0.15 ms, what copying 2 MiB does (measured: in place is even at 2 MiB, 1.3 times faster from 4 MiB).
 */
const IN_PLACE_MIN = SCANNER_WINDOW_SIZE;
/**
 * In place, a memory is scanned in parts of this many bytes: engines replace a function's baseline code with the
 * optimized one only between calls (about 3 times faster here), and a length of 2^32 fits no i32.
 */
const IN_PLACE_PART = SCANNER_WINDOW_SIZE;

const decode = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));

let scannerInstance: Scanner | null | undefined;
/** The scanner, compiled once; null where WebAssembly cannot be compiled at run time (workerd) or lacks a feature. */
function loadScanner(): Scanner | null {
  if (scannerInstance !== undefined) return scannerInstance;
  try {
    scannerInstance = new WebAssembly.Instance(new WebAssembly.Module(decode(SCAN_WASM_BASE64))).exports as unknown as Scanner;
  } catch {
    scannerInstance = null;
  }
  return scannerInstance;
}

const inPlaceModules = new Map<boolean, WebAssembly.Module | null>();
/**
 * A scanner that reads `m`'s memory in place: the in-place module (compiled once, for a shared memory its shared
 * variant) instantiated with that memory. Undefined without a live memory or below `minimum` bytes, where the
 * engine lacks multi-memory, or when the memory does not match the import (memory64, custom page sizes): the
 * window reads those.
 */
function inPlaceScanner(m: MemoryState, minimum = IN_PLACE_MIN): Scanner | undefined {
  const memory = m.memory;
  if (!memory || m.bytes.length < minimum) return undefined;
  const buffer = memory.buffer;
  const shared = typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer;
  // The scan must see exactly `bytes`: a view of this memory from 0 (a non-shared memory that grew since has a new buffer).
  if (m.bytes.byteOffset !== 0 || m.bytes.length > buffer.byteLength || (!shared && m.bytes.buffer !== buffer)) return undefined;
  let module = inPlaceModules.get(shared);
  if (module === undefined) {
    try {
      module = new WebAssembly.Module(decode(shared ? SCAN_SHARED_WASM_BASE64 : SCAN_IN_PLACE_WASM_BASE64));
    } catch {
      module = null;
    }
    inPlaceModules.set(shared, module);
  }
  if (!module) return undefined;
  try {
    return new WebAssembly.Instance(module, { wiz: { scanned: memory } }).exports as unknown as Scanner;
  } catch {
    return undefined;
  }
}

/** Scans one memory from `begin` to `finish`: in place in parts, or copied piece by piece into the window. */
function scanMemory(reading: Reading, bytes: Uint8Array, window: number): void {
  const { scanner, inPlace } = reading;
  const n = bytes.length;
  if (inPlace) {
    // Addresses above 2^31 pass as negative i32 numbers, which the scanner reads unsigned.
    for (let at = 0; at < n; at += IN_PLACE_PART) scanner.scan(0n, at, Math.min(IN_PLACE_PART, n - at));
  } else {
    const view = new Uint8Array(scanner.memory.buffer, SCANNER_WINDOW, window);
    for (let offset = 0; offset < n; offset += window) {
      const piece = bytes.subarray(offset, offset + window);
      view.set(piece);
      scanner.scan(BigInt(offset - SCANNER_WINDOW), SCANNER_WINDOW, piece.length);
    }
  }
  scanner.finish(BigInt(n));
}

/**
 * snapshotSegments through the scanner, each memory read as `readingOf` says; the same two passes as
 * `scriptSegments`, with the same result. Undefined when a merge threshold falls among the gaps the histogram
 * does not tell apart (more than `limit` segments separated by 64 KiB or more).
 */
function scanSegments(
  memories: readonly MemoryState[],
  limit: number,
  readingOf: (m: MemoryState) => Reading,
  window = SCANNER_WINDOW_SIZE,
  encode: Encode = () => false,
): SnapshotData | undefined {
  const readings = memories.map(readingOf);
  const scanners = new Set(readings.map((r) => r.scanner));
  // Scanners made for this call have counted nothing yet; clearing their fresh memory would only fault its pages in.
  for (const scanner of new Set(readings.filter((r) => !r.inPlace).map((r) => r.scanner))) scanner.clear();
  // Keeps the first `cap` segments, counts them all; the quota of merges at the threshold carries across memories.
  // Each memory's kept (start, end) pairs are copied out as numbers (read as u32 halves: no BigInt per value),
  // and made segments only for the pass whose result is returned. A memory whose segments are all kept may have
  // them encoded right after its scan, while the scanner still reads it (the window holds only the last piece).
  type Kept = { m: MemoryState; pairs: Float64Array; encoded?: Uint8Array };
  const pass = (mode: number, threshold: bigint, quota: bigint, cap: number): { kept: Kept[]; total: number } => {
    const kept: Kept[] = [];
    let total = 0;
    for (const [k, m] of memories.entries()) {
      const reading = readings[k]!;
      const { scanner } = reading;
      const room = Math.max(0, cap - total);
      scanner.begin(mode, threshold, quota, room);
      scanMemory(reading, m.bytes, window);
      quota = scanner.quota();
      const count = Number(scanner.count());
      total += count;
      const words = new Uint32Array(scanner.memory.buffer, SCANNER_OUTPUT, 4 * Math.min(count, room));
      const pairs = new Float64Array(words.length / 2);
      let bytes = 0;
      for (let w = 0, p = 0; w < words.length; w += 2, p++) {
        pairs[p] = words[w]! + words[w + 1]! * 0x1_0000_0000;
        bytes += p & 1 ? pairs[p]! - pairs[p - 1]! : 0;
      }
      const complete = count <= room && total <= cap;
      const readable = reading.inPlace || m.bytes.length <= window;
      kept.push({ m, pairs, encoded: complete && readable && encode(m, bytes, count) ? encodeKept(reading, m, count, bytes) : undefined });
      if (mode === 2 && total > cap) break;
    }
    return { kept, total };
  };
  const dataOf = (kept: Kept[]): SnapshotData => {
    const pieces: (NewSegment | EncodedSegments)[] = [];
    let count = 0;
    for (const { m, pairs, encoded } of kept) {
      count += pairs.length / 2;
      if (encoded) pieces.push({ memory: m.index, count: pairs.length / 2, encoded });
      else for (let p = 0; p < pairs.length; p += 2) pieces.push({ memory: m.index, offset: pairs[p]!, bytes: m.bytes.subarray(pairs[p]!, pairs[p + 1]!) });
    }
    return { count, pieces };
  };
  const first = pass(1, BigInt(MAX_MERGED_GAP + 1), 0n, limit);
  if (first.total <= limit) return dataOf(first.kept);
  const gaps = new GapHistogram();
  for (const scanner of scanners) gaps.addCounts(new Uint32Array(scanner.memory.buffer, SCANNER_HISTOGRAM, 65536));
  const { threshold, quota } = gaps.smallest(first.total - limit);
  if (threshold >= SCANNER_LONG_GAP && [...scanners].some((s) => s.longGap())) return undefined;
  // The second pass may keep more than `limit` segments: gaps between memories never merge.
  const merged = pass(2, threshold === Infinity ? (1n << 62n) : BigInt(threshold), BigInt(quota), SCANNER_CAPACITY);
  return merged.total > SCANNER_CAPACITY ? undefined : dataOf(merged.kept);
}

/**
 * The `count` segments the scanner keeps of `m`, encoded by it after its scan (see scan.wat's `encode`): a view
 * of the memory of a scanner made for this memory alone, or a copy out of the window scanner's, which the next
 * scan uses again.
 */
function encodeKept({ scanner, inPlace }: Reading, m: MemoryState, count: number, bytes: number): Uint8Array {
  // Past what the scanner uses: its output in place, the window otherwise.
  const dst = inPlace ? SCANNER_WINDOW : SCANNER_WINDOW + SCANNER_WINDOW_SIZE;
  const need = dst + bytes + ENCODED_HEADER_MAX * count;
  const have = scanner.memory.buffer.byteLength;
  if (need > have) scanner.memory.grow(Math.ceil((need - have) / 65536));
  const end = scanner.encode(count, m.index, inPlace ? 0 : SCANNER_WINDOW, dst);
  const encoded = new Uint8Array(scanner.memory.buffer, dst, end - dst);
  return inPlace ? encoded : encoded.slice();
}

/**
 * The scanner path for tests: every memory through a window of `window` bytes (runs that cross window
 * boundaries), or 'in place': each memory with a live memory read in place whatever its size (throws where it
 * cannot be), the others through the window. Undefined as `scanSegments`.
 */
export function scanSegmentsForTest(memories: readonly MemoryState[], limit: number, window: number | 'in place'): NewSegment[] | undefined {
  return scanDataForTest(memories, limit, window, () => false)?.pieces as NewSegment[] | undefined;
}

/** `scanSegmentsForTest`, with the memories whose segments `encode` chooses encoded by the scanner. */
export function scanDataForTest(memories: readonly MemoryState[], limit: number, window: number | 'in place', encode: Encode): SnapshotData | undefined {
  const scanner = loadScanner();
  if (!scanner) throw new Error('this engine cannot compile the scanner');
  if (window !== 'in place') return scanSegments(memories, limit, () => ({ scanner, inPlace: false }), window, encode);
  return scanSegments(memories, limit, (m) => {
    if (!m.memory) return { scanner, inPlace: false };
    const inPlace = inPlaceScanner(m, 0);
    if (!inPlace) throw new Error(`memory ${m.index} cannot be scanned in place`);
    return { scanner: inPlace, inPlace: true };
  }, SCANNER_WINDOW_SIZE, encode);
}

/** True when the 32-bit word has a zero byte. */
const hasZeroByte = (w: number) => ((w - 0x01010101) & ~w & 0x80808080) !== 0;

/** Calls `visit(start, end)` for each maximal run of non-zero bytes (no merging: no gap is shorter than 1). */
export function scanRuns(bytes: Uint8Array, visit: (start: number, end: number) => void): void {
  mergeRuns(bytes, 1, 0, visit);
}

/** Counts gap sizes: a dense array for small gaps, a map for the rare large ones. */
class GapHistogram {
  private small = new Float64Array(65536);
  private large = new Map<number, number>();
  private counted = false;

  /** Adds the counts of gaps 0 to 65535 from a table (a scanner's). */
  addCounts(table: Uint32Array): void {
    // The first table into an empty histogram is copied (a loop of 65536 additions runs cold in a one-shot command).
    if (!this.counted) this.small.set(table);
    else for (let gap = 0; gap < table.length; gap++) this.small[gap]! += table[gap]!;
    this.counted = true;
  }

  add(gap: number): void {
    this.counted = true;
    if (gap < this.small.length) this.small[gap]!++;
    else this.large.set(gap, (this.large.get(gap) ?? 0) + 1);
  }

  /** The gap size at which the `count` smallest gaps end, and how many gaps of exactly that size are among them. */
  smallest(count: number): { threshold: number; quota: number } {
    let below = 0;
    for (let gap = 0; gap < this.small.length; gap++) {
      const n = this.small[gap]!;
      if (below + n >= count) return { threshold: gap, quota: count - below };
      below += n;
    }
    for (const gap of [...this.large.keys()].sort((a, b) => a - b)) {
      const n = this.large.get(gap)!;
      if (below + n >= count) return { threshold: gap, quota: count - below };
      below += n;
    }
    return { threshold: Infinity, quota: 0 };
  }
}
