// Component fixtures as text (assembled at test time with wasm-tools through jco-transpile), and a runner that
// calls a component's exports in a fresh process, as a user of wiz's output would.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const RUNNER = join(import.meta.dirname, 'component-run.ts');

export interface ComponentRun {
  /** The guest's output (stdout) before the results. */
  output: string;
  exports: string[];
  results: Record<string, { value?: unknown; error?: string; missing?: boolean }>;
}

/** Instantiates the component in a fresh Node process, calls `init` first if given, then each of `calls`. */
export function runComponent(path: string, config: { init?: string; calls: string[]; preopens?: Record<string, string>; env?: Record<string, string> }): ComponentRun {
  const r = spawnSync(process.execPath, [RUNNER, path, JSON.stringify(config)], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const lines = r.stdout.split('\n');
  const last = lines.findIndex((l) => l.startsWith('RESULTS '));
  if (r.status !== 0 || last < 0) throw new Error(`running ${path} failed (${r.status}): ${r.stderr}`);
  return { output: lines.slice(0, last).join('\n'), ...(JSON.parse(lines[last]!.slice('RESULTS '.length)) as Omit<ComponentRun, 'output'>) };
}

/**
 * Two core modules share one memory: the owner defines it, the user imports it, writes it with a data segment
 * at instantiation and from init (after growing it); a third reads it back.
 */
export const SHARED_MEMORY = `(component
  (core module $owner
    (memory (export "memory") 1)
    (global $count (mut i32) (i32.const 0))
    (func (export "bump") (global.set $count (i32.add (global.get $count) (i32.const 1))))
    (func (export "count") (result i32) (global.get $count))
    (func (export "peek") (param i32) (result i32) (i32.load (local.get 0))))
  (core module $user
    (import "owner" "memory" (memory 1))
    (import "owner" "bump" (func $bump))
    (global $seed (mut i64) (i64.const 0))
    (data (i32.const 64) "\\2a")
    (func (export "init")
      (i32.store (i32.const 128) (i32.add (i32.load (i32.const 64)) (i32.const 1000)))
      (drop (memory.grow (i32.const 1)))
      (i32.store (i32.const 70000) (i32.const 7))
      (global.set $seed (i64.const 0x123456789abcdef0))
      (call $bump))
    (func (export "seed") (result i64) (global.get $seed)))
  (core module $reader
    (import "owner" "peek" (func $peek (param i32) (result i32)))
    (func (export "at-64") (result i32) (call $peek (i32.const 64)))
    (func (export "at-128") (result i32) (call $peek (i32.const 128)))
    (func (export "at-70000") (result i32) (call $peek (i32.const 70000))))
  (core instance $o (instantiate $owner))
  (core instance $u (instantiate $user (with "owner" (instance $o))))
  (core instance $r (instantiate $reader (with "owner" (instance $o))))
  (func (export "wizer-initialize") (canon lift (core func $u "init")))
  (func (export "count") (result u32) (canon lift (core func $o "count")))
  (func (export "seed") (result u64) (canon lift (core func $u "seed")))
  (func (export "at-64") (result u32) (canon lift (core func $r "at-64")))
  (func (export "at-128") (result u32) (canon lift (core func $r "at-128")))
  (func (export "at-70000") (result u32) (canon lift (core func $r "at-70000")))
)`;

/** A component nested in another, its module's state set by init. */
export const NESTED = `(component
  (component $inner
    (core module $m
      (global $g (mut i32) (i32.const 0))
      (memory 1)
      (func (export "init") (global.set $g (i32.const 7)) (i32.store (i32.const 8) (i32.const 99)))
      (func (export "get") (result i32) (i32.add (global.get $g) (i32.load (i32.const 8)))))
    (core instance $i (instantiate $m))
    (func (export "init") (canon lift (core func $i "init")))
    (func (export "get") (result u32) (canon lift (core func $i "get"))))
  (instance $x (instantiate $inner))
  (alias export $x "init" (func $init))
  (alias export $x "get" (func $get))
  (export "wizer-initialize" (func $init))
  (export "get" (func $get))
)`;

/** Floats with NaN payloads (a signalling one), -0 and a v128 global, set by init: bits must survive. */
export const FLOAT_BITS = `(component
  (core module $m
    (global $f (mut f32) (f32.const 0))
    (global $d (mut f64) (f64.const 0))
    (global $v (mut v128) (v128.const i64x2 0 0))
    (global $z (mut f64) (f64.const 1))
    (func (export "init")
      (global.set $f (f32.reinterpret_i32 (i32.const 0x7fa00001)))
      (global.set $d (f64.reinterpret_i64 (i64.const 0xfff8000000000123)))
      (global.set $v (v128.const i64x2 0x0123456789abcdef 0xfedcba9876543210))
      (global.set $z (f64.const -0)))
    (func (export "f-bits") (result i32) (i32.reinterpret_f32 (global.get $f)))
    (func (export "d-bits") (result i64) (i64.reinterpret_f64 (global.get $d)))
    (func (export "v-lo") (result i64) (i64x2.extract_lane 0 (global.get $v)))
    (func (export "v-hi") (result i64) (i64x2.extract_lane 1 (global.get $v)))
    (func (export "z-bits") (result i64) (i64.reinterpret_f64 (global.get $z))))
  (core instance $i (instantiate $m))
  (func (export "wizer-initialize") (canon lift (core func $i "init")))
  (func (export "f-bits") (result u32) (canon lift (core func $i "f-bits")))
  (func (export "d-bits") (result u64) (canon lift (core func $i "d-bits")))
  (func (export "v-lo") (result u64) (canon lift (core func $i "v-lo")))
  (func (export "v-hi") (result u64) (canon lift (core func $i "v-hi")))
  (func (export "z-bits") (result u64) (canon lift (core func $i "z-bits")))
)`;

/** One module instantiated twice: one section cannot hold two states. */
export const TWICE = `(component
  (core module $m (global $g (mut i32) (i32.const 0)) (func (export "f") (global.set $g (i32.const 1))))
  (core instance $a (instantiate $m))
  (core instance $b (instantiate $m))
  (func (export "wizer-initialize") (canon lift (core func $a "f")))
  (func (export "other") (canon lift (core func $b "f")))
)`;

/** A component start function. */
export const START = `(component
  (core module $m (func (export "f")))
  (core instance $a (instantiate $m))
  (func $f (canon lift (core func $a "f")))
  (start $f)
  (export "wizer-initialize" (func $f))
)`;

/** A core module import. */
export const MODULE_IMPORT = `(component
  (import "m" (core module $m (export "f" (func))))
  (core instance $a (instantiate $m))
  (func (export "wizer-initialize") (canon lift (core func $a "f")))
)`;

/** A component import. */
export const COMPONENT_IMPORT = `(component
  (import "c" (component))
  (core module $m (func (export "f")))
  (core instance $a (instantiate $m))
  (func (export "wizer-initialize") (canon lift (core func $a "f")))
)`;

/** A core module whose code is invalid (wasm-tools assembles it; nothing validated it). */
export const INVALID_CODE = `(component
  (core module $m (func (export "f") (drop (i64.add (i32.const 1) (i32.const 2)))))
  (core instance $a (instantiate $m))
  (func (export "wizer-initialize") (canon lift (core func $a "f")))
)`;

/** An invalid core module that nothing instantiates, beside a valid one. */
export const INVALID_UNUSED = `(component
  (core module $u (func (export "g") (i32.add)))
  (core module $m (global $g (mut i32) (i32.const 0)) (func (export "f") (global.set $g (i32.const 1))))
  (core instance $a (instantiate $m))
  (func (export "wizer-initialize") (canon lift (core func $a "f")))
)`;

/** Init traps. */
export const TRAPS = `(component
  (core module $m (func (export "f") unreachable))
  (core instance $a (instantiate $m))
  (func (export "wizer-initialize") (canon lift (core func $a "f")))
)`;

/** An interface export whose function takes arguments: wiz goes beyond `[] -> []`. */
export const INTERFACE_INIT = `(component
  (core module $m
    (global $g (mut i32) (i32.const 0))
    (func (export "setup") (param i32 i32) (global.set $g (i32.add (local.get 0) (i32.mul (local.get 1) (i32.const 100)))))
    (func (export "get") (result i32) (global.get $g)))
  (core instance $i (instantiate $m))
  (func $setup (param "a" u32) (param "b" u32) (canon lift (core func $i "setup")))
  (instance $setup-iface (export "setup" (func $setup)))
  (export "wiz:test/init" (instance $setup-iface))
  (func (export "get") (result u32) (canon lift (core func $i "get")))
)`;
