// Memory to data segments: non-zero runs, merged across gaps of at most 4 zeros, capped at 10,000.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_DATA_SEGMENTS, scanDataForTest, scanRuns, scanSegmentsForTest, scriptSegments, snapshotSegments, type NewSegment, type SnapshotData } from '../src/snapshot/segments.ts';
import { SCAN_IN_PLACE_WASM_BASE64, SCAN_SHARED_WASM_BASE64, SCAN_WASM_BASE64 } from '../src/snapshot/scan-wasm.ts';
import type { MemoryState } from '../src/snapshot/state.ts';
import wabtInit from 'wabt';
import { compileScanner, scannerModule } from '../scripts/build-scanner.ts';
import { preinitialize } from '../src/preinitialize.ts';
import { parseModule, skipConstExpr } from '../src/parse/module.ts';
import { BinaryReader } from '../src/parse/reader.ts';
import { observe } from './helpers/observe.ts';
import { hasNativeWizer, nativeWizer } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const memory = (bytes: Uint8Array, index = 0) => ({ index, pages: Math.ceil(bytes.length / 65536), bytes });
const spans = (segments: NewSegment[]) => segments.map((s) => [s.memory, s.offset, s.offset + s.bytes.length]);

/** A byte-at-a-time reference for the run scanner. */
function naiveRuns(bytes: Uint8Array): number[][] {
  const runs: number[][] = [];
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0) continue;
    const start = i;
    while (i < bytes.length && bytes[i] !== 0) i++;
    runs.push([start, i]);
  }
  return runs;
}

/** Rebuilds memory from segments: it must equal the original. */
function replay(size: number, segments: NewSegment[]): Uint8Array {
  const out = new Uint8Array(size);
  for (const s of segments) out.set(s.bytes, s.offset);
  return out;
}

/** Records the memory each new WebAssembly instance gets as `wiz.scanned` (the in-place scanner's import). */
function spyOnScannedMemories(): unknown[] & { restore(): void } {
  const Instance = WebAssembly.Instance;
  const scanned = Object.assign([] as unknown[], { restore: () => { WebAssembly.Instance = Instance; } });
  WebAssembly.Instance = new Proxy(Instance, {
    construct(target, args: [WebAssembly.Module, { wiz?: { scanned: unknown } }?]) {
      scanned.push(args[1]?.wiz?.scanned);
      return Reflect.construct(target, args);
    },
  });
  return scanned;
}

describe('scanRuns', () => {
  it('finds the same runs as a byte-by-byte scan, at every alignment and density', () => {
    let seed = 1;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let trial = 0; trial < 200; trial++) {
      const backing = new Uint8Array(300);
      const density = random();
      for (let i = 0; i < backing.length; i++) backing[i] = random() < density ? 1 + Math.floor(random() * 255) : 0;
      const view = backing.subarray(trial % 4, backing.length - (trial % 3));
      const runs: number[][] = [];
      scanRuns(view, (s, e) => runs.push([s, e]));
      expect(runs).toEqual(naiveRuns(view));
    }
  });
});

describe('snapshotSegments', () => {
  it('merges gaps of up to 4 zeros, across page boundaries, and splits at 5', () => {
    const bytes = new Uint8Array(131072);
    bytes[10] = 1;
    bytes[15] = 1; // 4 zeros between: merged
    bytes[21] = 1; // 5 zeros: new segment
    bytes[65535] = 1;
    bytes[65536] = 1; // across the page boundary: one run
    expect(spans(snapshotSegments([memory(bytes)]))).toEqual([[0, 10, 16], [0, 21, 22], [0, 65535, 65537]]);
  });

  it('writes nothing for zero memory', () => {
    expect(snapshotSegments([memory(new Uint8Array(65536))])).toEqual([]);
  });

  it('never merges across memories', () => {
    const a = new Uint8Array(65536);
    const b = new Uint8Array(65536);
    a[65535] = 1;
    b[0] = 1;
    expect(spans(snapshotSegments([memory(a, 0), memory(b, 1)]))).toEqual([[0, 65535, 65536], [1, 0, 1]]);
  });

  it('keeps exactly 10,000 segments untouched', () => {
    const bytes = new Uint8Array(10 * MAX_DATA_SEGMENTS);
    for (let i = 0; i < MAX_DATA_SEGMENTS; i++) bytes[i * 10] = 1;
    expect(snapshotSegments([memory(bytes)])).toHaveLength(MAX_DATA_SEGMENTS);
  });

  it('over the cap, merges the smallest gaps first, the earliest among equals', () => {
    // Runs at 0, 10, 30, 40, 70: gaps 9, 19, 9, 29. With a limit of 3, the two gaps of 9 merge.
    const bytes = new Uint8Array(100);
    for (const at of [0, 10, 30, 40, 70]) bytes[at] = 7;
    expect(spans(snapshotSegments([memory(bytes)], 3))).toEqual([[0, 0, 11], [0, 30, 41], [0, 70, 71]]);
    // A limit of 2 merges one more: the only remaining gap of 19.
    expect(spans(snapshotSegments([memory(bytes)], 2))).toEqual([[0, 0, 41], [0, 70, 71]]);
    // A limit of 4 merges one gap of 9: the earlier one.
    expect(spans(snapshotSegments([memory(bytes)], 4))).toEqual([[0, 0, 11], [0, 30, 31], [0, 40, 41], [0, 70, 71]]);
  });

  it('caps a sparse 16 MiB memory (a byte every 8) at exactly 10,000 segments that replay to the same bytes', () => {
    const bytes = new Uint8Array(16 << 20);
    for (let i = 3; i < bytes.length; i += 8) bytes[i] = (i % 251) + 1;
    const segments = snapshotSegments([memory(bytes)]);
    expect(segments).toHaveLength(MAX_DATA_SEGMENTS);
    expect(Buffer.from(replay(bytes.length, segments)).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe('the WebAssembly scanner', () => {
  it('is scan.wat compiled: the checked-in bytes are what its source compiles to, in each variant', async () => {
    const checkedIn = readFileSync(join(import.meta.dirname, '..', 'src', 'snapshot', 'scan-wasm.ts'), 'utf8');
    expect(checkedIn).toBe(scannerModule(await compileScanner()));
    for (const base64 of [SCAN_WASM_BASE64, SCAN_IN_PLACE_WASM_BASE64, SCAN_SHARED_WASM_BASE64]) {
      expect(Buffer.from(base64, 'base64').subarray(0, 4)).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));
    }
  });

  it('needs multi-memory only to read in place: the window variant is valid without it', async () => {
    const wabt = await wabtInit();
    const valid = (base64: string) => {
      try {
        wabt.readWasm(new Uint8Array(Buffer.from(base64, 'base64')), { bulk_memory: true }).validate();
        return true;
      } catch {
        return false;
      }
    };
    expect(valid(SCAN_WASM_BASE64)).toBe(true);
    expect(valid(SCAN_IN_PLACE_WASM_BASE64)).toBe(false);
  });

  /** A memory of `size` bytes: runs of non-zero bytes and gaps of zeros, their lengths drawn from `run` and `gap`. */
  function pattern(size: number, seed: number, run: number, gap: number): Uint8Array {
    let state = seed;
    const next = (n: number) => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return 1 + (state % n);
    };
    const bytes = new Uint8Array(size);
    for (let i = next(gap) - 1; i < size;) {
      const end = Math.min(size, i + next(run));
      for (; i < end; i++) bytes[i] = 1 + (i % 255);
      i += next(gap);
    }
    return bytes;
  }

  it('gives exactly the segments of the JavaScript scan: every density, window, cap, several memories', () => {
    let compared = 0;
    for (const [run, gap] of [[1, 7], [3, 3], [1, 12], [40, 2], [200, 900], [8, 70000]] as const) {
      for (const size of [0, 1, 9, 1000, 4099, 70001]) {
        for (const limit of [1, 3, 50, 10_000]) {
          for (const window of [8, 13, 4096]) {
            const memories = [memory(pattern(size, size + run, run, gap)), memory(pattern(size >> 1, gap, gap, run), 1)];
            const ours = scanSegmentsForTest(memories, limit, window);
            const expected = scriptSegments(memories, limit);
            if (ours === undefined) {
              // Only when the cut falls among gaps of 64 KiB or more, which the scanner's histogram lumps together.
              expect(gap).toBeGreaterThanOrEqual(65535);
              continue;
            }
            expect(spans(ours)).toEqual(spans(expected));
            compared++;
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(400);
  });

  /** `bytes` in a live memory of its own (as many pages as they need, the rest zero), viewed at their length. */
  function live(bytes: Uint8Array, index = 0, shared = false): MemoryState {
    const pages = Math.ceil(bytes.length / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: Math.max(pages, 1), shared });
    const view = new Uint8Array(memory.buffer, 0, bytes.length);
    view.set(bytes);
    return { index, pages, bytes: view, memory };
  }

  it('reads live memories in place, with exactly the segments of the JavaScript scan: every density, size, cap', () => {
    let compared = 0;
    for (const [run, gap] of [[1, 7], [3, 3], [1, 12], [40, 2], [200, 900], [8, 70000], [100000, 1]] as const) {
      for (const size of [0, 1, 9, 1000, 4099, 70001, 131072, 131075]) {
        for (const limit of [1, 3, 50, 10_000]) {
          const memories = [live(pattern(size, size + run, run, gap)), live(pattern(size >> 1, gap, gap, run), 1), live(pattern(size + 5, run, run, gap), 2, true)];
          const ours = scanSegmentsForTest(memories, limit, 'in place');
          const expected = scriptSegments(memories, limit);
          if (ours === undefined) {
            expect(gap).toBeGreaterThanOrEqual(65535);
            continue;
          }
          expect(spans(ours)).toEqual(spans(expected));
          expect(spans(snapshotSegments(memories, limit))).toEqual(spans(expected));
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(180);
  });

  /** The segments of `data`, its encoded entries read back as a data section's (flags, memory, i32.const, end, length, bytes). */
  function decoded(data: SnapshotData): NewSegment[] {
    return data.pieces.flatMap((piece) => {
      if (!('encoded' in piece)) return [piece];
      const r = new BinaryReader(piece.encoded);
      const out: NewSegment[] = [];
      for (let k = 0; k < piece.count; k++) {
        const flags = r.u8();
        const memory = flags === 2 ? r.u32() : 0;
        expect([flags, r.u8()]).toEqual([memory === 0 ? 0 : 2, 0x41]);
        const offset = r.s33() >>> 0;
        expect(r.u8()).toBe(0x0b);
        const length = r.u32();
        out.push({ memory, offset, bytes: piece.encoded.slice(r.pos, r.pos + length) });
        r.skip(length);
      }
      expect(r.pos).toBe(piece.encoded.length);
      expect(out.every((x) => x.memory === piece.memory)).toBe(true);
      return out;
    });
  }

  it('encodes the segments it keeps as data section entries, through the window and in place, that read back to the same segments', () => {
    let encoded = 0;
    for (const [run, gap] of [[1, 7], [3, 3], [1, 12], [40, 2], [200, 900], [100000, 1]] as const) {
      for (const size of [1, 1000, 4099, 70001, 131075]) {
        for (const limit of [3, 10_000]) {
          for (const window of [4096, 1 << 20, 'in place'] as const) {
            const memories = [live(pattern(size, size + run, run, gap)), live(pattern(size >> 1, gap, gap, run), 1), live(pattern(size + 5, run, run, gap), 300, true)];
            const expected = scriptSegments(memories, limit);
            const data = scanDataForTest(memories, limit, window, () => true);
            if (data === undefined) continue;
            encoded += data.pieces.filter((p) => 'encoded' in p).length;
            const segments = decoded(data);
            expect(data.count).toBe(expected.length);
            expect(spans(segments)).toEqual(spans(expected));
            for (const [i, s] of segments.entries()) expect(s.bytes).toEqual(expected[i]!.bytes);
          }
        }
      }
    }
    expect(encoded).toBeGreaterThan(100);
  });

  it('reads in place a 0-page memory, runs at the very first and last bytes, and a memory without a zero', () => {
    expect(scanSegmentsForTest([live(new Uint8Array(0))], 10, 'in place')).toEqual([]);
    for (const size of [65536, 131072, 8, 7, 1]) {
      const edges = new Uint8Array(size);
      edges[0] = 1;
      edges[size - 1] = 2;
      const full = new Uint8Array(size).fill(3);
      for (const bytes of [edges, full]) {
        const memories = [live(bytes), live(bytes, 1, true)];
        expect(spans(scanSegmentsForTest(memories, 10, 'in place')!)).toEqual(spans(scriptSegments(memories, 10)));
      }
    }
  });

  it('reads a live memory of 4 GiB in place, runs at 2 GiB and ending at its very last byte included', () => {
    let memory: WebAssembly.Memory;
    try {
      memory = new WebAssembly.Memory({ initial: 65536 });
    } catch {
      return; // this host cannot reserve 4 GiB
    }
    const bytes = new Uint8Array(memory.buffer);
    for (const at of [0, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 9, 2 ** 32 - 3, 2 ** 32 - 2, 2 ** 32 - 1]) bytes[at] = 1;
    const m = { index: 0, pages: 65536, bytes, memory };
    const runs = [[0, 0, 1], [0, 2 ** 31 - 1, 2 ** 31 + 1], [0, 2 ** 32 - 9, 2 ** 32 - 8], [0, 2 ** 32 - 3, 2 ** 32]];
    expect(spans(scanSegmentsForTest([m], 10, 'in place')!)).toEqual(runs);
    // Over the cap, the second pass reads it in place too: the gap of 5 merges.
    expect(spans(scanSegmentsForTest([m], 3, 'in place')!)).toEqual([[0, 0, 1], [0, 2 ** 31 - 1, 2 ** 31 + 1], [0, 2 ** 32 - 9, 2 ** 32]]);
  }, 60_000);

  it('reads in place, in snapshotSegments, the live memories of 4 MiB or more', () => {
    const scanned = spyOnScannedMemories();
    try {
      const big = live(pattern((4 << 20) + 3, 9, 5, 20), 0);
      const small = live(pattern((4 << 20) - 1, 8, 5, 20), 1);
      const memories = [big, small, live(pattern(70000, 7, 1, 9), 2)];
      for (const limit of [10, 10_000]) expect(spans(snapshotSegments(memories, limit))).toEqual(spans(scriptSegments(memories, limit)));
      expect(scanned.filter((m) => m !== undefined)).toEqual([big.memory, big.memory]);
    } finally {
      scanned.restore();
    }
  });

  it('reads the memory of a live instance in place when preinitializing', async () => {
    const input = await wat(`(module (memory (export "memory") 80)
      (func (export "wizer-initialize")
        (i32.store (i32.const 5000000) (i32.const 7))
        (i32.store8 (i32.const 5242879) (i32.const 9))))`);
    const scanned = spyOnScannedMemories();
    let output: Uint8Array;
    try {
      output = await preinitialize(input);
    } finally {
      scanned.restore();
    }
    expect(scanned.some((m) => m instanceof WebAssembly.Memory)).toBe(true);
    const segments = parseModule(output).dataSegments.filter((s) => s.mode === 'active');
    expect(segments).toHaveLength(2);
  });

  it('mixes memories read in place and through the window, with the quota of merges carried across them', () => {
    const a = pattern(50000, 1, 2, 9);
    const b = pattern(30001, 2, 3, 8);
    for (const limit of [1, 100, 5000, 10_000]) {
      const memories = [live(a, 0), memory(b, 1), live(b, 2), memory(a, 3)];
      expect(spans(scanSegmentsForTest(memories, limit, 'in place')!)).toEqual(spans(scriptSegments(memories, limit)));
    }
  });

  it('reads through the window what it cannot read in place: a memory64, a copy of a memory', () => {
    const bytes = pattern(70001, 5, 4, 11);
    const unreadable = [{ ...live(new Uint8Array(bytes.length)), bytes }];
    let memory64: WebAssembly.Memory | undefined;
    try {
      memory64 = new WebAssembly.Memory({ initial: 2n, address: 'i64' } as unknown as WebAssembly.MemoryDescriptor);
    } catch {
      // No memory64 in this engine.
    }
    if (memory64) {
      const view = new Uint8Array(memory64.buffer, 0, bytes.length);
      view.set(bytes);
      unreadable.push({ index: 0, pages: 2, bytes: view, memory: memory64 });
    }
    for (const m of unreadable) {
      expect(() => scanSegmentsForTest([m], 50, 'in place')).toThrow('cannot be scanned in place');
      expect(spans(snapshotSegments([m], 50))).toEqual(spans(scriptSegments([m], 50)));
    }
    expect(snapshotSegments(unreadable, 50)).toHaveLength(50);
  });

  it('hands a cut among gaps of 64 KiB or more to the JavaScript scan, with the same result', () => {
    const bytes = new Uint8Array(20 * 70000);
    for (let i = 0; i < 20; i++) bytes[i * 70000 + (i % 3)] = 9;
    const memories = [memory(bytes)];
    expect(scanSegmentsForTest(memories, 5, 1 << 20)).toBeUndefined();
    expect(spans(snapshotSegments(memories, 5))).toEqual(spans(scriptSegments(memories, 5)));
    expect(snapshotSegments(memories, 5)).toHaveLength(5);
  });
});

describe.skipIf(!hasNativeWizer)('the 10,000-segment cap against the native Wizer', () => {
  it('gives the same segment count and the same memory', async () => {
    // 12,000 runs 11 bytes apart, plus some wider gaps: the cap must merge exactly 2,000 gaps.
    const input = await wat(`(module (memory (export "memory") 4)
      (func (export "wizer-initialize") (local $i i32)
        (loop $l
          (i32.store8 (i32.add (i32.mul (local.get $i) (i32.const 12)) (i32.rem_u (local.get $i) (i32.const 3))) (i32.const 1))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 12000))))))`);
    const ours = await preinitialize(input);
    const reference = nativeWizer(input);
    expect(reference.status, reference.stderr).toBe(0);
    const count = (w: Uint8Array) => parseModule(w).dataSegments.filter((s) => s.mode === 'active').length;
    expect(count(ours)).toBe(MAX_DATA_SEGMENTS);
    expect(count(reference.output!)).toBe(MAX_DATA_SEGMENTS);
    expect(await observe(ours)).toEqual(await observe(reference.output!));
    // Both merge gaps of the same sizes; only which of several equal gaps merge may differ (the reference
    // breaks ties with an unstable sort).
    const covered = (w: Uint8Array) => parseModule(w).dataSegments.filter((s) => s.mode === 'active').reduce((n, s) => {
      const r = new BinaryReader(w, s.start, s.end);
      r.u32();
      skipConstExpr(r);
      return n + r.u32();
    }, 0);
    expect(covered(ours)).toBe(covered(reference.output!));
  });
});
