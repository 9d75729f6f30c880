// The library: the whole job in one call, or the two phases with the host running the module itself.
import { describe, expect, it } from 'vitest';
import { instrument, parseModule, preinitialize, snapshot, WizError } from '../src/index.ts';
import { observe } from './helpers/observe.ts';
import { wat } from './helpers/wat.ts';

const counter = `(module
  (memory (export "memory") 1)
  (global $n (export "n") (mut i64) (i64.const 0))
  (global $x (mut f32) (f32.const 0))
  (func (export "wizer-initialize") (global.set $n (i64.const 10)))
  (func (export "step") (global.set $n (i64.add (global.get $n) (i64.const 1)))
    (i64.store (i32.wrap_i64 (i64.mul (global.get $n) (i64.const 8))) (global.get $n))
    (global.set $x (f32.const nan:0x7)))
  (func (export "x") (result i32) (i32.reinterpret_f32 (global.get $x))))`;

describe('library API', () => {
  it('instrument adds only the reference\'s exports, and records their names', async () => {
    const input = await wat(counter);
    const instrumented = instrument(input);
    expect(instrumented.globals).toEqual([
      { index: 0, type: 'i64', exportName: '__wizer_global_0' },
      { index: 1, type: 'f32', exportName: '__wizer_global_1' },
    ]);
    expect(instrumented.memories.map((m) => m.exportName)).toEqual(['__wizer_memory_0']);
    const before = parseModule(input);
    const after = parseModule(instrumented.bytes);
    expect(after.exports.map((e) => e.name)).toEqual([...before.exports.map((e) => e.name), '__wizer_global_0', '__wizer_global_1', '__wizer_memory_0']);
    // Every section but the exports is unchanged.
    const body = (ctx: ReturnType<typeof parseModule>, w: Uint8Array) => ctx.sections.filter((s) => s.id !== 7).map((s) => Buffer.from(w.subarray(s.start, s.end)).toString('hex'));
    expect(body(after, instrumented.bytes)).toEqual(body(before, input));
  });

  it('snapshot captures a live instance the host ran as it liked', async () => {
    const input = await wat(counter);
    const instrumented = instrument(input);
    const { instance } = await WebAssembly.instantiate(instrumented.bytes as BufferSource);
    const step = instance.exports.step as () => void;
    step();
    step();
    step();
    const output = await snapshot(instrumented, instance);
    const { instance: resumed } = await WebAssembly.instantiate(output as BufferSource);
    expect((resumed.exports.n as WebAssembly.Global).value).toBe(3n);
    expect((resumed.exports.x as () => number)() >>> 0).toBe(0x7f800007); // a signalling NaN, bits intact
    expect(new BigInt64Array((resumed.exports.memory as WebAssembly.Memory).buffer, 8, 3)).toEqual(new BigInt64Array([1n, 2n, 3n]));
    // Nothing of the instrumentation is left, and the original exports are all there.
    expect(WebAssembly.Module.exports(new WebAssembly.Module(output as BufferSource)).map((e) => e.name)).toEqual(['memory', 'n', 'wizer-initialize', 'step', 'x']);
  });

  it('snapshot reads one consistent state, even if the host keeps running the instance meanwhile', async () => {
    const input = await wat(`(module (memory (export "memory") 1) (global $n (export "n") (mut i32) (i32.const 0))
      (func (export "wizer-initialize"))
      (func (export "tick") (global.set $n (i32.add (global.get $n) (i32.const 1))) (i32.store (i32.const 0) (global.get $n))))`);
    const instrumented = instrument(input);
    const { instance } = await WebAssembly.instantiate(instrumented.bytes as BufferSource);
    const tick = instance.exports.tick as () => void;
    tick();
    // The host's timers and promise callbacks keep ticking while snapshot() awaits.
    const interval = setInterval(tick, 0);
    const ticking = (async () => { for (let i = 0; i < 50; i++) { await Promise.resolve(); tick(); } })();
    const output = await snapshot(instrumented, instance, { provenance: true });
    clearInterval(interval);
    await ticking;
    const { instance: copy } = await WebAssembly.instantiate(output as BufferSource);
    const n = (copy.exports.n as WebAssembly.Global).value as number;
    expect(new Uint32Array((copy.exports.memory as WebAssembly.Memory).buffer, 0, 1)[0]).toBe(n);
  });

  it('preinitialize equals running the init function live', async () => {
    const input = await wat(counter);
    expect(await observe(await preinitialize(input))).toEqual(await observe(input, { init: 'wizer-initialize' }));
  });

  it('host imports given to preinitialize are called during init', async () => {
    const input = await wat(`(module (import "host" "seed" (func $seed (result i32)))
      (global $g (export "g") (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set $g (call $seed))))`);
    const output = await preinitialize(input, { imports: { host: { seed: () => 1234 } } });
    const { instance } = await WebAssembly.instantiate(output as BufferSource, { host: { seed: () => 0 } });
    expect((instance.exports.g as WebAssembly.Global).value).toBe(1234);
  });

  it('errors are WizError with a stable code', async () => {
    const input = await wat(`(module (func (export "wizer-initialize") unreachable))`);
    const error = await preinitialize(input).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WizError);
    expect((error as WizError).code).toBe('trap');
  });

  it('reads 20,000 mutable globals of every type bit-exactly beside 75,000 exports', async () => {
    const types = ['i32', 'i64', 'f32', 'f64', 'v128'];
    const count = 20_000;
    const value = (t: string, i: number) =>
      t === 'v128' ? `(v128.const i32x4 ${i} -1 ${i * 3} 0x7fc00001)` : t.startsWith('f') ? `(${t}.const -nan:0x${(i + 1).toString(16)})` : `(${t}.const ${-i})`;
    const globals = Array.from({ length: count }, (_, i) => `(global $g${i} (mut ${types[i % 5]}) ${value(types[i % 5]!, 0)})`).join('\n');
    const sets = Array.from({ length: count }, (_, i) => `(global.set $g${i} ${value(types[i % 5]!, i)})`).join('\n');
    const exports = Array.from({ length: 75_000 }, (_, i) => `(export "e${i}" (func $init))`).join('\n');
    const input = await wat(`(module ${globals} (func $init ${sets}) (export "wizer-initialize" (func $init)) ${exports})`);
    const output = await preinitialize(input);
    const ctx = parseModule(output);
    const expected = await wat(`(module ${Array.from({ length: count }, (_, i) => `(global (mut ${types[i % 5]}) ${value(types[i % 5]!, i)})`).join('\n')})`);
    const globalsOf = (w: Uint8Array, c = parseModule(w)) => {
      const s = c.sections.find((s) => s.id === 6)!;
      return Buffer.from(w.subarray(s.contentStart, s.end));
    };
    expect(globalsOf(output, ctx).equals(globalsOf(expected))).toBe(true);
  }, 60_000);

  it('provides a fresh tag for an imported tag (the reference crashes on these)', async () => {
    const input = await wat(`(module (import "env" "err" (tag $e (param i32)))
      (global $g (export "g") (mut i32) (i32.const 0))
      (func (export "wizer-initialize")
        (global.set $g (block $h (result i32) (try_table (catch $e $h) (throw $e (i32.const 7))) (i32.const 0)))))`);
    const output = await preinitialize(input);
    const tag = new (WebAssembly as unknown as { Tag: new (t: { parameters: string[] }) => unknown }).Tag({ parameters: ['i32'] });
    const { instance } = await WebAssembly.instantiate(output as BufferSource, { env: { err: tag } } as WebAssembly.Imports);
    expect((instance.exports.g as WebAssembly.Global).value).toBe(7);
  });
});

describe('examples', () => {
  it('examples/savestate.ts runs and resumes its state each time', async () => {
    const { execFileSync } = await import('node:child_process');
    const { join } = await import('node:path');
    const out = execFileSync(process.execPath, [join(import.meta.dirname, '..', 'examples', 'savestate.ts')]).toString();
    expect(out).toMatch(/^after 1, 2: total 1003, saved \d+ bytes\nafter 30: total 1033, saved \d+ bytes\nafter 400, 500: total 1933, saved \d+ bytes\n$/);
  });

  it('examples/durable.ts saves a worker while a reply is pending and finishes it from the image', async () => {
    const { execFileSync } = await import('node:child_process');
    const { join } = await import('node:path');
    const out = execFileSync(process.execPath, [join(import.meta.dirname, '..', 'examples', 'durable.ts')]).toString();
    expect(out).toMatch(/^suspended: rpc\.price\(0\)\nsaved: \d+ bytes of JSON, 1 chunk\(s\); the reply came: 10\nsuspended: rpc\.price\(1\)\nsuspended: rpc\.price\(2\)\ntotal\(3\) = 60\n$/);
  });
});

describe('provenance where WebCrypto is missing (a browser page on plain http)', () => {
  it('is left out with a warning by default, and refused when asked for', async () => {
    const { vi } = await import('vitest');
    const { preinitialize: run, readProvenance: read } = await import('../src/index.ts');
    const input = await wat(`(module (global (mut i32) (i32.const 0)) (func (export "wizer-initialize")))`);
    vi.stubGlobal('crypto', undefined);
    try {
      const warnings: string[] = [];
      const output = await run(input, { keepInstrumentation: true, onWarning: (w) => warnings.push(w) });
      expect(read(parseModule(output))).toBeUndefined();
      expect(warnings).toEqual(['provenance not recorded: this context lacks WebCrypto (crypto.subtle), which browsers offer only on https and localhost']);
      await expect(run(input, { keepInstrumentation: true, provenance: true })).rejects.toThrow(/recording provenance needs WebCrypto/);
    } finally {
      vi.unstubAllGlobals();
    }
    expect(read(parseModule(await run(input, { keepInstrumentation: true })))?.generation).toBe(0);
  });
});
