// wiz in a build pipeline: `--cache` (served only while everything init saw is unchanged), `--check` (is the
// -o file what wiz writes now?) and `--json` (what was done, for tools), through the real CLI.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { observe } from './helpers/observe.ts';
import { tempDir, WIZ_BIN } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const WIZER_JS = join(import.meta.dirname, '..', 'bin', 'wizer.js');

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The wiz CLI (or `wizer`) in `cwd`, with a plain environment. */
function cli(args: string[], cwd: string, bin = WIZ_BIN): Ran {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH, HOME: cwd }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const W = 'wasi_snapshot_preview1';

/**
 * Init opens `data.txt` in the first preopened directory and keeps the first 8 bytes it reads (or the errno of
 * the open), so the snapshot's `value` shows what the file held, or that it was absent.
 */
const reader = `(module
  (import "${W}" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "${W}" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "${W}" "fd_close" (func $close (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "data.txt")
  (global $errno (mut i32) (i32.const -1))
  (func (export "wizer-initialize")
    (global.set $errno (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 8) (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 200)))
    (if (i32.eqz (global.get $errno)) (then
      ;; one iovec at 300: 8 bytes at 0
      (i32.store (i32.const 300) (i32.const 0))
      (i32.store (i32.const 304) (i32.const 8))
      (drop (call $read (i32.load (i32.const 200)) (i32.const 300) (i32.const 1) (i32.const 310)))
      (drop (call $close (i32.load (i32.const 200)))))))
  (func (export "errno") (result i32) (global.get $errno))
  (func (export "value") (result i64) (i64.load (i32.const 0))))`;

/** Init reads a clock and random bytes. */
const clocked = `(module
  (import "${W}" "random_get" (func $random (param i32 i32) (result i32)))
  (import "${W}" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "wizer-initialize")
    (drop (call $random (i32.const 0) (i32.const 8)))
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 8))))
  (func (export "time") (result i64) (i64.load (i32.const 8))))`;

/** Init creates a file: a cached result could not do that again. */
const writer = `(module
  (import "${W}" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "made.txt")
  (func (export "wizer-initialize")
    ;; oflags 1 = O_CREAT; rights: fd_write (1 << 6)
    (drop (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 8) (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 200)))))`;

/** A counter whose init sets it to 41: the warnings of `-r` on a missing export show that a hit replays them. */
const counter = `(module
  (global $n (mut i32) (i32.const 0))
  (func (export "wizer-initialize") (global.set $n (i32.const 41)))
  (func (export "next") (result i32) (global.set $n (i32.add (global.get $n) (i32.const 1))) (global.get $n)))`;

let work: string;
const modules: Record<string, string> = {};

beforeAll(async () => {
  work = tempDir();
  for (const [name, text] of Object.entries({ reader, clocked, writer, counter })) {
    modules[name] = join(work, `${name}.wasm`);
    writeFileSync(modules[name], await wat(text));
  }
}, 120_000);

/** A fresh project folder (a package.json, so the default cache goes to its node_modules/.cache/wiz). */
function project(): string {
  const dir = tempDir();
  writeFileSync(join(dir, 'package.json'), '{"name": "app", "private": true}\n');
  return dir;
}

const cacheLine = (stderr: string) => /^wiz: cache +(.*)$/m.exec(stderr)?.[1];
const bytesOf = (path: string) => new Uint8Array(readFileSync(path));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe('--cache', () => {
  it('serves the same bytes again from node_modules/.cache/wiz, and says hit or miss with -v', async () => {
    const dir = project();
    const plain = cli(['init', modules.counter!, '-o', 'plain.wasm'], dir);
    expect(plain.status, plain.stderr).toBe(0);
    const first = cli(['init', modules.counter!, '-o', 'a.wasm', '--cache', '-v'], dir);
    expect(first.status, first.stderr).toBe(0);
    expect(cacheLine(first.stderr)).toMatch(/^miss, stored \([0-9a-f]{16} in .*node_modules\/\.cache\/wiz\)$/);
    const second = cli(['init', modules.counter!, '-o', 'b.wasm', '--cache', '-v'], dir);
    expect(cacheLine(second.stderr)).toMatch(/^hit \(/);
    expect(same(bytesOf(join(dir, 'a.wasm')), bytesOf(join(dir, 'plain.wasm')))).toBe(true);
    expect(same(bytesOf(join(dir, 'b.wasm')), bytesOf(join(dir, 'plain.wasm')))).toBe(true);
    expect((await observe(bytesOf(join(dir, 'b.wasm')))).next!.result).toBe('42');
    expect(readdirSync(join(dir, 'node_modules', '.cache', 'wiz'))).toHaveLength(1);
  });

  it('keys on the options and the input: another init function, rename or module is a miss', async () => {
    const dir = project();
    const cache = ['--cache=c', '-v'];
    expect(cacheLine(cli(['init', modules.counter!, '-o', 'a.wasm', ...cache], dir).stderr)).toMatch(/^miss/);
    expect(cacheLine(cli(['init', modules.counter!, '-o', 'a.wasm', ...cache, '-r', 'more=next'], dir).stderr)).toMatch(/^miss/);
    expect(cacheLine(cli(['init', modules.counter!, '-o', 'a.wasm', ...cache, '--keep-init-func'], dir).stderr)).toMatch(/^miss/);
    const other = join(dir, 'other.wasm');
    writeFileSync(other, await wat(counter.replace('i32.const 41', 'i32.const 7')));
    expect(cacheLine(cli(['init', other, '-o', 'a.wasm', ...cache], dir).stderr)).toMatch(/^miss/);
    expect((await observe(bytesOf(join(dir, 'a.wasm')))).next!.result).toBe('8');
    expect(cacheLine(cli(['init', modules.counter!, '-o', 'a.wasm', ...cache, '-r', 'more=next'], dir).stderr)).toMatch(/^hit/);
    expect(readdirSync(join(dir, 'c'))).toHaveLength(4);
  });

  it('records the files init read through --dir/--mapdir: a changed, new or removed file is a miss, the old state a hit again', async () => {
    const dir = project();
    const data = join(dir, 'data');
    mkdirSync(data);
    const args = (out: string) => ['init', modules.reader!, '-o', out, '--allow-wasi', '--mapdir', `/d::${data}`, '--cache', '-v'];
    const value = async (out: string) => {
      const r = await observe(bytesOf(join(dir, out)));
      return { errno: r.errno!.result, value: r.value!.result };
    };
    // Absent: the open fails (errno 44, noent), and that is what the snapshot holds.
    expect(cacheLine(cli(args('0.wasm'), dir).stderr)).toMatch(/^miss, stored/);
    expect((await value('0.wasm')).errno).toBe('44');
    writeFileSync(join(data, 'data.txt'), 'AAAAAAAA');
    expect(cacheLine(cli(args('1.wasm'), dir).stderr)).toMatch(/^miss, stored/);
    expect(await value('1.wasm')).toEqual({ errno: '0', value: `${0x4141414141414141n}n` });
    writeFileSync(join(data, 'data.txt'), 'BBBBBBBB');
    expect(cacheLine(cli(args('2.wasm'), dir).stderr)).toMatch(/^miss, stored/);
    expect((await value('2.wasm')).value).toBe(`${0x4242424242424242n}n`);
    writeFileSync(join(data, 'data.txt'), 'AAAAAAAA');
    expect(cacheLine(cli(args('3.wasm'), dir).stderr)).toMatch(/^hit/);
    expect(same(bytesOf(join(dir, '3.wasm')), bytesOf(join(dir, '1.wasm')))).toBe(true);
    rmSync(join(data, 'data.txt'));
    expect(cacheLine(cli(args('4.wasm'), dir).stderr)).toMatch(/^hit/);
    expect(same(bytesOf(join(dir, '4.wasm')), bytesOf(join(dir, '0.wasm')))).toBe(true);
  });

  it('never stores a result whose init read a clock or random bytes, unless --deterministic', async () => {
    const dir = project();
    const args = ['init', modules.clocked!, '-o', 'a.wasm', '--allow-wasi', '--cache', '-v'];
    const first = cli(args, dir);
    expect(cacheLine(first.stderr)).toBe('miss, not stored: init read random bytes and a clock (pass --deterministic to cache it)');
    expect(cacheLine(cli(args, dir).stderr)).toMatch(/^miss, not stored/);
    expect(existsSync(join(dir, 'node_modules', '.cache', 'wiz'))).toBe(false);
    expect(cacheLine(cli([...args, '--deterministic'], dir).stderr)).toMatch(/^miss, stored/);
    expect(cacheLine(cli([...args, '--deterministic'], dir).stderr)).toMatch(/^hit/);
  });

  it('never stores a result whose init created a file', () => {
    const dir = project();
    mkdirSync(join(dir, 'out'));
    const r = cli(['init', modules.writer!, '-o', 'a.wasm', '--allow-wasi', '--dir', 'out', '--cache', '-v'], dir);
    expect(r.status, r.stderr).toBe(0);
    expect(cacheLine(r.stderr)).toBe('miss, not stored: init created or truncated a file');
    expect(existsSync(join(dir, 'out', 'made.txt'))).toBe(true);
  });

  it('shows the warnings of the run that made an entry again on a hit', () => {
    const dir = project();
    const args = ['init', modules.counter!, '-o', 'a.wasm', '--cache', '-r', 'x=missing'];
    const warning = 'wiz: warning: rename x=missing: the module exports no "missing"\n';
    expect(cli(args, dir).stderr).toBe(warning);
    expect(cli(args, dir).stderr).toBe(warning);
    expect(cli([...args, '-q'], dir).stderr).toBe('');
  });

  it('does not serve a damaged entry: it is a miss, and the output is right', async () => {
    const dir = project();
    const args = ['init', modules.counter!, '-o', 'a.wasm', '--cache=c', '-v'];
    cli(args, dir);
    const [key] = readdirSync(join(dir, 'c'));
    const entry = readdirSync(join(dir, 'c', key!)).find((n) => n.endsWith('.wasm'))!;
    const path = join(dir, 'c', key!, entry);
    const bytes = bytesOf(path);
    bytes[bytes.length - 2]! ^= 0xff;
    writeFileSync(path, bytes);
    expect(cacheLine(cli(args, dir).stderr)).toMatch(/^miss, stored/);
    expect((await observe(bytesOf(join(dir, 'a.wasm')))).next!.result).toBe('42');
  });

  it('works with --init-timeout (init in a child process) and --check-determinism', () => {
    const dir = project();
    const args = ['init', modules.counter!, '-o', 'a.wasm', '--cache', '-v', '--init-timeout', '600', '--check-determinism'];
    expect(cacheLine(cli(args, dir).stderr)).toMatch(/^miss, stored/);
    expect(cacheLine(cli(args, dir).stderr)).toMatch(/^hit/);
  });

  it('is set by a config file, for tools that build the command line themselves (the wizer command)', () => {
    const dir = project();
    writeFileSync(join(dir, 'wiz.config.json'), '{"cache": "build-cache"}\n');
    mkdirSync(join(dir, 'sub'));
    const first = cli([modules.counter!, '-o', 'a.wasm', '-v'], join(dir, 'sub'), WIZER_JS);
    expect(first.status, first.stderr).toBe(0);
    expect(cacheLine(first.stderr)).toMatch(/^miss, stored .* in .*\/build-cache\)$/);
    expect(cacheLine(cli([modules.counter!, '-o', 'a.wasm', '-v'], join(dir, 'sub'), WIZER_JS).stderr)).toMatch(/^hit/);
    expect(cacheLine(cli([modules.counter!, '-o', 'a.wasm', '-v', '--no-cache'], join(dir, 'sub'), WIZER_JS).stderr)).toBeUndefined();
    writeFileSync(join(dir, 'wiz.config.json'), '{"cache": 3}\n');
    const bad = cli([modules.counter!, '-o', 'b.wasm'], dir, WIZER_JS);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe(`wiz: ${join(dir, 'wiz.config.json')}: "cache" must be a boolean or a string, not 3\n`);
  });
});

describe('--check', () => {
  it('exits 0 when the -o file is what wiz writes now, 1 with one line when it is stale or missing; it writes nothing', async () => {
    const dir = project();
    expect(cli(['init', modules.counter!, '-o', 'a.wasm'], dir).status).toBe(0);
    const before = statSync(join(dir, 'a.wasm')).mtimeMs;
    const fresh = cli(['init', modules.counter!, '-o', 'a.wasm', '--check'], dir);
    expect(fresh).toMatchObject({ status: 0, stderr: '', stdout: '' });
    expect(statSync(join(dir, 'a.wasm')).mtimeMs).toBe(before);
    const changed = join(dir, 'changed.wasm');
    writeFileSync(changed, await wat(counter.replace('i32.const 41', 'i32.const 1')));
    const stale = cli(['init', changed, '-o', 'a.wasm', '--check'], dir);
    expect(stale).toMatchObject({ status: 1, stderr: 'wiz: "a.wasm" is stale: it differs from what wiz writes now\n', stdout: '' });
    expect((await observe(bytesOf(join(dir, 'a.wasm')))).next!.result).toBe('42');
    const missing = cli(['init', modules.counter!, '-o', 'none.wasm', '--check'], dir);
    expect(missing).toMatchObject({ status: 1, stderr: 'wiz: "none.wasm" is stale: it does not exist\n' });
    expect(existsSync(join(dir, 'none.wasm'))).toBe(false);
    const usage = cli(['init', modules.counter!, '--check'], dir);
    expect(usage).toMatchObject({ status: 2, stderr: 'wiz: --check compares with an output file: pass -o FILE\n' });
  });
});

describe('--json', () => {
  it('describes an init: sizes, time, warnings with codes, cache status, files read', () => {
    const dir = project();
    const data = join(dir, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'data.txt'), 'CCCCCCCC');
    const r = cli(['init', modules.reader!, '-o', 'a.wasm', '--allow-wasi', '--dir', 'data', '--json', '--cache', '-r', 'y=nope'], dir);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      command: 'init',
      input: { path: modules.reader, bytes: statSync(modules.reader!).size },
      output: { path: 'a.wasm', bytes: statSync(join(dir, 'a.wasm')).size, written: true },
      warnings: [{ code: 'rename-missing', message: 'rename y=nope: the module exports no "nope"' }],
      cache: { status: 'miss' },
      filesRead: [{ path: join(data, 'data.txt'), state: expect.stringMatching(/^file:[0-9a-f]{64}$/) }],
    });
    expect(report.ms).toBeGreaterThan(0);
    const again = JSON.parse(cli(['init', modules.reader!, '-o', 'a.wasm', '--allow-wasi', '--dir', 'data', '--json', '--cache', '-r', 'y=nope'], dir).stdout);
    expect(again.cache.status).toBe('hit');
    expect(again.warnings).toEqual(report.warnings);
    expect(again.filesRead).toEqual(report.filesRead);
  });

  it('lists the clock and random warnings by code, also with -q (which only silences stderr)', () => {
    const dir = project();
    const r = cli(['init', modules.clocked!, '-o', 'a.wasm', '--allow-wasi', '--json', '-q'], dir);
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout);
    expect(report.warnings.map((w: { code: string }) => w.code)).toEqual(['random-read', 'clock-read']);
    expect(report.cache).toEqual({ status: 'off' });
  });

  it('describes a snapshot and a --check', () => {
    const dir = project();
    expect(cli(['init', modules.counter!, '-o', 'kept.wasm', '--keep-instrumentation'], dir).status).toBe(0);
    const r = cli(['snapshot', 'kept.wasm', '--invoke', 'next', '-o', 'snap.wasm', '--json'], dir);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ command: 'snapshot', output: { path: 'snap.wasm', bytes: statSync(join(dir, 'snap.wasm')).size }, cache: { status: 'off' } });
    const check = cli(['init', modules.counter!, '-o', 'kept.wasm', '--check', '--json'], dir);
    expect(check.status).toBe(1);
    expect(JSON.parse(check.stdout)).toMatchObject({ output: { written: false }, check: { fresh: false } });
    expect(cli(['init', modules.counter!, '--json'], dir).status).toBe(2);
  });
});
