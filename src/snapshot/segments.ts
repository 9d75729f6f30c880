import type { MemoryState } from './state.ts';

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
