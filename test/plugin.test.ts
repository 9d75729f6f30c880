// wiz/plugin in real builds: Vite, Rollup (with @rollup/plugin-wasm), esbuild (file loader), webpack and Rspack
// (async WebAssembly) each build a tiny app that imports a .wasm. The emitted .wasm must be byte for byte what
// `wiz init` writes for the same options (the CLI is the oracle), and the built app, run in Node (and for Vite in
// headless Chromium), must answer from the pre-initialized state: values only init computes, with no init
// function left to call.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildCFixtures, C_TOOLCHAIN_HINT, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { BUNDLERS, bundle, makeApp, removeApps, runBuilt, serveFolder, viteClientBuild, watchBundle, type Bundler } from './helpers/bundlers.ts';
import { launchChromiumOrSkip } from './helpers/chromium.ts';
import { wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const root = join(import.meta.dirname, '..');

// Init sums the squares 1..100 into a global and into memory; nothing else computes it.
const COUNTER = `(module
  (memory (export "memory") 1)
  (global $answer (mut i32) (i32.const 0))
  (func (export "wizer-initialize")
    (local $i i32) (local $sum i32)
    (loop $next
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $sum (i32.add (local.get $sum) (i32.mul (local.get $i) (local.get $i))))
      (br_if $next (i32.lt_u (local.get $i) (i32.const 100))))
    (i32.store (i32.const 16) (local.get $sum))
    (global.set $answer (local.get $sum)))
  (func (export "answer") (result i32) (global.get $answer))
  (func (export "stored") (result i32) (i32.load (i32.const 16))))`;
const COUNTER_ANSWER = '{ answer: e.answer(), stored: e.stored(), exports: Object.keys(e).sort() }';
const INITIALIZED = { answer: 338350, stored: 338350, exports: ['answer', 'memory', 'stored'] };

// Init takes 8 random bytes from WASI: a seed every instance of the snapshot shares.
const SEEDED = `(module
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wizer-initialize") (drop (call $random_get (i32.const 8) (i32.const 8))))
  (func (export "seed") (result i64) (i64.load (i32.const 8))))`;
const SEED_ANSWER = '{ seed: String(e.seed()) }';

const CONFIG_ANSWER = '{ sum: e.sum(), count: e.count(), exports: Object.keys(e).sort() }';
const CONFIG_EXPORTS = ['count', 'greeting_length', 'memory', 'sum', 'value_of'];

/** Builds on a busy 2-core machine: minutes, not the default seconds. */
const SLOW = 300_000;

/** What `wiz init` writes for `wasm` with `args` (through the real CLI). */
function expectedInit(wasm: Uint8Array, args: string[] = []): Uint8Array {
  const r = wizInit(wasm, args);
  expect(r.status, r.stderr).toBe(0);
  return r.output!;
}

/** The emitted .wasm files' bytes, and their names for the bundlers that keep the module's name in them. */
function emitted(bundler: Bundler, wasm: { name: string; bytes: Uint8Array }[], name: string) {
  if (bundler !== 'webpack' && bundler !== 'rspack') for (const w of wasm) expect(w.name).toContain(name);
  return wasm.map((w) => w.bytes);
}

let counter: Uint8Array;
let counterInit: Uint8Array;
beforeAll(async () => {
  counter = await wat(COUNTER);
  counterInit = expectedInit(counter);
});
afterAll(removeApps);

/** The cache entries (`<key>/<files>.wasm`) in a cache folder. */
function cacheEntries(dir: string): string[] {
  return readdirSync(dir).filter((k) => /^[0-9a-f]{64}$/.test(k)).flatMap((k) => readdirSync(join(dir, k)).filter((f) => f.endsWith('.wasm')));
}

/** `wiz` run from the sources (the build the plugin runs in these tests, so the same wiz in the cache key). */
function wizFromSources(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const script = 'const { main } = await import(process.env.WIZ_MAIN); await main(JSON.parse(process.env.WIZ_ARGS));';
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, WIZ_MAIN: join(root, 'cli', 'main.ts'), WIZ_ARGS: JSON.stringify(args) }, encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const cToolchain = hasCToolchain();
if (!cToolchain && (process.env.CI === 'true' || process.env.WIZ_REQUIRE_C_FIXTURES)) throw new Error(`C fixtures required but no wasm32-wasi clang: ${C_TOOLCHAIN_HINT}`);
if (!cToolchain) console.warn(`plugin tests with a C module skipped: no wasm32-wasi clang (${C_TOOLCHAIN_HINT})`);

// config.c reads /config/settings.txt during init (here through mapdirs) into a malloc'd list; sum() and count()
// answer from it.
describe.skipIf(!cToolchain)('a C module that reads a file during init', () => {
  let config: Uint8Array;
  beforeAll(() => {
    config = new Uint8Array(readFileSync(buildCFixtures().config!));
  });
  const options = { allowWasi: true, mapdirs: ['/config::config'] };
  const files = { 'config/settings.txt': 'alpha 1\nbeta 20\n' };
  const cli = (app: string) => ['--allow-wasi', '--mapdir', `/config::${join(app, 'config')}`, '--deterministic'];

  // First in the file: wiz's build id (part of the key) is read once per process, and the sources it hashes may be
  // edited while a long test file runs.
  test('the cache is the CLI\'s: after a build, `wiz init --cache` with the same options is a hit, until the file changes', async () => {
    const app = makeApp('rollup', { config }, CONFIG_ANSWER, files);
    await bundle('rollup', app, options);
    const cache = join(app, 'node_modules', '.cache', 'wiz');
    expect(cacheEntries(cache)).toHaveLength(1);
    writeFileSync(join(app, 'config.wasm'), config);
    const run = () => {
      const r = wizFromSources(['init', join(app, 'config.wasm'), '-o', join(app, 'out.wasm'), `--cache=${cache}`, '--json', ...cli(app)]);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { cache: { status: string }; filesRead: { path: string }[] };
    };
    const hit = run();
    expect(hit.cache.status).toBe('hit');
    expect(hit.filesRead.map((f) => f.path)).toContain(join(app, 'config', 'settings.txt'));
    writeFileSync(join(app, 'config', 'settings.txt'), 'alpha 2\n');
    expect(run().cache.status).toBe('miss');
    // And the plugin's next build has the new state.
    const rebuilt = await bundle('rollup', app, options);
    expect(rebuilt.wasm.map((w) => w.bytes)).toEqual([new Uint8Array(readFileSync(join(app, 'out.wasm')))]);
    expect(runBuilt(rebuilt.entry)).toEqual({ sum: 2, count: 1, exports: CONFIG_EXPORTS });
  }, SLOW);

  describe.each(BUNDLERS)('%s', (bundler) => {
    test('emits what `wiz init --allow-wasi --mapdir --deterministic` writes; the app answers from the file', async () => {
      const app = makeApp(bundler, { config }, CONFIG_ANSWER, files);
      const built = await bundle(bundler, app, options);
      expect(emitted(bundler, built.wasm, 'config')).toEqual([expectedInit(config, cli(app))]);
      expect(runBuilt(built.entry)).toEqual({ sum: 21, count: 2, exports: CONFIG_EXPORTS });
    }, SLOW);

    test('watch mode: a change to the file init read rebuilds the app with the new state', async () => {
      const app = makeApp(bundler, { config }, CONFIG_ANSWER, files);
      const watched = await watchBundle(bundler, app, options);
      try {
        const first = (await watched.next())!;
        expect(runBuilt(first.entry)).toEqual({ sum: 21, count: 2, exports: CONFIG_EXPORTS });
        const settings = join(app, 'config', 'settings.txt');
        const changed = 'alpha 1\nbeta 20\ngamma 300\n';
        // A watcher may still be starting when the first build ends: write again until a build comes.
        let answer: unknown;
        for (const start = performance.now(); performance.now() - start < 120_000;) {
          writeFileSync(settings, changed);
          const next = await watched.next(5_000);
          if (!next) continue;
          answer = runBuilt(next.entry);
          if ((answer as { sum: number }).sum !== 21) break;
        }
        expect(answer).toEqual({ sum: 321, count: 3, exports: CONFIG_EXPORTS });
        expect(readFileSync(join(app, 'src', 'config.wasm'))).toEqual(Buffer.from(config)); // the source untouched
      } finally {
        await watched.close();
      }
    }, SLOW);
  });
});

describe.each(BUNDLERS)('%s', (bundler) => {
  test('emits the module `wiz init` writes, and the built app answers from the snapshot', async () => {
    const app = makeApp(bundler, { counter }, COUNTER_ANSWER);
    const built = await bundle(bundler, app);
    expect(emitted(bundler, built.wasm, 'counter')).toEqual([counterInit]);
    expect(runBuilt(built.entry)).toEqual(INITIALIZED);
    expect(built.warnings).toEqual([]);
  }, SLOW);

  test('init options reach wiz (renames), and its warnings are the bundler\'s', async () => {
    const app = makeApp(bundler, { counter }, '{ total: e.total(), exports: Object.keys(e).sort() }');
    const built = await bundle(bundler, app, { renames: ['total=answer', 'extra=missing'] });
    expect(emitted(bundler, built.wasm, 'counter')).toEqual([expectedInit(counter, ['-r', 'total=answer', '-r', 'extra=missing'])]);
    expect(runBuilt(built.entry)).toEqual({ total: 338350, exports: ['memory', 'stored', 'total'] });
    expect(built.warnings).toEqual([expect.stringContaining('src/counter.wasm: rename extra=missing: the module exports no "missing"')]);
  }, SLOW);

  test('a module whose init fails fails the build, in one line that names the file', async () => {
    const app = makeApp(bundler, { bad: await wat('(module (func (export "run")))') }, '{}');
    // Without colours, which some bundlers add under CI.
    const failure = await bundle(bundler, app).then(() => undefined, (e: Error) => e.message.replace(/\x1b\[[\d;]*m/g, ''));
    expect(failure).toMatch(/src\/bad\.wasm: the module does not export the init function "wizer-initialize" \(its exported functions: "run"\); name one with initFunc(\n|$)/);
    expect(failure).not.toMatch(/\n\s+at /); // no stack
  }, SLOW);

  test('an excluded module is left as it is: the bundle has the original, whose state init never set', async () => {
    const app = makeApp(bundler, { counter }, COUNTER_ANSWER);
    const built = await bundle(bundler, app, { exclude: 'src/counter.wasm' });
    expect(emitted(bundler, built.wasm, 'counter')).toEqual([counter]);
    expect(runBuilt(built.entry)).toEqual({ answer: 0, stored: 0, exports: ['answer', 'memory', 'stored', 'wizer-initialize'] });
  }, SLOW);

  test('deterministic by default: two checkouts build the same bytes, although init reads random bytes', async () => {
    const seeded = await wat(SEEDED);
    const expected = expectedInit(seeded, ['--allow-wasi', '--deterministic']);
    const outputs = [];
    for (let i = 0; i < 2; i++) {
      const app = makeApp(bundler, { seeded }, SEED_ANSWER);
      const built = await bundle(bundler, app, { allowWasi: true, cache: false });
      expect(emitted(bundler, built.wasm, 'seeded')).toEqual([expected]);
      const answer = runBuilt(built.entry) as { seed: string };
      expect(answer.seed).not.toBe('0');
      outputs.push({ answer, files: bundleFiles(built.outDir, app) });
    }
    expect(outputs[1]).toEqual(outputs[0]);
  }, SLOW);
});

/**
 * Every file of a build, by path relative to its folder. Some bundlers name sources in comments by their path from
 * the working directory, which is the project's own folder when a user builds; here it is not, so the app's folder
 * is replaced by a placeholder.
 */
function bundleFiles(dir: string, app: string): Record<string, string> {
  const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  const text = (file: string) => readFileSync(file, 'utf8').replaceAll(app, '<app>').replaceAll(relative(process.cwd(), app), '<app>');
  return Object.fromEntries(files.sort().map((file) => [relative(dir, file), extname(file) === '.wasm' ? readFileSync(file).toString('base64') : text(file)]));
}

describe('options', () => {
  test('include names the modules to pre-initialize (a glob from the root, or a regular expression)', async () => {
    for (const [include, initialized] of [['src/*.wasm', true], [/other\.wasm$/, false]] as const) {
      const app = makeApp('esbuild', { counter }, COUNTER_ANSWER);
      const built = await bundle('esbuild', app, { include });
      expect(built.wasm.map((w) => w.bytes)).toEqual([initialized ? counterInit : counter]);
    }
  }, SLOW);

  test('deterministic: false gives init the real random bytes: each build differs, and none is cached', async () => {
    const seeded = await wat(SEEDED);
    const app = makeApp('esbuild', { seeded }, SEED_ANSWER);
    const first = await bundle('esbuild', app, { allowWasi: true, deterministic: false });
    const second = await bundle('esbuild', app, { allowWasi: true, deterministic: false });
    expect(first.wasm[0]!.bytes).not.toEqual(second.wasm[0]!.bytes);
    expect(first.warnings).toEqual([expect.stringMatching(/src\/seeded\.wasm: .*random/)]);
    expect(existsSync(join(app, 'node_modules', '.cache', 'wiz'))).toBe(true); // the outputs' folder
    expect(cacheEntries(join(app, 'node_modules', '.cache', 'wiz'))).toEqual([]);
  }, SLOW);
});

describe('the Vite page in headless Chromium', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  test('loads the emitted module and shows the answer from the snapshot', async (context) => {
    const app = makeApp('vite', { counter }, COUNTER_ANSWER);
    const built = await viteClientBuild(app);
    expect(emitted('vite', built.wasm, 'counter')).toEqual([counterInit]);
    const browser = await launchChromiumOrSkip('the plugin\'s page test');
    if (!browser) return context.skip();
    closers.push(() => browser.close());
    const server = await serveFolder(built.outDir);
    closers.push(() => server.close());
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('answer')?.textContent !== '', undefined, { timeout: 60_000 });
    expect(JSON.parse(await page.locator('#answer').textContent() ?? 'null')).toEqual(INITIALIZED);
    expect(problems).toEqual([]);
    expect(server.missing).toEqual([]);
  }, SLOW);
});
