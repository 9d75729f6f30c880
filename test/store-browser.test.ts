// The image store over IndexedDB, in headless Chromium (Debian's `chromium`, driven by playwright-core, as
// test/browser.test.ts does): the store code is bundled for the page with rolldown; the page saves two generations
// of one worker and one of another, reopens the database, and loads them back; the test compares in Node.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { build } from 'rolldown';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { browserProblem } from '../scripts/build-browser.ts';
import type { StateImage } from '../src/durable/image.ts';
import { ChunkedMemory, fillRandom, imageOf } from './helpers/store-images.ts';
import { CHROMIUM, CHROMIUM_ARGS, hasChromiumOrSkip } from './helpers/chromium.ts';

const root = join(import.meta.dirname, '..');
const OUT = join(root, '.browser', 'store');
const hasChromium = hasChromiumOrSkip('IndexedDB store tests');

/** The store, its IndexedDB driver and what the page needs besides, as one ES module for the page. */
async function bundleStore(): Promise<string> {
  mkdirSync(OUT, { recursive: true });
  const entry = join(OUT, 'entry.ts');
  writeFileSync(entry, [
    `export { createImageStore } from '${join(root, 'src', 'durable', 'store.ts')}';`,
    `export { indexedDBDriver } from '${join(root, 'src', 'durable', 'stores', 'indexeddb.ts')}';`,
    '',
  ].join('\n'));
  const file = join(OUT, 'store.js');
  await build({ input: entry, platform: 'browser', logLevel: 'warn', output: { file, format: 'esm' } });
  return readFileSync(file, 'utf8');
}

interface Wire {
  image: StateImage;
  chunks: [string, number[]][];
}

const wire = ({ image, chunks }: { image: StateImage; chunks: ReadonlyMap<string, Uint8Array> }): Wire => ({
  image, chunks: [...chunks].map(([d, bytes]) => [d, Array.from(bytes)] as [string, number[]]).sort((a, b) => a[0].localeCompare(b[0])),
});

interface PageResult {
  saves: { generation: number; bytesWritten: number; chunksWritten: number }[];
  loads: (Wire & { generation: number })[];
  workers: string[];
  generations: number[];
  error: { name: string; code: string; message: string } | null;
}

describe.skipIf(!hasChromium)('the image store over IndexedDB in headless Chromium', () => {
  let browser: Browser;
  let server: Server;
  let url: string;
  let code: string;

  beforeAll(async () => {
    code = await bundleStore();
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (path === '/') res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>wiz store</title>');
      else if (path === '/store.js') res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(code);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve); // a secure context: WebCrypto is there
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 120_000 });
    } catch (e) {
      throw new Error(`Chromium (${CHROMIUM}) cannot start: ${String((e as Error).message ?? e).split('\n')[0]}`);
    }
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  test('the bundle has nothing of Node', () => {
    expect(browserProblem(code)).toBeUndefined();
    expect(code).not.toMatch(/^\s*import\s/m);
  });

  test('saves, reopens and loads back what was saved; chunks are stored once; a corrupt chunk is named', async () => {
    const memory = new Uint8Array(4 * 65536);
    fillRandom(memory.subarray(0, 10 * 4096), 1);
    memory[20 * 4096 + 5] = 9; // a sparse chunk: inside the record
    const chunked = await ChunkedMemory.of(memory, 4096);
    const first = imageOf([chunked]);
    const firstWire = wire(first);
    await chunked.write(3, fillRandom(new Uint8Array(4096), 2));
    const second = wire(imageOf([chunked], { globals: [{ index: 0, type: 'i32', bits: '01000000' }] }));
    const corrupt = chunked.digests[0]!; // in both generations

    const context = await browser.newContext(); // an empty IndexedDB
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(url);
    // A string, so that the test runner leaves the page's dynamic import alone.
    const result = await page.evaluate(`(async ([first, second, corrupt]) => {
      const w = await import('/store.js');
      const bytes = (wire) => new Map(wire.chunks.map(([d, b]) => [d, new Uint8Array(b)]));
      const open = async () => w.createImageStore(await w.indexedDBDriver({ name: 'wiz-store-test' }));
      const store = await open();
      const saves = [
        await store.save('a', first.image, bytes(first)),
        await store.save('a', second.image, bytes(second)),
        await store.save('b', second.image, bytes(second)),
      ];
      await store.close();
      const again = await open();
      const loads = [];
      for (const [worker, generation] of [['a', undefined], ['a', 0], ['b', undefined]]) {
        const l = await again.load(worker, generation);
        const chunks = [...l.chunks].map(([d, b]) => [d, Array.from(b)]).sort((x, y) => x[0].localeCompare(y[0]));
        loads.push({ generation: l.generation, image: l.image, chunks });
      }
      const workers = await again.workers();
      const generations = await again.generations('a');
      const raw = await w.indexedDBDriver({ name: 'wiz-store-test' });
      const key = 'c/' + corrupt.slice(0, 2) + '/' + corrupt;
      const value = await raw.get(key);
      value[0] ^= 1;
      await raw.set(key, value);
      const error = await again.load('a', 0).then(() => null, (e) => ({ name: e.name, code: e.code, message: e.message }));
      await raw.close();
      await again.close();
      return { saves, loads, workers, generations, error };
    })(${JSON.stringify([firstWire, second, corrupt])})`) as PageResult;
    await context.close();

    expect(problems).toEqual([]);
    expect(result.saves.map((s) => [s.generation, s.chunksWritten])).toEqual([[0, 10], [1, 1], [0, 0]]);
    expect(result.saves[1]!.bytesWritten).toBeLessThanOrEqual(1.1 * 4096 + 1024);
    expect(result.loads).toEqual([{ generation: 1, ...second }, { generation: 0, ...firstWire }, { generation: 0, ...second }]);
    expect(result.workers).toEqual(['a', 'b']);
    expect(result.generations).toEqual([0, 1]);
    expect(result.error).toEqual({
      name: 'WizError', code: 'malformed',
      message: `worker "a" generation 0 needs chunk ${corrupt}, which is corrupt (its bytes hash to something else)`,
    });
  }, 60_000);
});
