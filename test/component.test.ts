// Components: wiz init and wiz snapshot on WebAssembly components. The property that defines correctness: every
// export of the snapshot, run in a fresh host, answers as the live component right after init, and init does not
// run again.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { C_TOOLCHAIN_HINT, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { spawnSync } from 'node:child_process';
import { buildComponentApp, buildEngineComponent, buildQuickJsComponent, componentWat } from '../scripts/build-component-fixtures.ts';
import { isComponent, parseComponent, preinitializeComponent } from '../src/index.ts';
import * as shapes from './helpers/component.ts';
import { runComponent } from './helpers/component.ts';
import { tempDir, wiz, wizInit, WIZ_BIN } from './helpers/run.ts';

const cToolchain = hasCToolchain();
if (!cToolchain && (process.env.CI === 'true' || process.env.WIZ_REQUIRE_C_FIXTURES)) throw new Error(`C fixtures required but no wasm32-wasi clang: ${C_TOOLCHAIN_HINT}`);
if (!cToolchain) console.warn(`C component tests skipped: no wasm32-wasi clang (${C_TOOLCHAIN_HINT})`);

/** Writes bytes to a fresh file and returns its path. */
function file(bytes: Uint8Array, name = 'component.wasm'): string {
  const path = join(tempDir(), name);
  writeFileSync(path, bytes);
  return path;
}

/** The results of `calls` on the live component right after init, and on the snapshot (no init), each in a fresh process. */
function compare(original: string, snapshot: Uint8Array, calls: string[], init = 'wizer-initialize') {
  const live = runComponent(original, { init, calls });
  const snap = runComponent(file(snapshot), { calls });
  return { live, snap };
}

const APP_CALLS = ['total', 'inits', 'greeting', 'count-lines', 'hello'];

describe.skipIf(!cToolchain)('a C reactor component (wasi-libc, the preview1 adapter)', () => {
  let app: string;
  let configDir: string;
  beforeAll(async () => {
    app = await buildComponentApp();
    configDir = tempDir();
    writeFileSync(join(configDir, 'settings.txt'), 'alpha 1\nbeta 20\ngamma 300\n');
  }, 600_000);
  const args = () => ['--allow-wasi', '--mapdir', `/config::${configDir}`, '--inherit-env', '--deterministic'];
  const env = { PATH: process.env.PATH, GREETING: 'hello' };

  it('an empty environment variable reads as empty (jco\'s glue lowers empty strings through realloc, as the adapter needs)', () => {
    const ours = wizInit(readFileSync(app), args(), { env: { PATH: process.env.PATH, GREETING: '', OTHER: 'next' } });
    expect(ours.status, ours.stderr).toBe(0);
    expect(ours.stdout.toString()).toBe('init: total=321 greeting=\n');
    expect(runComponent(file(ours.output!), { calls: ['greeting'] }).results.greeting).toEqual({ value: '' });
  });

  it('wiz init reads a file, the environment and the clock once; the snapshot answers as the live component after init', () => {
    const ours = wizInit(readFileSync(app), args(), { env });
    expect(ours.stderr).toBe('');
    expect(ours.status).toBe(0);
    expect(ours.stdout.toString()).toBe('init: total=321 greeting=hello\n');
    expect(isComponent(ours.output!)).toBe(true);
    const preopens = { '/config': configDir };
    const live = runComponent(app, { init: 'wizer-initialize', calls: [...APP_CALLS, 'started'], preopens, env: { GREETING: 'hello' } });
    // At run time the environment differs: the snapshot's greeting is the one init read, not re-read.
    const snap = runComponent(file(ours.output!), { calls: [...APP_CALLS, 'started'], preopens, env: { GREETING: 'run time' } });
    expect(live.results.inits).toEqual({ value: 1 });
    for (const name of APP_CALLS) expect(snap.results[name], name).toEqual(live.results[name]);
    expect(snap.results.greeting).toEqual({ value: 'hello' });
    // Files and stdout work at run time (the adapter's state was kept as built: it holds this host's handles).
    expect(snap.results['count-lines']).toEqual({ value: 3 });
    expect(snap.output).toBe(live.output.replace(/^init: .*\n/, ''));
    expect(snap.output).toBe('hello, hello');
    // --deterministic: the clock init read started at 0.
    expect(snap.results.started).toEqual({ value: '0n' });
    expect(live.exports).toContain('wizerInitialize');
    expect(snap.exports).not.toContain('wizerInitialize');
    expect(snap.exports).toEqual(live.exports.filter((e) => e !== 'wizerInitialize'));
  }, 300_000);

  it('writes the same bytes every time with --deterministic, also to stdout', () => {
    const a = wizInit(readFileSync(app), [...args(), '--inherit-stdio=false'], { env });
    const b = wizInit(readFileSync(app), [...args(), '--inherit-stdio=false'], { env });
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout.toString()).toBe('');
    expect(Buffer.from(a.output!).equals(Buffer.from(b.output!))).toBe(true);
    const c = wiz(['init', app, '-o', '-', ...args()]);
    expect(c.status, c.stderr).toBe(0);
    // The component went to stdout: the guest's stdout went to stderr.
    expect(c.stderr).toContain('init: total=321');
    expect(isComponent(c.stdout)).toBe(true);
  }, 300_000);

  it('--keep-init-func keeps the export; without --deterministic wiz warns about the clock', () => {
    const kept = wizInit(readFileSync(app), ['--allow-wasi', '--mapdir', `/config::${configDir}`, '--keep-init-func'], { env });
    expect(kept.status, kept.stderr).toBe(0);
    expect(kept.stderr).toMatch(/^wiz: warning: the component read a clock \(wasi:clocks\/wall-clock now\) during init/);
    const snap = runComponent(file(kept.output!), { calls: ['inits', 'total'] });
    expect(snap.exports).toContain('wizerInitialize');
    expect(snap.results).toEqual({ inits: { value: 1 }, total: { value: 321 } });
  }, 300_000);

  it('warns when init leaves a file open (its handle means nothing to the host that runs the snapshot); stdio and preopens the adapter keeps are not counted', () => {
    const open = wizInit(readFileSync(app), args(), { env: { ...env, KEEP_OPEN: '1' } });
    expect(open.status, open.stderr).toBe(0);
    expect(open.stderr).toBe('wiz: warning: the init function "wizer-initialize" left a Descriptor of this host open: the snapshot keeps it, but its handle means nothing to the host that runs it; close it before init returns\n');
    expect(open.output).toBeDefined();
    // Init printed through the adapter's stdout and opened the file through its preopen: neither is warned about.
    expect(open.stdout.toString()).toBe('init: total=321 greeting=hello\n');
    const closed = wizInit(readFileSync(app), args(), { env });
    expect(closed.stderr).toBe('');
  }, 300_000);

  it('without --allow-wasi, a WASI call during init is one line naming it, exit 1, no output', () => {
    const r = wizInit(readFileSync(app), []);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^wiz: the component called the import "wasi:[^"]+" "[^"]+" during initialization, which wiz does not provide; pass --allow-wasi to provide WASI\n$/);
    expect(r.output).toBeUndefined();
  }, 300_000);

  it('--check-determinism compares the core modules\' states: it fails on the clock init read, passes with --deterministic', () => {
    const flags = ['--allow-wasi', '--mapdir', `/config::${configDir}`, '--inherit-stdio=false', '--check-determinism'];
    const r = wizInit(readFileSync(app), flags);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('wiz: init is not deterministic');
    expect(r.stderr).toMatch(/wiz: {3}core module 0:\n/);
    expect(r.stderr).toContain('init read a clock (wasi:clocks/wall-clock now)');
    expect(r.output).toBeUndefined();
    const ok = wizInit(readFileSync(app), [...flags, '--deterministic']);
    expect(ok.status, ok.stderr).toBe(0);
  }, 300_000);

  it('--keep-instrumentation, then wiz snapshot runs the component on and saves it again', () => {
    const gen0 = wizInit(readFileSync(app), [...args(), '--keep-instrumentation', '--keep-init-func'], { env });
    expect(gen0.status, gen0.stderr).toBe(0);
    const dir = tempDir();
    writeFileSync(join(dir, 'gen0.wasm'), gen0.output!);
    const gen1 = wiz(['snapshot', join(dir, 'gen0.wasm'), '--invoke', 'wizer-initialize', '--invoke', 'inits', '-o', join(dir, 'gen1.wasm'), '--allow-wasi', '--mapdir', `/config::${configDir}`, '--deterministic']);
    expect(gen1.status, gen1.stderr).toBe(0);
    // Init ran again at snapshot time and read the file anew: the adapter rebuilt its state for this host.
    expect(gen1.stdout.toString()).toBe('init: total=321 greeting=hello\nwizer-initialize\ninits = 2\n');
    const snap = runComponent(join(dir, 'gen1.wasm'), { calls: ['inits', 'total'] });
    expect(snap.results).toEqual({ inits: { value: 2 }, total: { value: 321 } });
  }, 300_000);
});

describe('component shapes, written as WAT', () => {
  it('modules sharing a memory: the owner holds the state, the importer\'s segments run no more', async () => {
    const bytes = await componentWat(shapes.SHARED_MEMORY);
    const r = wizInit(bytes);
    expect(r.status, r.stderr).toBe(0);
    const calls = ['count', 'seed', 'at-64', 'at-128', 'at-70000'];
    const { live, snap } = compare(file(bytes), r.output!, calls);
    expect(snap.results).toEqual(live.results);
    expect(snap.results).toEqual({ count: { value: 1 }, seed: { value: '1311768467463790320n' }, 'at-64': { value: 42 }, 'at-128': { value: 1042 }, 'at-70000': { value: 7 } });
  }, 120_000);

  it('a nested component with a module: its section is replaced and the sizes of the enclosing ones follow', async () => {
    const bytes = await componentWat(shapes.NESTED);
    const out = await preinitializeComponent(bytes);
    expect(parseComponent(out).modules).toHaveLength(1);
    const { live, snap } = compare(file(bytes), out, ['get']);
    expect(snap.results).toEqual(live.results);
    expect(snap.results.get).toEqual({ value: 106 });
    expect(snap.exports).toEqual(['get']);
  }, 120_000);

  it('NaN payloads (a signalling NaN), -0 and v128 globals keep their bits', async () => {
    const bytes = await componentWat(shapes.FLOAT_BITS);
    const out = await preinitializeComponent(bytes);
    const { live, snap } = compare(file(bytes), out, ['f-bits', 'd-bits', 'v-lo', 'v-hi', 'z-bits']);
    expect(snap.results).toEqual(live.results);
    expect(snap.results).toEqual({
      'f-bits': { value: 0x7fa00001 },
      'd-bits': { value: `${0xfff8000000000123n}n` },
      'v-lo': { value: `${0x0123456789abcdefn}n` },
      'v-hi': { value: `${0xfedcba9876543210n}n` },
      'z-bits': { value: `${0x8000000000000000n}n` },
    });
  }, 120_000);

  it('an interface function with arguments as the init function (-f \'iface#name(args)\'), and wiz snapshot of it', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in.wasm'), await componentWat(shapes.INTERFACE_INIT));
    const gen0 = wiz(['init', join(dir, 'in.wasm'), '-f', 'wiz:test/init#setup(3, 4)', '--keep-instrumentation', '-o', join(dir, 'gen0.wasm')]);
    expect(gen0.status, gen0.stderr).toBe(0);
    expect(runComponent(join(dir, 'gen0.wasm'), { calls: ['get'] }).results.get).toEqual({ value: 403 });
    const gen1 = wiz(['snapshot', join(dir, 'gen0.wasm'), '--invoke', 'wiz:test/init#setup(5, 6)', '--invoke', 'get', '-o', join(dir, 'gen1.wasm')]);
    expect(gen1.status, gen1.stderr).toBe(0);
    expect(gen1.stdout.toString()).toBe('wiz:test/init#setup(5, 6)\nget = 605\n');
    expect(runComponent(join(dir, 'gen1.wasm'), { calls: ['get'] }).results.get).toEqual({ value: 605 });
    // gen1 was written without --keep-instrumentation: it cannot be snapshotted again.
    const again = wiz(['snapshot', join(dir, 'gen1.wasm'), '-o', join(dir, 'gen2.wasm')]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/carries no instrumentation/);
    expect(existsSync(join(dir, 'gen2.wasm'))).toBe(false);
  }, 180_000);

  it('wiz inspect shows the exports and each core module; -v sums the modules\' data', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in.wasm'), await componentWat(shapes.SHARED_MEMORY));
    const init = wiz(['init', join(dir, 'in.wasm'), '-o', join(dir, 'out.wasm'), '-v']);
    expect(init.status, init.stderr).toBe(0);
    expect(init.stderr).toMatch(/^wiz: data {7}1 segment, 1 bytes -> 4 segments, /m);
    const r = wiz(['inspect', join(dir, 'out.wasm')]);
    expect(r.status, r.stderr).toBe(0);
    const text = r.stdout.toString();
    expect(text).toMatch(/^.*out\.wasm: a component, [\d,]+ bytes, 3 core modules\n/);
    // The init export is gone: the others follow.
    expect(text).toContain('exports       count (func), seed (func), at-64 (func), at-128 (func), at-70000 (func)\n');
    expect(text).toMatch(/core module 0: state snapshotted by wiz init\n[^]*0: 2 pages \(no max\)/);
    const json = JSON.parse(wiz(['inspect', join(dir, 'out.wasm'), '--json']).stdout.toString()) as { modules: { role: string }[] };
    expect(json.modules.map((m) => m.role)).toEqual(['snapshot', 'snapshot', 'snapshot']);
  }, 120_000);

  const refusals: [string, () => Promise<Uint8Array> | Uint8Array, string[], RegExp][] = [
    ['a module instantiated twice', () => componentWat(shapes.TWICE), [], /^wiz: core module 0 is instantiated more than once: one module section cannot hold the state of two instances/],
    ['a component start function', () => componentWat(shapes.START), [], /^wiz: the component has a start function: it runs at every instantiation/],
    ['a core module import', () => componentWat(shapes.MODULE_IMPORT), [], /^wiz: the component imports a core module \("m"\)/],
    ['a component import', () => componentWat(shapes.COMPONENT_IMPORT), [], /^wiz: the component imports a component \("c"\)/],
    ['invalid code in a core module', () => componentWat(shapes.INVALID_CODE), [], /^wiz: core module 0: invalid module: Compiling function #0 failed: i64\.add/],
    ['an invalid core module that nothing instantiates', () => componentWat(shapes.INVALID_UNUSED), [], /^wiz: core module 0: invalid module: Compiling function #0 failed: not enough arguments/],
    ['a trap in init', () => componentWat(shapes.TRAPS), [], /^wiz: the init function "wizer-initialize" trapped: .*unreachable/],
    ['a missing init function', () => componentWat(shapes.NESTED), ['-f', 'nope'], /^wiz: the component does not export the init function "nope" \(its exports: "wizer-initialize", "get"\)/],
    ['an init function given the wrong arguments', () => componentWat(shapes.INTERFACE_INIT), ['-f', 'wiz:test/init#setup(1)'], /^wiz: the init function "wiz:test\/init#setup\(1\)" takes 2 arguments, not 1/],
    ['renames', () => componentWat(shapes.NESTED), ['-r', 'a=get'], /^wiz: -r\/--rename-func renames core module exports/],
    ['a truncated component', async () => (await componentWat(shapes.NESTED)).subarray(0, 40), [], /^wiz: malformed component: /],
  ];
  for (const [what, make, args, message] of refusals) {
    it(`refuses ${what} in one line, exit 1, no output file`, async () => {
      const r = wizInit(await make(), args);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.status).toBe(1);
      expect(r.output).toBeUndefined();
    }, 120_000);
  }

  it('isComponent tells a component from a core module by its preamble', async () => {
    const bytes = await componentWat(shapes.NESTED);
    expect(isComponent(bytes)).toBe(true);
    expect(isComponent(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))).toBe(false);
    expect(isComponent(await preinitializeComponent(bytes))).toBe(true);
  }, 120_000);
});

describe.skipIf(!cToolchain)('a componentize-js component (the StarlingMonkey engine)', () => {
  it('pre-initialized at component level, answers as the component componentize-js builds with the native Wizer', async () => {
    // componentize-js's own build, recorded: its engine, flags, environment and stdin (cached in .fixtures/engine).
    const e = await buildEngineComponent();
    const out = join(tempDir(), 'engine.init.wasm');
    const mapdir = e.args.find((a) => a.startsWith('--mapdir='))!.slice('--mapdir='.length);
    const r = spawnSync(process.execPath, [WIZ_BIN, 'init', e.component, '-o', out, '-f', 'init', '--allow-wasi',
      '--mapdir', `${e.sourcesGuest}::${e.sourcesHost}`, '--mapdir', mapdir, '--inherit-env', '-q'], {
      env: { PATH: process.env.PATH, ...e.env }, input: e.stdin, encoding: 'utf8', maxBuffer: 1 << 28,
    });
    expect(r.status, r.stderr).toBe(0);
    const ours = runComponent(out, { calls: ['hello', 'init'] });
    const native = runComponent(e.nativeComponent, { calls: ['hello'] });
    expect(native.results.hello).toEqual({ value: 'hello from StarlingMonkey, 1+4+9' });
    expect(ours.results.hello).toEqual(native.results.hello);
    // The init export is gone: the engine's init ran once, at build time.
    expect(ours.exports).toEqual(['hello']);
  }, 900_000);
});

describe('a componentize-qjs component (QuickJS, several core modules linked dynamically)', () => {
  it('wiz runs a call during init and snapshots it: the snapshot answers as the live component after that call', async () => {
    // componentize-qjs pre-initializes in its native binding, with no way to get the component before that: wiz
    // takes its output and snapshots it after a call (an init function with arguments, kept exported).
    const q = await buildQuickJsComponent();
    const inspect = wiz(['inspect', q.component]);
    expect(inspect.status, inspect.stderr).toBe(0);
    expect(inspect.stdout.toString()).toMatch(/a component, [\d,]+ bytes, ([3-9]|\d\d) core modules, \d+ nested components/);
    const init = 'greet("build")';
    const ours = wizInit(readFileSync(q.component), ['-f', init, '--keep-init-func']);
    expect(ours.status, ours.stderr).toBe(0);
    expect(ours.stderr).toBe('');
    const calls = ['greet("a")', 'greet("b")'];
    const live = runComponent(q.component, { init, calls });
    const snap = runComponent(file(ours.output!), { calls });
    expect(live.results['greet("a")']).toEqual({ value: 'hello a from QuickJS, 1+4+9, call 2' });
    expect(snap.results).toEqual(live.results);
    // Not the state componentize-qjs wrote: that one has counted no call.
    expect(runComponent(q.component, { calls }).results['greet("a")']).toEqual({ value: 'hello a from QuickJS, 1+4+9, call 1' });
    const again = wizInit(readFileSync(q.component), ['-f', init, '--keep-init-func']);
    expect(Buffer.from(again.output!).equals(Buffer.from(ours.output!))).toBe(true);
  }, 600_000);
});
