// Host access during init: WASI, preloaded modules, a time limit, and warnings about nondeterminism.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCFixtures, C_TOOLCHAIN_HINT, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { observe } from './helpers/observe.ts';
import { hasNativeWizer, nativeWizer, tempDir, wiz, wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

// CI (CI=true) installs the toolchain first, so there a broken install fails instead of skipping.
const cToolchain = hasCToolchain();
if (!cToolchain && (process.env.CI === 'true' || process.env.WIZ_REQUIRE_C_FIXTURES)) throw new Error(`C fixtures required but no wasm32-wasi clang: ${C_TOOLCHAIN_HINT}`);
if (!cToolchain) console.warn(`C fixture tests skipped: no wasm32-wasi clang (${C_TOOLCHAIN_HINT})`);

/** The C programs' results after init, by export; their memories hold host-specific WASI details (fd rights). */
const results = async (wasm: Uint8Array) => Object.fromEntries(Object.entries(await observe(wasm, { memories: false })).map(([k, v]) => [k, v.result]));

describe.skipIf(!cToolchain)('C programs compiled to wasm32-wasi', () => {
  let fixtures: Record<string, Uint8Array>;
  let configDir: string;
  beforeAll(() => {
    fixtures = Object.fromEntries(Object.entries(buildCFixtures()).map(([name, path]) => [name, new Uint8Array(readFileSync(path))]));
    configDir = tempDir();
    writeFileSync(join(configDir, 'settings.txt'), 'alpha 1\nbeta 20\ngamma 300\n');
  });

  it('config.c reads a --mapdir file and an --inherit-env variable into a malloc\'d list', async () => {
    const args = ['--allow-wasi', '--mapdir', `/config::${configDir}`, '--inherit-env'];
    const env = { PATH: process.env.PATH, GREETING: 'hello' };
    const ours = wizInit(fixtures.config!, args, { env });
    expect(ours.stderr).toBe('');
    expect(ours.status).toBe(0);
    const expected = { sum: '321', count: '3', greeting_length: '5' };
    expect(await results(ours.output!)).toMatchObject(expected);
    if (hasNativeWizer) {
      const reference = nativeWizer(fixtures.config!, args, { env });
      expect(reference.status, reference.stderr).toBe(0);
      expect(await results(reference.output!)).toEqual(await results(ours.output!));
    }
  });

  it('config.c with --dir (same path in the guest) and the environment not inherited by default', async () => {
    const env = { PATH: process.env.PATH, GREETING: 'hello', CONFIG_PATH: join(configDir, 'settings.txt') };
    const withEnv = wizInit(fixtures.config!, ['--allow-wasi', '--dir', configDir, '--inherit-env'], { env });
    expect(withEnv.status, withEnv.stderr).toBe(0);
    expect(await results(withEnv.output!)).toMatchObject({ sum: '321', greeting_length: '5' });
    // Without --inherit-env the guest sees neither CONFIG_PATH nor GREETING: it reads /config/settings.txt.
    const noEnv = wizInit(fixtures.config!, ['--allow-wasi', '--mapdir', `/config::${configDir}`], { env });
    expect(await results(noEnv.output!)).toMatchObject({ sum: '321', greeting_length: '-1' });
  });

  it('hello.c prints during init (inherited stdio), and prints nothing with --inherit-stdio=false', async () => {
    const loud = wizInit(fixtures.hello!, ['--allow-wasi']);
    expect(loud.status).toBe(0);
    expect(loud.stdout.toString()).toBe('hello from init, 20 + 22 = 42\n');
    expect(await results(loud.output!)).toMatchObject({ message_length: '29' });
    const quiet = wizInit(fixtures.hello!, ['--allow-wasi', '--inherit-stdio=false']);
    expect(quiet.stdout.toString()).toBe('');
    if (hasNativeWizer) {
      const reference = nativeWizer(fixtures.hello!, ['--allow-wasi']);
      expect(reference.stdout.toString()).toBe(loud.stdout.toString());
      expect(await results(reference.output!)).toEqual(await results(loud.output!));
    }
  });

  it('hello.c\'s output goes to stderr when the module goes to stdout', async () => {
    const r = wiz(['init', '-', '--allow-wasi'], { input: fixtures.hello! });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('hello from init, 20 + 22 = 42\n');
    expect(WebAssembly.validate(r.stdout as BufferSource)).toBe(true);
  });

  it('table.c: a CPU-heavy init gives the same 4 MiB table as the native Wizer, byte for byte', async () => {
    const ours = wizInit(fixtures.table!);
    expect(ours.status, ours.stderr).toBe(0);
    expect(await results(ours.output!)).toEqual(await results(await preinitializedLive(fixtures.table!)));
    if (hasNativeWizer) {
      const reference = nativeWizer(fixtures.table!);
      expect(Buffer.from(ours.output!).equals(Buffer.from(reference.output!))).toBe(true);
    }
  });

  it('without --allow-wasi, a WASI call names the import and the flag', () => {
    const r = wizInit(fixtures.config!);
    expect(r.stderr).toBe('wiz: the module called the import "wasi_snapshot_preview1" "fd_prestat_get" during initialization, which wiz does not provide; pass --allow-wasi to provide WASI during init\n');
    expect(r.status).toBe(1);
    expect(r.output).toBeUndefined();
  });
});

/** The live state after init, for a module that needs no imports: run init, then observe. */
async function preinitializedLive(wasm: Uint8Array): Promise<Uint8Array> {
  const { preinitialize } = await import('../src/preinitialize.ts');
  return preinitialize(wasm);
}

const nondeterministic = `(module
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wizer-initialize")
    (drop (call $random (i32.const 0) (i32.const 16)))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 16)))
    (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 24))))
  (func (export "first") (result i64) (i64.load (i32.const 0)))
  (func (export "time") (result i64) (i64.load (i32.const 16)))
  (func (export "later") (result i64) (i64.load (i32.const 24))))`;

describe('nondeterminism during init', () => {
  it('warns, once per kind, when init reads randomness or a clock', async () => {
    const r = wizInit(await wat(nondeterministic), ['--allow-wasi']);
    expect(r.status).toBe(0);
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([
      'wiz: warning: the module read random bytes (random_get) during init: every instance of the snapshot starts with the same ones (pass --deterministic for reproducible builds, and reseed at run time)',
      'wiz: warning: the module read a clock (clock_time_get) during init: the time it read is baked into the snapshot (pass --deterministic for reproducible builds)',
    ]);
  });

  it('--deterministic gives a fixed random stream and a clock from 0 in 1 ms steps: the same bytes every run', async () => {
    const input = await wat(nondeterministic);
    const a = wizInit(input, ['--allow-wasi', '--deterministic']);
    const b = wizInit(input, ['--allow-wasi', '--deterministic']);
    expect(a.stderr).toBe('');
    expect(Buffer.from(a.output!).equals(Buffer.from(b.output!))).toBe(true);
    const r = await results(a.output!);
    expect(r.time).toBe('1000000n');
    expect(r.later).toBe('2000000n');
    expect(r.first).not.toBe('0n');
  });
});

describe('--init-timeout', () => {
  it('stops an init function that never returns, and writes nothing', async () => {
    const input = await wat(`(module (func (export "wizer-initialize") (loop $l (br $l))))`);
    const r = wizInit(input, ['--init-timeout', '1']);
    expect(r.stderr).toBe('wiz: initialization did not finish within 1 s (--init-timeout); stopped it, nothing written\n');
    expect(r.status).toBe(1);
    expect(r.output).toBeUndefined();
  });

  it('lets a quick init finish, with the same output as without a limit', async () => {
    const input = await wat(`(module (global $g (export "g") (mut i32) (i32.const 0)) (func (export "wizer-initialize") (global.set $g (i32.const 3))))`);
    const limited = wizInit(input, ['--init-timeout=30']);
    expect(limited.status, limited.stderr).toBe(0);
    expect(Buffer.from(limited.output!).equals(Buffer.from(wizInit(input).output!))).toBe(true);
  });

  it('reports errors from the worker as one line', async () => {
    const input = await wat(`(module (func (export "wizer-initialize") unreachable))`);
    const r = wizInit(input, ['--init-timeout', '5']);
    expect(r.stderr).toBe('wiz: the init function "wizer-initialize" trapped: unreachable\n');
    expect(r.status).toBe(1);
  });
});

describe('--preload', () => {
  it('provides another module\'s exports as imports during init; the output still imports them', async () => {
    const dir = tempDir();
    const preload = join(dir, 'math.wasm');
    writeFileSync(preload, await wat(`(module (func (export "double") (param i32) (result i32) (i32.shl (local.get 0) (i32.const 1))))`));
    const input = await wat(`(module (import "math" "double" (func $double (param i32) (result i32)))
      (global $g (export "g") (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set $g (call $double (i32.const 21))))
      (func (export "again") (result i32) (call $double (global.get $g))))`);
    const ours = wizInit(input, ['--preload', `math=${preload}`]);
    expect(ours.status, ours.stderr).toBe(0);
    const math = await WebAssembly.instantiate(readFileSync(preload));
    const { instance } = await WebAssembly.instantiate(ours.output! as BufferSource, { math: math.instance.exports });
    expect((instance.exports.g as WebAssembly.Global).value).toBe(42);
    expect((instance.exports.again as () => number)()).toBe(84);
    if (hasNativeWizer) {
      const reference = nativeWizer(input, ['--preload', `math=${preload}`]);
      expect(reference.status, reference.stderr).toBe(0);
      expect(Buffer.from(ours.output!).equals(Buffer.from(reference.output!))).toBe(true);
    }
  });
});

describe('bad host flags', () => {
  const trivial = () => wat(`(module (func (export "wizer-initialize")))`);
  const cases: [string, string[], RegExp][] = [
    ['a --mapdir without ::', ['--allow-wasi', '--mapdir', '/a'], /^wiz: --mapdir "\/a" is not of the form GUEST::HOST\n$/],
    ['a missing --dir', ['--allow-wasi', '--dir', '/nonexistent/dir'], /^wiz: --dir \/nonexistent\/dir: "\/nonexistent\/dir" is not a directory\n$/],
    ['--dir without --allow-wasi', ['--dir', '/tmp'], /^wiz: --dir, --mapdir and --deterministic need --allow-wasi\n$/],
    ['a missing preload file', ['--preload', 'x=/nonexistent.wasm'], /^wiz: --preload x: cannot read "\/nonexistent\.wasm"\n$/],
    ['a malformed preload', ['--preload', 'nofile'], /^wiz: --preload "nofile" is not of the form name=file\.wasm\n$/],
    ['a bad time limit', ['--init-timeout', 'soon'], /^wiz: --init-timeout takes a number of seconds above 0 and at most 2147483, not "soon"\n$/],
    ['a bad --inherit-stdio value', ['--inherit-stdio=maybe'], /^wiz: --inherit-stdio takes true or false, not "maybe"\n$/],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const r = wizInit(await trivial(), args);
      expect(r.stderr).toMatch(message);
      expect(r.status).not.toBe(0);
      expect(r.output).toBeUndefined();
    });
  }

  it('accepts the reference\'s --wasm-* feature switches', async () => {
    const r = wizInit(await trivial(), ['--wasm-simd=true', '--wasm-bulk-memory', '--wasm-multi-memory=false']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('host corner cases', () => {
  it('a module without a memory may still use WASI', async () => {
    const input = await wat(`(module (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
      (global $g (export "g") (mut i32) (i32.const 9)) (func (export "wizer-initialize") (global.set $g (call $y))))`);
    const r = wizInit(input, ['--allow-wasi']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(await results(r.output!)).toEqual({});
  });

  it('clock_res_get and out-of-bounds pointers behave as the host\'s WASI would, also with --deterministic', async () => {
    const input = await wat(`(module
      (import "wasi_snapshot_preview1" "clock_res_get" (func $res (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (global $res (mut i32) (i32.const -1)) (global $oob (mut i32) (i32.const -1))
      (func (export "wizer-initialize")
        (global.set $res (call $res (i32.const 1) (i32.const 0)))
        (global.set $oob (call $random (i32.const 65530) (i32.const 8))))
      (func (export "res") (result i32) (global.get $res))
      (func (export "oob") (result i32) (global.get $oob)))`);
    for (const flags of [['--allow-wasi'], ['--allow-wasi', '--deterministic']]) {
      const r = wizInit(input, flags);
      expect(r.status, r.stderr).toBe(0);
      expect(await results(r.output!)).toEqual({ res: '0', oob: '61' });
    }
  });

  it('a preloaded module gets no WASI (it would write into the main module\'s memory)', async () => {
    const dir = tempDir();
    const preload = join(dir, 'helper.wasm');
    writeFileSync(preload, await wat(`(module (import "wasi_snapshot_preview1" "random_get" (func $r (param i32 i32) (result i32)))
      (memory 1) (func (export "noise") (result i32) (call $r (i32.const 0) (i32.const 4))))`));
    const input = await wat(`(module (import "helper" "noise" (func $noise (result i32))) (memory (export "memory") 1)
      (func (export "wizer-initialize") (drop (call $noise))))`);
    const r = wizInit(input, ['--allow-wasi', '--preload', `helper=${preload}`]);
    expect(r.stderr).toMatch(/^wiz: the preloaded module "helper" called its import "wasi_snapshot_preview1" "random_get", which wiz does not provide\n$/);
    expect(r.status).toBe(1);
  });

  it('proc_exit during init is reported as such', async () => {
    const input = await wat(`(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32))) (memory (export "memory") 1)
      (func (export "wizer-initialize") (call $exit (i32.const 3))))`);
    const r = wizInit(input, ['--allow-wasi']);
    expect(r.stderr).toBe('wiz: the init function "wizer-initialize" exited the program (proc_exit) instead of returning\n');
    expect(r.status).toBe(1);
  });

  it('--init-timeout stops an init blocked in a WASI sleep, without waiting for it', async () => {
    // poll_oneoff on one clock subscription of 100 s: userdata, tag 0 (clock), clock id 1, timeout, precision, flags.
    const input = await wat(`(module (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "wizer-initialize")
        (i32.store8 (i32.const 8) (i32.const 0))
        (i32.store (i32.const 16) (i32.const 1))
        (i64.store (i32.const 24) (i64.const 100000000000))
        (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))`);
    const dir = tempDir();
    writeFileSync(join(dir, 'in.wasm'), input);
    const { spawnSync } = await import('node:child_process');
    const { WIZ_BIN } = await import('./helpers/run.ts');
    const r = spawnSync(process.execPath, [WIZ_BIN, 'init', join(dir, 'in.wasm'), '-o', join(dir, 'out.wasm'), '--allow-wasi', '--init-timeout', '1'], { timeout: 30_000 });
    expect(r.signal).toBeNull(); // it exited by itself, long before the 100 s sleep ended
    expect(r.stderr.toString()).toBe('wiz: initialization did not finish within 1 s (--init-timeout); stopped it, nothing written\n');
    expect(r.status).toBe(1);
  });
});
