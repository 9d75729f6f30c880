// `wiz asyncify`, `wiz run`, `wiz resume` through the real CLI: each step a new process, the state in a file or a
// store, compared with the program run once, uninterrupted.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildCFixtures, C_TOOLCHAIN_HINT, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { DurableWorker, loadDurable } from '../src/durable/worker.ts';
import { assemble } from '../src/parse/assemble.ts';
import { parseModule } from '../src/parse/module.ts';
import { PROVENANCE_SECTION } from '../src/snapshot/provenance.ts';
import { tempDir, wiz } from './helpers/run.ts';
import { createHost } from '../cli/host.ts';
import { wat } from './helpers/wat.ts';

const cToolchain = hasCToolchain();
if (!cToolchain && (process.env.CI === 'true' || process.env.WIZ_REQUIRE_C_FIXTURES)) throw new Error(`C fixtures required but no wasm32-wasi clang: ${C_TOOLCHAIN_HINT}`);
if (!cToolchain) console.warn(`C fixture tests skipped: no wasm32-wasi clang (${C_TOOLCHAIN_HINT})`);

const COUNTER = `(module
  (import "host" "ask" (func $ask (param i32) (result i32)))
  (import "host" "tick" (func $tick))
  (memory (export "memory") 1)
  (global $sum (export "sum") (mut i32) (i32.const 0))
  (func $step (param $i i32) (result i32)
    (call $tick)
    (call $ask (i32.mul (local.get $i) (i32.const 10))))
  (func (export "main") (param $a i32) (param $b i32) (result i32) (local $i i32)
    (loop $l
      (global.set $sum (i32.add (global.get $sum) (call $step (local.get $i))))
      (i32.store (i32.mul (local.get $i) (i32.const 4)) (global.get $sum))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $a))))
    (i32.add (global.get $sum) (local.get $b))))`;

const withoutProvenance = (bytes: Uint8Array) => assemble(parseModule(bytes), new Map(), new Set([PROVENANCE_SECTION])).finish();

/** Runs `wiz` and returns its stdout lines; fails the test with its stderr on a non-zero exit. */
function ok(args: string[]): string[] {
  const r = wiz(args);
  if (r.status !== 0) throw new Error(`wiz ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout.toString().split('\n').filter((l) => l !== '');
}

/** The answer to `suspended: host.ask(X)`: X + 1. */
const answerOf = (line: string) => {
  const m = /^suspended: host\.ask\((\d+)\)$/.exec(line);
  return m ? String(Number(m[1]) + 1) : undefined;
};

describe('wiz run and wiz resume', () => {
  test('a chain of processes through files ends as the program run once', async () => {
    const dir = tempDir();
    const app = join(dir, 'app.wasm');
    writeFileSync(app, await wat(COUNTER));
    const durable = join(dir, 'app.durable.wasm');
    ok(['asyncify', app, '-o', durable, '--suspend-on', 'host.ask,host.tick']);
    const state = join(dir, 'state.wasm');
    let line = ok(['run', durable, '--invoke', 'main(3, 100)', '-o', state]).at(-1)!;
    const lines = [line];
    while (line.startsWith('suspended:')) {
      const answer = answerOf(line);
      // -o names the input: the state file is replaced whole at each step.
      line = ok(['resume', state, ...(answer ? ['--answer', answer] : []), '-o', state]).at(-1)!;
      lines.push(line);
    }
    // ask(i * 10) answers i * 10 + 1: 1 + 11 + 21 = 33, plus b = 100.
    expect(lines).toEqual([
      'suspended: host.tick()', 'suspended: host.ask(0)', 'suspended: host.tick()', 'suspended: host.ask(10)',
      'suspended: host.tick()', 'suspended: host.ask(20)', 'main(3, 100) = 133',
    ]);
    const final = await DurableWorker.start(await loadDurable(readFileSync(state)));
    expect((final.instance.exports.sum as WebAssembly.Global).value).toBe(33);
    expect(Array.from(new Int32Array((final.instance.exports.memory as WebAssembly.Memory).buffer, 0, 3))).toEqual([1, 12, 33]);
    // A completed program has nothing to resume; it can run again.
    const again = wiz(['resume', state, '--answer', '1', '-o', join(dir, 'x.wasm')]);
    expect(again.status).toBe(1);
    expect(again.stderr).toBe('wiz: the program is not suspended: there is nothing to resume (run an export with wiz run)\n');
    expect(existsSync(join(dir, 'x.wasm'))).toBe(false);
  });

  test('a plain module with --suspend-on is asyncified on the way; bad answers and flags are one line, no file', async () => {
    const dir = tempDir();
    const app = join(dir, 'app.wasm');
    writeFileSync(app, await wat(COUNTER));
    const state = join(dir, 's.wasm');
    // host.tick is not a suspending import here, and nothing provides it: the run fails and writes nothing.
    const r = wiz(['run', app, '--suspend-on', 'host.ask', '--invoke', 'main(1, 0)', '-o', state]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('wiz: the module called the import "host" "tick" while it ran, which wiz does not provide (name it with --suspend-on to answer it, or provide it with --preload)\n');
    expect(existsSync(state)).toBe(false);

    const durable = join(dir, 'd.wasm');
    ok(['asyncify', app, '-o', durable, '--suspend-on', 'host.ask', '--suspend-on', 'host.tick']);
    ok(['run', durable, '--invoke', 'main(1, 0)', '-o', state]);
    ok(['resume', state, '-o', state]); // tick: no answer
    const cases: [string[], RegExp][] = [
      [['resume', state, '-o', join(dir, 'o.wasm')], /^wiz: host\.ask returns i32: give it with --answer VALUE\n$/],
      [['resume', state, '--answer', 'x1', '-o', join(dir, 'o.wasm')], /^wiz: the answer to host\.ask: "x1" is not a valid i32 value\n$/],
      [['run', state, '--invoke', 'main(1, 0)', '-o', join(dir, 'o.wasm')], /^wiz: the program is suspended in host\.ask: continue it with wiz resume\n$/],
      [['run', app, '--suspend-on', 'host.nope', '--invoke', 'main(1, 0)', '-o', join(dir, 'o.wasm')], /^wiz: --suspend-on host\.nope: the module imports no function "host\.nope" \(its function imports: host\.ask, host\.tick\)\n$/],
      [['run', durable, '--suspend-on', 'host.ask', '--invoke', 'main(1, 0)', '-o', join(dir, 'o.wasm')], /^wiz: the module was asyncified to suspend on host\.ask, host\.tick, not host\.ask/],
      [['run', app, '--invoke', 'main(1, 0)', '-o', join(dir, 'o.wasm')], /^wiz: the module is not asyncified/],
    ];
    for (const [args, message] of cases) {
      const bad = wiz(args);
      expect(bad.stderr).toMatch(message);
      expect(bad.status).not.toBe(0);
      expect(existsSync(join(dir, 'o.wasm'))).toBe(false);
    }
    expect(ok(['resume', state, '--answer', '0x29', '-o', state])).toEqual(['main(1, 0) = 41']);
  });

  test('a worker in a store (SQLite): run, resume by its id, materialize any generation as the .wasm a file chain writes', async () => {
    const dir = tempDir();
    const app = join(dir, 'app.wasm');
    writeFileSync(app, await wat(COUNTER));
    const durable = join(dir, 'd.wasm');
    ok(['asyncify', app, '-o', durable, '--suspend-on', 'host.ask,host.tick']);
    const store = join(dir, 'store');
    const file = join(dir, 'file.wasm');
    // A store's worker is journaled: a suspension names the journal position its answer goes to.
    const stored = (args: string[]) => {
      const out = ok(args).at(-1)!;
      const m = /^(suspended: .*) @(\d+)$/.exec(out);
      if (m) positions.push(Number(m[2]));
      return m ? m[1]! : out;
    };
    const positions: number[] = [];
    let line = stored(['run', durable, '--invoke', 'main(2, 5)', '--store', store, '--id', 'w1']);
    // The same steps as files, beside it: each generation of the store (after the first, saved before the run
    // starts) materializes to that step's file.
    expect(ok(['run', durable, '--invoke', 'main(2, 5)', '-o', file]).at(-1)).toBe(line);
    const again = wiz(['run', durable, '--invoke', 'main(2, 5)', '--store', store, '--id', 'w1']);
    expect(again.stderr).toMatch(/^wiz: worker "w1" exists in .*: continue it with wiz resume --store/);
    let generation = 0;
    while (line.startsWith('suspended:')) {
      const materialized = join(dir, `g${generation}.wasm`);
      ok(['materialize', '--store', store, '--id', 'w1', '--generation', String(generation + 1), '-o', materialized]);
      // Their lineage differs (a file's parent is the previous file, an image's module is the durable one).
      expect(withoutProvenance(readFileSync(materialized))).toEqual(withoutProvenance(readFileSync(file)));
      const answer = answerOf(line);
      const args = answer ? ['--answer', answer] : [];
      line = stored(['resume', '--store', store, '--id', 'w1', ...args]);
      expect(ok(['resume', file, ...args, '-o', file]).at(-1)).toBe(line);
      generation++;
    }
    expect(line).toBe('main(2, 5) = 17'); // 1 + 11, plus 5
    expect(generation).toBe(4);
    // Each suspension is one journal entry after the previous one: the answer (and no other host call) between.
    expect(positions).toEqual([0, 1, 2, 3]);
    // Generation 2 waits in host.ask(0) after the first tick; at 4 the sum holds the first answer.
    const diff = wiz(['diff', '--store', store, 'w1@2', 'w1@4']);
    expect(diff.status).toBe(1);
    expect(diff.stdout.toString()).toMatch(/^global 0 i32: 0x00000000 \(0\) -> 0x00000001 \(1\)$/m);
    expect(diff.stdout.toString()).toMatch(/^memory 0 \[0x0, 0x1\): 1 byte differs$/m);
    expect(diff.stdout.toString()).toMatch(/^call: suspended in host\.ask\(0\) \(entered by main\(2, 5\)\) -> suspended in host\.ask\(10\) /m);
    expect(wiz(['diff', '--store', store, 'w1@2', 'w1@2']).status).toBe(0);
    const missing = wiz(['resume', '--store', store, '--id', 'nobody', '--answer', '1']);
    expect(missing.stderr).toMatch(/^wiz: no worker "nobody" in /);
    // A directory that holds no store is not made one by a command that continues or reads a worker.
    const nowhere = join(dir, 'nowhere');
    for (const args of [['resume', '--store', nowhere, '--id', 'w1'], ['follow', '--store', nowhere, '--id', 'w1'], ['materialize', '--store', nowhere, '--id', 'w1', '-o', join(dir, 'm.wasm')]]) {
      const r = wiz(args);
      expect(r.stderr, args[0]).toBe(`wiz: no worker "w1" in ${nowhere} (no store there)\n`);
      expect(r.status, args[0]).toBe(1);
    }
    expect(existsSync(nowhere)).toBe(false);
  });

  test('--deterministic streams go on across resumes: clock and random bytes as in one uninterrupted run', async () => {
    const text = `(module
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
      (import "rpc" "wait" (func $wait))
      (memory (export "memory") 1)
      (func (export "main") (param $n i32) (local $i i32)
        (loop $l
          (drop (call $clock (i32.const 0) (i64.const 1) (i32.add (i32.const 64) (i32.mul (local.get $i) (i32.const 16)))))
          (drop (call $random (i32.add (i32.const 72) (i32.mul (local.get $i) (i32.const 16))) (i32.const 8)))
          (call $wait)
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))))`;
    const dir = tempDir();
    const app = join(dir, 'app.wasm');
    writeFileSync(app, await wat(text));
    const durable = join(dir, 'd.wasm');
    ok(['asyncify', app, '-o', durable, '--suspend-on', 'rpc.wait']);
    const state = join(dir, 's.wasm');
    let line = ok(['run', durable, '--allow-wasi', '--deterministic', '--invoke', 'main(4)', '-o', state]).at(-1)!;
    while (line.startsWith('suspended:')) line = ok(['resume', state, '--allow-wasi', '--deterministic', '-o', state]).at(-1)!;
    expect(line).toBe('main(4)');
    // The same program answered at once, in one host: the same four readings of each stream.
    const host = await createHost({ allowWasi: true, inheritStdio: false, inheritEnv: false, dirs: [], mapdirs: [], preloads: [], deterministic: true, stdoutTaken: false, run: true }, () => {});
    const once = await DurableWorker.start(await loadDurable(readFileSync(durable)), {
      imports: { ...host.imports, rpc: { wait: () => undefined } }, onInstantiated: (i) => host.bind(i),
    });
    expect(once.invoke('main', [4]).status).toBe('returned');
    host.close();
    const memoryOf = async (worker: DurableWorker) => new Uint8Array((worker.instance.exports.memory as WebAssembly.Memory).buffer).slice(64, 128);
    const chained = await memoryOf(await DurableWorker.start(await loadDurable(readFileSync(state))));
    expect(chained).toEqual(await memoryOf(once));
    // Four distinct clock readings, 1 ms apart.
    const clocks = [0, 1, 2, 3].map((i) => new DataView(chained.buffer, i * 16, 8).getBigUint64(0, true));
    expect(clocks).toEqual([1_000_000n, 2_000_000n, 3_000_000n, 4_000_000n]);
  });

  test('wiz fork: copies of a suspended worker, each reseeded through its wiz-fork hook, go on apart', async () => {
    // A PRNG seeded at init (here: a constant) is shared by every copy of a snapshot unless the copies reseed it.
    const program = (hook: boolean) => `(module
      (import "rpc" "wait" (func $wait))
      (memory (export "memory") 1)
      (global $seed (mut i32) (i32.const 0x2545f491))
      (func $next (result i32)
        (global.set $seed (i32.xor (global.get $seed) (i32.shl (global.get $seed) (i32.const 13))))
        (global.set $seed (i32.xor (global.get $seed) (i32.shr_u (global.get $seed) (i32.const 17))))
        (global.set $seed (i32.xor (global.get $seed) (i32.shl (global.get $seed) (i32.const 5))))
        (global.get $seed))
      ${hook ? '(func (export "wiz-fork") (param $n i32) (global.set $seed (i32.xor (global.get $seed) (i32.mul (i32.add (local.get $n) (i32.const 1)) (i32.const 0x9e3779b9)))))' : ''}
      (func (export "roll") (result i32) (call $wait) (call $next)))`;
    const dir = tempDir();
    const rolls: Record<string, string[]> = {};
    const original: Record<string, string> = {};
    for (const hook of [true, false]) {
      const app = join(dir, `app-${hook}.wasm`);
      writeFileSync(app, await wat(program(hook)));
      const store = join(dir, `store-${hook}`);
      expect(ok(['run', app, '--suspend-on', 'rpc.wait', '--invoke', 'roll', '--store', store, '--id', 'w'])).toEqual(['suspended: rpc.wait() @0']);
      const forked = wiz(['fork', '--store', store, '--id', 'w', '--count', '3']);
      expect(forked.stdout.toString()).toBe('forked: w.0\nforked: w.1\nforked: w.2\n');
      expect(forked.stderr).toBe(hook ? '' : 'wiz: warning: the module exports no "wiz-fork" hook: the copies are identical, random streams included\n');
      rolls[String(hook)] = [0, 1, 2].map((n) => ok(['resume', '--store', store, '--id', `w.${n}`])[0]!);
      original[String(hook)] = ok(['resume', '--store', store, '--id', 'w'])[0]!;
    }
    expect(new Set(rolls.true).size).toBe(3);
    expect(new Set(rolls.false).size).toBe(1);
    // The original is untouched by its copies: it rolls what an unforked program rolls.
    expect(original.true).toBe(rolls.false![0]);
    expect(original.false).toBe(rolls.false![0]);
  });

  test.runIf(cToolchain)('a C program awaiting RPC replies under WASI: results, stdout and memory as uninterrupted', async () => {
    const rpc = buildCFixtures().rpc!;
    const dir = tempDir();
    // The reference: the original module, answered at once, in a process whose stdout is a pipe as the CLI's is,
    // and non-blocking as Node makes it once process.stdout is used, under the WASI wiz gives guests (libc keeps
    // what fd_fdstat_get says, which wiz answers alike on every runtime).
    const reference = spawnSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', `
      import { readFileSync, writeFileSync } from 'node:fs';
      import { runtimeWasi } from ${JSON.stringify(join(import.meta.dirname, '..', 'cli', 'wasi.ts'))};
      process.stdout.isTTY;
      const wasi = await runtimeWasi({ env: {}, preopens: {}, stdin: 0, stdout: 1, stderr: 2 });
      const { instance } = await WebAssembly.instantiate(readFileSync(process.argv[1]), {
        wasi_snapshot_preview1: wasi.imports, rpc: { call: (r) => r * 7 + 1, notify: () => {} } });
      wasi.bind(instance, instance.exports.memory);
      instance.exports._initialize();
      const result = instance.exports.run(7);
      writeFileSync(process.argv[2], new Uint8Array(instance.exports.memory.buffer));
      process.stderr.write(JSON.stringify({ result, checksum: instance.exports.checksum() }));`, rpc, join(dir, 'memory.bin')]);
    expect(reference.status, reference.stderr.toString()).toBe(0);
    const { result, checksum } = JSON.parse(reference.stderr.toString()) as { result: number; checksum: number };
    const memory = readFileSync(join(dir, 'memory.bin'));

    const state = join(dir, 'state.wasm');
    const printed: string[] = [];
    let lines = ok(['run', rpc, '--allow-wasi', '--suspend-on', 'rpc.call,rpc.notify', '--invoke', 'run(7)', '-o', state]);
    let steps = 1;
    for (;;) {
      const last = lines.at(-1)!;
      printed.push(...lines.slice(0, -1));
      if (!last.startsWith('suspended:')) break;
      const call = /^suspended: rpc\.call\((-?\d+)\)$/.exec(last);
      lines = ok(['resume', state, '--allow-wasi', ...(call ? ['--answer', String((Number(call[1]) * 7 + 1) | 0)] : []), '-o', state]);
      steps++;
    }
    expect(lines.at(-1)).toBe(`run(7) = ${result}`);
    expect(steps).toBeGreaterThan(7);
    expect(printed.join('\n') + '\n').toBe(reference.stdout.toString());
    const final = await DurableWorker.start(await loadDurable(readFileSync(state)));
    const after = new Uint8Array((final.instance.exports.memory as WebAssembly.Memory).buffer);
    expect(after.length).toBe(memory.length);
    expect(Buffer.compare(Buffer.from(after), Buffer.from(memory))).toBe(0);
    expect((final.instance.exports.checksum as () => number)()).toBe(checksum);
  });

  test('wiz asyncify names relaxed SIMD, the one engine choice a journal replayed elsewhere can trip on', async () => {
    const dir = tempDir();
    const program = (op: string) => `(module (import "h" "w" (func $w)) (memory (export "memory") 1)
      (func (export "f") (param f32) (result v128) (call $w) (${op} (f32x4.splat (local.get 0)) (f32x4.splat (local.get 0)) (f32x4.splat (local.get 0)))))`;
    const run = async (op: string) => {
      const input = join(dir, `${op}.wasm`);
      writeFileSync(input, await wat(program(op)));
      const r = wiz(['asyncify', input, '--suspend-on', 'h.w', '-o', join(dir, `${op}.durable.wasm`)]);
      expect(r.status, r.stderr).toBe(0);
      return r.stderr;
    };
    expect(await run('f32x4.relaxed_madd')).toMatch(/^wiz: warning: the module uses relaxed SIMD, whose results the engine may choose per machine: a journal replayed on another kind of machine can diverge/);
    // Plain SIMD is deterministic (but for NaN bits): nothing to say.
    expect(await run('v128.bitselect')).toBe('');
  });

  test('a guest writing faster than the reader drains a non-blocking pipe loses nothing, and wiz does not fail', async () => {
    const dir = tempDir();
    const app = join(dir, 'print.wasm');
    // 50,000 lines of 101 bytes through fd_write; main returns how many writes failed.
    writeFileSync(app, await wat(`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "${'0123456789'.repeat(10)}\\n")
      (func (export "main") (param $n i32) (result i32) (local $i i32) (local $fails i32)
        (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 101))
        (loop $l
          (if (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)) (then (local.set $fails (i32.add (local.get $fails) (i32.const 1)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $fails)))`));
    // The test's pipe is one Node made: non-blocking, filled long before this process reads it.
    const r = wiz(['run', app, '--allow-wasi', '--suspend-on', 'wasi_snapshot_preview1.fd_write', '--invoke', 'main(50000)', '-o', join(dir, 'state.wasm')]);
    expect(r.stderr).toBe('');
    const lines = r.stdout.toString().split('\n');
    expect(lines.at(-2)).toBe('main(50000) = 0');
    expect(lines.length).toBe(50_002);
    expect(new Set(lines.slice(0, -2))).toEqual(new Set(['0123456789'.repeat(10)]));
  });
});
