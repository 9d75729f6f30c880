// The library in a real browser: its ES module build, and the demo page (browser/) in headless Chromium from
// Debian's `chromium` package, driven by playwright-core (never a downloaded browser). The page pre-initializes
// a module, stores the snapshot in IndexedDB, and after a reload starts from it; the test asserts on what the
// page reports, and saves a screenshot to .browser/demo.png (WIZ_UPDATE_SCREENSHOT=1: also docs/browser-demo.png).
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { rolldown } from 'rolldown';
import { BROWSER_DIR, browserProblem, buildBrowser } from '../scripts/build-browser.ts';
import * as wiz from '../src/index.ts';
import { startDemoServer, type DemoServer } from './helpers/browser-server.ts';
import { wat } from './helpers/wat.ts';
import { CHROMIUM, CHROMIUM_ARGS, hasChromiumOrSkip } from './helpers/chromium.ts';

const root = join(import.meta.dirname, '..');
const OUT = join(root, '.browser');
const BUNDLE = join(OUT, 'bundle');
const hasChromium = hasChromiumOrSkip('browser tests');

// Built here rather than taken from dist/, so that the page runs the current source.
const bundle = await buildBrowser(BUNDLE);

describe('browser build', () => {
  test('is one ES module with no Node built-in, exporting what the library exports', async () => {
    const code = readFileSync(bundle.file, 'utf8');
    expect(browserProblem(code)).toBeUndefined();
    expect(code).not.toMatch(/^\s*import\s/m); // self-contained: nothing left to resolve
    const built = await import(bundle.file) as Record<string, unknown>;
    expect(Object.keys(built).sort()).toEqual(Object.keys(wiz).sort());
    expect(bundle.minified).toBeLessThan(bundle.bytes);
  });

  test('the check finds Node built-ins and CommonJS', () => {
    expect(browserProblem('import { readFile } from "node:fs";')).toMatch(/node:fs/);
    expect(browserProblem("const p = await import('node:path');")).toMatch(/node:path/);
    expect(browserProblem('const x = require("x");')).toMatch(/require/);
    expect(browserProblem('const note = "see node: docs";')).toBeUndefined();
  });

  test('a bundler targeting browsers resolves the package to it', async () => {
    const exports = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).exports as Record<string, Record<string, string>>;
    expect(exports['.']).toMatchObject({ browser: './dist/browser/wiz.js', default: './dist/src/index.js' });
    expect(exports['./browser']).toMatchObject({ default: './dist/browser/wiz.js' });
    if (!existsSync(join(BROWSER_DIR, 'wiz.js'))) await buildBrowser(); // what `npm run build` does
    const app = join(OUT, 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(join(app, 'main.js'), "import { preinitialize } from 'wiz';\nexport const run = preinitialize;\n");
    const resolved = async (platform: 'browser' | 'node') => {
      const out = await rolldown({ input: join(app, 'main.js'), platform, logLevel: 'silent', external: [/^node:/] });
      try {
        return (await out.generate({ format: 'esm' })).output[0].moduleIds.map((id) => relative(root, id));
      } finally {
        await out.close();
      }
    };
    // The package refers to itself by name here, as an application's bundler finds it in node_modules.
    expect(await resolved('browser')).toContain(join('dist', 'browser', 'wiz.js'));
    expect(await resolved('node')).toContain(join('dist', 'src', 'index.js'));
  });

  test('the bundle writes the same snapshot as the source', async () => {
    const built = await import(bundle.file) as typeof wiz;
    const wasm = await startDemoServer(BUNDLE).then(async (s) => { await s.close(); return s.wasm; });
    expect(await built.preinitialize(wasm)).toEqual(await wiz.preinitialize(wasm));
  });
});

/** One line from playwright's launch error: its first line, what the browser wrote to stderr, how it exited. */
function launchFailure(message: string): string {
  const lines = message.replace(/\x1b\[\d+m/g, '').split('\n');
  const first = (lines[0] ?? '').replace(/^browserType\.launch: /, '');
  const stderr = lines.filter((l) => /^\[pid=\d+\]\[err\] \S/.test(l)).map((l) => l.replace(/^\[pid=\d+\]\[err\] /, ''));
  const exit = /<process did exit: (exitCode=\w+, signal=\w+)>/.exec(message)?.[1];
  return [first, ...stderr.slice(0, 3).map((l) => `stderr: ${l}`), exit].filter(Boolean).join('; ');
}

interface PageState {
  inits: number; primes: number; prime1000: number; total: string; adds: number; mean: number;
  memoryPages: number; memorySha256: string;
}
interface PageResult {
  phase: 'first' | 'restored' | 'error';
  error?: string;
  before: PageState;
  after?: PageState;
  sizes: { original: number; instrumented: number; snapshot: number };
  initMs: number;
  startMs?: number;
  exportsInit?: boolean;
  provenance: wiz.Provenance | null;
  resnapshot?: { state: PageState; size: number; provenance: wiz.Provenance | null; parentSha256: string };
}

describe.skipIf(!hasChromium)('the demo page in headless Chromium', () => {
  let browser: Browser;
  let server: DemoServer;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    server = await startDemoServer(BUNDLE);
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 120_000 }); // a busy machine is slow
    } catch (e) {
      throw new Error(`Chromium (${CHROMIUM}) cannot start: ${launchFailure(String((e as Error).message ?? e))}`);
    }
    // A fresh context: empty IndexedDB, so the first load is a first visit.
    const context = await browser.newContext({ viewport: { width: 760, height: 600 }, deviceScaleFactor: 1 });
    page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function result(): Promise<PageResult> {
    await page.waitForSelector('html[data-done]', { timeout: 20_000 });
    const r = JSON.parse(await page.locator('#result').textContent() ?? 'null') as PageResult;
    expect(r.error, 'the page failed').toBeUndefined();
    expect(problems).toEqual([]);
    expect(server.missing).toEqual([]);
    return r;
  }

  let first: PageResult;
  test('first visit: instrument, init, further calls, snapshot, store', async () => {
    await page.goto(server.url);
    first = await result();
    expect(first.phase).toBe('first');
    expect(first.before).toMatchObject({ inits: 1, primes: 3245, prime1000: 7927, total: '42', adds: 2, mean: 21, memoryPages: 1 });
    expect(first.sizes.original).toBe(server.wasm.length);
    expect(first.sizes.instrumented).toBeGreaterThan(first.sizes.original);
    // The list of 3245 primes (4 bytes each) is data now.
    expect(first.sizes.snapshot).toBeGreaterThan(3245 * 4);
    expect(first.provenance?.generation).toBe(0);
  }, 60_000);

  test('reload: start from the stored snapshot without init, and snapshot it again', async () => {
    await page.reload();
    const r = await result();
    expect(r.phase).toBe('restored');
    expect(r.after).toEqual(first.before); // every value, and the memory's digest
    expect(r.after!.inits).toBe(1); // init did not run again
    expect(r.exportsInit).toBe(false);
    expect(r.sizes).toEqual(first.sizes);

    const next = r.resnapshot!;
    expect(next.state).toEqual({ ...first.before, total: '142', adds: 3, mean: 142 / 3 });
    expect(next.provenance).toEqual({ generation: 1, parent: `sha256:${next.parentSha256}` });
    // Re-snapshotting replaces the previous snapshot's data rather than piling it up.
    expect(Math.abs(next.size - first.sizes.snapshot)).toBeLessThan(64);

    mkdirSync(OUT, { recursive: true });
    const png = join(OUT, 'demo.png');
    const shot = await page.locator('#demo').screenshot({ path: png });
    expect([...shot.subarray(1, 4)]).toEqual([...Buffer.from('PNG')]);
    expect(shot.readUInt32BE(16)).toBeGreaterThan(600); // width: the whole demo, not an empty box
    if (process.env.WIZ_UPDATE_SCREENSHOT) copyFileSync(png, join(root, 'docs', 'browser-demo.png'));
  }, 60_000);

  test('the stored snapshot is the one Node writes for the same run, and runs in Node', async () => {
    const stored = new Uint8Array(await page.evaluate(() => new Promise<number[]>((resolve, reject) => {
      const open = indexedDB.open('wiz-demo');
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const get = open.result.transaction('snapshots').objectStore('snapshots').get('counter');
        get.onsuccess = () => resolve(Array.from(get.result.bytes as Uint8Array));
        get.onerror = () => reject(get.error);
      };
    })));
    const instrumented = wiz.instrument(server.wasm);
    const { instance } = await WebAssembly.instantiate(instrumented.bytes as BufferSource);
    const e = instance.exports as { 'wizer-initialize': () => void; add: (n: bigint) => bigint };
    e['wizer-initialize']();
    e.add(40n);
    e.add(2n);
    const node = await wiz.snapshot(instrumented, instance, { keepInstrumentation: true, removeExports: ['wizer-initialize'] });
    expect(stored).toEqual(node);

    const { instance: restored } = await WebAssembly.instantiate(stored as BufferSource);
    const r = restored.exports as { inits: () => number; total: () => bigint; nth: (i: number) => number };
    expect([r.inits(), r.total(), r.nth(1000)]).toEqual([1, 42n, 7927]);
  });

  test('preinitialize in the page writes what Node writes, and fails with the same one-line errors', async () => {
    const traps = await wat(`(module (memory 1) (func (export "wizer-initialize") (i32.store (i32.const 70000) (i32.const 1))))`);
    // A string, so that the test runner leaves its dynamic import alone: the page imports the bundle itself.
    const inPage = await page.evaluate(`(async ([counter, trapping]) => {
      const w = await import('/dist/browser/wiz.js');
      const out = await w.preinitialize(new Uint8Array(counter), { renames: ['sum=total'] });
      const error = await w.preinitialize(new Uint8Array(trapping)).then(() => null, (e) => ({ code: e.code, message: e.message }));
      // A memory with custom page sizes (limits flag 0x08), a feature no shipping engine enables yet.
      const customPages = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 4, 1, 8, 1, 0]);
      const unsupported = await w.compileModule(customPages).then(() => null, (e) => ({ code: e.code, message: e.message }));
      return { out: Array.from(out), error, unsupported };
    })(${JSON.stringify([Array.from(server.wasm), Array.from(traps)])})`) as { out: number[]; error: unknown; unsupported: unknown };
    expect(new Uint8Array(inPage.out)).toEqual(await wiz.preinitialize(server.wasm, { renames: ['sum=total'] }));
    const nodeError = await wiz.preinitialize(traps).then(() => null, (e: wiz.WizError) => ({ code: e.code, message: e.message }));
    expect(nodeError?.code).toBe('trap');
    expect(inPage.error).toEqual(nodeError);
    // A missing feature is explained without pointing a browser user at Node releases.
    expect(inPage.unsupported).toEqual({
      code: 'unsupported',
      message: expect.stringMatching(/^the module uses the WebAssembly custom-page-sizes feature, which this engine does not enable: \S/),
    });
    expect((inPage.unsupported as { message: string }).message).not.toMatch(/Node/);
  });
});
