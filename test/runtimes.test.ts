// The CLI on Deno and Bun: the same command line gives the same bytes as on Node, WASI included.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildCFixtures, C_TOOLCHAIN_HINT, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { observe } from './helpers/observe.ts';
import { tempDir, WIZ_BIN } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const root = join(import.meta.dirname, '..');
/** The machine is busy and each test starts a runtime several times: minutes, not seconds. */
const MINUTES = 5 * 60_000;

interface Runtime {
  name: string;
  command: string;
  /** What comes before the script and its arguments. */
  pre: string[];
}

const node: Runtime = { name: 'node', command: process.execPath, pre: [] };
const others: Runtime[] = [
  { name: 'deno', command: join(root, 'node_modules', '.bin', 'deno'), pre: ['run', '-A'] },
  { name: 'bun', command: join(root, 'node_modules', '.bin', 'bun'), pre: [] },
];

// CI (CI=true) installs both runtimes from package-lock.json: there one that is missing or cannot start fails the
// tests. Here a runtime that is not installed is skipped with a warning; one that is installed must start.
const ci = process.env.CI === 'true';
const present = others.filter((rt) => {
  if (!existsSync(rt.command) && !ci) {
    console.warn(`${rt.name} tests skipped: ${rt.command} is not installed (npm ci installs it)`);
    return false;
  }
  const r = spawnSync(rt.command, ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${rt.name} does not start (${rt.command} --version): ${r.error?.message ?? r.stderr}`);
  return true;
});
const runtimes = [node, ...present];

const cToolchain = hasCToolchain();
if (!cToolchain && (ci || process.env.WIZ_REQUIRE_C_FIXTURES)) throw new Error(`C fixtures required but no wasm32-wasi clang: ${C_TOOLCHAIN_HINT}`);
if (!cToolchain) console.warn(`C fixture tests on every runtime skipped: no wasm32-wasi clang (${C_TOOLCHAIN_HINT})`);

/** The same environment for every runtime, so that `--inherit-env` shows the guest the same variables. */
const env = { PATH: process.env.PATH, HOME: process.env.HOME, GREETING: 'hello' };

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The output file's bytes, if one was written. */
  output?: Buffer;
}

/** `wiz <command> input.wasm -o out.wasm ...args` on one runtime, in a fresh directory. */
function wizOn(rt: Runtime, command: 'init' | 'snapshot', wasm: Uint8Array, args: string[] = []): Run {
  const dir = tempDir();
  const input = join(dir, 'input.wasm');
  const out = join(dir, 'out.wasm');
  writeFileSync(input, wasm);
  const r = spawnSync(rt.command, [...rt.pre, WIZ_BIN, command, input, '-o', out, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 30 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, output: existsSync(out) ? readFileSync(out) : undefined };
}

/** Runs the command on every runtime; each must succeed, and give Node's bytes and Node's guest output. */
function sameOnEveryRuntime(command: 'init' | 'snapshot', wasm: Uint8Array, args: string[] = []): Run {
  const [reference, ...rest] = runtimes.map((rt) => ({ rt, run: wizOn(rt, command, wasm, args) }));
  for (const { rt, run } of [reference!, ...rest]) {
    expect(run.stderr, rt.name).toBe('');
    expect(run.status, rt.name).toBe(0);
  }
  for (const { rt, run } of rest) {
    expect(run.output!.equals(reference!.run.output!), `${rt.name} gives Node's bytes`).toBe(true);
    expect(run.stdout, rt.name).toBe(reference!.run.stdout);
  }
  return reference!.run;
}

const STATEFUL = `(module
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (global $x (mut f64) (f64.const 0))
  (func (export "wizer-initialize")
    (local $i i32)
    (loop $fill
      (i32.store8 offset=1000 (local.get $i) (i32.mul (local.get $i) (i32.const 7)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 5000))))
    (drop (memory.grow (i32.const 1)))
    (i32.store (i32.const 70000) (i32.const 0xdeadbeef))
    (global.set $n (i32.const 42))
    (global.set $x (f64.reinterpret_i64 (i64.const 0x7ff4000000000123))))
  (func (export "bump") (param i32) (result i32)
    (global.set $n (i32.add (global.get $n) (local.get 0)))
    (global.get $n))
  (func (export "n") (result i32) (global.get $n))
  (func (export "pages") (result i32) (memory.size)))`;

describe(`wiz on ${runtimes.map((rt) => rt.name).join(', ')}`, () => {
  it('init of a module with state in memory and globals gives the same bytes', async () => {
    const out = sameOnEveryRuntime('init', await wat(STATEFUL));
    expect(await observe(out.output!, { memories: false })).toMatchObject({ n: { result: '42' }, pages: { result: '2' } });
  }, MINUTES);

  it('snapshot of an instrumented module after --invoke calls gives the same bytes and prints the same results', async () => {
    const instrumented = sameOnEveryRuntime('init', await wat(STATEFUL), ['--keep-instrumentation']).output!;
    const snapshot = sameOnEveryRuntime('snapshot', instrumented, ['--invoke', 'bump(5)', '--invoke', 'bump(-2)']);
    expect(snapshot.stdout).toBe('bump(5) = 47\nbump(-2) = 45\n');
    expect(await observe(snapshot.output!, { memories: false })).toMatchObject({ n: { result: '45' } });
  }, MINUTES);

  it('an error is one line, exit code 1 and no output file, on every runtime', async () => {
    const wasm = await wat('(module (func (export "start")))');
    for (const rt of runtimes) {
      const r = wizOn(rt, 'init', wasm, ['--init-func', 'setup']);
      expect(r.stderr, rt.name).toBe('wiz: the module does not export the init function "setup" (its exported functions: "start"); name one with -f/--init-func\n');
      expect(r.status, rt.name).toBe(1);
      expect(r.output, rt.name).toBeUndefined();
    }
  }, MINUTES);

  describe.skipIf(!cToolchain)('C programs using WASI', () => {
    let fixtures: Record<string, Uint8Array>;
    let configDir: string;
    beforeAll(() => {
      fixtures = Object.fromEntries(Object.entries(buildCFixtures()).map(([name, path]) => [name, new Uint8Array(readFileSync(path))]));
      configDir = tempDir();
      writeFileSync(join(configDir, 'settings.txt'), 'alpha 1\nbeta 20\ngamma 300\n');
    }, MINUTES);

    it('config.c reads a --mapdir file and an --inherit-env variable, with --deterministic: the same bytes', async () => {
      const out = sameOnEveryRuntime('init', fixtures.config!, ['--allow-wasi', '--mapdir', `/config::${configDir}`, '--inherit-env', '--deterministic']);
      expect(await observe(out.output!, { memories: false })).toMatchObject({ sum: { result: '321' }, greeting_length: { result: '5' } });
    }, MINUTES);

    it('config.c with --dir and without the environment: the same bytes', async () => {
      const out = sameOnEveryRuntime('init', fixtures.config!, ['--allow-wasi', '--mapdir', `/config::${configDir}`, '--dir', configDir]);
      expect(await observe(out.output!, { memories: false })).toMatchObject({ sum: { result: '321' }, greeting_length: { result: '-1' } });
    }, MINUTES);

    it('hello.c prints during init (stdout a pipe): the same bytes and the same output', () => {
      expect(sameOnEveryRuntime('init', fixtures.hello!, ['--allow-wasi']).stdout).toBe('hello from init, 20 + 22 = 42\n');
    }, MINUTES);

    it('table.c, a CPU-heavy init without WASI: the same 4 MiB module', () => {
      sameOnEveryRuntime('init', fixtures.table!);
    }, MINUTES);
  });
});

describe('a runtime\'s node:wasi', () => {
  const options = { env: {}, preopens: {}, stdin: 0, stdout: 1, stderr: 2 };
  /** cli/wasi.ts loaded with `node:wasi` replaced by `module`. */
  const withWasi = async (module: object) => {
    vi.resetModules();
    vi.doMock('node:wasi', () => module);
    return import('../cli/wasi.ts');
  };
  afterEach(() => {
    vi.doUnmock('node:wasi');
    vi.resetModules();
  });

  it('missing: --allow-wasi fails with one line naming the runtime', async () => {
    const { runtimeWasi, runtimeName } = await withWasi({ WASI: undefined });
    await expect(runtimeWasi(options)).rejects.toThrow(`--allow-wasi is not supported on ${runtimeName()}: node:wasi has no WASI class (Node.js, Deno and Bun have it)`);
  });

  it('shaped as Bun\'s (wasiImport, setMemory): its functions are used and bound to the guest\'s memory', async () => {
    const bound: WebAssembly.Memory[] = [];
    class WASI {
      wasiImport = { fd_write: () => 0, fd_fdstat_get: () => 0 };
      setMemory(memory: WebAssembly.Memory) {
        bound.push(memory);
      }
    }
    const { runtimeWasi } = await withWasi({ WASI });
    const wasi = await runtimeWasi(options);
    const memory = new WebAssembly.Memory({ initial: 1 });
    wasi.bind({} as WebAssembly.Instance, memory);
    expect(bound).toEqual([memory]);
    expect((wasi.imports.fd_write as () => number)()).toBe(0);
    // stdout here is what vitest gives it; the answer follows the host fd's type, with Node's WASI rights for it.
    expect((wasi.imports.fd_fdstat_get as (fd: number, at: number) => number)(1, 8)).toBe(0);
    expect(new Uint8Array(memory.buffer, 8, 1)[0]).toBeGreaterThan(0);
  });
});
