// The durable fixture of test/durable.test.ts, for tests that run it elsewhere (workerd, Chromium): a program that
// suspends in three imports, the answers a remote service would give, and its uninterrupted run as the reference.
import { asyncify } from '../../src/durable/asyncify.ts';
import { wat } from './wat.ts';

/** Nested frames, three suspending imports (i32, none, i64), globals of every numeric kind (a NaN payload, v128). */
export const APP = `(module
  (import "rpc" "fetch" (func $fetch (param i32) (result i32)))
  (import "rpc" "wait" (func $wait))
  (import "rpc" "big" (func $big (param i64) (result i64)))
  (memory (export "memory") 1)
  (global $count (export "count") (mut i32) (i32.const 0))
  (global $acc (mut i64) (i64.const 0))
  (global $nan (mut f64) (f64.const nan:0x4000000000001))
  (global $vec (mut v128) (v128.const i32x4 1 2 3 4))
  (func $deep (param $d i32) (param $x i32) (result i32) (local $keep i32)
    (local.set $keep (i32.mul (local.get $x) (i32.const 3)))
    (if (result i32) (i32.eqz (local.get $d))
      (then (i32.add (local.get $keep) (call $fetch (local.get $x))))
      (else (i32.add (local.get $keep) (call $deep (i32.sub (local.get $d) (i32.const 1)) (i32.add (local.get $x) (i32.const 1)))))))
  (func (export "main") (param $n i32) (result i64) (local $i i32) (local $v i32)
    (loop $l
      (local.set $v (call $deep (i32.rem_u (local.get $i) (i32.const 4)) (local.get $i)))
      (i32.store (i32.add (i32.const 1024) (i32.mul (local.get $i) (i32.const 4))) (local.get $v))
      (global.set $count (i32.add (global.get $count) (i32.const 1)))
      (if (i32.eq (i32.rem_u (local.get $i) (i32.const 3)) (i32.const 1)) (then (call $wait)))
      (global.set $acc (i64.add (global.get $acc) (call $big (i64.extend_i32_u (local.get $v)))))
      (global.set $nan (f64.neg (global.get $nan)))
      (global.set $vec (i32x4.add (global.get $vec) (i32x4.splat (local.get $v))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (f64.store (i32.const 16) (global.get $nan))
    (v128.store (i32.const 32) (global.get $vec))
    (global.get $acc)))`;

export const SUSPEND_ON = ['rpc.fetch', 'rpc.wait', 'rpc.big'];

/** The host's answer to a pending call, from its arguments alone (as a remote service would give it). */
export function answer(name: string, args: readonly string[]): number | bigint | undefined {
  if (name === 'rpc.fetch') return Number(args[0]) * 7 + 1;
  if (name === 'rpc.big') return BigInt(args[0]!) * 1000003n + 5n;
  return undefined;
}

/** The program's end state, as every host reports it. */
export interface EndState {
  result: bigint;
  /** The program's memory (`memory`), all of it. */
  memory: Uint8Array;
  /** The exported global `count`. */
  count: number;
}

/** The original module (not asyncified), run uninterrupted with the same answers given at once. */
export async function reference(n: number): Promise<EndState> {
  const imports = {
    rpc: {
      fetch: (x: number) => answer('rpc.fetch', [String(x)]),
      wait: () => undefined,
      big: (x: bigint) => answer('rpc.big', [String(x)]),
    },
  };
  const { instance } = await WebAssembly.instantiate(await wat(APP) as Uint8Array<ArrayBuffer>, imports);
  const result = (instance.exports.main as (n: number) => bigint)(n);
  return {
    result,
    memory: new Uint8Array((instance.exports.memory as WebAssembly.Memory).buffer).slice(),
    count: (instance.exports.count as WebAssembly.Global).value as number,
  };
}

let durable: Promise<Uint8Array> | undefined;
/** The durable module of APP, built once per test file (asyncify needs Binaryen: a build-time step, in Node). */
export const durableApp = (): Promise<Uint8Array> => (durable ??= wat(APP).then((b) => asyncify(b, { suspendOn: SUSPEND_ON })));
