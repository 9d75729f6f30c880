// Components in a real browser: the library's browser build pre-initializes components in headless Chromium
// (Debian's chromium, driven by playwright-core), with jco's transpiler and preview2-shim's browser build resolved
// by the page's import map (test/helpers/component-browser-page.ts). The snapshot the page writes is the one Node
// writes for the same input and the same host answers, and, run in the page as a user of it would, it answers as
// the live component right after init.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { browserProblem, buildBrowser } from '../scripts/build-browser.ts';
import { C_TOOLCHAIN_HINT, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { buildComponentApp, componentWat } from '../scripts/build-component-fixtures.ts';
import { preinitializeComponent, type ComponentPreinitializeOptions, type WizError } from '../src/index.ts';
import { CHROMIUM, CHROMIUM_ARGS, hasChromiumOrSkip } from './helpers/chromium.ts';
import * as shapes from './helpers/component.ts';
import {
  browserWasiInNode, importMap, STRICT_CSP, startComponentPageServer, type ComponentPageServer, type PagePreinit, type PageRun,
  type WasiConfig,
} from './helpers/component-browser-page.ts';

const root = join(import.meta.dirname, '..');
const BUNDLE = join(root, '.browser', 'component-bundle');
const hasChromium = hasChromiumOrSkip('component browser tests');
const cToolchain = hasCToolchain();
if (!cToolchain && (process.env.CI === 'true' || process.env.WIZ_REQUIRE_C_FIXTURES)) throw new Error(`C fixtures required but no wasm32-wasi clang: ${C_TOOLCHAIN_HINT}`);
if (!cToolchain) console.warn(`the C component in the browser skipped: no wasm32-wasi clang (${C_TOOLCHAIN_HINT})`);

// Built here rather than taken from dist/, so that the page runs the current source.
const bundle = await buildBrowser(BUNDLE);

/** Init reads a random number and the monotonic clock through WASI 0.2 (no adapter, no memory). */
const RANDOM = `(component
  (import "wasi:random/random@0.2.0" (instance $random (export "get-random-u64" (func (result u64)))))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $clock (export "now" (func (result u64)))))
  (core func $rand (canon lower (func $random "get-random-u64")))
  (core func $now (canon lower (func $clock "now")))
  (core module $m
    (import "host" "rand" (func $rand (result i64)))
    (import "host" "now" (func $now (result i64)))
    (global $seed (mut i64) (i64.const 0))
    (global $started (mut i64) (i64.const 0))
    (global $inits (mut i32) (i32.const 0))
    (func (export "init")
      (global.set $seed (call $rand))
      (global.set $started (call $now))
      (global.set $inits (i32.add (global.get $inits) (i32.const 1))))
    (func (export "seed") (result i64) (global.get $seed))
    (func (export "started") (result i64) (global.get $started))
    (func (export "inits") (result i32) (global.get $inits)))
  (core instance $host (export "rand" (func $rand)) (export "now" (func $now)))
  (core instance $i (instantiate $m (with "host" (instance $host))))
  (func (export "wizer-initialize") (canon lift (core func $i "init")))
  (func (export "seed") (result u64) (canon lift (core func $i "seed")))
  (func (export "started") (result u64) (canon lift (core func $i "started")))
  (func (export "inits") (result u32) (canon lift (core func $i "inits")))
)`;

test('the browser bundle has no Node built-in, and leaves jco\'s transpiler for the page to resolve', () => {
  const code = readFileSync(bundle.file, 'utf8');
  expect(browserProblem(code)).toBeUndefined();
  // A variable specifier, kept as it is: the page (its import map, or its bundler) says where the package is.
  expect(code).toContain('"@bytecodealliance/jco-transpile/component"');
  expect(code).not.toContain('js-component-bindgen-component'); // the transpiler itself is not in the bundle
});

test('the page resolves jco\'s transpiler and preview2-shim to their browser files, by their packages\' exports', () => {
  const { imports } = importMap();
  expect(imports['@bytecodealliance/jco-transpile/component']).toBe('/node_modules/@bytecodealliance/jco-transpile/vendor/js-component-bindgen-component.js');
  // What the transpiler itself imports (it is a component, run with preview2-shim).
  const transpiler = readFileSync(join(root, imports['@bytecodealliance/jco-transpile/component']!), 'utf8');
  const bare = [...transpiler.matchAll(/^import .* from '([^'.][^']*)';$/gm)].map((m) => m[1]!);
  expect(bare.sort()).toEqual(['cli', 'filesystem', 'io', 'random'].map((n) => `@bytecodealliance/preview2-shim/${n}`));
  for (const specifier of bare) expect(imports[specifier]).toBe(`/node_modules/${specifier.replace('preview2-shim/', 'preview2-shim/dist/browser/')}.js`);
  expect(imports['@bytecodealliance/preview2-shim']).toBe('/node_modules/@bytecodealliance/preview2-shim/dist/browser/index.js');
  expect(imports['@bytecodealliance/preview2-shim/instantiation']).toBe('/node_modules/@bytecodealliance/preview2-shim/dist/common/instantiation.js');
  expect(Object.values(imports).filter((url) => url.includes('/nodejs/'))).toEqual([]);
  for (const url of Object.values(imports)) expect(readFileSync(join(root, url)).length, url).toBeGreaterThan(0);
});

/** A hand-written shape: the component, how to pre-initialize it, what to call and what the calls answer. */
interface Shape {
  name: string;
  wat: string;
  options: ComponentPreinitializeOptions;
  init: string;
  calls: string[];
  answers: Record<string, unknown>;
}

const SHAPES: Shape[] = [
  {
    name: 'shared-memory', wat: shapes.SHARED_MEMORY, options: {}, init: 'wizer-initialize',
    calls: ['count', 'seed', 'at-64', 'at-128', 'at-70000'],
    answers: { count: 1, seed: '1311768467463790320n', 'at-64': 42, 'at-128': 1042, 'at-70000': 7 },
  },
  { name: 'nested', wat: shapes.NESTED, options: {}, init: 'wizer-initialize', calls: ['get'], answers: { get: 106 } },
  {
    name: 'float-bits', wat: shapes.FLOAT_BITS, options: {}, init: 'wizer-initialize',
    calls: ['f-bits', 'd-bits', 'v-lo', 'v-hi', 'z-bits'],
    answers: {
      'f-bits': 0x7fa00001, 'd-bits': `${0xfff8000000000123n}n`, 'v-lo': `${0x0123456789abcdefn}n`,
      'v-hi': `${0xfedcba9876543210n}n`, 'z-bits': `${0x8000000000000000n}n`,
    },
  },
  {
    name: 'interface-init', wat: shapes.INTERFACE_INIT, options: { initFunc: 'wiz:test/init#setup(3, 4)' },
    init: 'wiz:test/init#setup(3, 4)', calls: ['get'], answers: { get: 403 },
  },
];

describe.skipIf(!hasChromium)('component pre-initialization in headless Chromium', () => {
  let browser: Browser;
  let server: ComponentPageServer;
  let page: Page;
  const problems: string[] = [];
  const components = new Map<string, Uint8Array>();

  beforeAll(async () => {
    server = await startComponentPageServer(BUNDLE);
    for (const s of SHAPES) components.set(s.name, await componentWat(s.wat));
    components.set('random', await componentWat(RANDOM));
    components.set('traps', await componentWat(shapes.TRAPS));
    if (cToolchain) components.set('app', new Uint8Array(readFileSync(await buildComponentApp())));
    for (const [name, bytes] of components) server.put(name, bytes);
    try {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 120_000 }); // a busy machine is slow
    } catch (e) {
      throw new Error(`Chromium (${CHROMIUM}) cannot start: ${String((e as Error).message ?? e).split('\n')[0]}`);
    }
    page = await browser.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text().slice(0, 300)}`); });
    await page.goto(server.url);
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Calls the page module's function: `expression` is its body, with the module as `p`. */
  async function inPage<T>(expression: string, on = page): Promise<T> {
    const result = await on.evaluate(`import('/component-page.js').then(async (p) => ${expression})`) as T;
    if (on === page) {
      expect(problems).toEqual([]);
      expect(server.missing).toEqual([]);
    }
    return result;
  }
  const preinitInPage = (name: string, options: ComponentPreinitializeOptions & { wasi?: WasiConfig } = {}) =>
    inPage<PagePreinit>(`p.preinitialize(${JSON.stringify(name)}, ${JSON.stringify(options)})`);
  const runInPage = (name: string, options: { init?: string; calls: string[]; wasi?: WasiConfig }) =>
    inPage<PageRun>(`p.run(${JSON.stringify(name)}, ${JSON.stringify(options)})`);
  /** The page's output, after checking that there is one; put on the server as `<name>.snapshot`. */
  function output(r: PagePreinit, name: string): Uint8Array {
    expect(r.error, 'the page failed').toBeUndefined();
    const bytes = new Uint8Array(r.bytes!);
    server.put(`${name}.snapshot`, bytes);
    return bytes;
  }
  const answers = (r: PageRun) => Object.fromEntries(Object.entries(r.results).map(([k, v]) => [k, v.value ?? v]));

  for (const s of SHAPES) {
    test(`${s.name}: the page writes the bytes Node writes, and the snapshot answers as the live component after init`, async () => {
      const bytes = output(await preinitInPage(s.name, s.options), s.name);
      expect(bytes).toEqual(await preinitializeComponent(components.get(s.name)!, s.options));

      const live = await runInPage(s.name, { init: s.init, calls: s.calls });
      const snap = await runInPage(`${s.name}.snapshot`, { calls: s.calls });
      expect(live.init?.error).toBeUndefined();
      expect(snap.results).toEqual(live.results);
      expect(answers(snap)).toEqual(s.answers);
      // A top-level init function is no longer exported; an interface stays.
      const removed = s.options.initFunc ? [] : ['wizerInitialize'];
      expect(live.exports).toEqual(expect.arrayContaining(removed));
      expect(snap.exports).toEqual(live.exports.filter((e) => !removed.includes(e)));
    });
  }

  test('a trap in init is the one-line error Node gives', async () => {
    const r = await preinitInPage('traps');
    const node = await preinitializeComponent(components.get('traps')!).then(() => undefined, (e: WizError) => ({ code: e.code, message: e.message }));
    expect(node?.code).toBe('trap');
    expect(r.bytes).toBeUndefined();
    expect(r.error).toEqual({ name: 'WizError', ...node });
  });

  test('without imports, a WASI call during init is the one-line error Node gives, naming the call', async () => {
    const r = await preinitInPage('random');
    const node = await preinitializeComponent(components.get('random')!).then(() => undefined, (e: WizError) => ({ code: e.code, message: e.message }));
    expect(node).toMatchObject({ code: 'import-call', message: expect.stringContaining('"wasi:random/random" "get-random-u64"') });
    expect(r.error).toEqual({ name: 'WizError', ...node });
  });

  test('preview2-shim\'s browser build as imports: what init read is in the snapshot, as Node writes it given the same answers', async () => {
    const bytes = output(await preinitInPage('random', { wasi: {} }), 'random');
    const snap = await runInPage('random.snapshot', { calls: ['seed', 'started', 'inits'], wasi: {} });
    const again = await runInPage('random.snapshot', { calls: ['seed'], wasi: {} });
    const live = await runInPage('random', { init: 'wizer-initialize', calls: ['seed', 'started', 'inits'], wasi: {} });
    const seed = snap.results.seed!.value as string;
    expect(seed).toMatch(/^\d+n$/);
    // The number init read is kept: every instance of the snapshot has it, and a live component reads another.
    expect(again.results.seed).toEqual({ value: seed });
    expect(live.results.seed).not.toEqual({ value: seed });
    // The clock starts at 0 and ticks 1 ms a read.
    expect(answers(snap)).toEqual({ seed, started: '1000000n', inits: 1 });
    expect(answers(live)).toEqual({ ...answers(snap), seed: live.results.seed!.value });

    const node = await preinitializeComponent(components.get('random')!, {
      imports: {
        'wasi:random/random': { getRandomU64: () => BigInt(seed.slice(0, -1)) },
        'wasi:clocks/monotonic-clock': { now: () => 1_000_000n },
      },
    });
    expect(bytes).toEqual(node);
  });

  describe.skipIf(!cToolchain)('a C reactor through the WASI preview1 adapter', () => {
    const settings = 'alpha 1\nbeta 20\ngamma 300\n';
    const wasi: WasiConfig = { files: { '/config': { 'settings.txt': settings } }, env: { GREETING: 'hello' } };
    const calls = ['total', 'inits', 'greeting', 'count-lines', 'hello', 'started'];

    test('init reads a file, the environment and the clock from the browser build; Node writes the same bytes with that host', async () => {
      const r = await preinitInPage('app', { wasi });
      const bytes = output(r, 'app');
      expect(r.stdout).toEqual(['init: total=321 greeting=hello']);
      // The same host in Node: preview2-shim's browser build. (Node's build answers otherwise, and so leaves
      // other bytes in the guest's memory: its stdout is a terminal, and its file reads end differently.)
      const host = await browserWasiInNode(wasi);
      expect(bytes).toEqual(await preinitializeComponent(components.get('app')!, { imports: host.imports }));
      expect(host.stdout).toEqual(r.stdout);

      const live = await runInPage('app', { init: 'wizer-initialize', calls, wasi });
      // At run time the environment differs: the snapshot's greeting is the one init read.
      const snap = await runInPage('app.snapshot', { calls, wasi: { ...wasi, env: { GREETING: 'run time' } } });
      expect(snap.results).toEqual(live.results);
      expect(answers(snap)).toEqual({ total: 321, inits: 1, greeting: 'hello', 'count-lines': 3, hello: {}, started: '0n' });
      expect(live.stdout).toEqual(['init: total=321 greeting=hello', 'hello, hello']);
      expect(snap.stdout).toEqual(['hello, hello']);
      expect(snap.exports).toEqual(live.exports.filter((e) => e !== 'wizerInitialize'));
    }, 300_000);
  });

  test('under a Content-Security-Policy without data: in script-src, Chromium refuses the glue wiz loads from a data: URL', async () => {
    const strict = await browser.newPage();
    const refused: string[] = [];
    strict.on('console', (m) => { if (m.type() === 'error') refused.push(m.text()); });
    try {
      await strict.goto(server.strictUrl);
      const r = await inPage<PagePreinit>(`p.preinitialize('nested')`, strict);
      expect(r.bytes).toBeUndefined();
      expect(r.error).toMatchObject({ name: 'WizError', code: 'unsupported' });
      expect(r.error?.message).toMatch(/^cannot load jco's glue for the component as a module from a data: URL \(.*\); a page's Content-Security-Policy must allow data: in script-src$/);
      expect(r.error!.message.length).toBeLessThan(400);
      // jco's transpiler loaded (its modules are the server's): only the glue, a data: URL, was refused.
      expect(refused).toEqual([expect.stringMatching(new RegExp(`^Loading the script 'data:text/javascript;base64,[^']+' violates the following Content Security Policy directive: "${STRICT_CSP}"`))]);
    } finally {
      await strict.close();
    }
  });
});
