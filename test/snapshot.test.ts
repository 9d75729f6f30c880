// Repeated snapshots: init --keep-instrumentation, then wiz snapshot generation after generation.
import { describe, expect, it } from 'vitest';
import { parseInstrumented, preinitialize, readProvenance, snapshot } from '../src/index.ts';
import { parseModule } from '../src/parse/module.ts';
import { observe } from './helpers/observe.ts';
import { wizInit, wizSnapshot } from './helpers/run.ts';
import { sectionBytes } from './helpers/sections.ts';
import { wat } from './helpers/wat.ts';

/** State of every kind: globals of each numeric type, a growing memory, a passive segment used later. */
const app = `(module
  (memory (export "memory") 1 100)
  (global $i32 (mut i32) (i32.const 0))
  (global $i64 (mut i64) (i64.const 0))
  (global $f32 (mut f32) (f32.const 0))
  (global $f64 (mut f64) (f64.const 0))
  (global $v (mut v128) (v128.const i64x2 0 0))
  (data $greeting "hello")
  (data (i32.const 0) "boot")
  (func (export "wizer-initialize")
    (global.set $i32 (i32.const 1))
    (global.set $i64 (i64.const 0x100000000000000))
    (global.set $f64 (f64.const -0)))
  (func (export "step")
    (global.set $i32 (i32.add (global.get $i32) (i32.const 1)))
    (global.set $i64 (i64.mul (global.get $i64) (i64.const 3)))
    (global.set $f32 (f32.reinterpret_i32 (i32.or (i32.const 0x7f800000) (global.get $i32)))) ;; NaN with payload = step count
    (global.set $v (i64x2.add (global.get $v) (i64x2.splat (global.get $i64))))
    (drop (memory.grow (i32.const 1)))
    (i32.store (i32.mul (memory.size) (i32.const 60000)) (global.get $i32)))
  (func (export "add") (param i32) (global.set $i32 (i32.add (global.get $i32) (local.get 0))))
  (func (export "greet") (memory.init $greeting (i32.const 16) (i32.const 0) (i32.const 5)))
  (func (export "i32") (result i32) (global.get $i32))
  (func (export "i64") (result i64) (global.get $i64))
  (func (export "f32bits") (result i32) (i32.reinterpret_f32 (global.get $f32)))
  (func (export "f64bits") (result i64) (i64.reinterpret_f64 (global.get $f64)))
  (func (export "vlo") (result i64) (i64x2.extract_lane 0 (global.get $v)))
  (func (export "vhi") (result i64) (i64x2.extract_lane 1 (global.get $v)))
  (func (export "pages") (result i32) (memory.size)))`;

function ok(r: { status: number | null; stderr: string; output?: Uint8Array }): Uint8Array {
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.output!;
}

const call = (instance: WebAssembly.Instance, name: string, ...args: unknown[]) => (instance.exports[name] as (...a: unknown[]) => unknown)(...args);

describe('wiz snapshot chains', () => {
  it('state after several generations equals running the same calls in one live instance', async () => {
    const input = await wat(app);
    const gen0 = ok(wizInit(input, ['--keep-instrumentation']));
    const gen1 = ok(wizSnapshot(gen0, ['--invoke', 'step', '--invoke', 'step', '--keep-instrumentation']));
    const gen2 = ok(wizSnapshot(gen1, ['--invoke', 'add(5)', '--invoke', 'step', '--keep-instrumentation']));
    const gen3 = ok(wizSnapshot(gen2, ['--invoke', 'step']));

    // Independent expectation, through the getters.
    const { instance } = await WebAssembly.instantiate(gen3 as BufferSource);
    expect(call(instance, 'i32')).toBe(1 + 2 + 5 + 1 + 1);
    expect(call(instance, 'i64')).toBe(0x100000000000000n * 81n);
    expect((call(instance, 'f32bits') as number) >>> 0).toBe(0x7f800000 | 10);
    expect(call(instance, 'f64bits')).toBe(-(2n ** 63n));
    expect(call(instance, 'pages')).toBe(5);
    const m = 0x100000000000000n;
    expect(BigInt.asUintN(64, call(instance, 'vlo') as bigint)).toBe(BigInt.asUintN(64, m * (3n + 9n + 27n + 81n)));

    // And everything observable equals one live instance running the same calls.
    const live = { init: 'wizer-initialize', calls: [['step', []], ['step', []], ['add', [5]], ['step', []], ['step', []]] as [string, unknown[]][] };
    expect(await observe(gen3)).toEqual(await observe(input, live));

    // The last output is a plain module: no instrumentation left.
    expect(parseModule(gen3).exports.filter((e) => e.name.startsWith('__wizer_'))).toEqual([]);
    expect(parseModule(gen2).exports.filter((e) => e.name.startsWith('__wizer_')).map((e) => e.name))
      .toEqual(['__wizer_global_0', '__wizer_global_1', '__wizer_global_2', '__wizer_global_3', '__wizer_global_4', '__wizer_memory_0']);
  });

  it('prints the results of --invoke calls', async () => {
    const gen0 = ok(wizInit(await wat(app), ['--keep-instrumentation']));
    const r = wizSnapshot(gen0, ['--invoke', 'add(0x10)', '--invoke', 'add(-0x2)', '--invoke', 'i32', '--invoke', 'i64', '--invoke', 'f64bits']);
    expect(r.stdout.toString()).toBe(`add(16)\nadd(-2)\ni32() = 15\ni64() = ${0x100000000000000n}\nf64bits() = ${-(2n ** 63n)}\n`);
  });

  it('keeps the module size stable across generations of a stable state', async () => {
    const input = await wat(app);
    let current = ok(wizInit(input, ['--keep-instrumentation', '-f', 'wizer-initialize']));
    const sizes: number[] = [];
    const withoutProvenance: string[] = [];
    for (let generation = 1; generation <= 20; generation++) {
      current = ok(wizSnapshot(current, ['--invoke', 'greet', '--keep-instrumentation']));
      sizes.push(current.length);
      const ctx = parseModule(current);
      const p = ctx.sections.find((s) => s.name === 'wiz.provenance')!;
      withoutProvenance.push(Buffer.concat([current.subarray(0, p.start), current.subarray(p.end)]).toString('hex'));
      expect(readProvenance(ctx)?.generation).toBe(generation);
    }
    // Identical bytes but for the provenance record, whose generation number grows by a digit at 10.
    expect(new Set(withoutProvenance).size).toBe(1);
    expect(sizes[19]! - sizes[0]!).toBe(1);
    // Two passive segments (the emptied "boot" and "hello") and the snapshot's own, never more.
    expect(parseModule(current).dataSegments.filter((s) => s.mode === 'passive')).toHaveLength(2);
  });

  it('reads provenance written with a padded name length', async () => {
    const { BinaryWriter } = await import('../src/parse/writer.ts');
    const content = new TextEncoder().encode(JSON.stringify({ generation: 7, parent: `sha256:${'ab'.repeat(32)}` }));
    const name = new TextEncoder().encode('wiz.provenance');
    const body = new BinaryWriter().byte(name.length | 0x80).byte(0x00).raw(name).raw(content); // LEB 14 in two bytes
    const module = new BinaryWriter().raw(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])).section(0, body).finish();
    expect(readProvenance(parseModule(module))).toEqual({ generation: 7, parent: `sha256:${'ab'.repeat(32)}` });
  });

  it('records the parent digest and generation', async () => {
    const gen0 = ok(wizInit(await wat(app), ['--keep-instrumentation']));
    const gen1 = ok(wizSnapshot(gen0, ['--keep-instrumentation']));
    const digest = Buffer.from(await crypto.subtle.digest('SHA-256', gen0 as BufferSource)).toString('hex');
    expect(readProvenance(parseModule(gen0))?.generation).toBe(0);
    expect(readProvenance(parseModule(gen1))).toEqual({ generation: 1, parent: `sha256:${digest}` });
  });
});

describe('the library on a live instance', () => {
  it('snapshots, reloads and resumes in one process without files', async () => {
    const input = await wat(app);
    let bytes = await preinitialize(input, { keepInstrumentation: true });
    for (let generation = 0; generation < 3; generation++) {
      const instrumented = await parseInstrumented(bytes);
      const instance = await WebAssembly.instantiate(instrumented.module);
      call(instance, 'step');
      call(instance, 'add', 10);
      bytes = await snapshot(instrumented, instance, { keepInstrumentation: true });
    }
    const live = { init: 'wizer-initialize', calls: Array.from({ length: 3 }, () => [['step', []], ['add', [10]]] as [string, unknown[]][]).flat() };
    expect(await observe(bytes)).toEqual(await observe(input, live));
    expect(readProvenance(parseModule(bytes))?.generation).toBe(3);
  });
});

describe('wiz snapshot --invoke errors', () => {
  const cases: [string, string[], RegExp][] = [
    ['an unknown export', ['--invoke', 'nope'], /--invoke nope: the module exports no function "nope"/],
    ['a wrong argument count', ['--invoke', 'add'], /--invoke add: "add" takes 1 argument \(i32\), not 0/],
    ['a bad argument', ['--invoke', 'add(x)'], /--invoke add\(x\): "x" is not a valid i32 argument/],
    ['a trap during a call', ['--invoke', 'add(1)', '--invoke', 'boom'], /the export "boom" trapped: unreachable/],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const gen0 = ok(wizInit(await wat(`(module (global $g (mut i32) (i32.const 0))
        (func (export "wizer-initialize")) (func (export "add") (param i32)) (func (export "boom") unreachable))`), ['--keep-instrumentation']));
      const r = wizSnapshot(gen0, args);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.status).toBe(1);
      expect(r.output).toBeUndefined();
    });
  }
});

describe('re-parsing rejects forged instrumentation', () => {
  const cases: [string, string, RegExp][] = [
    ['a global export pointing at the wrong global',
      `(global $a (mut i32) (i32.const 0)) (global $b (mut i32) (i32.const 0)) (export "__wizer_global_0" (global $b)) (export "__wizer_global_1" (global $b))`,
      /instrumentation export "__wizer_global_0" exports global 1, not global 0/],
    ['a global export naming an immutable global',
      `(global $a i32 (i32.const 0)) (export "__wizer_global_0" (global $a))`,
      /"__wizer_global_0" names global 0, which is immutable/],
    ['a global export naming a global that does not exist',
      `(global $a (mut i32) (i32.const 0)) (export "__wizer_global_0" (global $a)) (export "__wizer_global_7" (global $a))`,
      /"__wizer_global_7" exports global 0, not global 7/],
    ['a memory export that is a function',
      `(memory 1) (func $f) (export "__wizer_memory_0" (func $f))`,
      /instrumentation export "__wizer_memory_0" is a func export, not a memory/],
    ['memory exports pointing at the wrong memories',
      `(memory $a 1) (memory $b 1) (export "__wizer_memory_0" (memory $b)) (export "__wizer_memory_1" (memory $a))`,
      /"__wizer_memory_0" exports memory 1, not the module's defined memory 0/],
    ['a memory export beyond the defined memories',
      `(memory $a 1) (export "__wizer_memory_0" (memory $a)) (export "__wizer_memory_1" (memory $a))`,
      /"__wizer_memory_1" names defined memory 1, but the module defines 1/],
    ['a missing global export',
      `(memory $a 1) (global $g (mut i64) (i64.const 0)) (export "__wizer_memory_0" (memory $a))`,
      /instrumentation lacks "__wizer_global_0" for mutable global 0/],
    ['a missing memory export',
      `(memory 1) (global $g (mut i64) (i64.const 0)) (export "__wizer_global_0" (global $g))`,
      /instrumentation lacks "__wizer_memory_0" for defined memory 0/],
    ['an accessor function the module offers for its own state',
      `(global $g (mut f64) (f64.const 0)) (export "__wizer_global_0" (global $g)) (func $lie (result i64) (i64.const 42)) (export "__wizer_read_global" (func $lie))`,
      /unknown instrumentation export "__wizer_read_global"/],
    ['a non-canonical index',
      `(global $g (mut i32) (i32.const 0)) (export "__wizer_global_00" (global $g))`,
      /unknown instrumentation export "__wizer_global_00"/],
    ['no instrumentation at all',
      `(memory (export "memory") 1) (global (mut i32) (i32.const 0))`,
      /the module carries no instrumentation \(no __wizer_ exports\)/],
    ['code that reads a previous snapshot\'s segment',
      // Segment 1 (zeros) leaves no trace in memory, so the snapshot has one segment and index 1 would dangle.
      `(memory 1) (data (i32.const 0) "x") (data $zeros (i32.const 100) "\\00") (export "__wizer_memory_0" (memory 0)) (func (export "f") (memory.init $zeros (i32.const 0) (i32.const 0) (i32.const 0)))`,
      /may refer to the data segments that hold its previous snapshot/],
  ];
  for (const [name, fields, message] of cases) {
    it(name, async () => {
      const r = wizSnapshot(await wat(`(module ${fields})`), ['--keep-instrumentation']);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.status).toBe(1);
      expect(r.output).toBeUndefined();
    });
  }

  it('an invalid module (the whole module is validated, also code that never runs)', async () => {
    const good = await wat(`(module (global $g (mut i32) (i32.const 0)) (export "__wizer_global_0" (global $g)) (func (export "unused") (result i32) (i32.const 1)))`);
    const ctx = parseModule(good);
    const code = ctx.sections.find((s) => s.id === 10)!;
    const forged = good.slice();
    forged[code.end - 3] = 0x42; // i32.const 1 becomes i64.const 1: a type error in a function nobody calls
    const r = wizSnapshot(forged);
    expect(r.stderr).toMatch(/^wiz: invalid module: Compiling function #0 failed: type error/);
    expect(r.status).toBe(1);
    expect(r.output).toBeUndefined();
  });

  it('a module exporting __wizer_ names is refused by wiz init, which points at wiz snapshot', async () => {
    const gen0 = ok(wizInit(await wat(app), ['--keep-instrumentation']));
    expect(wizInit(gen0).stderr).toMatch(/already exports "__wizer_global_0".*use wiz snapshot/);
    expect(sectionBytes(gen0, 'wiz.provenance')).toBeDefined();
  });
});
