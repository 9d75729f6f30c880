// Synthetic state images for the image store's tests (the format of src/durable/image.ts, built by hand), and the
// deterministic sequence of generations that the kill test's child saves and its parent checks.
import { IMAGE_FORMAT, sha256Hex, type ImageChunks, type ImageGlobal, type StateImage } from '../../src/durable/image.ts';

export const MODULE = `sha256:${'5a'.repeat(32)}`;

/** xorshift32: the same numbers in every process. */
export function prng(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Fills `bytes` with pseudo-random bytes from `seed`. */
export function fillRandom(bytes: Uint8Array, seed: number): Uint8Array {
  const next = prng(seed);
  for (let i = 0; i < bytes.length; i += 4) {
    const v = next();
    bytes[i] = v;
    bytes[i + 1] = v >>> 8;
    bytes[i + 2] = v >>> 16;
    bytes[i + 3] = v >>> 24;
  }
  return bytes;
}

/** A memory's bytes with the digest of each chunk (null for zero), kept up to date chunk by chunk. */
export class ChunkedMemory {
  readonly bytes: Uint8Array;
  readonly chunkSize: number;
  readonly index: number;
  digests: (string | null)[] = [];

  constructor(bytes: Uint8Array, chunkSize: number, index = 0) {
    this.bytes = bytes;
    this.chunkSize = chunkSize;
    this.index = index;
  }

  static async of(bytes: Uint8Array, chunkSize: number, index = 0): Promise<ChunkedMemory> {
    const m = new ChunkedMemory(bytes, chunkSize, index);
    m.digests = await Promise.all(Array.from({ length: Math.ceil(bytes.length / chunkSize) }, (_, k) => m.digestOf(k)));
    return m;
  }

  chunk(k: number): Uint8Array {
    return this.bytes.subarray(k * this.chunkSize, (k + 1) * this.chunkSize);
  }

  async digestOf(k: number): Promise<string | null> {
    const c = this.chunk(k);
    return c.every((b) => b === 0) ? null : sha256Hex(c);
  }

  /** Writes `data` at chunk `k` and rehashes it. */
  async write(k: number, data: Uint8Array): Promise<void> {
    this.bytes.set(data, k * this.chunkSize);
    this.digests[k] = await this.digestOf(k);
  }

  get count(): number {
    return this.digests.length;
  }
}

/** An image of `memories` (copies of the digest lists) and its chunks (views into the memories). */
export function imageOf(memories: ChunkedMemory[], extra: Partial<StateImage> = {}): { image: StateImage; chunks: Map<string, Uint8Array> } {
  const chunks = new Map<string, Uint8Array>();
  for (const m of memories) m.digests.forEach((d, k) => { if (d !== null) chunks.set(d, m.chunk(k)); });
  const image: StateImage = {
    format: IMAGE_FORMAT,
    module: MODULE,
    chunkSize: memories[0]?.chunkSize ?? 65536,
    memories: memories.map((m) => ({ index: m.index, pages: m.bytes.length / 65536, chunks: [...m.digests] })),
    globals: [{ index: 0, type: 'i32', bits: '00000000' }],
    tables: [],
    dropped: { data: [], elem: [] },
    ...extra,
  };
  return { image, chunks };
}

/** Whether two chunk maps hold the same digests and bytes (a readable difference, or undefined). */
export function chunksDiffer(a: ImageChunks, b: ImageChunks): string | undefined {
  if (a.size !== b.size) return `${a.size} chunks, expected ${b.size}`;
  for (const [d, bytes] of b) {
    const got = a.get(d);
    if (!got) return `chunk ${d} is missing`;
    if (got.length !== bytes.length || !got.every((v, i) => v === bytes[i])) return `chunk ${d} differs`;
  }
  return undefined;
}

// The kill test's generations: a function of the generation number alone, so that any process can say what
// generation g holds. Each generation rewrites 6 of the chunks (dense random, sparse, or a shared pattern),
// grows the memory now and then, and changes a global; odd generations are suspended in a call.
export const KILL_CHUNK = 4096;
const TOUCHED = 6;
const PATTERN = fillRandom(new Uint8Array(KILL_CHUNK), 7);

function pagesAt(g: number): number {
  return 8 + Math.min(8, Math.floor(g / 25));
}

function contentOf(k: number, j: number): Uint8Array {
  const out = new Uint8Array(KILL_CHUNK);
  switch ((k + j) % 3) {
    case 0: return fillRandom(out, k * 7919 + j);
    case 1: out[(k * 31 + j) % KILL_CHUNK] = 1 + ((k + j) % 255); return out;
    default: return PATTERN;
  }
}

const killCache = new Map<number, { image: StateImage; chunks: Map<string, Uint8Array> }>();

/** Generation `g` of the kill test's worker. */
export async function killGeneration(g: number): Promise<{ image: StateImage; chunks: Map<string, Uint8Array> }> {
  const cached = killCache.get(g);
  if (cached) return cached;
  const pages = pagesAt(g);
  const count = (pages * 65536) / KILL_CHUNK;
  const last = new Int32Array(count).fill(-1);
  for (let k = 0; k <= g; k++) {
    const next = prng(k + 1);
    const span = (pagesAt(k) * 65536) / KILL_CHUNK;
    for (let i = 0; i < TOUCHED; i++) last[next() % span] = k;
  }
  const bytes = new Uint8Array(pages * 65536);
  for (let j = 0; j < count; j++) if (last[j]! >= 0) bytes.set(contentOf(last[j]!, j), j * KILL_CHUNK);
  const memory = await ChunkedMemory.of(bytes, KILL_CHUNK);
  const globals: ImageGlobal[] = [
    { index: 0, type: 'i32', bits: (g >>> 0).toString(16).padStart(8, '0').match(/../g)!.reverse().join('') },
    { index: 1, type: 'funcref', ref: g % 4 === 0 ? null : g % 4 },
  ];
  const result = imageOf([memory], {
    globals,
    tables: [{ index: 0, size: 4, runs: [[0, 1, 1 + (g % 3), 1]] }],
    ...(g % 2 === 1 && { suspended: { entry: { name: 'run', args: [String(g)] }, pending: { name: 'env.wait', args: [String(g)] }, buffer: 1024 } }),
  });
  killCache.set(g, result);
  return result;
}
