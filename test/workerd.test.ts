// What WebAssembly can do inside workerd (Cloudflare's runtime), the ground a state image restored there stands
// on: compiling bytes at run time is refused, modules given at deploy time run, and their globals, memories and
// tables are reachable from JavaScript. Also that the library's browser bundle loads there as a module.
// Skips with a line when workerd cannot start, fails under CI=true (see test/helpers/workerd.ts).
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildBrowser } from '../scripts/build-browser.ts';
import * as wiz from '../src/index.ts';
import { startWorkerd, workerdOrSkip, type Workerd } from './helpers/workerd.ts';
import { wat } from './helpers/wat.ts';

const available = workerdOrSkip('workerd tests');

const GUEST = `(module
  (import "env" "add" (func $add (param i32) (result i32)))
  (memory (export "mem") 1 10)
  (memory (export "mem2") 2)
  (global (export "g") (mut i32) (i32.const 5))
  (global (export "g64") (mut i64) (i64.const -3))
  (global (export "gf") (mut f64) (f64.const 1.5))
  (table (export "tab") 2 funcref)
  (func $answer (result i32) i32.const 42)
  (elem (i32.const 0) $answer)
  (func (export "bump") (result i32) (global.set 0 (call $add (global.get 0))) (global.get 0))
  (func (export "load") (param i32) (result i32) (i32.load 0 (local.get 0)))
  (func (export "store2") (param i32 i32) (i32.store 1 (local.get 0) (local.get 1)))
  (func (export "size") (result i32) (memory.size 0)))`;

// Each route answers JSON; the bytes to compile, validate or parse come as the request body.
const MAIN = `import guest from './guest.wasm';
import * as wiz from './wiz.js';

const attempt = async (f) => {
  try { return { value: await f() }; } catch (e) { return { error: e.constructor.name, message: e.message }; }
};
const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');

const routes = {
  async compile(bytes) {
    return {
      compile: await attempt(async () => { await WebAssembly.compile(bytes); return 'compiled'; }),
      construct: await attempt(() => { new WebAssembly.Module(bytes); return 'constructed'; }),
      instantiate: await attempt(async () => { await WebAssembly.instantiate(bytes, { env: { add: (x) => x } }); return 'instantiated'; }),
    };
  },
  async validate(bytes) {
    return { good: WebAssembly.validate(bytes), bad: WebAssembly.validate(bytes.subarray(0, bytes.length - 1)) };
  },
  async instance() {
    const { exports: e } = new WebAssembly.Instance(guest, { env: { add: (x) => x + 10 } });
    const r = { isModule: guest instanceof WebAssembly.Module, exports: WebAssembly.Module.exports(guest) };
    r.globals = { g: e.g.value, bumped: e.bump(), after: e.g.value };
    e.g.value = 100;
    r.globals.written = e.bump();
    r.globals.g64 = String(e.g64.value);
    e.g64.value = 2n ** 62n;
    r.globals.g64written = String(e.g64.value);
    r.globals.gf = e.gf.value;
    new DataView(e.mem.buffer).setInt32(16, 0x01020304, true);
    r.memory = { pages: e.mem.buffer.byteLength / 65536, loaded: e.load(16), grow: e.mem.grow(2), grown: e.mem.buffer.byteLength / 65536, size: e.size() };
    e.store2(8, 1234);
    r.memory2 = { pages: e.mem2.buffer.byteLength / 65536, at8: new DataView(e.mem2.buffer).getInt32(8, true), mem0at8: e.load(8) };
    r.table = { length: e.tab.length, called: e.tab.get(0)(), empty: e.tab.get(1), grow: e.tab.grow(3), grown: e.tab.length };
    e.tab.set(4, e.tab.get(0));
    r.table.set = e.tab.get(4)();
    r.promised = await attempt(async () => (await WebAssembly.instantiate(guest, { env: { add: (x) => x } })) instanceof WebAssembly.Instance);
    return r;
  },
  async digest(bytes) {
    const { exports: e } = new WebAssembly.Instance(guest, { env: { add: (x) => x } });
    new Uint8Array(e.mem.buffer).set(bytes, 1024);
    return {
      abc: hex(await crypto.subtle.digest('SHA-256', new TextEncoder().encode('abc'))),
      memory: hex(await crypto.subtle.digest('SHA-256', e.mem.buffer)),
    };
  },
  async wiz(bytes) {
    const context = wiz.parseModule(bytes);
    const instrumented = wiz.instrument(context);
    return {
      exports: context.exports.map((x) => x.name),
      globals: context.globals.length,
      memories: context.memories.length,
      instrumentedExports: wiz.parseModule(instrumented.bytes).exports.map((x) => x.name),
      valid: WebAssembly.validate(instrumented.bytes),
    };
  },
};

export default {
  async fetch(request) {
    const route = routes[new URL(request.url).pathname.slice(1)];
    if (!route) return new Response('no such route', { status: 404 });
    return Response.json(await route(new Uint8Array(await request.arrayBuffer())));
  },
};
`;

describe.skipIf(!available)('WebAssembly in workerd', () => {
  let guest: Uint8Array;
  let worker: Workerd;
  let bundleDir: string;
  const call = async (route: string, body?: Uint8Array) => {
    const response = await worker.fetch(`/${route}`, { method: 'POST', body: body && new Uint8Array(body) });
    if (!response.ok) throw new Error(`/${route}: ${response.status} ${await response.text()}\n${worker.logs()}`);
    return response.json() as Promise<any>;
  };

  beforeAll(async () => {
    guest = await wat(GUEST);
    bundleDir = mkdtempSync(join(tmpdir(), 'wiz-workerd-bundle-'));
    // The current source, bundled as dist/browser/wiz.js is: one self-contained ES module.
    const bundle = await buildBrowser(bundleDir);
    worker = await startWorkerd({ name: 'wasm-facts', main: MAIN, modules: { 'wiz.js': readFileSync(bundle.file, 'utf8') }, wasm: { 'guest.wasm': guest } });
  }, 180_000);

  afterAll(async () => {
    await worker?.stop();
    if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
  });

  test('compiling bytes at run time is refused, by each entry point, with one message', async () => {
    expect(await call('compile', guest)).toEqual({
      compile: { error: 'CompileError', message: 'WebAssembly.compile(): Wasm code generation disallowed by embedder' },
      construct: { error: 'CompileError', message: 'WebAssembly.Module(): Wasm code generation disallowed by embedder' },
      instantiate: { error: 'CompileError', message: 'WebAssembly.instantiate(): Wasm code generation disallowed by embedder' },
    });
  });

  test('validating bytes works', async () => {
    expect(await call('validate', guest)).toEqual({ good: true, bad: false });
  });

  test('a module given at deploy time instantiates, with globals, memories, growth and tables reachable', async () => {
    const r = await call('instance');
    expect(r.isModule).toBe(true);
    expect(r.exports.map((x: { name: string; kind: string }) => `${x.kind} ${x.name}`)).toEqual([
      'memory mem', 'memory mem2', 'global g', 'global g64', 'global gf', 'table tab', 'function bump', 'function load', 'function store2', 'function size',
    ]);
    // A mutable global exported reads and writes through .value; the code sees what JavaScript wrote.
    expect(r.globals).toEqual({ g: 5, bumped: 15, after: 15, written: 110, g64: '-3', g64written: String(2n ** 62n), gf: 1.5 });
    expect(r.memory).toEqual({ pages: 1, loaded: 0x01020304, grow: 1, grown: 3, size: 3 });
    // Two memories: a store to memory 1 lands there and not in memory 0.
    expect(r.memory2).toEqual({ pages: 2, at8: 1234, mem0at8: 0 });
    expect(r.table).toEqual({ length: 2, called: 42, empty: null, grow: 2, grown: 5, set: 42 });
    expect(r.promised).toEqual({ value: true }); // instantiate(module) is not compiling
  });

  test('crypto.subtle digests strings and memory as Node does', async () => {
    const payload = new TextEncoder().encode('state image');
    const memory = new Uint8Array(65536);
    memory.set(payload, 1024);
    expect(await call('digest', payload)).toEqual({
      abc: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
      memory: createHash('sha256').update(memory).digest('hex'),
    });
  });

  test("the library's browser bundle loads as a module and parses and instruments as in Node", async () => {
    const context = wiz.parseModule(guest);
    const instrumented = wiz.instrument(context);
    expect(await call('wiz', guest)).toEqual({
      exports: context.exports.map((x) => x.name),
      globals: 3,
      memories: 2,
      instrumentedExports: wiz.parseModule(instrumented.bytes).exports.map((x) => x.name),
      valid: true,
    });
  });
});

describe.skipIf(!available)('startWorkerd', () => {
  test('a script that does not load fails the start with what workerd said', async () => {
    await expect(startWorkerd({ name: 'broken', main: 'export default {\n  fetch() { return new Response(; }\n};\n' }))
      .rejects.toThrow(/workerd exited \(status 1\)\n.*SyntaxError/s);
  }, 120_000);

  test('console output is in logs()', async () => {
    const worker = await startWorkerd({ main: "export default { fetch() { console.log('seen'); console.error('also'); return new Response('ok'); } };" });
    try {
      expect(await (await worker.fetch('/')).text()).toBe('ok');
      for (let i = 0; !worker.logs().includes('also') && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
      expect(worker.logs()).toMatch(/seen\n[^]*also|also\n[^]*seen/);
    } finally {
      await worker.stop();
    }
  }, 120_000);
});
