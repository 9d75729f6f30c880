import type { MemoryState } from './state.ts';
import { SCAN_WASM_BASE64 } from './scan-wasm.ts';

/** A data segment to write: a view of a memory's bytes at an offset. */
export interface NewSegment {
  memory: number;
  offset: number;
  bytes: Uint8Array;
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
  const scanner = limit <= SCANNER_CAPACITY && memories.length < SCANNER_CAPACITY - limit ? loadScanner() : undefined;
  return (scanner && scanSegments(scanner, memories, limit)) ?? scriptSegments(memories, limit);
}

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
  configure(mode: number, threshold: bigint, quota: bigint, cap: number): void;
  begin(): void;
  scan(base: bigint, len: number): void;
  finish(size: bigint): void;
  count(): bigint;
  overflow(): number;
}

/** Where scan.wat keeps its window, histogram and output, and how many segments the output holds. */
const SCANNER_WINDOW = 4 << 20;
const SCANNER_HISTOGRAM = SCANNER_WINDOW;
const SCANNER_OUTPUT = SCANNER_HISTOGRAM + 65536 * 4;
const SCANNER_CAPACITY = 16384;
/** The histogram's last bucket counts every gap at least this long. */
const SCANNER_LONG_GAP = 65535;

let scannerInstance: Scanner | null | undefined;
/** The scanner, compiled once; null where WebAssembly cannot be compiled at run time (workerd) or lacks a feature. */
function loadScanner(): Scanner | null {
  if (scannerInstance !== undefined) return scannerInstance;
  try {
    const bytes = Uint8Array.from(atob(SCAN_WASM_BASE64), (c) => c.charCodeAt(0));
    scannerInstance = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports as unknown as Scanner;
  } catch {
    scannerInstance = null;
  }
  return scannerInstance;
}

/**
 * snapshotSegments through the scanner: each memory is copied into its window piece by piece and scanned; the
 * same two passes as `scriptSegments`, with the same result. Undefined when a merge threshold falls among the
 * gaps the histogram does not tell apart (more than `limit` segments separated by 64 KiB or more).
 */
function scanSegments(scanner: Scanner, memories: readonly MemoryState[], limit: number, window = SCANNER_WINDOW): NewSegment[] | undefined {
  // The second pass may keep more than `limit` segments: gaps between memories never merge.
  const pass = (mode: number, threshold: bigint, quota: bigint, cap: number): NewSegment[] => {
    scanner.configure(mode, threshold, quota, cap);
    const segments: NewSegment[] = [];
    for (const m of memories) {
      const before = Number(scanner.count());
      scanner.begin();
      const view = new Uint8Array(scanner.memory.buffer, 0, window);
      for (let offset = 0; offset < m.bytes.length; offset += window) {
        const piece = m.bytes.subarray(offset, offset + window);
        view.set(piece);
        scanner.scan(BigInt(offset), piece.length);
      }
      scanner.finish(BigInt(m.bytes.length));
      const after = Math.min(Number(scanner.count()), cap);
      const out = new BigInt64Array(scanner.memory.buffer, SCANNER_OUTPUT, 2 * cap);
      for (let k = before; k < after; k++) {
        const start = Number(out[2 * k]!);
        segments.push({ memory: m.index, offset: start, bytes: m.bytes.subarray(start, Number(out[2 * k + 1]!)) });
      }
    }
    return segments;
  };
  const first = pass(1, BigInt(MAX_MERGED_GAP + 1), 0n, limit);
  const total = Number(scanner.count());
  if (total <= limit) return first;
  const gaps = new GapHistogram();
  gaps.counts(new Uint32Array(scanner.memory.buffer, SCANNER_HISTOGRAM, 65536));
  const { threshold, quota } = gaps.smallest(total - limit);
  if (threshold >= SCANNER_LONG_GAP && scanner.overflow()) return undefined;
  const merged = pass(2, threshold === Infinity ? (1n << 62n) : BigInt(threshold), BigInt(quota), SCANNER_CAPACITY);
  return scanner.overflow() ? undefined : merged;
}

/** The scanner path with a small window, for tests of runs that cross window boundaries. */
export function scanSegmentsForTest(memories: readonly MemoryState[], limit: number, window: number): NewSegment[] | undefined {
  const scanner = loadScanner();
  return scanner ? scanSegments(scanner, memories, limit, window) : undefined;
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

  /** Takes the counts of gaps 0 to 65535 from a table (the scanner's). */
  counts(table: Uint32Array): void {
    this.small.set(table);
  }

  add(gap: number): void {
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
