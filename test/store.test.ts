// The image store: one specification run over each driver (a Map, a directory, SQLite), then what only the Node
// stores promise: a process SIGKILLed at any moment while it saves, prunes or collects leaves a store whose latest
// generation is one it wrote, whole. Images are synthetic, in the format of src/durable/image.ts; sizes are the
// keys and values handed to the driver.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, test } from 'vitest';
import { createImageStore, type ImageStore, type StoreDriver } from '../src/durable/store.ts';
import { memoryDriver } from '../src/durable/stores/memory.ts';
import { IMAGE_FORMAT, sha256Hex, type StateImage } from '../src/durable/image.ts';
import { WizError } from '../src/errors.ts';
import { fsDriver } from '../cli/stores/fs.ts';
import { sqliteDriver } from '../cli/stores/sqlite.ts';
import { openStore } from '../cli/stores/open.ts';
import { tempDir } from './helpers/run.ts';
import { ChunkedMemory, chunksDiffer, fillRandom, imageOf, killGeneration, MODULE, prng } from './helpers/store-images.ts';
import { KILL_KEEP } from './helpers/store-child.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** What one generation may cost: 1.1 × its changed chunks + 1 KB. */
const budget = (changed: number, chunkSize: number): number => 1.1 * changed * chunkSize + 1024;

type Kind = 'memory' | 'fs' | 'sqlite';
const KINDS: Kind[] = ['memory', 'fs', 'sqlite'];

/** A driver that counts what it is handed and which records are read. */
interface Counted {
  driver: StoreDriver;
  written: number;
  recordReads: number;
}

function counting(inner: StoreDriver): Counted {
  const counted: Counted = {
    written: 0,
    recordReads: 0,
    driver: {
      ...inner,
      get: (key) => {
        if (key.startsWith('g/')) counted.recordReads++;
        return inner.get(key);
      },
      set: (key, value) => {
        counted.written += key.length + value.length;
        return inner.set(key, value);
      },
      batch: (writes, deletes) => {
        for (const [key, value] of writes) counted.written += key.length + value.length;
        return inner.batch(writes, deletes);
      },
    },
  };
  return counted;
}

/** A fresh place for a store of `kind`; `open` gives a new driver on it each time (the same Map for memory). */
function place(kind: Kind): { dir: string; open: () => Promise<Counted> } {
  const dir = tempDir();
  const map = memoryDriver();
  return {
    dir,
    open: async () => counting(kind === 'memory' ? { ...map, close: async () => undefined } : kind === 'fs' ? await fsDriver(dir) : await sqliteDriver(dir)),
  };
}

/** Fails unless `promise` rejects with a one-line WizError of `code` whose message matches `pattern`. */
async function rejectsWith(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<string> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error, 'no error').toBeInstanceOf(WizError);
  const { message, code: got } = error as WizError;
  expect(got, message).toBe(code);
  expect(message).not.toContain('\n');
  expect(message).toMatch(pattern);
  return message;
}

async function expectLoads(store: ImageStore, worker: string, generation: number | undefined, want: { image: StateImage; chunks: ReadonlyMap<string, Uint8Array> }): Promise<void> {
  const got = await store.load(worker, generation);
  expect(got, `worker ${worker} generation ${generation}`).toBeDefined();
  expect(got!.image).toEqual(want.image);
  expect(chunksDiffer(got!.chunks, want.chunks)).toBeUndefined();
}

/** A small image of two memories (zero chunks, repeated chunks, a sparse one), with globals, a table, a suspended call. */
async function smallImage(seed: number): Promise<{ image: StateImage; chunks: Map<string, Uint8Array>; memories: ChunkedMemory[] }> {
  const a = new Uint8Array(2 * 65536);
  fillRandom(a.subarray(0, 3 * 4096), seed);
  a.set(a.subarray(0, 4096), 5 * 4096); // the same chunk twice
  a[9 * 4096 + 17] = 42; // sparse: goes inside the record
  const b = fillRandom(new Uint8Array(65536), seed + 1000);
  b.fill(0, 4096, 3 * 4096);
  const memories = [await ChunkedMemory.of(a, 4096, 0), await ChunkedMemory.of(b, 4096, 2)];
  const { image, chunks } = imageOf(memories, {
    globals: [
      { index: 0, type: 'i32', bits: 'ff000000' },
      { index: 1, type: 'i64', bits: '0102030405060708' },
      { index: 3, type: 'funcref', ref: 7 },
      { index: 4, type: 'externref', ref: null },
    ],
    tables: [{ index: 0, size: 10, runs: [[1, 3, 4, 1], [7, 0, 2, 0]] }],
    dropped: { data: [1], elem: [0, 2] },
    suspended: { entry: { name: 'main', args: ['1', '-0'] }, pending: { name: 'env.read', args: ['4096'] }, buffer: 2048 },
  });
  return { image, chunks, memories };
}

describe.each(KINDS)('image store over %s', (kind) => {
  test('saves and loads back exactly what was saved; the latest by default', async () => {
    const { open } = place(kind);
    const store = createImageStore((await open()).driver);
    const first = await smallImage(1);
    const next = await smallImage(2);
    expect((await store.save('alpha', first.image, first.chunks)).generation).toBe(0);
    expect((await store.save('alpha', next.image, next.chunks)).generation).toBe(1);
    await expectLoads(store, 'alpha', undefined, next);
    await expectLoads(store, 'alpha', 0, first);
    expect((await store.load('alpha'))!.generation).toBe(1);
    expect(await store.load('alpha', 2)).toBeUndefined();
    expect(await store.load('nobody')).toBeUndefined();
    expect(await store.generations('alpha')).toEqual([0, 1]);
    expect(await store.generations('nobody')).toEqual([]);
    expect(await store.workers()).toEqual(['alpha']);

    // Modules: stored once, by content.
    const module = fillRandom(new Uint8Array(1000), 3);
    const digest = await store.putModule(module);
    expect(digest).toBe(`sha256:${await sha256Hex(module)}`);
    expect(await store.putModule(module)).toBe(digest);
    expect(await store.getModule(digest)).toEqual(module);
    expect(await store.getModule(`sha256:${'0'.repeat(64)}`)).toBeUndefined();
    await rejectsWith(store.getModule('abc'), 'usage', /^module digest "abc" is not of the form sha256:<64 hex digits>$/);
    await store.close();

    // A new store over the same place reads it all from the back-end.
    const again = createImageStore((await open()).driver);
    await expectLoads(again, 'alpha', undefined, next);
    await expectLoads(again, 'alpha', 0, first);
    expect(await again.getModule(digest)).toEqual(module);
    await again.close();
    await rejectsWith(again.workers(), 'usage', /^the image store is closed$/);
  });

  test('a chunk is stored once: across generations and across workers', async () => {
    const { open } = place(kind);
    const counted = await open();
    const store = createImageStore(counted.driver);
    const { image, chunks, memories } = await smallImage(5);
    const stored = new Set([...chunks.keys()]);
    const first = await store.save('a', image, chunks);
    expect(first.chunksWritten).toBe(stored.size - 1); // the sparse chunk went inside the record
    await memories[0]!.write(1, fillRandom(new Uint8Array(4096), 99));
    const changed = imageOf(memories, { globals: image.globals, tables: image.tables, dropped: image.dropped, suspended: image.suspended });
    const second = await store.save('a', changed.image, changed.chunks);
    expect(second).toMatchObject({ generation: 1, chunksWritten: 1 });
    expect(second.bytesWritten).toBeLessThanOrEqual(budget(1, 4096));
    const other = await store.save('b', changed.image, changed.chunks);
    expect(other).toMatchObject({ generation: 0, chunksWritten: 0 });
    expect(other.bytesWritten).toBeLessThan(4096); // a record, no chunk
    // What save reports is what the driver was handed.
    expect(first.bytesWritten + second.bytesWritten + other.bytesWritten).toBe(counted.written);
    expect((await counted.driver.keys('c/')).length).toBe(stored.size - 1 + 1);
    await expectLoads(store, 'b', 0, changed);
    await store.close();
  });

  test('delta chains longer than the full-record interval load whole, reading at most 16 records', async () => {
    const { open } = place(kind);
    const store = createImageStore((await open()).driver);
    const rand = prng(11);
    let memory = await ChunkedMemory.of(fillRandom(new Uint8Array(4 * 65536), 1), 4096);
    const saved: { image: StateImage; chunks: Map<string, Uint8Array> }[] = [];
    for (let g = 0; g < 50; g++) {
      if (g % 10 === 9) { // grow by a page
        const grown = new Uint8Array(memory.bytes.length + 65536);
        grown.set(memory.bytes);
        memory = await ChunkedMemory.of(grown, 4096);
      }
      await memory.write(rand() % memory.count, fillRandom(new Uint8Array(4096), 100 + g));
      if (g % 7 === 3) await memory.write(rand() % memory.count, new Uint8Array(4096)); // a chunk back to zero
      const snapshot = imageOf([memory], { globals: [{ index: 0, type: 'i32', bits: (g % 3).toString(16).padStart(8, '0') }] });
      saved.push({ image: snapshot.image, chunks: new Map([...snapshot.chunks].map(([d, c]) => [d, c.slice()])) });
      expect((await store.save('w', snapshot.image, snapshot.chunks)).generation).toBe(g);
    }
    for (let g = 0; g < saved.length; g++) await expectLoads(store, 'w', g, saved[g]!);
    await store.close();

    // Cold: a new store for each load, every record read from the back-end.
    const counted = await open();
    let most = 0;
    for (let g = saved.length - 1; g >= 0; g--) {
      counted.recordReads = 0;
      await expectLoads(createImageStore(counted.driver), 'w', g, saved[g]!);
      most = Math.max(most, counted.recordReads);
    }
    expect(most).toBeGreaterThan(1); // deltas, not full records each time
    expect(most).toBeLessThanOrEqual(16);
    await counted.driver.close();

    // A shorter interval: shorter chains.
    const short = place(kind);
    const quick = createImageStore((await short.open()).driver, { fullEvery: 4 });
    for (const s of saved) await quick.save('w', s.image, s.chunks);
    await quick.close();
    const reader = await short.open();
    for (let g = 0; g < saved.length; g++) {
      reader.recordReads = 0;
      await expectLoads(createImageStore(reader.driver), 'w', g, saved[g]!);
      expect(reader.recordReads).toBeLessThanOrEqual(4);
    }
    await reader.driver.close();
  }, 120_000);

  test('prune and collect delete exactly what no kept generation refers to', async () => {
    const { open } = place(kind);
    const counted = await open();
    const store = createImageStore(counted.driver);
    const moduleBytes = fillRandom(new Uint8Array(3000), 8);
    const module = await store.putModule(moduleBytes);
    const unused = await store.putModule(fillRandom(new Uint8Array(500), 9));
    const memory = await ChunkedMemory.of(fillRandom(new Uint8Array(65536), 2), 4096); // 16 dense chunks: none inline
    const saved: { image: StateImage; chunks: Map<string, Uint8Array> }[] = [];
    const snap = () => {
      const s = imageOf([memory], { module });
      return { image: s.image, chunks: new Map([...s.chunks].map(([d, c]) => [d, c.slice()])) };
    };
    for (let g = 0; g < 6; g++) {
      if (g > 0) for (const k of [g, g + 6]) await memory.write(k, fillRandom(new Uint8Array(4096), 50 + g * 16 + k));
      saved.push(snap());
      await store.save('a', saved[g]!.image, saved[g]!.chunks);
    }
    const other = saved[0]!;
    await store.save('b', other.image, other.chunks);
    const digests = (s: { image: StateImage }): string[] => s.image.memories.flatMap((m) => m.chunks.filter((d): d is string => d !== null));
    const storedChunks = async () => new Set((await counted.driver.keys('c/')).map((key) => key.slice(-64)));
    const all = new Set(saved.flatMap(digests));
    expect(await storedChunks()).toEqual(all);

    // Generation 4, a delta of 3, becomes a full record when 3 goes.
    await store.prune('a', 2);
    expect(await store.generations('a')).toEqual([4, 5]);
    const referenced = new Set([...digests(saved[4]!), ...digests(saved[5]!), ...digests(other)]);
    const collected = await store.collect();
    expect(await storedChunks()).toEqual(referenced);
    expect(collected.chunks).toBe(all.size - referenced.size);
    expect(collected.bytes).toBe((all.size - referenced.size) * 4096 + 500); // dense chunks are stored raw; the unused module
    expect(await store.getModule(unused)).toBeUndefined();
    expect(await store.getModule(module)).toEqual(moduleBytes);
    await expectLoads(store, 'a', 4, saved[4]!);
    await expectLoads(store, 'a', 5, saved[5]!);
    await expectLoads(store, 'b', 0, other);
    expect(await store.collect()).toEqual({ chunks: 0, bytes: 0 });

    // Removing a worker frees what only it used.
    await store.remove('b');
    expect(await store.workers()).toEqual(['a']);
    expect(await store.load('b')).toBeUndefined();
    await store.collect();
    expect(await storedChunks()).toEqual(new Set([...digests(saved[4]!), ...digests(saved[5]!)]));
    await store.remove('a');
    await store.collect();
    expect(await counted.driver.keys('')).toEqual([]);
    await store.close();
  });

  test('a missing or corrupt chunk fails the load with a one-line error naming it', async () => {
    const { open } = place(kind);
    const counted = await open();
    const store = createImageStore(counted.driver);
    const { image, chunks } = await smallImage(21);
    await store.save('w', image, chunks);
    const [key] = await counted.driver.keys('c/');
    const digest = key!.slice(-64);
    const good = (await counted.driver.get(key!))!;
    const flipped = good.slice();
    flipped[100] = flipped[100]! ^ 1;

    await counted.driver.set(key!, flipped);
    await rejectsWith(store.load('w'), 'malformed', new RegExp(`^worker "w" generation 0 needs chunk ${digest}, which is corrupt \\(its bytes hash to something else\\)$`));
    // Without verification, the bytes are returned as they are.
    const unverified = await createImageStore(counted.driver, { verify: false }).load('w');
    expect(unverified!.chunks.get(digest)).toEqual(flipped);

    await counted.driver.set(key!, good.subarray(1));
    await rejectsWith(store.load('w'), 'malformed', new RegExp(`needs chunk ${digest}, which is corrupt \\(it does not unpack to 4096 bytes\\)$`));
    await counted.driver.delete(key!);
    await rejectsWith(store.load('w'), 'malformed', new RegExp(`^worker "w" generation 0 needs chunk ${digest}, which is missing from the store$`));
    await counted.driver.set(key!, good);
    await expectLoads(store, 'w', 0, { image, chunks });

    // The generation record is checksummed.
    const record = (await counted.driver.get('g/w/0'))!;
    const broken = record.slice();
    broken[20] = broken[20]! ^ 0x40;
    await counted.driver.set('g/w/0', broken);
    await rejectsWith(createImageStore(counted.driver).load('w'), 'malformed', /^worker "w" generation 0 is corrupt \(its checksum does not match\)$/);
    await counted.driver.set('g/w/0', record.subarray(0, 30));
    await rejectsWith(createImageStore(counted.driver).load('w'), 'malformed', /^worker "w" generation 0 is truncated$/);
    await counted.driver.delete('g/w/0');
    await rejectsWith(createImageStore(counted.driver).load('w'), 'malformed', /^worker "w" generation 0, its latest, is missing$/);
    await store.close();
  });

  test('odd worker ids are refused with one line', async () => {
    const { open } = place(kind);
    const store = createImageStore((await open()).driver);
    const { image, chunks } = await smallImage(1);
    for (const id of ['', ' ', 'a/b', '..', '.hidden', '-x', 'a b', 'a\nb', 'x'.repeat(129), 'é', 'a:b', 42 as unknown as string]) {
      await rejectsWith(store.save(id, image, chunks), 'usage', /^worker id .* is not valid: use 1 to 128 letters, digits/);
      await rejectsWith(store.load(id), 'usage', /is not valid/);
      await rejectsWith(store.generations(id), 'usage', /is not valid/);
      await rejectsWith(store.prune(id, 1), 'usage', /is not valid/);
      await rejectsWith(store.remove(id), 'usage', /is not valid/);
    }
    // Ids that differ in case are different workers (also on a directory of a case-blind file system).
    await store.save('Worker_1.v2', image, chunks);
    const other = await smallImage(2);
    await store.save('worker_1.v2', other.image, other.chunks);
    await expectLoads(store, 'Worker_1.v2', undefined, { image, chunks });
    await expectLoads(store, 'worker_1.v2', undefined, other);
    expect(await store.workers()).toEqual(['Worker_1.v2', 'worker_1.v2']);
    await rejectsWith(store.prune('worker_1.v2', 0), 'usage', /^prune keeps at least 1 generation, not 0$/);
    await rejectsWith(store.load('w', -1), 'usage', /^generation -1 is not a whole number$/);
    await store.close();
  });

  test('an image that does not hold together is refused before anything is written', async () => {
    const { open } = place(kind);
    const counted = await open();
    const store = createImageStore(counted.driver);
    const { image, chunks } = await smallImage(1);
    const first = image.memories[0]!.chunks.find((d) => d !== null)!;
    const cases: [StateImage, ReadonlyMap<string, Uint8Array>, RegExp][] = [
      [{ ...image, format: 'x' as typeof IMAGE_FORMAT }, chunks, /is not of format wiz\.image\/1$/],
      [{ ...image, chunkSize: 1000 }, chunks, /has chunk size 1000, not a power of two from 4 KiB to 16 MiB$/],
      [{ ...image, module: 'md5:1' }, chunks, /names no module as sha256:<64 hex digits>$/],
      [{ ...image, memories: [{ ...image.memories[0]!, pages: 3 }] }, chunks, /lists 32 chunks for memory 0 of 3 pages, not 48$/],
      [{ ...image, memories: [{ ...image.memories[0]!, chunks: image.memories[0]!.chunks.map((d, k) => k === 0 ? 'ABC' : d) }] }, chunks, /lists a chunk of memory 0 that is not a lowercase hex SHA-256$/],
      [image, new Map([...chunks].filter(([d]) => d !== first)), new RegExp(`refers to chunk ${first}, which is neither given nor in the store$`)],
      [image, new Map([...chunks].map(([d, c]) => [d, d === first ? c.subarray(1) : c])), new RegExp(`has chunk ${first} of 4095 bytes where 4096 are expected$`)],
      [image, new Map([...chunks].map(([d, c]) => [d, d === first ? fillRandom(new Uint8Array(4096), 77) : c])), new RegExp(`has chunk ${first} whose bytes hash to something else$`)],
    ];
    for (const [bad, badChunks, pattern] of cases) {
      const message = await rejectsWith(store.save('w', bad, badChunks), 'malformed', pattern);
      expect(message).toMatch(/^cannot save worker "w": the state image /);
    }
    expect(await counted.driver.keys('g/')).toEqual([]);
    expect(await counted.driver.keys('h/')).toEqual([]);
    await store.close();
  });

  test('a generation record is checked as untrusted input', async () => {
    const { open } = place(kind);
    const counted = await open();
    const store = createImageStore(counted.driver);
    const rest = (over: Record<string, unknown> = {}) => ({
      format: IMAGE_FORMAT, module: MODULE, chunkSize: 4096, memories: [{ index: 0, pages: 1 }], globals: [], tables: [], dropped: { data: [], elem: [] }, ...over,
    });
    const digest = new Uint8Array(32).fill(0xab);
    const cases: [Uint8Array, RegExp][] = [
      [await forge([0, json(rest()), 16, runs(15, 1)]), /has chunk runs of memory 0 that do not add up to its 16 chunks$/],
      [await forge([0, json(rest()), 16, runs(17, 1)]), /has chunk runs of memory 0 that do not add up to its 16 chunks$/],
      [await forge([0, json(rest()), 16, runs(16, 1), 0]), /has bytes after its chunk lists$/],
      [await forge([0, json(rest()), 5, runs(16, 1)]), /gives memory 0 pages of 2\^5 bytes$/],
      [await forge([0, json(rest()), 16, runs(8, 2), digest, runs(8, 3), 1]), /refers to digest 1 of 1$/],
      [await forge([0, json(rest()), 16, runs(16, 7)]), /has chunk run kind 7$/],
      [await forge([0, json(rest()), 16, runs(16, 0)]), /copies chunks of memory 0 that its parent does not have$/],
      [await forge([0, json(rest()), 16, runs(16, 4), 5, [1, 2, 3, 4, 5]]), /has an inline chunk of memory 0 that does not unpack$/],
      [await forge([0, json(rest({ chunkSize: 1000 })), 16, runs(16, 1)]), /has an image that has chunk size 1000, not a power of two/],
      [await forge([0, json(rest({ module: 'sha256:xyz' })), 16, runs(16, 1)]), /has an image that names no module/],
      [await forge([0, json(rest({ memories: [{ index: 0, pages: 2 ** 40 }] })), 16, runs(1, 1)]), /gives memory 0 more than 16777216 chunks$/],
      [await forge([0, json(rest({ memories: [{ index: 0, pages: -1 }] }))]), /has an image that gives memory 0 -1 pages$/],
      [await forge([0, [3, 0x7b, 0x7d, 0x7d]]), /has an image that is not JSON$/],
      [await forge([0, json([1, 2])]), /has an image that is not an object$/],
      [await forge([1, 5, json(rest()), 16, runs(16, 1)]), /starts from generation 5, which is not older$/],
      [await forge([1, 0]), /has flags 1|is truncated/],
      [await forge([3]), /is truncated$/],
      [await forge([8]), /has flags 8$/],
      [await forge([0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]]), /has a number out of range$/],
      [new Uint8Array([0x77, 0x69, 0x7a, 0x67, 3, ...new Uint8Array(40)]), /has record version 3, this wiz reads versions 1 and 2$/],
      [await checksummed([0x77, 0x69, 0x7a, 0x67, 2, 0xff, 0xff, 0xff]), /is deflated, but not validly$/],
      [new Uint8Array(50), /is not a generation record$/],
    ];
    for (const [record, pattern] of cases) {
      await counted.driver.batch([['g/w/1', record], ['h/w', new TextEncoder().encode('1')]], []);
      const message = await rejectsWith(createImageStore(counted.driver).load('w'), 'malformed', pattern);
      expect(message).toMatch(/^worker "w" generation 1 /);
    }
    await counted.driver.set('h/w', new TextEncoder().encode('x1'));
    await rejectsWith(store.load('w'), 'malformed', /^worker "w" has a head that names no generation$/);
    await counted.driver.set('g/w/x', new Uint8Array(1));
    await rejectsWith(store.generations('w'), 'malformed', /^worker "w" has a record named "g\/w\/x"$/);
    await store.close();
  });
});

/** A varint-headed run of the record format: count × 8 + kind. */
const runs = (count: number, kind: number): number[] => varint(count * 8 + kind);
const json = (value: unknown): number[] => {
  const bytes = [...new TextEncoder().encode(JSON.stringify(value))];
  return [...varint(bytes.length), ...bytes];
};

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

/** A record as the format says (magic, version, the parts, then the checksum of all that): numbers are bytes. */
async function forge(parts: (number | number[] | Uint8Array)[]): Promise<Uint8Array> {
  return checksummed([0x77, 0x69, 0x7a, 0x67, 1, ...parts.flatMap((p) => typeof p === 'number' ? [p] : [...p])]);
}

/** Bytes followed by their SHA-256, as every record ends. */
async function checksummed(bytes: number[]): Promise<Uint8Array> {
  const hex = await sha256Hex(new Uint8Array(bytes));
  return new Uint8Array([...bytes, ...hex.match(/../g)!.map((h) => parseInt(h, 16))]);
}

describe.each(KINDS)('bytes stored per generation, over %s', (kind) => {
  const SIZE = 32 * MiB;

  test('a dense random memory costs at most 1.05 × its size; then one changed chunk a generation stays within 1.1 × chunk + 1 KB', async () => {
    for (const chunkSize of [4096, 65536]) {
      const { dir, open } = place(kind);
      const counted = await open();
      const store = createImageStore(counted.driver);
      const memory = await ChunkedMemory.of(fillRandom(new Uint8Array(SIZE), 1), chunkSize);
      const initial = imageOf([memory]);
      const first = await store.save('w', initial.image, initial.chunks);
      expect(first.bytesWritten).toBe(counted.written);
      expect(first.bytesWritten).toBeLessThanOrEqual(1.05 * SIZE);
      const onDisk = kind === 'fs' ? `; file lengths ${fileBytes(dir)} B` : '';
      // A few chunks that keep changing (a stack, the top of a heap), and a global.
      const rand = prng(chunkSize);
      const costs: number[] = [];
      for (let g = 1; g <= 40; g++) {
        await memory.write(rand() % 8 * 37, fillRandom(new Uint8Array(chunkSize), 1000 + g));
        const { image, chunks } = imageOf([memory], { globals: [{ index: 0, type: 'i32', bits: g.toString(16).padStart(8, '0') }] });
        const before = counted.written;
        const saved = await store.save('w', image, chunks);
        expect(saved).toMatchObject({ generation: g, chunksWritten: 1, bytesWritten: counted.written - before });
        costs.push(saved.bytesWritten);
      }
      expect(Math.max(...costs)).toBeLessThanOrEqual(budget(1, chunkSize));
      report(kind, `dense random 32 MiB in ${chunkSize / KiB} KiB chunks`, `${first.bytesWritten} B (${(first.bytesWritten / SIZE).toFixed(4)}×)${onDisk}`);
      report(kind, `then 1 of 8 hot chunks changed a generation (${chunkSize / KiB} KiB)`, `max ${Math.max(...costs)} B, mean ${mean(costs)} B (budget ${budget(1, chunkSize)} B)`);
      await store.close();
    }
  }, 300_000);

  test('one changed chunk at a random place each generation: within budget on average, and the worst generation', async () => {
    const { open } = place(kind);
    const store = createImageStore((await open()).driver);
    const memory = await ChunkedMemory.of(fillRandom(new Uint8Array(SIZE), 2), 4096);
    const initial = imageOf([memory]);
    await store.save('w', initial.image, initial.chunks);
    const rand = prng(3);
    const costs: number[] = [];
    for (let g = 1; g <= 48; g++) {
      await memory.write(rand() % memory.count, fillRandom(new Uint8Array(4096), 2000 + g));
      const { image, chunks } = imageOf([memory], { globals: [{ index: 0, type: 'i32', bits: g.toString(16).padStart(8, '0') }] });
      costs.push((await store.save('w', image, chunks)).bytesWritten);
    }
    // Every 15th generation carries what changed since the chain's full record (it keeps loads to 16 records).
    expect(mean(costs)).toBeLessThanOrEqual(budget(1, 4096));
    expect(costs.filter((c) => c > budget(1, 4096)).length).toBeLessThanOrEqual(2);
    report(kind, '1 random chunk of 8192 changed a generation (4 KiB), 48 generations', `mean ${mean(costs)} B, max ${Math.max(...costs)} B (budget ${budget(1, 4096)} B), over budget: ${costs.filter((c) => c > budget(1, 4096)).length}`);
    await store.close();
  }, 300_000);

  test('sparse and repetitive memories cost next to nothing', async () => {
    const { open } = place(kind);
    const counted = await open();
    const store = createImageStore(counted.driver);
    const cost = async (worker: string, bytes: Uint8Array): Promise<number> => {
      const memory = await ChunkedMemory.of(bytes, 4096);
      const { image, chunks } = imageOf([memory]);
      const saved = await store.save(worker, image, chunks);
      await expectLoads(store, worker, undefined, { image, chunks });
      return saved.bytesWritten;
    };
    // One non-zero byte per 4 KiB, the same everywhere: one chunk, inside the record.
    const same = new Uint8Array(SIZE);
    for (let at = 100; at < SIZE; at += 4096) same[at] = 7;
    const sameCost = await cost('same', same);
    expect(sameCost).toBeLessThan(600);
    // One non-zero byte per 4 KiB, at a random place with a random value: 8192 different chunks, each inside the record.
    const random = new Uint8Array(SIZE);
    const rand = prng(4);
    for (let at = 0; at < SIZE; at += 4096) random[at + (rand() % 4096)] = 1 + (rand() % 255);
    const randomCost = await cost('random', random);
    expect(randomCost).toBeLessThan(16 * 8192);
    // 32 MiB of one repeated 4 KiB pattern: the chunk once, and its list as one run.
    const pattern = fillRandom(new Uint8Array(4096), 5);
    const repeated = new Uint8Array(SIZE);
    for (let at = 0; at < SIZE; at += 4096) repeated.set(pattern, at);
    const repeatedCost = await cost('repeated', repeated);
    expect(repeatedCost - 4096 - 'c/xx/'.length - 64).toBeLessThan(600);
    // Saving it again: a delta that copies every chunk.
    const again = imageOf([await ChunkedMemory.of(repeated, 4096)]);
    const second = await store.save('repeated', again.image, again.chunks);
    expect(second.bytesWritten).toBeLessThan(100);
    report(kind, 'sparse 32 MiB, 1 byte per 4 KiB, same pattern', `${sameCost} B`);
    report(kind, 'sparse 32 MiB, 1 byte per 4 KiB, random place and value', `${randomCost} B (${(randomCost / 8192).toFixed(1)} B a chunk)`);
    report(kind, '32 MiB of one 4 KiB pattern', `${repeatedCost} B; saved again: ${second.bytesWritten} B`);
    await store.close();
  }, 300_000);
});

const mean = (xs: number[]): number => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);

/** The lengths of the files in a directory store: its values, without the keys (they are the names). */
function fileBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? fileBytes(path) : statSync(path).size;
  }
  return total;
}

function report(kind: Kind, what: string, result: string): void {
  console.log(`store bytes [${kind}] ${what}: ${result}`);
}

describe('the directory store', () => {
  test('on open, finishes a committed batch and drops what was staged but never committed', async () => {
    const dir = tempDir();
    const first = await fsDriver(dir);
    await first.set('h/w', new TextEncoder().encode('0'));
    await first.close();
    // What a process killed after the commit and before the renames leaves.
    writeFileSync(join(dir, '.staging', 'a'), 'new head');
    writeFileSync(join(dir, '.staging', 'b'), 'a record');
    writeFileSync(join(dir, '.staging', 'orphan'), 'never committed');
    writeFileSync(join(dir, '.journal'), JSON.stringify({ renames: [['.staging/a', 'h/w'], ['.staging/b', 'g/w/1']], deletes: ['g/w/0'] }));
    const driver = await fsDriver(dir);
    expect(new TextDecoder().decode(await driver.get('h/w'))).toBe('new head');
    expect(new TextDecoder().decode(await driver.get('g/w/1'))).toBe('a record');
    expect(existsSync(join(dir, '.journal'))).toBe(false);
    expect(readdirSync(join(dir, '.staging'))).toEqual([]);
    expect((await driver.keys('')).sort()).toEqual(['g/w/1', 'h/w']);
    await driver.close();
  });

  test('one process at a time; a kind is not opened as the other', async () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, '.lock'), '1'); // pid 1 is alive: init
    await rejectsWith(fsDriver(dir), 'usage', /is in use by process 1$/);
    writeFileSync(join(dir, '.lock'), '999999999'); // no such process: taken over
    const driver = await fsDriver(dir);
    await driver.close();
    await rejectsWith(openStore(dir, 'sqlite'), 'usage', /holds an fs store, not a sqlite one$/);
    const other = tempDir();
    await (await openStore(other, 'sqlite')).close();
    await rejectsWith(openStore(other, 'fs'), 'usage', /holds a sqlite store, not an fs one$/);
  });
});

describe.each(['fs', 'sqlite'] as const)('SIGKILL while saving into a %s store', (kind) => {
  const CHILD = join(import.meta.dirname, 'helpers', 'store-child.ts');
  const KILLS = 30;

  test(`${KILLS} kills at random moments: the latest generation is one the child wrote, whole, and the kept ones before it load`, async () => {
    const dir = join(tempDir(), 'store');
    const rand = prng(kind === 'fs' ? 1234 : 5678);
    let saved = -1; // the last generation the child said it saved
    const seen = { midSave: 0, midBatch: 0, midPrune: 0, midCollect: 0, latestWasInFlight: 0, journalLeft: 0, stagedLeft: 0 };
    for (let round = 0; round < KILLS; round++) {
      const child = spawn(process.execPath, [CHILD, kind, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      // 'close': the child is gone and every line it wrote has been read.
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      // Kill at a moment of one of four kinds (after a random number of lines, at the start of a random batch, in
      // a prune's batch, in a collect's), at once or a moment later; a round that never meets its moment ends at
      // line 400.
      const aim = (['line', 'batch', 'prune', 'collect'] as const)[round % 4]!;
      const target = 2 + (rand() % 40);
      const batchTarget = 1 + (rand() % 8);
      let lines = 0;
      let batches = 0;
      let killed = false;
      let saving = -1;
      let inBatch = false;
      let doing = '';
      const lineReader = createInterface({ input: child.stdout });
      lineReader.on('line', (line) => {
        const [word, n] = line.split(' ');
        if (word === 'saving') saving = Number(n);
        if (word === 'saved') saved = Number(n);
        inBatch = word === 'batch';
        if (word === 'pruning' || word === 'collecting') doing = word;
        if (word === 'pruned' || word === 'collected') doing = '';
        lines++;
        if (word === 'batch') batches++;
        const now = aim === 'line' ? lines === target
          : aim === 'batch' ? word === 'batch' && batches === batchTarget
            : word === 'batch' && doing === (aim === 'prune' ? 'pruning' : 'collecting');
        if (killed || !(now || lines >= 400)) return;
        killed = true;
        if (saving > saved) seen.midSave++;
        if (inBatch) seen.midBatch++;
        if (doing === 'pruning') seen.midPrune++;
        if (doing === 'collecting') seen.midCollect++;
        if (rand() % 2 === 0) child.kill('SIGKILL');
        else setTimeout(() => child.kill('SIGKILL'), rand() % 5);
      });
      const { code, signal } = await exited;
      expect(signal, `round ${round}: the child exited by itself (${code}): ${stderr}`).toBe('SIGKILL');
      if (kind === 'fs') {
        if (existsSync(join(dir, '.journal'))) seen.journalLeft++;
        if (existsSync(join(dir, '.staging')) && readdirSync(join(dir, '.staging')).length > 0) seen.stagedLeft++;
      }

      const store = await openStore(dir, kind);
      const generations = await store.generations('w');
      const latest = generations.at(-1) ?? -1;
      // Saved, or the save in flight when the kill came (committed before it).
      expect([saved, ...(saving > saved ? [saving] : [])], `round ${round}`).toContain(latest);
      if (latest > saved) {
        seen.latestWasInFlight++;
        saved = latest;
      }
      if (latest >= 0) {
        expect(generations, `round ${round}`).toEqual(Array.from({ length: generations.length }, (_, i) => latest - generations.length + 1 + i));
        // Pruned to KILL_KEEP every 5 generations (a kill may come first, more than once).
        if (latest >= 2 * KILL_KEEP + 10) expect(generations.length, `round ${round}`).toBeLessThan(latest + 1);
        await expectLoads(store, 'w', undefined, await killGeneration(latest));
        for (const g of generations) await expectLoads(store, 'w', g, await killGeneration(g));
      }
      await store.close();
    }
    const fsState = kind === 'fs' ? `; left for the reopening to finish: a committed journal ${seen.journalLeft} times, staged files ${seen.stagedLeft} times` : '';
    console.log(`kill test [${kind}]: ${KILLS} kills, ${seen.midSave} during a save (${seen.latestWasInFlight} of them committed), ${seen.midPrune} during a prune, ${seen.midCollect} during a collect, ${seen.midBatch} right after a batch began${fsState}; last generation ${saved}`);
    expect(saved).toBeGreaterThan(KILLS / 2);
  }, 900_000);
});

