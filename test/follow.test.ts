// A worker in a store survives the death of its process: `wiz resume` recovers it from its latest state and the
// journal suffix, a replica (`wiz follow`) that replays the journal as it grows takes over when the lease of the
// dead process runs out, and a process that lost its lease cannot write another entry. Each ends as the program
// run once, uninterrupted.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { tempDir, wiz, WIZ_BIN } from './helpers/run.ts';
import { assemble } from '../src/parse/assemble.ts';
import { parseModule } from '../src/parse/module.ts';
import { PROVENANCE_SECTION } from '../src/snapshot/provenance.ts';
import { wat } from './helpers/wat.ts';

/**
 * Many host calls: a clock reading per round, random bytes every hundredth, folded into a global and memory. With
 * `spin`, it first waits in `ctl.go` (a suspension) and, before round 5, computes `spin` × 10^8 steps without a
 * host call (a process that holds its lease without renewing it).
 */
const LOOP = `(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "ctl" "go" (func $go))
  (memory (export "memory") 1)
  (global $acc (mut i64) (i64.const 0))
  (func (export "main") (param $n i32) (param $spin i32) (result i64) (local $i i32) (local $k i32)
    (if (i32.gt_s (local.get $spin) (i32.const 0)) (then (call $go)))
    (loop $l
      (if (i32.and (i32.eq (local.get $i) (i32.const 5)) (i32.gt_s (local.get $spin) (i32.const 0)))
        (then (loop $s
          (local.set $k (i32.const 100000000))
          (loop $t (local.set $k (i32.sub (local.get $k) (i32.const 1))) (br_if $t (i32.gt_s (local.get $k) (i32.const 0))))
          (local.set $spin (i32.sub (local.get $spin) (i32.const 1)))
          (br_if $s (i32.gt_s (local.get $spin) (i32.const 0))))))
      (drop (call $clock (i32.const 0) (i64.const 0) (i32.const 8)))
      (global.set $acc (i64.add (i64.rotl (global.get $acc) (i64.const 7)) (i64.load (i32.const 8))))
      (if (i32.eqz (i32.rem_u (local.get $i) (i32.const 100)))
        (then (drop (call $random (i32.const 64) (i32.const 16)))
              (global.set $acc (i64.xor (global.get $acc) (i64.load (i32.const 64))))))
      (i64.store (i32.add (i32.const 1024) (i32.shl (i32.rem_u (local.get $i) (i32.const 4096)) (i32.const 3))) (global.get $acc))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (global.get $acc)))`;

const ROUNDS = 40_000;
const MAIN = `main(${ROUNDS}, 0)`;
const HOST = ['--allow-wasi', '--deterministic'];
const SUSPEND = ['--suspend-on', 'wasi_snapshot_preview1.clock_time_get,ctl.go'];
const STORE_FLAGS = ['--checkpoint-calls', '4000', '--sync', 'normal'];

interface Proc { child: ChildProcess; stdout: string; stderr: string; exited: Promise<number | null> }

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [WIZ_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const proc: Proc = { child, stdout: '', stderr: '', exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stdout!.on('data', (d) => (proc.stdout += d));
  child.stderr!.on('data', (d) => (proc.stderr += d));
  return proc;
}

/** Resolves once `proc`'s stderr matches `pattern` (or rejects when it exits first). */
async function waitFor(proc: Proc, pattern: RegExp): Promise<void> {
  while (!pattern.test(proc.stderr)) {
    if (proc.child.exitCode !== null) throw new Error(`exited ${proc.child.exitCode} before ${pattern}: ${proc.stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const withoutProvenance = (bytes: Uint8Array) => assemble(parseModule(bytes), new Map(), new Set([PROVENANCE_SECTION])).finish();

/** Resolves once the worker's journal holds at least `n` entries beyond its start (a look through `wiz`'s own store). */
async function journalPast(store: string, n: number, leader: Proc): Promise<void> {
  const { DatabaseSync } = await import('node:sqlite');
  while (!existsSync(join(store, 'wiz.db'))) await new Promise((r) => setTimeout(r, 20));
  const db = new DatabaseSync(join(store, 'wiz.db'), { readOnly: true });
  try {
    db.exec('PRAGMA busy_timeout = 60000');
    for (;;) {
      if (leader.child.exitCode !== null) throw new Error(`the leader ended early: ${leader.stdout}${leader.stderr}`);
      const row = db.prepare("SELECT max(position) AS p FROM journal WHERE worker = 'w'").get() as { p: number | null } | undefined;
      if ((row?.p ?? 0) >= n) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (e) {
    if (/no such table/.test(String(e))) {
      await new Promise((r) => setTimeout(r, 20));
      return journalPast(store, n, leader);
    }
    throw e;
  } finally {
    db.close();
  }
}

async function setup(invoke = MAIN) {
  const dir = tempDir();
  const app = join(dir, 'app.wasm');
  writeFileSync(app, await wat(LOOP));
  const final = join(dir, 'final.wasm');
  let once = wiz(['run', app, ...HOST, ...SUSPEND, '--invoke', invoke, '-o', final]);
  if (once.stdout.toString() === 'suspended: ctl.go()\n') once = wiz(['resume', final, ...HOST, '-o', final]);
  expect(once.status, once.stderr).toBe(0);
  return { dir, app, line: once.stdout.toString().trim(), final: readFileSync(final) };
}

function materialized(dir: string, store: string): Buffer {
  const out = join(dir, `m-${Math.random().toString(36).slice(2)}.wasm`);
  const r = wiz(['materialize', '--store', store, '--id', 'w', '-o', out]);
  expect(r.status, r.stderr).toBe(0);
  return readFileSync(out);
}

describe('a journaled worker whose process dies', { timeout: 10 * 60_000 }, () => {
  test('wiz resume recovers it: the latest state plus the journal suffix, ending as the uninterrupted run', async () => {
    const { dir, app, line, final } = await setup();
    const store = join(dir, 'store');
    const leader = start(['run', app, ...HOST, ...SUSPEND, ...STORE_FLAGS, '--invoke', MAIN, '--store', store, '--id', 'w']);
    await journalPast(store, 9000, leader); // past two checkpoints, inside the third stretch
    leader.child.kill('SIGKILL');
    await leader.exited;
    const resumed = wiz(['resume', '--store', store, '--id', 'w', ...HOST, ...STORE_FLAGS]);
    expect(resumed.stderr).toBe('');
    expect(resumed.stdout.toString().trim()).toBe(line);
    expect(withoutProvenance(materialized(dir, store))).toEqual(withoutProvenance(final));
    // Issued again (as after a kill between the last save and the line), the command says the same.
    const again = wiz(['resume', '--store', store, '--id', 'w', ...HOST]);
    expect(again.stderr).toBe('');
    expect(again.stdout.toString().trim()).toBe(line);
  });

  test('a replica follows the journal and takes over when the process dies; it reports its join time', async () => {
    // The program first waits in ctl.go, where the replica joins it (however slowly it starts on a busy machine).
    const invoke = `main(${ROUNDS}, 1)`;
    const { dir, app, line, final } = await setup(invoke);
    const store = join(dir, 'store');
    expect(wiz(['run', app, ...HOST, ...SUSPEND, ...STORE_FLAGS, '--invoke', invoke, '--store', store, '--id', 'w']).stdout.toString()).toBe('suspended: ctl.go() @0\n');
    const replica = start(['follow', '--store', store, '--id', 'w', ...HOST, ...STORE_FLAGS]);
    await waitFor(replica, /caught up at journal position 0 /);
    const leader = start(['resume', '--store', store, '--id', 'w', ...HOST, ...STORE_FLAGS]);
    await journalPast(store, 12_000, leader);
    leader.child.kill('SIGKILL');
    await leader.exited;
    expect(await replica.exited, replica.stderr).toBe(0);
    expect(replica.stderr).toMatch(/^wiz: following worker "w": caught up at journal position \d+ \(joined \d+ ms after start, \d+ entries replayed\)\nwiz: took over worker "w" at journal position \d+\n$/);
    const took = Number(/took over worker "w" at journal position (\d+)/.exec(replica.stderr)![1]);
    expect(took).toBeGreaterThanOrEqual(12_000);
    expect(replica.stdout.trim()).toBe(line);
    expect(withoutProvenance(materialized(dir, store))).toEqual(withoutProvenance(final));
  });

  test('a process whose lease ran out cannot write again: its next call stops it with one line', async () => {
    // The program waits in ctl.go; a replica joins it there. Resumed, the program soon computes for seconds without
    // a host call (the replica computes the same, behind it), and there its process is frozen: alive, holding no
    // lock (SIGSTOP inside a write would hold SQLite's), but its lease runs out and the replica takes over.
    const invoke = `main(${ROUNDS}, 30)`;
    const { dir, app, line } = await setup(invoke);
    const store = join(dir, 'store');
    const lease = ['--lease-ms', '300'];
    expect(wiz(['run', app, ...HOST, ...SUSPEND, ...STORE_FLAGS, '--invoke', invoke, '--store', store, '--id', 'w']).stdout.toString()).toBe('suspended: ctl.go() @0\n');
    const replica = start(['follow', '--store', store, '--id', 'w', ...HOST, ...STORE_FLAGS, ...lease]);
    await waitFor(replica, /caught up at journal position 0 /);
    const leader = start(['resume', '--store', store, '--id', 'w', ...HOST, ...STORE_FLAGS, ...lease]);
    // The answer (none: ctl.go returns nothing) at 0, rounds 0–4 (a random reading in round 0) at 1–6.
    await journalPast(store, 6, leader);
    leader.child.kill('SIGSTOP');
    await waitFor(replica, /took over worker "w" at journal position 7\n/);
    leader.child.kill('SIGCONT');
    expect(await leader.exited).toBe(1);
    expect(leader.stderr).toMatch(/^wiz: worker "w" is now run by another process \([^)]+\): this one stops before its call at journal position 7\n$/);
    expect(await replica.exited, replica.stderr).toBe(0);
    expect(replica.stdout.trim()).toBe(line);
  });
});
