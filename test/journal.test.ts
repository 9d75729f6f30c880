// The journal of host calls: its entry encoding, and record → replay of a guest using WASI and user imports.
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WASI } from 'node:wasi';
import { beforeAll, describe, expect, it } from 'vitest';
import { WizError } from '../src/errors.ts';
import { decodeEntry, encodeEntry, type JournalEntry, type JournalValue } from '../src/journal/entry.ts';
import { journalImports, memoryLog, type Journal } from '../src/journal/journal.ts';
import { WASI_CALLS, WASI_EFFECTS, wasiCallClass } from '../src/journal/wasi.ts';
import { tempDir } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

/** A value's identity down to the bit: numbers by their f64 bits. */
function bits(v: JournalValue): string {
  if (typeof v !== 'number') return `${typeof v}:${String(v)}`;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  return `number:${view.getBigUint64(0).toString(16)}`;
}

function f64FromBits(b: bigint): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, b);
  return view.getFloat64(0);
}

function expectSameEntry(a: JournalEntry, b: JournalEntry): void {
  expect(a.import).toBe(b.import);
  expect(a.args.map(bits)).toEqual(b.args.map(bits));
  if (a.result.kind === 'value' && b.result.kind === 'value') expect(bits(a.result.value)).toBe(bits(b.result.value));
  else if (a.result.kind === 'values' && b.result.kind === 'values') expect(a.result.values.map(bits)).toEqual(b.result.values.map(bits));
  else expect(a.result).toEqual(b.result);
  expect(a.writes).toEqual(b.writes);
}

const EDGE_VALUES: JournalValue[] = [
  0, 1, -1, 2147483647, -2147483648, 2147483648, 4294967295, -0, 0.1, 1.5, -3.25e300, 5e-324,
  // Quiet NaNs with payloads: V8 may quiet a signaling NaN whenever it moves one, so the JS API cannot carry those bits.
  Infinity, -Infinity, NaN, f64FromBits(0x7ff8000000000001n), f64FromBits(0xfff8000000000123n), f64FromBits(0x7ffc00000000abcdn),
  0n, -1n, 1n, 2n ** 63n - 1n, -(2n ** 63n), 0x123456789abcdefn, true, false, null,
];

describe('journal entry encoding', () => {
  it('round-trips every argument and result bit-exactly (NaN payloads, -0, i64 extremes)', () => {
    const entries: JournalEntry[] = [
      { import: 0, args: EDGE_VALUES, result: { kind: 'none' }, writes: [] },
      ...EDGE_VALUES.map((v, i): JournalEntry => ({ import: i * 1000, args: [v], result: { kind: 'value', value: v }, writes: [] })),
      { import: 3, args: [], result: { kind: 'values', values: [1, 2n, NaN, -0] }, writes: [{ address: 0, bytes: new Uint8Array([1, 2, 3]) }, { address: 2 ** 32 - 1, bytes: new Uint8Array(0) }] },
      { import: 2 ** 32 - 1, args: [7], result: { kind: 'threw', message: 'exit(3) — ünïcode' }, writes: [{ address: 65536, bytes: new Uint8Array(300).fill(9) }] },
    ];
    for (const entry of entries) expectSameEntry(decodeEntry(encodeEntry(entry)), entry);
  });

  it('costs a few bytes around its payload', () => {
    // fd_read(3, iovs, 1, nread) = 0 having written 5 bytes and the count.
    const entry: JournalEntry = { import: 17, args: [3, 1024, 1, 1040], result: { kind: 'value', value: 0 }, writes: [{ address: 2048, bytes: new Uint8Array(5) }, { address: 1040, bytes: new Uint8Array(4) }] };
    expect(encodeEntry(entry).length).toBeLessThanOrEqual(9 + 16 + 12);
  });

  it('refuses truncated, overlong and unknown input with one line naming the entry', () => {
    const bytes = encodeEntry({ import: 5, args: [1, 2n, 0.5, NaN], result: { kind: 'threw', message: 'x' }, writes: [{ address: 300, bytes: new Uint8Array([1, 2]) }] });
    const refused = (b: Uint8Array) => {
      try {
        decodeEntry(b, 7);
      } catch (e) {
        expect(e).toBeInstanceOf(WizError);
        expect((e as WizError).code).toBe('malformed');
        expect((e as WizError).message).toMatch(/^journal entry 7 is malformed: [^\n]+ at byte \d+$/);
        return (e as WizError).message;
      }
      throw new Error(`accepted ${Array.from(b).join(',')}`);
    };
    for (let n = 0; n < bytes.length; n++) refused(bytes.subarray(0, n));
    expect(refused(new Uint8Array([...bytes, 0]))).toContain('trailing bytes');
    expect(refused(new Uint8Array([0, 1, 9]))).toContain('unknown value tag 9');
    expect(refused(new Uint8Array([0, 0, 7]))).toContain('unknown result kind 7');
    expect(refused(new Uint8Array([0, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0]))).toContain('int32 out of range');
    expect(refused(new Uint8Array([0, 1, 3, ...new Array(10).fill(0xff), 1, 0, 0]))).toContain('i64');
    expect(refused(new Uint8Array([0, 0, 3, 2, 0xff, 0xfe, 0]))).toContain('not UTF-8');
    expect(refused(new Uint8Array([0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]))).toContain('write count out of range');
    expect(refused(new Uint8Array([0, 0x80, 0x80, 0x01]))).toContain('value count out of range');
    // Random bytes: refused or decoded, never another error.
    let seed = 1;
    for (let i = 0; i < 2000; i++) {
      const b = new Uint8Array(1 + (i % 24)).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
      try {
        decodeEntry(b, 7);
      } catch (e) {
        expect((e as WizError).code).toBe('malformed');
      }
    }
  });
});

describe('WASI preview1 table', () => {
  it('knows every function node:wasi has, classified', () => {
    const names = Object.keys(new WASI({ version: 'preview1' }).wasiImport).sort();
    expect(Object.keys(WASI_CALLS).sort()).toEqual(names);
    expect(wasiCallClass('clock_time_get')).toBe('time');
    expect(wasiCallClass('path_open')).toBe('handle');
    expect(wasiCallClass('nope')).toBeUndefined();
    expect(WASI_EFFECTS).toContain('fd_write');
    expect(WASI_EFFECTS).toContain('proc_exit');
    expect(WASI_EFFECTS).not.toContain('fd_read');
  });
});

const W = 'wasi_snapshot_preview1';
const GUEST = `(module
  (import "${W}" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "${W}" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "${W}" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "${W}" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "${W}" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "${W}" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "${W}" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "${W}" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "${W}" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "${W}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "env" "fetch" (func $fetch (param i32) (result i32)))
  (import "env" "mix" (func $mix (param i64 f64 f32) (result f64)))
  (memory (export "memory") 1)
  (data (i32.const 700) "data.txt")
  (data (i32.const 730) "\\20\\03\\00\\00\\05\\00\\00\\00\\84\\03\\00\\00\\64\\00\\00\\00")
  (data (i32.const 760) "\\00\\04\\00\\00\\06\\00\\00\\00")
  (data (i32.const 1024) "hello\\n")
  (func (export "run") (result i32)
    (local $err i32) (local $i i32)
    (local.set $err (call $args_sizes_get (i32.const 100) (i32.const 104)))
    (local.set $err (i32.or (local.get $err) (call $args_get (i32.const 200) (i32.const 300))))
    (local.set $err (i32.or (local.get $err) (call $environ_sizes_get (i32.const 108) (i32.const 112))))
    (local.set $err (i32.or (local.get $err) (call $environ_get (i32.const 400) (i32.const 500))))
    (local.set $err (i32.or (local.get $err) (call $clock_time_get (i32.const 0) (i64.const 1000) (i32.const 600))))
    (local.set $err (i32.or (local.get $err) (call $random_get (i32.const 608) (i32.const 16))))
    (local.set $err (i32.or (local.get $err) (call $fd_prestat_get (i32.const 3) (i32.const 624))))
    (local.set $err (i32.or (local.get $err)
      (call $path_open (i32.const 3) (i32.const 0) (i32.const 700) (i32.const 8) (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 720))))
    ;; two iovecs: 5 bytes at 800, 100 at 900; the count at 740 overwrites the second iovec (legal: WASI reads it first)
    (local.set $err (i32.or (local.get $err) (call $fd_read (i32.load (i32.const 720)) (i32.const 730) (i32.const 2) (i32.const 740))))
    (local.set $err (i32.or (local.get $err) (call $fd_write (i32.const 1) (i32.const 760) (i32.const 1) (i32.const 744))))
    ;; user imports, their arguments made of what WASI gave
    (i32.store (i32.const 1100) (call $fetch (i32.load8_u (i32.const 608))))
    (f64.store (i32.const 1108)
      (call $mix (i64.load (i32.const 600)) (f64.convert_i32_u (i32.load (i32.const 740))) (f32.const -0)))
    (loop $l
      (i32.store (i32.add (i32.const 1200) (i32.shl (local.get $i) (i32.const 2))) (call $fetch (local.get $i)))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 5))))
    (local.get $err))
  ;; a call-heavy loop: a clock, 8 random bytes, a user call and a write per iteration
  (func (export "hammer") (param $n i32)
    (loop $l
      (drop (call $clock_time_get (i32.const 1) (i64.const 0) (i32.const 2000)))
      (drop (call $random_get (i32.const 2008) (i32.const 8)))
      (i32.store (i32.const 2016) (call $fetch (local.get $n)))
      (drop (call $fd_write (i32.const 1) (i32.const 760) (i32.const 1) (i32.const 2020)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))`;

/** A WASI import object whose every function fails the test if called. */
function untouchableWasi(): Record<string, (...a: unknown[]) => unknown> {
  const names = Object.keys(new WASI({ version: 'preview1' }).wasiImport);
  return Object.fromEntries(names.map((n) => [n, () => { throw new Error(`WASI ${n} was called`); }]));
}

describe('record and replay', () => {
  let module: WebAssembly.Module;
  let dir: string;
  beforeAll(async () => {
    module = await WebAssembly.compile(await wat(GUEST) as BufferSource);
    dir = tempDir();
    writeFileSync(join(dir, 'data.txt'), 'first line\nsecond line\n');
  });

  /** A live run under a real WASI (stdout to a file), returning the guest's memory, result and journal. */
  function live(options: { hammer?: number; raw?: boolean } = {}) {
    const stdoutPath = join(dir, `stdout-${Math.random()}`);
    const stdout = openSync(stdoutPath, 'w');
    try {
      const wasi = new WASI({ version: 'preview1', args: ['app', '--flag', 'ü'], env: { GREETING: 'hello', N: '42' }, preopens: { '/': dir }, stdout, returnOnExit: true });
      const log = memoryLog();
      const calls: number[] = [];
      let instance: WebAssembly.Instance;
      const host = { ...wasi.getImportObject(), env: {
        fetch: (x: number) => { calls.push(journal.position); return x * 7 + 1; },
        mix: (a: bigint, b: number, c: number) => Number(a % 1000n) + b + c,
      } };
      const journal: Journal = journalImports(host, { memory: () => instance.exports.memory as WebAssembly.Memory, log });
      instance = new WebAssembly.Instance(module, options.raw ? host : journal.imports);
      wasi.initialize(instance);
      const exports = instance.exports as { run: () => number; hammer: (n: number) => void; memory: WebAssembly.Memory };
      const t0 = performance.now();
      const result = options.hammer ? (exports.hammer(options.hammer), 0) : exports.run();
      const ms = performance.now() - t0;
      return { result, ms, memory: new Uint8Array(exports.memory.buffer).slice(), log, journal, calls, stdout: readFileSync(stdoutPath, 'utf8') };
    } finally {
      closeSync(stdout);
    }
  }

  /** A fresh instance replaying `entries`, with hosts that must not be called while entries remain. */
  function replay(entries: Uint8Array[], env: (journal: () => Journal) => Record<string, (...a: never[]) => unknown> = () => ({ fetch: () => { throw new Error('fetch was called'); }, mix: () => { throw new Error('mix was called'); } })) {
    const log = memoryLog();
    let instance: WebAssembly.Instance;
    const journal: Journal = journalImports({ [W]: untouchableWasi(), env: env(() => journal) as WebAssembly.ModuleImports }, { memory: () => instance.exports.memory as WebAssembly.Memory, log, replay: entries });
    instance = new WebAssembly.Instance(module, journal.imports);
    const exports = instance.exports as { run: () => number; memory: WebAssembly.Memory };
    const replayingAtStart = journal.replaying;
    const result = exports.run();
    return { result, memory: new Uint8Array(exports.memory.buffer).slice(), log, journal, replayingAtStart };
  }

  it('a fresh instance replaying the journal sees every result and memory write of the recorded run, calling nothing', () => {
    const recorded = live();
    expect(recorded.result).toBe(0);
    expect(recorded.stdout).toBe('hello\n');
    expect(recorded.log.entries.length).toBe(17);
    const mem = new DataView(recorded.memory.buffer);
    expect(mem.getUint32(740, true)).toBe(23); // fd_read read the whole file
    expect(new TextDecoder().decode(recorded.memory.subarray(800, 805))).toBe('first');
    expect(recorded.calls).toEqual([10, 12, 13, 14, 15, 16]);
    // The WASI entries carry the bytes WASI wrote: the file's, the clock's, the random bytes, args and environ.
    const wasiWrites = recorded.log.entries.map((e) => decodeEntry(e).writes.reduce((n, w) => n + w.bytes.length, 0));
    expect(wasiWrites.slice(0, 10)).toEqual([8, 4 * 3 + 'app\0--flag\0ü\0'.length + 1, 8, 4 * 2 + 'GREETING=hello\0N=42\0'.length, 8, 16, 8, 4, 23 + 4, 4]);

    const replayed = replay(recorded.log.entries);
    expect(replayed.replayingAtStart).toBe(true);
    expect(replayed.result).toBe(recorded.result);
    expect(Buffer.from(replayed.memory).equals(Buffer.from(recorded.memory))).toBe(true);
    expect(replayed.log.entries).toEqual([]);
    expect(replayed.journal.replaying).toBe(false);
    expect(replayed.journal.position).toBe(17);

    // A second live run differs (clock, random bytes), so the equality above is the journal's doing.
    expect(Buffer.from(live().memory).equals(Buffer.from(recorded.memory))).toBe(false);
  });

  it('goes on live once the entries run out, appending from the next position', () => {
    const recorded = live();
    const firstUserCall = recorded.log.entries.findIndex((e) => recorded.journal.names[decodeEntry(e).import]!.startsWith('env.'));
    expect(firstUserCall).toBe(10);
    const keys: number[] = [];
    const replayed = replay(recorded.log.entries.slice(0, firstUserCall + 2), (journal) => ({
      fetch: (x: number) => { keys.push(journal().position); return x + 1000; },
      mix: () => { throw new Error('mix was replayed, not called'); },
    }));
    // The positions given to the live host are those the calls take in the journal (idempotency keys).
    expect(keys).toEqual([12, 13, 14, 15, 16]);
    expect(replayed.log.entries.length).toBe(5);
    expect(replayed.journal.position).toBe(17);
    const view = new DataView(replayed.memory.buffer);
    expect(view.getUint32(1100, true)).toBe(new DataView(recorded.memory.buffer).getUint32(1100, true));
    expect([0, 1, 2, 3, 4].map((i) => view.getUint32(1200 + 4 * i, true))).toEqual([1000, 1001, 1002, 1003, 1004]);
    expect(decodeEntry(replayed.log.entries[0]!, 12)).toEqual({ import: recorded.journal.names.indexOf('env.fetch'), args: [0], result: { kind: 'value', value: 1000 }, writes: [] });
  });

  it('stops at the first call that is not the recorded one, naming the entry and both calls', async () => {
    const m = await WebAssembly.compile(await wat(`(module
      (import "env" "fetch" (func $fetch (param i32) (result i32)))
      (import "env" "g" (func $g (param f64)))
      (func (export "run") (param i32) (result i32) (call $fetch (local.get 0)))
      (func (export "nan") (param i64) (call $g (f64.reinterpret_i64 (local.get 0)))))`) as BufferSource);
    const run = (entries: Uint8Array[] | undefined, call: (e: Record<string, (x: never) => unknown>) => unknown) => {
      const log = memoryLog();
      const j = journalImports({ env: { fetch: (x: number) => x * 2, g: () => {} } }, { memory: () => new WebAssembly.Memory({ initial: 0 }), log, replay: entries });
      const instance = new WebAssembly.Instance(m, j.imports);
      call(instance.exports as Record<string, (x: never) => unknown>);
      return log.entries;
    };
    const entries = run(undefined, (e) => e.run!(3 as never));
    expect(() => run(entries, (e) => e.run!(4 as never))).toThrow(new WizError('trap', 'replay diverged at journal entry 0: expected env.fetch(3), got env.fetch(4)'));
    expect(run(entries, (e) => expect(e.run!(3 as never)).toBe(6))).toEqual([]);
    // Another import at that position, and NaNs that differ only in their payload bits.
    expect(() => run(entries, (e) => e.nan!(0n as never))).toThrow('replay diverged at journal entry 0: expected env.fetch(3), got env.g(0)');
    const nan = run(undefined, (e) => e.nan!(0x7ff8000000000001n as never));
    expect(() => run(nan, (e) => e.nan!(0x7ff8000000000002n as never))).toThrow('expected env.g(nan:0x7ff8000000000001), got env.g(nan:0x7ff8000000000002)');
    try {
      run(entries, (e) => e.run!(4 as never));
    } catch (e) {
      expect((e as WizError).code).toBe('trap');
    }
  });

  it('records a host call that threw and throws again on replay; refuses results it cannot record', async () => {
    const m = await WebAssembly.compile(await wat(`(module
      (import "env" "f" (func $f (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) (call $f (local.get 0))))`) as BufferSource);
    const run = (f: (x: number) => unknown, replay?: Uint8Array[]) => {
      const log = memoryLog();
      const j = journalImports({ env: { f } }, { memory: () => new WebAssembly.Memory({ initial: 0 }), log, replay });
      const exports = new WebAssembly.Instance(m, j.imports).exports as { run: (x: number) => number };
      let error: unknown;
      try {
        exports.run(1);
      } catch (e) {
        error = e;
      }
      return { log, error, position: j.position };
    };
    const threw = run(() => { throw new Error('host down'); });
    expect((threw.error as Error).message).toBe('host down');
    expect(decodeEntry(threw.log.entries[0]!).result).toEqual({ kind: 'threw', message: 'host down' });
    expect(run(() => 0, threw.log.entries).error).toEqual(new WizError('trap', 'env.f threw at journal entry 0 of the recorded run: host down'));
    const promise = run(async () => 1);
    expect(promise.error).toEqual(new WizError('unsupported', 'env.f returned a Promise: a journaled import must return its result at once'));
    expect(promise.log.entries).toEqual([]);
    expect(run(() => 'seven').error).toEqual(new WizError('unsupported', 'env.f returned a string: a journal records numbers and BigInts only'));
  });

  it('measures the bytes per entry of a call-heavy run', () => {
    const n = 5000;
    const recorded = live({ hammer: n });
    const entries = recorded.log.entries;
    expect(entries.length).toBe(4 * n);
    let written = 0;
    let argBytes = 0;
    for (const e of entries) {
      const entry = decodeEntry(e);
      written += entry.writes.reduce((s, w) => s + w.bytes.length, 0);
      // Arguments at their wasm widths: every number here is an i32, every BigInt an i64.
      argBytes += entry.args.reduce((s: number, a) => s + (typeof a === 'bigint' ? 8 : 4), 0);
    }
    const total = recorded.log.bytes;
    const overhead = (total - written) / entries.length;
    const beyondArgs = (total - written - argBytes) / entries.length;
    console.log(`journal: ${entries.length} entries, ${(total / entries.length).toFixed(2)} B/entry; ${overhead.toFixed(2)} B/entry besides written bytes, ${beyondArgs.toFixed(2)} B/entry besides written bytes and arguments at their widths`);
    expect(overhead).toBeLessThanOrEqual(32);
    // Time: medians of 5 runs with and without the journal (WASI's fd_write goes to a file: a real syscall).
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[2]!;
    const journaled = median([0, 1, 2, 3, 4].map(() => live({ hammer: n }).ms));
    const raw = median([0, 1, 2, 3, 4].map(() => live({ hammer: n, raw: true }).ms));
    console.log(`journal: ${((journaled - raw) * 1000 / (4 * n)).toFixed(2)} µs per call added (${(raw * 1000 / (4 * n)).toFixed(2)} µs per call without it), in-memory log`);
  });
});

describe('what must be durable when', () => {
  it('entries of calls without outside effects may stay volatile; an effect waits for a sync, and its entry is durable', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const view = new DataView(memory.buffer);
    const events: string[] = [];
    const log = {
      append: (_entry: Uint8Array, position: number, durable: boolean) => events.push(`${position}:${durable ? 'durable' : 'volatile'}`),
      sync: () => events.push('sync'),
    };
    const hosts = {
      wasi_snapshot_preview1: {
        clock_time_get: (_id: number, _precision: bigint, out: number) => (events.push('clock'), view.setBigUint64(out, 5n, true), 0),
        random_get: (_at: number, _len: number) => (events.push('random'), 0),
        fd_write: (_fd: number, _iovs: number, _n: number, out: number) => (events.push('write'), view.setUint32(out, 0, true), 0),
      },
      env: { send: (x: number) => (events.push('send'), x + 1) },
    };
    const journal = journalImports(hosts, { memory: () => memory, log });
    const wasi = journal.imports.wasi_snapshot_preview1 as Record<string, (...a: unknown[]) => unknown>;
    const env = journal.imports.env as Record<string, (...a: unknown[]) => unknown>;
    wasi.clock_time_get!(0, 0n, 8);
    wasi.random_get!(16, 4);
    wasi.fd_write!(1, 32, 0, 40);
    env.send!(7);
    expect(events).toEqual([
      'clock', '0:volatile', 'random', '1:volatile',
      // Before the write is made, what it may print is on disk; the write's own entry is durable.
      'sync', 'write', '2:durable',
      // A user import's effects are unknown: treated as one.
      'sync', 'send', '3:durable',
    ]);
  });
});
