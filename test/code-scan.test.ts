// The reference refuses code that changes tables, drops segments or writes GC objects, wherever it appears.
import { describe, expect, it } from 'vitest';
import { findStateChange } from '../src/parse/code.ts';
import { parseModule } from '../src/parse/module.ts';
import { hasNativeWizer, nativeWizer, wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const refused: [string, string][] = [
  ['table.set', '(table 1 funcref) (func (table.set (i32.const 0) (ref.null func)))'],
  ['table.grow', '(table 1 funcref) (func (drop (table.grow (ref.null func) (i32.const 1))))'],
  ['table.fill', '(table 1 funcref) (func (table.fill (i32.const 0) (ref.null func) (i32.const 1)))'],
  ['table.copy', '(table 2 funcref) (func (table.copy (i32.const 0) (i32.const 1) (i32.const 1)))'],
  ['table.init', '(table 1 funcref) (elem $e func) (func (table.init $e (i32.const 0) (i32.const 0) (i32.const 0)))'],
  ['elem.drop', '(elem $e func) (func (elem.drop $e))'],
  ['data.drop', '(memory 1) (data $d "x") (func (data.drop $d))'],
];

describe('code that changes state wiz cannot snapshot', () => {
  for (const [instruction, fields] of refused) {
    it(`refuses ${instruction}, even in a function that never runs`, async () => {
      const input = await wat(`(module ${fields} (func (export "wizer-initialize")))`);
      const r = wizInit(input);
      expect(r.stderr).toMatch(new RegExp(`^wiz: function 0 uses ${instruction.replace('.', '\\.')}: wiz cannot snapshot the state it changes`));
      expect(r.status).toBe(1);
      expect(r.output).toBeUndefined();
      if (hasNativeWizer && !instruction.startsWith('struct') && !instruction.startsWith('array')) {
        expect(nativeWizer(input).status).not.toBe(0); // the reference refuses it too
      }
    });
  }

  it('decodes every kind of immediate in step, to find an instruction at the very end', async () => {
    const everything = `(module
      (type $f (func (param i32) (result i32)))
      (memory $m0 1 1 shared) (memory $m1 1)
      (table $t 2 funcref)
      (tag $e (param i32))
      (data $d "data")
      (elem $el func $id)
      (global $g (mut i32) (i32.const 0))
      (func $id (type $f) (local.get 0))
      (func $all (param $p i32) (result i32) (local $x i64) (local $v v128)
        (block $b (result i32)
          (loop $l
            (br_if $l (i32.eqz (local.get $p))))
          (br_table $b $b (i32.const 1) (i32.const 0)))
        (drop)
        (if (i32.const 1) (then (nop)) (else (nop)))
        (drop (select (result i32) (i32.const 1) (i32.const 2) (i32.const 0)))
        (block $h (result i32)
          (try_table (result i32) (catch $e $h) (i32.const 7)))
        (block $h2 (try_table (catch_all $h2) (nop)))
        (drop)
        (drop (call_indirect $t (type $f) (i32.const 5) (i32.const 0)))
        (drop (ref.func $id))
        (drop (i64.load $m1 offset=8 align=4 (i32.const 0)))
        (i32.store8 $m0 offset=1000000 (i32.const 0) (i32.const 1))
        (drop (f32.const 1.5)) (drop (f64.const -2.25)) (drop (i64.const -123456789012345))
        (local.set $v (v128.const i32x4 1 2 3 4))
        (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 (local.get $v) (local.get $v)))
        (drop (i32x4.extract_lane 3 (local.get $v)))
        (local.set $v (v128.load32_lane 2 (i32.const 0) (local.get $v)))
        (local.set $v (v128.load64_zero (i32.const 8)))
        (drop (i32x4.relaxed_laneselect (local.get $v) (local.get $v) (local.get $v)))
        (drop (i32.atomic.rmw.add $m0 (i32.const 0) (i32.const 1)))
        (atomic.fence)
        (memory.init $d (i32.const 0) (i32.const 0) (i32.const 0))
        (memory.copy $m0 $m1 (i32.const 0) (i32.const 0) (i32.const 0))
        (memory.fill $m1 (i32.const 0) (i32.const 0) (i32.const 0))
        (drop (table.size $t))
        (drop (table.get $t (i32.const 0)))
        (drop (i32.trunc_sat_f32_s (f32.const 1)))
        (drop (ref.is_null (ref.null extern)))
        (global.set $g (global.get $g))
        (elem.drop $el)
        (i32.const 0)))`;
    const bytes = await wat(everything);
    expect(WebAssembly.validate(bytes as BufferSource)).toBe(true);
    const ctx = parseModule(bytes);
    expect(findStateChange(ctx)).toEqual({ func: 1, instruction: 'elem.drop' });
  });

  it('decodes GC instructions in step, and refuses GC writes', () => {
    // wabt cannot assemble GC text, so this module is checked in as bytes, assembled by wasm-tools from:
    // (module (type $s (struct (field i32) (field (mut i64)))) (type $a (array (mut i8))) (memory 1) (data $d "data")
    //   (func (param $r (ref null $s)) (local $x (ref null $a))
    //     (drop (struct.new $s (i32.const 1) (i64.const 2)))
    //     (drop (struct.get $s 1 (ref.as_non_null (local.get $r))))
    //     (local.set $x (array.new_data $a $d (i32.const 0) (i32.const 2)))
    //     (drop (array.new_fixed $a 2 (i32.const 1) (i32.const 2)))
    //     (drop (array.get_u $a (local.get $x) (i32.const 0)))
    //     (drop (array.len (local.get $x)))
    //     (drop (ref.test (ref $s) (local.get $r)))
    //     (drop (ref.cast (ref null $s) (local.get $r)))
    //     (drop (block $c (result (ref $s)) (br_on_cast $c (ref null $s) (ref $s) (local.get $r)) (unreachable)))
    //     (drop (i31.get_s (ref.i31 (i32.const 5))))
    //     (drop (any.convert_extern (ref.null extern)))
    //     (array.set $a (local.get $x) (i32.const 0) (i32.const 1))))
    const gc = Buffer.from(
      '0061736d01000000010f035f027f007e015e780160016300000302010205030100010c01010a6601640101630141014202fb00001a2000d4fb0200011a41004102fb090100210141014102fb0801021a20014100fb0d011a2001fb0f1a2000fb14001a2000fb17001a0264002000fb1801000000000b1a4105fb1cfb1d1ad06ffb1a1a200141004101fb0e010b0b07010104646174610027046e616d6502090100020001720101780306010001000163040702000173010161090401000164',
      'hex',
    );
    expect(WebAssembly.validate(gc)).toBe(true);
    expect(findStateChange(parseModule(new Uint8Array(gc)))).toEqual({ func: 0, instruction: 'array.set' });
  });

  it('accepts code that only reads tables and uses memory.init', async () => {
    const input = await wat(`(module (table 1 funcref) (memory 1) (data $d "hi") (elem (i32.const 0) func $f)
      (func $f (result i32) (i32.const 3))
      (func (export "wizer-initialize") (memory.init $d (i32.const 0) (i32.const 0) (i32.const 2)))
      (func (export "g") (result i32) (call_indirect (result i32) (i32.const 0))))`);
    expect(wizInit(input).status).toBe(0);
  });
});
