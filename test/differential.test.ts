// Differential tests: each fixture is pre-initialized by wiz and by the native reference binary; the outputs
// must be byte-identical, and behave like the live instance after init.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { observe } from './helpers/observe.ts';
import { hasNativeWizer, nativeWizer, wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

interface Case {
  name: string;
  wat: string;
  args?: string[];
  /** Write a `name` section (after the code section, as toolchains do). */
  names?: boolean;
  /** The init function to observe the live instance with. */
  init?: string;
}

const cases: Case[] = [
  {
    name: 'the bundled demo (a 16 MiB sieve during init)',
    wat: readFileSync(join(import.meta.dirname, '..', 'fixtures', 'demo.wat'), 'utf8'),
  },
  {
    name: 'globals of every numeric type keep their exact bits',
    wat: `(module
      (global $i32 (export "i32") (mut i32) (i32.const 0))
      (global $i64 (export "i64") (mut i64) (i64.const 0))
      (global $f32 (export "f32") (mut f32) (f32.const 0))
      (global $f64 (export "f64") (mut f64) (f64.const 0))
      (global $negzero (mut f64) (f64.const 0))
      (global $inf (mut f32) (f32.const 0))
      (global $v128 (mut v128) (v128.const i64x2 0 0))
      (global $imm i32 (i32.const 7))
      (func (export "wizer-initialize")
        (global.set $i32 (i32.const -123456789))
        (global.set $i64 (i64.const 0x7fedcba987654321))
        (global.set $f32 (f32.const -nan:0x1))
        (global.set $f64 (f64.const nan:0x4000000000001))
        (global.set $negzero (f64.const -0))
        (global.set $inf (f32.const -inf))
        (global.set $v128 (v128.const i64x2 0x0123456789abcdef 0xfedcba9876543210)))
      (func (export "f32bits") (result i32) (i32.reinterpret_f32 (global.get $f32)))
      (func (export "f64bits") (result i64) (i64.reinterpret_f64 (global.get $f64)))
      (func (export "negzero") (result i64) (i64.reinterpret_f64 (global.get $negzero)))
      (func (export "inf") (result i32) (i32.reinterpret_f32 (global.get $inf)))
      (func (export "lo") (result i64) (i64x2.extract_lane 0 (global.get $v128)))
      (func (export "hi") (result i64) (i64x2.extract_lane 1 (global.get $v128)))
      (func (export "imm") (result i32) (global.get $imm)))`,
  },
  {
    name: 'memory growth, stores across a page boundary, original data kept',
    wat: `(module
      (memory (export "memory") 1 10)
      (data (i32.const 100) "original")
      (func (export "wizer-initialize")
        (drop (memory.grow (i32.const 2)))
        (i64.store (i32.const 65532) (i64.const -1))
        (i32.store8 (i32.const 190000) (i32.const 9)))
      (func (export "size") (result i32) (memory.size))
      (func (export "grow") (result i32) (memory.grow (i32.const 1)))
      (func (export "load") (result i64) (i64.load (i32.const 65532))))`,
  },
  {
    name: 'runs closer than 5 bytes merge, 5 apart stay separate',
    wat: `(module
      (memory (export "memory") 2)
      (func (export "wizer-initialize")
        (i32.store8 (i32.const 10) (i32.const 1))
        (i32.store8 (i32.const 15) (i32.const 2)) ;; gap of 4 zeros: merged
        (i32.store8 (i32.const 21) (i32.const 3)) ;; gap of 5 zeros: a new segment
        (i32.store8 (i32.const 65535) (i32.const 4))
        (i32.store8 (i32.const 65536) (i32.const 5)))) ;; the page boundary does not split`,
  },
  {
    name: 'active segments become empty passive ones, passive segments and DataCount stay valid',
    wat: `(module
      (memory (export "memory") 1)
      (data $a (i32.const 0) "abc")
      (data $p "passive!")
      (data $b (i32.const 32) "def")
      (func (export "wizer-initialize") (i32.store8 (i32.const 1) (i32.const 0x5a)))
      (func (export "init_passive") (memory.init $p (i32.const 64) (i32.const 0) (i32.const 8)))
      (func (export "init_active") (memory.init $a (i32.const 64) (i32.const 0) (i32.const 1))))`,
  },
  {
    name: 'the start function runs once, before the init function, and is dropped',
    wat: `(module
      (global $n (export "n") (mut i32) (i32.const 0))
      (func $start (global.set $n (i32.add (global.get $n) (i32.const 1))))
      (start $start)
      (func (export "wizer-initialize") (global.set $n (i32.mul (global.get $n) (i32.const 10))))
      (func (export "get") (result i32) (global.get $n)))`,
  },
  {
    name: '_initialize runs before the init function and is removed',
    wat: `(module
      (global $log (export "log") (mut i32) (i32.const 0))
      (func (export "_initialize") (global.set $log (i32.add (i32.mul (global.get $log) (i32.const 10)) (i32.const 1))))
      (func (export "wizer-initialize") (global.set $log (i32.add (i32.mul (global.get $log) (i32.const 10)) (i32.const 2))))
      (func (export "get") (result i32) (global.get $log)))`,
  },
  {
    name: '_initialize as the init function runs once',
    args: ['-f', '_initialize'],
    init: '_initialize',
    wat: `(module
      (global $n (export "n") (mut i32) (i32.const 0))
      (func (export "_initialize") (global.set $n (i32.add (global.get $n) (i32.const 1))))
      (func (export "get") (result i32) (global.get $n)))`,
  },
  {
    name: '--keep-init-func and renames (a swap, a replacement, any export kind)',
    args: ['--keep-init-func', '-r', 'a=b', '-r', 'b=a', '-r', 'main=alt', '-r', 'mem=memory'],
    wat: `(module
      (memory (export "memory") 1)
      (global $g (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set $g (i32.const 5)))
      (func (export "a") (result i32) (i32.const 1))
      (func (export "b") (result i32) (i32.const 2))
      (func (export "main") (result i32) (i32.const 3))
      (func (export "alt") (result i32) (global.get $g)))`,
  },
  {
    name: 'an init function named with -f, immutable and extended-const globals kept as written',
    args: ['-f', 'setup'],
    init: 'setup',
    wat: `(module
      (global $end i32 (i32.add (i32.const 1024) (i32.mul (i32.const 4) (i32.const 4))))
      (global $p (mut i32) (i32.sub (i32.const 1040) (i32.const 8)))
      (func (export "setup") (global.set $p (i32.add (global.get $p) (i32.const 4))))
      (func (export "p") (result i32) (global.get $p))
      (func (export "end") (result i32) (global.get $end)))`,
  },
  {
    name: 'function imports may exist when init does not call them',
    wat: `(module
      (import "env" "log" (func $log (param i32)))
      (memory (export "memory") 1)
      (func (export "wizer-initialize") (i32.store (i32.const 8) (i32.const 77)))
      (func (export "later") (call $log (i32.const 1))))`,
  },
  {
    name: 'a module without memory or globals',
    wat: `(module (func (export "wizer-initialize")) (func (export "one") (result i32) (i32.const 1)))`,
  },
  {
    name: 'custom and name sections are copied',
    wat: `(module
      (@custom "before-type" (before type) "x")
      (@custom "after-code" (after code) "y")
      (memory 1)
      (data (i32.const 8) "z")
      (func $named (export "wizer-initialize") (i32.store (i32.const 0) (i32.const 1))))`,
    names: true,
  },
  {
    name: 'multiple memories, each snapshotted into its own segments',
    wat: `(module
      (memory $a (export "a") 1)
      (memory $b (export "b") 1 4)
      (func (export "wizer-initialize")
        (i32.store $a (i32.const 4) (i32.const 0x11111111))
        (drop (memory.grow $b (i32.const 1)))
        (i32.store $b (i32.const 70000) (i32.const 0x22222222)))
      (func (export "bsize") (result i32) (memory.size $b)))`,
  },
  {
    name: 'many mutable globals of mixed types',
    wat: `(module
      ${Array.from({ length: 300 }, (_, i) => `(global $g${i} (mut ${['i32', 'i64', 'f32', 'f64'][i % 4]}) (${['i32', 'i64', 'f32', 'f64'][i % 4]}.const 0))`).join('\n')}
      (func (export "wizer-initialize")
        ${Array.from({ length: 300 }, (_, i) => `(global.set $g${i} (${['i32', 'i64', 'f32', 'f64'][i % 4]}.const ${i * 1000 + 1}))`).join('\n')})
      (func (export "sum") (result i64)
        (i64.add (i64.extend_i32_u (global.get $g296)) (global.get $g297))))`,
  },
];

describe.skipIf(!hasNativeWizer)('wiz init against the native Wizer', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const input = await wat(c.wat, { names: c.names });
      const ours = wizInit(input, c.args);
      const reference = nativeWizer(input, c.args);
      expect(reference.status, reference.stderr).toBe(0);
      expect(ours.stderr).toBe('');
      expect(ours.status).toBe(0);
      expect(Buffer.from(ours.output!).equals(Buffer.from(reference.output!))).toBe(true);
      // And the snapshot behaves as the live instance did after init.
      const renamed = c.args?.some((a) => a.includes('='));
      if (!renamed) {
        expect(await observe(ours.output!)).toEqual(await observe(input, { init: c.init ?? 'wizer-initialize' }));
      }
    });
  }
});
