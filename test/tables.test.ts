// Tables, reference-typed globals and dropped segments: state the reference cannot snapshot (it refuses any
// module whose code could change it). The oracle is the live instance: observing the original after init and
// the snapshot must give the same results and traps.
import { describe, expect, it } from 'vitest';
import { instrument, parseInstrumented, preinitialize, snapshot, WizError } from '../src/index.ts';
import { parseModule } from '../src/parse/module.ts';
import { observe } from './helpers/observe.ts';
import { hasNativeWizer, nativeWizer, wizInit, wizSnapshot } from './helpers/run.ts';
import { sectionBytes } from './helpers/sections.ts';
import { gcWat, wat } from './helpers/wat.ts';

const calls = (table: string, slots: number) =>
  Array.from({ length: slots }, (_, i) => `(func (export "call${i}") (result i32) (call_indirect ${table} (type $r) (i32.const ${i})))`).join('\n');

/** Observes every parameterless export of the original after init and of the snapshot: they must agree. */
async function expectSameBehaviour(input: Uint8Array, output: Uint8Array, init = 'wizer-initialize') {
  const live = await observe(input, { init });
  const snap = await observe(output);
  expect(Object.keys(snap).length).toBeGreaterThan(0);
  expect(snap).toEqual(live);
  return live;
}

describe('tables', () => {
  it('snapshots a table filled, grown, set, and filled again during init', async () => {
    const input = await wat(`(module
      (type $r (func (result i32)))
      (table $t 2 10 funcref)
      (elem (table $t) (i32.const 0) func $a $b)
      (func $a (result i32) (i32.const 10))
      (func $b (result i32) (i32.const 20))
      (func $c (result i32) (i32.const 30))
      (elem declare func $c)
      (func (export "wizer-initialize")
        (drop (table.grow $t (ref.func $c) (i32.const 4)))
        (table.set $t (i32.const 0) (ref.func $b))
        (table.set $t (i32.const 3) (ref.null func))
        (table.fill $t (i32.const 4) (ref.func $a) (i32.const 2)))
      (func (export "size") (result i32) (table.size $t))
      ${calls('$t', 6)})`);
    const output = await preinitialize(input);
    const live = await expectSameBehaviour(input, output);
    expect(live.size!.result).toBe('6');
    expect(live.call0!.result).toBe('20');
    expect(live.call3!.result).toMatch(/^trap: /);
    expect(live.call5!.result).toBe('10');
    const ctx = parseModule(output);
    expect(ctx.tables[0]).toMatchObject({ min: 6, max: 10 });
    // The original active segment now declares its functions only; new active segments hold the contents.
    expect(ctx.elementSegments.map((s) => s.mode)).toEqual(['declarative', 'declarative', 'active', 'active']);
  });

  it('keeps the element and table sections byte for byte when init leaves the tables as instantiation made them', async () => {
    const input = await wat(`(module
      (type $r (func (result i32)))
      (table $t 4 funcref)
      (elem (table $t) (i32.const 1) func $a $a)
      (func $a (result i32) (i32.const 7))
      (global $g (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set $g (i32.const 1)))
      (func (export "never") (table.set $t (i32.const 0) (ref.func $a)) (elem.drop 0))
      ${calls('$t', 3)})`);
    const output = await preinitialize(input);
    await expectSameBehaviour(input, output);
    for (const id of [4, 9, 10]) expect(sectionBytes(output, id)).toEqual(sectionBytes(input, id));
    if (hasNativeWizer) {
      // The reference refuses the module for the instructions in "never", which init does not run.
      const native = nativeWizer(input);
      expect(native.status).not.toBe(0);
      expect(native.stderr).toMatch(/table|elem/i);
    }
  });

  it('writes several tables: a second funcref table, an externref table of nulls', async () => {
    const input = await wat(`(module
      (type $r (func (result i32)))
      (table $t0 1 funcref)
      (table $t1 0 funcref)
      (table $typed 2 funcref)
      (table $ext 3 externref)
      (func $a (result i32) (i32.const 1))
      (func $b (result i32) (i32.const 2))
      (elem declare func $a $b)
      (func (export "wizer-initialize")
        (drop (table.grow $t1 (ref.func $b) (i32.const 2)))
        (table.set $typed (i32.const 1) (ref.func $a))
        (drop (table.grow $ext (ref.null extern) (i32.const 1))))
      (func (export "t1") (result i32) (call_indirect $t1 (type $r) (i32.const 1)))
      (func (export "typed0") (result i32) (call_indirect $typed (type $r) (i32.const 0)))
      (func (export "typed1") (result i32) (call_indirect $typed (type $r) (i32.const 1)))
      (func (export "ext") (result i32) (table.size $ext))
      (func (export "t0") (result i32) (call_indirect $t0 (type $r) (i32.const 0))))`);
    const output = await preinitialize(input);
    const live = await expectSameBehaviour(input, output);
    expect(live.t1!.result).toBe('2');
    expect(live.typed1!.result).toBe('1');
    expect(live.ext!.result).toBe('4');
    expect(parseModule(output).tables.map((t) => t.min)).toEqual([1, 2, 2, 4]);
  });

  it('snapshots a table with 64-bit indices (the JS API gives its length and takes its indices as BigInts)', async () => {
    const input = await gcWat(`(module
      (type $r (func (result i32)))
      (table $t i64 1 funcref)
      (func $a (type $r) (i32.const 11))
      (elem declare func $a)
      (func (export "wizer-initialize")
        (drop (table.grow $t (ref.func $a) (i64.const 2)))
        (table.set $t (i64.const 0) (ref.func $a)))
      (func (export "size") (result i64) (table.size $t))
      (func (export "c0") (result i32) (call_indirect $t (type $r) (i64.const 0)))
      (func (export "c2") (result i32) (call_indirect $t (type $r) (i64.const 2))))`);
    const output = await preinitialize(input);
    const live = await expectSameBehaviour(input, output);
    expect([live.size!.result, live.c0!.result, live.c2!.result]).toEqual(['3n', '11', '11']);
    expect(parseModule(output).tables[0]).toMatchObject({ table64: true, min: 3 });
  });

  it('writes a function the module imports as that import', async () => {
    const input = await wat(`(module
      (type $r (func (result i32)))
      (import "env" "answer" (func $answer (result i32)))
      (table $t 1 funcref)
      (elem declare func $answer)
      (func (export "wizer-initialize") (table.set $t (i32.const 0) (ref.func $answer)))
      (func (export "call") (result i32) (call_indirect $t (type $r) (i32.const 0))))`);
    const env = { env: { answer: () => 42 } };
    const output = await preinitialize(input, { imports: env });
    const { instance } = await WebAssembly.instantiate(output as BufferSource, env);
    expect((instance.exports.call as () => number)()).toBe(42);
  });

  it('refuses, naming the table and slot, a function of another instance', async () => {
    const input = await wat(`(module (table (export "t") 3 funcref) (func (export "wizer-initialize")))`);
    const other = await WebAssembly.instantiate(await wat(`(module (func (export "f")))`) as BufferSource);
    const instrumented = instrument(input);
    const { instance } = await WebAssembly.instantiate(instrumented.bytes as BufferSource);
    (instance.exports.t as WebAssembly.Table).set(2, other.instance.exports.f);
    const refusal = await snapshot(instrumented, instance).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(WizError);
    expect((refusal as WizError).message).toBe('table 0 slot 2 holds a function of another instance or of the host: a module can refer only to its own functions, so wiz cannot write it into a snapshot');
  });

  it('refuses a function of another instance of the same module (same index, other identity)', async () => {
    const input = await wat(`(module (table (export "t") 1 funcref) (func $f (export "f")) (func (export "wizer-initialize")))`);
    const instrumented = instrument(input);
    const a = await WebAssembly.instantiate(instrumented.bytes as BufferSource);
    const b = await WebAssembly.instantiate(instrumented.bytes as BufferSource);
    (a.instance.exports.t as WebAssembly.Table).set(0, b.instance.exports.f);
    await expect(snapshot(instrumented, a.instance)).rejects.toThrow(/^table 0 slot 0 holds a function of another instance/);
    (a.instance.exports.t as WebAssembly.Table).set(0, a.instance.exports.f);
    const output = await snapshot(instrumented, a.instance);
    const { instance } = await WebAssembly.instantiate(output as BufferSource);
    expect((instance.exports.t as WebAssembly.Table).get(0)).toBe(instance.exports.f);
  });

  it('refuses a non-null externref in a table, naming the slot', async () => {
    const input = await wat(`(module (table (export "ext") 2 externref) (func (export "wizer-initialize")))`);
    const instrumented = instrument(input);
    const { instance } = await WebAssembly.instantiate(instrumented.bytes as BufferSource);
    (instance.exports.ext as WebAssembly.Table).set(1, { host: 'object' });
    await expect(snapshot(instrumented, instance)).rejects.toThrow(/^table 0 slot 1 holds a non-null externref: a module cannot hold it as a constant/);
  });
});

describe('found in review', () => {
  it('writes a null inside a run of a table whose initial value is a function', async () => {
    const input = await gcWat(`(module
      (type $r (func (result i32)))
      (func $f (type $r) (i32.const 5))
      (func $h (type $r) (i32.const 6))
      (table $t 3 funcref (ref.func $f))
      (elem declare func $h)
      (func (export "wizer-initialize") (table.set $t (i32.const 0) (ref.null func)) (table.set $t (i32.const 1) (ref.func $h)))
      ${calls('$t', 3)})`);
    const output = await preinitialize(input);
    const live = await expectSameBehaviour(input, output);
    expect(live.call0!.result).toMatch(/^trap: /);
    expect([live.call1!.result, live.call2!.result]).toEqual(['6', '5']);
  });

  it('keeps declared a function that only a replaced global initializer declared, over generations', async () => {
    const input = await wat(`(module
      (type $r (func (result i32)))
      (func $f (result i32) (i32.const 5))
      (global $g (mut funcref) (ref.func $f))
      (table $t 1 funcref)
      (func (export "wizer-initialize") (table.set $t (i32.const 0) (global.get $g)) (global.set $g (ref.null func)))
      (func (export "clear") (table.set $t (i32.const 0) (ref.null func)))
      (func (export "get") (result i32) (table.set $t (i32.const 0) (ref.func $f)) (call_indirect $t (type $r) (i32.const 0))))`);
    let current = await preinitialize(input, { keepInstrumentation: true });
    const counts: number[] = [];
    for (let generation = 1; generation <= 3; generation++) {
      const instrumented = await parseInstrumented(current);
      const instance = await WebAssembly.instantiate(instrumented.module);
      (instance.exports.clear as () => void)();
      current = await snapshot(instrumented, instance, { keepInstrumentation: true });
      counts.push(parseModule(current).elementSegments.length);
    }
    const { instance } = await WebAssembly.instantiate(current as BufferSource);
    expect((instance.exports.get as () => number)()).toBe(5);
    expect(counts).toEqual([1, 1, 1]); // one declarative segment for $f, not one more per generation
  });

  it('refuses an invalid module that the probe would make valid (ref.func of an undeclared function)', async () => {
    const bytes = await gcWat(`(module (type $r (func)) (table 1 funcref) (func $f (type $r))
      (elem declare func $f)
      (func (export "wizer-initialize") (table.set 0 (i32.const 0) (ref.func $f))))`);
    // Replace the declarative segment by an empty passive one: $f is no longer declared, ref.func $f invalid.
    const ctx = parseModule(bytes);
    const seg = ctx.elementSegments[0]!;
    const broken = new Uint8Array([...bytes.subarray(0, seg.start), 0x01, 0x00, 0x00, ...bytes.subarray(seg.end)]);
    const section = ctx.sections.find((x) => x.id === 9)!;
    broken[section.start + 1] = broken[section.start + 1]! - (seg.end - seg.start - 3); // the section size (one LEB byte here)
    expect(WebAssembly.validate(broken as BufferSource)).toBe(false);
    await expect(preinitialize(broken)).rejects.toThrow(/^invalid module: .*undeclared reference to function/);
  });

  it('refuses a function the host gave for two imports: which import it stands for is unknown', async () => {
    const input = await wat(`(module
      (type $r (func (result i32)))
      (import "env" "a" (func $a (result i32)))
      (import "env" "b" (func $b (result i32)))
      (table $t 1 funcref)
      (elem declare func $b)
      (func (export "wizer-initialize") (table.set $t (i32.const 0) (ref.func $b)))
      (func (export "call") (result i32) (call_indirect $t (type $r) (i32.const 0))))`);
    const other = await WebAssembly.instantiate(await wat(`(module (func (export "f") (result i32) (i32.const 1)))`) as BufferSource);
    const f = other.instance.exports.f!;
    await expect(preinitialize(input, { imports: { env: { a: f, b: f } } })).rejects.toThrow(
      'table 0 slot 0 holds a function the host gave for 2 imports (functions 0, 1): wiz cannot tell which import to write into the snapshot');
    const output = await preinitialize(input, { imports: { env: { a: () => 1, b: () => 2 } } });
    // Distinct functions: the slot is written as import "b", whatever the host gives there next time.
    const { instance } = await WebAssembly.instantiate(output as BufferSource, { env: { a: () => 10, b: () => 20 } });
    expect((instance.exports.call as () => number)()).toBe(20);
  });
});

describe('reference-typed globals', () => {
  it('snapshots mutable funcref globals', async () => {
    const input = await wat(`(module
      (type $r (func (result i32)))
      (global $g (mut funcref) (ref.null func))
      (global $h (mut funcref) (ref.null func))
      (global $n (mut funcref) (ref.func $a))
      (global $e (mut externref) (ref.null extern))
      (table $t 1 funcref)
      (func $a (result i32) (i32.const 5))
      (func $b (result i32) (i32.const 6))
      (elem declare func $a $b)
      (func (export "wizer-initialize")
        (global.set $g (ref.func $b))
        (global.set $h (ref.func $a))
        (global.set $n (ref.null func)))
      (func (export "g") (result i32) (table.set $t (i32.const 0) (global.get $g)) (call_indirect $t (type $r) (i32.const 0)))
      (func (export "h") (result i32) (table.set $t (i32.const 0) (global.get $h)) (call_indirect $t (type $r) (i32.const 0)))
      (func (export "n") (result i32) (ref.is_null (global.get $n)))
      (func (export "e") (result i32) (ref.is_null (global.get $e))))`);
    const output = await preinitialize(input);
    const live = await expectSameBehaviour(input, output);
    expect([live.g!.result, live.h!.result, live.n!.result, live.e!.result]).toEqual(['6', '5', '1', '1']);
  });

  it('refuses a global that holds a function of another instance, naming the global', async () => {
    const input = await wat(`(module (global (export "g") (mut funcref) (ref.null func)) (func (export "wizer-initialize")))`);
    const other = await WebAssembly.instantiate(await wat(`(module (func (export "f")))`) as BufferSource);
    const instrumented = instrument(input);
    const { instance } = await WebAssembly.instantiate(instrumented.bytes as BufferSource);
    (instance.exports.g as WebAssembly.Global).value = other.instance.exports.f;
    await expect(snapshot(instrumented, instance)).rejects.toThrow(/^global 0 \(mutable funcref\) holds a function of another instance or of the host/);
  });
});

describe('typed function references and GC', () => {
  it('snapshots a typed function table and typed reference globals, nullable or not', async () => {
    const input = await gcWat(`(module
      (type $r (func (result i32)))
      (table $typed 2 (ref null $r))
      (global $h (mut (ref null $r)) (ref.null $r))
      (global $nn (mut (ref $r)) (ref.func $a))
      (func $a (type $r) (i32.const 1))
      (func $b (type $r) (i32.const 2))
      (elem declare func $a $b)
      (func (export "wizer-initialize")
        (global.set $h (ref.func $a))
        (global.set $nn (ref.func $b))
        (table.set $typed (i32.const 1) (ref.func $b)))
      (func (export "h") (result i32) (call_ref $r (global.get $h)))
      (func (export "nn") (result i32) (call_ref $r (global.get $nn)))
      (func (export "t0") (result i32) (call_indirect $typed (type $r) (i32.const 0)))
      (func (export "t1") (result i32) (call_indirect $typed (type $r) (i32.const 1))))`);
    const output = await preinitialize(input);
    const live = await expectSameBehaviour(input, output);
    expect([live.h!.result, live.nn!.result, live.t1!.result]).toEqual(['1', '2', '2']);
    expect(live.t0!.result).toMatch(/^trap: /);
  });

  it('accepts GC writes in code, and refuses a GC object left in a global, naming it', async () => {
    const source = (keep: string) => `(module
      (type $s (struct (field (mut i32))))
      (global $any (mut anyref) (ref.null any))
      (func (export "wizer-initialize") (local $x (ref null $s))
        (local.set $x (struct.new $s (i32.const 1)))
        (struct.set $s 0 (local.get $x) (i32.const 2))
        ${keep})
      (func (export "is_null") (result i32) (ref.is_null (global.get $any))))`;
    const transient = await gcWat(source(''));
    const output = await preinitialize(transient);
    await expectSameBehaviour(transient, output);
    const kept = await gcWat(source('(global.set $any (local.get $x))'));
    await expect(preinitialize(kept)).rejects.toThrow(/^global 0 \(mutable anyref\) holds a non-null any reference: a module cannot hold it as a constant/);
  });
});

describe('tables of objects (externref, GC references)', () => {
  const objects = (init: string, start = '') => gcWat(`(module
    (type $s (struct (field i32)))
    (table $t 3 (ref null $s))
    (table $i 2 i31ref (ref.i31 (i32.const 3)))
    (table $f 1 funcref)
    (elem (table $t) (i32.const 0) (ref null $s) (item (struct.new $s (i32.const 7))) (item (struct.new $s (i32.const 8))))
    (global $c (mut i32) (i32.const 0))
    (func $one (result i32) (i32.const 1))
    (elem declare func $one)
    ${start}
    (func (export "wizer-initialize") (global.set $c (i32.const 1)) ${init})
    (func (export "t0") (result i32) (struct.get $s 0 (table.get $t (i32.const 0))))
    (func (export "t1") (result i32) (struct.get $s 0 (table.get $t (i32.const 1))))
    (func (export "t2") (result i32) (ref.is_null (table.get $t (i32.const 2))))
    (func (export "i1") (result i32) (i31.get_s (table.get $i (i32.const 1))))
    (func (export "f0") (result i32) (call_indirect $f (result i32) (i32.const 0)))
    (func (export "c") (result i32) (global.get $c)))`);

  it('keeps, as the module\'s own segments make them, tables of objects that nothing changed', async () => {
    const input = await objects('(table.set $f (i32.const 0) (ref.func $one))');
    const output = await preinitialize(input);
    const live = await expectSameBehaviour(input, output);
    expect([live.t0!.result, live.t1!.result, live.t2!.result, live.i1!.result, live.f0!.result]).toEqual(['7', '8', '1', '3', '1']);
    const ctx = parseModule(output);
    // The object table's segment stays active; the function table's contents come in a new segment.
    expect(ctx.elementSegments.map((s) => [s.mode, s.table])).toEqual([['active', 0], ['declarative', 0], ['active', 2]]);
  });

  it('keeps them over generations of wiz snapshot', async () => {
    const input = await objects('(table.set $f (i32.const 0) (ref.func $one))');
    let current = wizInit(input, ['--keep-instrumentation']).output!;
    const segments = [parseModule(current).elementSegments.length];
    for (let generation = 1; generation <= 3; generation++) {
      const next = wizSnapshot(current, ['--invoke', 'c', '--keep-instrumentation']);
      expect(next.stderr).toBe('');
      current = next.output!;
      segments.push(parseModule(current).elementSegments.length);
    }
    expect(await observe(current)).toEqual(await observe(input, { init: 'wizer-initialize' }));
    expect(segments).toEqual([3, 3, 3, 3]); // the object table's segment, a declarative one, the function table's
  });

  it('refuses a table of objects that init changed, naming the table and slot; writes one init emptied', async () => {
    const input = await objects('(table.set $t (i32.const 1) (ref.null $s))');
    await expect(preinitialize(input)).rejects.toThrow('table 0 holds objects that instantiation made, and changed since (slot 1): a module cannot hold objects as constants, so wiz can keep such a table only as instantiation left it');
    const emptied = await objects('(table.fill $t (i32.const 0) (ref.null $s) (i32.const 2))');
    const live = await expectSameBehaviour(emptied, await preinitialize(emptied));
    expect(live.t0!.result).toMatch(/^trap: /);
    const made = await objects('(table.set $t (i32.const 1) (struct.new $s (i32.const 9)))');
    await expect(preinitialize(made)).rejects.toThrow(/^table 0 slot 1 holds a non-null any reference: a module cannot hold it as a constant/);
  });

  it('refuses them in a module with a start function, which ran before wiz could look', async () => {
    const input = await objects('', '(func $start (global.set $c (i32.const 2))) (start $start)');
    await expect(preinitialize(input)).rejects.toThrow(/^table 0 slot 0 holds a non-null any reference/);
  });
});

describe('dropped segments', () => {
  const module = `(module
    (type $r (func (result i32)))
    (memory 1)
    (table $t 2 funcref)
    (data $d1 "abc")
    (data $d2 "kept")
    (data $empty "")
    (elem $e1 func $a)
    (elem $e2 func $a $a)
    (func $a (result i32) (i32.const 9))
    (func (export "wizer-initialize") (data.drop $d1) (elem.drop $e1) (data.drop $empty))
    (func (export "d1") (result i32) (memory.init $d1 (i32.const 0) (i32.const 0) (i32.const 1)) (i32.load8_u (i32.const 0)))
    (func (export "d1empty") (result i32) (memory.init $d1 (i32.const 0) (i32.const 0) (i32.const 0)) (i32.const 1))
    (func (export "d2") (result i32) (memory.init $d2 (i32.const 8) (i32.const 1) (i32.const 3)) (i32.load8_u (i32.const 10)))
    (func (export "e1") (result i32) (table.init $t $e1 (i32.const 0) (i32.const 0) (i32.const 1)) (call_indirect $t (type $r) (i32.const 0)))
    (func (export "e2") (result i32) (table.init $t $e2 (i32.const 0) (i32.const 1) (i32.const 1)) (call_indirect $t (type $r) (i32.const 0))))`;

  it('writes dropped passive segments so that memory.init and table.init trap as they would have', async () => {
    const input = await wat(module);
    const output = await preinitialize(input);
    const live = await expectSameBehaviour(input, output);
    expect(live.d1!.result).toMatch(/^trap: /);
    expect(live.d1empty!.result).toBe('1');
    expect(live.d2!.result).toBe(String('t'.charCodeAt(0))); // "kept"[1..4] at 8: 't' at 10
    expect(live.e1!.result).toMatch(/^trap: /);
    expect(live.e2!.result).toBe('9');
    const ctx = parseModule(output);
    expect(ctx.dataSegments.map((s) => [s.mode, s.length])).toEqual([['passive', 0], ['passive', 4], ['passive', 0]]);
    expect(ctx.elementSegments.map((s) => s.mode)).toEqual(['declarative', 'passive']);
  });

  it('without the probe the module is instrumented exactly as the reference instruments it', async () => {
    const plain = await wat(`(module (memory 1) (global (mut i32) (i32.const 0)) (data (i32.const 0) "x") (func (export "wizer-initialize")))`);
    const instrumented = instrument(plain);
    expect(instrumented.probe).toEqual({ functions: undefined, dropped: undefined, droppable: [] });
    expect(parseModule(instrumented.bytes).exports.map((e) => e.name)).toEqual(['wizer-initialize', '__wizer_global_0', '__wizer_memory_0']);
  });
});

describe('repeated snapshots with tables', () => {
  const app = `(module
    (type $r (func (result i32)))
    (table $t (export "table") 1 funcref)
    (global $count (mut i32) (i32.const 0))
    (func $zero (result i32) (i32.const 0))
    (func $one (result i32) (i32.const 1))
    (func $two (result i32) (i32.const 2))
    (elem declare func $zero $one $two)
    (func (export "wizer-initialize") (table.set $t (i32.const 0) (ref.func $zero)))
    ;; Registers callback k (0, 1, 2) in a new slot: the program's state is the table.
    (func (export "register") (param $k i32)
      (drop (table.grow $t
        (select (result funcref) (ref.func $one)
          (select (result funcref) (ref.func $two) (ref.func $zero) (i32.eq (local.get $k) (i32.const 2)))
          (i32.eq (local.get $k) (i32.const 1)))
        (i32.const 1)))
      (global.set $count (i32.add (global.get $count) (i32.const 1))))
    (func (export "unregister") (param $slot i32) (table.set $t (local.get $slot) (ref.null func)))
    (func (export "size") (result i32) (table.size $t))
    (func (export "sum") (result i32) (local $i i32) (local $s i32)
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (table.size $t)))
        (if (i32.eqz (ref.is_null (table.get $t (local.get $i))))
          (then (local.set $s (i32.add (local.get $s) (i32.mul (i32.add (local.get $i) (i32.const 1)) (call_indirect $t (type $r) (local.get $i)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (local.get $s)))`;

  it('follows tables that change between generations, and does not pile up segments', async () => {
    const input = await wat(app);
    const steps: [string, unknown[]][][] = [[['register', [1]], ['register', [2]]], [['unregister', [1]]], [['register', [2]], ['register', [1]]], []];
    let current = await preinitialize(input, { keepInstrumentation: true });
    const done: [string, unknown[]][] = [];
    const segmentCounts: number[] = [];
    for (const step of steps) {
      const instrumented = await parseInstrumented(current);
      const instance = await WebAssembly.instantiate(instrumented.module);
      for (const [name, args] of step) (instance.exports[name] as (...a: unknown[]) => void)(...args);
      current = await snapshot(instrumented, instance, { keepInstrumentation: true });
      done.push(...step);
      const live = await observe(input, { init: 'wizer-initialize', calls: done });
      expect(await observe(current)).toEqual(live);
      segmentCounts.push(parseModule(current).elementSegments.length);
    }
    // Final state: slots 0 (zero), 1 (null), 2 (two), 3 (two), 4 (one): sum = 3*2 + 4*2 + 5*1.
    const { instance } = await WebAssembly.instantiate(current as BufferSource);
    expect((instance.exports.sum as () => number)()).toBe(19);
    // One declarative segment (the original declaration) plus one active segment per run of non-null slots.
    expect(segmentCounts).toEqual([2, 3, 3, 3]);
  });

  it('works through the command line: wiz snapshot --invoke on a table program', async () => {
    const input = await wat(app);
    const gen0 = wizInit(input, ['--keep-instrumentation']);
    expect(gen0.status).toBe(0);
    const gen1 = wizSnapshot(gen0.output!, ['--invoke', 'register(2)', '--invoke', 'sum()', '--keep-instrumentation']);
    expect(gen1.stderr).toBe('');
    expect(gen1.stdout.toString()).toBe('register(2)\nsum() = 4\n');
    const { instance } = await WebAssembly.instantiate(gen1.output! as BufferSource);
    expect((instance.exports.sum as () => number)()).toBe(4);
  });

  it('refuses a table claim that names another table', async () => {
    const input = await wat(`(module (table $a 1 funcref) (table $b 1 funcref)
      (export "__wizer_table_0" (table $b)) (export "__wizer_table_1" (table $b)))`);
    await expect(parseInstrumented(input)).rejects.toThrow('instrumentation export "__wizer_table_0" exports table 1, not the module\'s defined table 0 (table 0)');
    const missing = await wat(`(module (table $a 1 funcref) (memory 1) (export "__wizer_memory_0" (memory 0)))`);
    await expect(parseInstrumented(missing)).rejects.toThrow('the module\'s instrumentation lacks "__wizer_table_0" for defined table 0');
  });

  it('refuses a module that names the probe itself', async () => {
    const input = await wat(`(module (table $a 1 funcref) (export "__wizer_table_0" (table $a)) (export "__wizer_probe_functions" (table $a)))`);
    await expect(parseInstrumented(input)).rejects.toThrow('unknown instrumentation export "__wizer_probe_functions"');
  });
});

describe('code that is valid only with the probe appended', () => {
  it('is reported as the invalid module it is', async () => {
    // call_indirect through table 1, which the module does not define; the probe would be table 1.
    const bytes = await wat(`(module (type $r (func)) (table 1 funcref)
      (func (export "wizer-initialize")) (func (call_indirect 0 (type $r) (i32.const 0))))`);
    bytes[bytes.indexOf(0x11, bytes.length - 8) + 2] = 1; // call_indirect's table index: 0 -> 1
    expect(WebAssembly.validate(bytes as BufferSource)).toBe(false);
    await expect(preinitialize(bytes)).rejects.toThrow(/^invalid module: /);
  });
});
