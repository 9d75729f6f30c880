// wiz diff and wiz init --check-determinism: what differs between the states two modules (or images) start with.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_FORMAT, type StateImage } from '../src/durable/image.ts';
import { diffImages, diffModules } from '../src/diff/diff.ts';
import { tempDir, wiz, wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const RICH = `(module
  (import "env" "base" (global $base i32))
  (memory (export "memory") 2 4)
  (memory 0)
  (global $sp (export "__stack_pointer") (mut i32) (i32.const 69632))
  (global $f (mut f32) (f32.const -nan:0x200001))
  (global $v (mut v128) (v128.const i64x2 1 2))
  (global $r funcref (ref.func $f0))
  (table 4 funcref)
  (table 3 externref)
  (elem (i32.const 1) $f0 $f1)
  (elem declare func $f1)
  (data (i32.const 16) "hello")
  (data (i32.const 0xfffe) "\\01\\02\\03\\04")
  (data (global.get $base) "\\ff")
  (data "passive")
  (func $f0) (func $f1))`;

describe('diffModules', () => {
  it('finds nothing between a module and itself, or an identical copy', async () => {
    const a = await wat(RICH);
    const d = diffModules(a, a.slice());
    expect(d).toEqual({ same: true, globals: [], memories: [], tables: [], sizes: [], notes: [] });
  });

  it('compares the state, not the encoding: overlapping segments that leave the same bytes are the same', async () => {
    const a = await wat(`(module (memory 1) (data (i32.const 8) "abcd"))`);
    const b = await wat(`(module (memory 1) (data (i32.const 8) "xbcz") (data (i32.const 8) "a") (data (i32.const 11) "d") (data (i32.const 20) "\\00\\00"))`);
    expect(diffModules(a, b).same).toBe(true);
  });

  it('names globals that differ in a NaN payload, -0, the high bits of an i64 or a v128 lane, bit for bit', async () => {
    const mod = (f32: string, f64: string, i64: string, v128: string) => wat(`(module
      (global (export "f") (mut f32) (f32.const ${f32}))
      (global (export "d") (export "d2") (mut f64) (f64.const ${f64}))
      (global (mut i64) (i64.const ${i64}))
      (global (mut v128) (v128.const i32x4 ${v128}))
      (global i32 (i32.const 7)))`);
    const a = await mod('nan:0x200001', '0', '1', '1 2 3 4');
    const b = await mod('nan:0x200002', '-0', '0x0000000100000001', '1 2 0x80000003 4');
    const d = diffModules(a, b);
    expect(d.same).toBe(false);
    expect(d.globals).toEqual([
      { index: 0, exportedAs: ['f'], old: { type: 'f32', bits: '0x7fa00001', value: 'nan:0x200001' }, new: { type: 'f32', bits: '0x7fa00002', value: 'nan:0x200002' } },
      { index: 1, exportedAs: ['d', 'd2'], old: { type: 'f64', bits: '0x0000000000000000', value: '0' }, new: { type: 'f64', bits: '0x8000000000000000', value: '-0' } },
      { index: 2, exportedAs: [], old: { type: 'i64', bits: '0x0000000000000001', value: '1' }, new: { type: 'i64', bits: '0x0000000100000001', value: '4294967297' } },
      {
        index: 3, exportedAs: [],
        old: { type: 'v128', bits: '0x00000004000000030000000200000001', value: '0x00000004000000030000000200000001' },
        new: { type: 'v128', bits: '0x00000004800000030000000200000001', value: '0x00000004800000030000000200000001' },
      },
    ]);
    expect(d.memories).toEqual([]);
  });

  it('reports globals only one module defines, changed types, and changed export names', async () => {
    const a = await wat(`(module (global (export "x") (mut i32) (i32.const 1)) (global (mut i32) (i32.const 2)))`);
    const b = await wat(`(module (global (export "y") (mut i32) (i32.const 1)) (global (mut i64) (i64.const 2)) (global (mut i32) (i32.const 3)))`);
    expect(diffModules(a, b).globals).toEqual([
      { index: 0, exportedAs: ['y'], oldExportedAs: ['x'], old: { type: 'i32', bits: '0x00000001', value: '1' }, new: { type: 'i32', bits: '0x00000001', value: '1' } },
      { index: 1, exportedAs: [], old: { type: 'i32', bits: '0x00000002', value: '2' }, new: { type: 'i64', bits: '0x0000000000000002', value: '2' } },
      { index: 2, exportedAs: [], new: { type: 'i32', bits: '0x00000003', value: '3' } },
    ]);
  });

  it('gives memory ranges: several, merged across small gaps, across a page boundary, in pages only one module has', async () => {
    const a = await wat(`(module (memory 1)
      (data (i32.const 0x1000) "0123456789abcdef0123456789abcdef")
      (data (i32.const 0x2000) "same")
      (data (i32.const 0xfff0) "\\01\\01\\01\\01\\01\\01\\01\\01\\01\\01\\01\\01\\01\\01\\01\\01"))`);
    const b = await wat(`(module (memory 3)
      (data (i32.const 0x1000) "X123456789abcdeX0123456789abcdeX")
      (data (i32.const 0x1100) "Y")
      (data (i32.const 0x2000) "same")
      (data (i32.const 0xfffc) "\\01\\01\\01\\02\\02\\02\\02\\02")
      (data (i32.const 0x20000) "\\00\\07"))`);
    const d = diffModules(a, b);
    expect(d.sizes).toEqual([{ kind: 'memory', index: 0, old: 1, new: 3 }]);
    expect(d.memories).toEqual([
      { memory: 0, start: 0x1000, end: 0x1020, bytes: 3 }, // gaps of 14 and 16 equal bytes: one range
      { memory: 0, start: 0x1100, end: 0x1101, bytes: 1 },
      { memory: 0, start: 0xfff0, end: 0x10004, bytes: 17 }, // 12 ones gone, 1 changed, 4 new past the page end
      { memory: 0, start: 0x20001, end: 0x20002, bytes: 1 },
    ]);
    expect(diffModules(a, b, { mergeGap: 0 }).memories.slice(0, 3)).toEqual([
      { memory: 0, start: 0x1000, end: 0x1001, bytes: 1 },
      { memory: 0, start: 0x100f, end: 0x1010, bytes: 1 },
      { memory: 0, start: 0x101f, end: 0x1020, bytes: 1 },
    ]);
  });

  it('compares large, misaligned memories without allocating them', async () => {
    const big = (tail: string) => wat(`(module (memory 65536) (data (i32.const 0xfffffff0) "${tail}"))`);
    const d = diffModules(await big('0123456789abcdef'), await big('0123456789abcdeF'));
    expect(d.memories).toEqual([{ memory: 0, start: 0xffffffff, end: 0x100000000, bytes: 1 }]);
  });

  it('reports segments it cannot place when they differ', async () => {
    const mod = (s: string) => wat(`(module (import "env" "b" (global i32)) (memory 1) (data (global.get 0) "${s}"))`);
    expect(diffModules(await mod('a'), await mod('a')).same).toBe(true);
    expect(diffModules(await mod('a'), await mod('b')).notes).toEqual([
      'memory 0: the active data segments wiz cannot place (offset not a constant, or the memory imported) differ: 1 in a, 1 in b',
    ]);
  });

  it('gives table sizes and slots from active element segments and initial values', async () => {
    const a = await wat(`(module (table 4 funcref) (table 2 externref) (elem (i32.const 1) $f0 $f1) (func $f0) (func $f1) (func $f2))`);
    const b = await wat(`(module (table 6 funcref) (table 2 externref) (elem (i32.const 1) $f0 $f2) (elem (i32.const 4) funcref (ref.null func) (ref.func $f1)) (func $f0) (func $f1) (func $f2))`);
    const d = diffModules(a, b);
    expect(d.sizes).toEqual([{ kind: 'table', index: 0, old: 4, new: 6 }]);
    expect(d.tables).toEqual([
      { table: 0, start: 2, end: 3, old: [1], new: [2] },
      { table: 0, start: 5, end: 6, old: [null], new: [1] },
    ]);
  });

  it('refuses what is not a module, with one line', async () => {
    expect(() => diffModules(new Uint8Array([1, 2, 3]), new Uint8Array(0))).toThrow(/^not a WebAssembly module/);
  });
});

describe('diffImages', () => {
  const chunk = (fill: Record<number, number>, size = 16) => {
    const c = new Uint8Array(size);
    for (const [at, v] of Object.entries(fill)) c[Number(at)] = v;
    return c;
  };
  const image = (parts: Partial<StateImage>): StateImage => ({
    format: IMAGE_FORMAT, module: 'sha256:aa', chunkSize: 16, memories: [], globals: [], tables: [], dropped: { data: [], elem: [] }, ...parts,
  });
  const chunks = new Map([
    ['c1', chunk({ 0: 1, 5: 2 })],
    ['c2', chunk({ 0: 1, 5: 3, 6: 3, 15: 9 })],
    ['c3', chunk({ 3: 4 })],
  ]);

  it('finds nothing between equal images', () => {
    const a = image({ memories: [{ index: 0, pages: 1, chunks: ['c1', null, 'c3'] }], globals: [{ index: 0, type: 'i32', bits: '00100100' }] });
    expect(diffImages(a, structuredClone(a), chunks).same).toBe(true);
  });

  it('compares globals bit for bit, memory sizes, chunk contents byte for byte, table runs and dropped segments', () => {
    const a = image({
      memories: [{ index: 0, pages: 1, chunks: ['c1', null, 'c3', null] }],
      globals: [
        { index: 0, type: 'i32', bits: '00100100' },
        { index: 1, type: 'f32', bits: '0100c07f' },
        { index: 2, type: 'i64', bits: '0100000000000000' },
        { index: 3, type: 'funcref', ref: 2 },
      ],
      tables: [{ index: 0, size: 8, runs: [[0, 10, 4, 1]] }],
    });
    const b = image({
      memories: [{ index: 0, pages: 2, chunks: ['c2', 'c3', 'c3', null, null, 'c1'] }],
      globals: [
        { index: 0, type: 'i32', bits: '10100100' },
        { index: 1, type: 'f32', bits: '0200c07f' },
        { index: 2, type: 'i64', bits: '0100000001000000' },
        { index: 3, type: 'funcref', ref: null },
      ],
      tables: [{ index: 0, size: 10, runs: [[0, 10, 2, 1], [2, 7, 2, 0], [9, 3, 1, 0]] }],
      dropped: { data: [1], elem: [] },
    });
    const d = diffImages(a, b, chunks);
    expect(d.globals).toEqual([
      { index: 0, exportedAs: [], old: { type: 'i32', bits: '0x00011000', value: '69632' }, new: { type: 'i32', bits: '0x00011010', value: '69648' } },
      { index: 1, exportedAs: [], old: { type: 'f32', bits: '0x7fc00001', value: 'nan:0x400001' }, new: { type: 'f32', bits: '0x7fc00002', value: 'nan:0x400002' } },
      { index: 2, exportedAs: [], old: { type: 'i64', bits: '0x0000000000000001', value: '1' }, new: { type: 'i64', bits: '0x0000000100000001', value: '4294967297' } },
      { index: 3, exportedAs: [], old: { type: 'funcref', value: 'ref.func 2' }, new: { type: 'funcref', value: 'ref.null' } },
    ]);
    expect(d.sizes).toEqual([{ kind: 'memory', index: 0, old: 1, new: 2 }, { kind: 'table', index: 0, old: 8, new: 10 }]);
    expect(d.memories).toEqual([
      { memory: 0, start: 5, end: 20, bytes: 4 }, // 5, 6, 15 in the first chunk; 19 in the second, which is null in a
      { memory: 0, start: 80, end: 86, bytes: 2 },
    ]);
    expect(d.tables).toEqual([
      { table: 0, start: 2, end: 4, old: [12, 13], new: [7, 7] },
      { table: 0, start: 9, end: 10, old: [null], new: [3] },
    ]);
    expect(d.notes).toEqual(['data segment 1: kept -> dropped']);
  });

  it('says which chunk is missing from the store', () => {
    const a = image({ memories: [{ index: 0, pages: 1, chunks: ['nope'] }] });
    expect(() => diffImages(a, a, chunks)).toThrow('image a: memory 0 chunk 0 (nope) is not in the chunk store');
  });
});

describe('wiz diff', () => {
  let dir: string;
  const file = (name: string) => join(dir, name);
  beforeAll(async () => {
    dir = tempDir();
    writeFileSync(file('a.wasm'), await wat(`(module (memory 1) (global (export "__stack_pointer") (mut i32) (i32.const 69632))
      (data (i32.const 0x1000) "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") (table 2 funcref) (func $f))`));
    writeFileSync(file('b.wasm'), await wat(`(module (memory 2) (global (export "__stack_pointer") (mut i32) (i32.const 69648))
      (data (i32.const 0x1000) "X12345X789abcdeX0123456789abcdXf0123456789aXXdef0123X56789abcdeX") (table 2 funcref) (elem (i32.const 1) $f) (func $f))`));
    writeFileSync(file('junk.wasm'), 'not wasm');
  });

  it('prints one line per difference and exits 1 when the states differ', () => {
    const r = wiz(['diff', file('a.wasm'), file('b.wasm')]);
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toBe([
      'global 0 "__stack_pointer" i32: 0x00011000 (69632) -> 0x00011010 (69648)',
      'memory 0: 1 page -> 2 pages',
      'memory 0 [0x1000, 0x1040): 8 bytes differ',
      'table 0 [1, 2): null -> func 0',
      '',
    ].join('\n'));
    expect(r.status).toBe(1);
  });

  it('prints nothing and exits 0 when the states are the same', () => {
    const r = wiz(['diff', file('a.wasm'), file('a.wasm')]);
    expect([r.status, r.stdout.toString(), r.stderr]).toEqual([0, '', '']);
  });

  it('--json prints the whole comparison, with the same exit codes', () => {
    const r = wiz(['diff', '--json', file('a.wasm'), file('b.wasm')]);
    expect(r.status).toBe(1);
    const d = JSON.parse(r.stdout.toString());
    expect(d.same).toBe(false);
    expect(d.memories).toEqual([{ memory: 0, start: 0x1000, end: 0x1040, bytes: 8 }]);
    const same = wiz(['diff', '--json', file('a.wasm'), '-'], { input: readFileSync(file('a.wasm')) });
    expect(same.status).toBe(0);
    expect(JSON.parse(same.stdout.toString()).same).toBe(true);
  });

  it('a bad input is one line naming the file, exit 1', () => {
    const r = wiz(['diff', file('a.wasm'), file('junk.wasm')]);
    expect(r.stderr).toBe(`wiz: ${file('junk.wasm')}: not a WebAssembly module: the file does not start with the \`\\0asm\` magic bytes\n`);
    expect(r.status).toBe(1);
    expect(r.stdout.toString()).toBe('');
    const missing = wiz(['diff', file('a.wasm'), file('none.wasm')]);
    expect(missing.stderr).toBe(`wiz: cannot read "${file('none.wasm')}": no such file\n`);
    expect(missing.status).toBe(1);
  });
});

describe('wiz init --check-determinism', () => {
  const wasi = (body: string, extra = '') => wat(`(module
    (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
    (memory (export "memory") 1)
    (global $seed (export "seed") (mut i64) (i64.const 0))
    ${extra}
    (func (export "wizer-initialize") ${body})
    (func (export "get") (result i64) (global.get $seed)))`);
  const seeded = () => wasi(`
    (drop (call $random (i32.const 0) (i32.const 8)))
    (global.set $seed (i64.load (i32.const 0)))
    (i64.store (i32.const 0) (i64.const 0))`);

  it('fails on a seed from random_get baked into the snapshot: names the global and what init read, writes nothing', async () => {
    const r = wizInit(await seeded(), ['--allow-wasi', '--check-determinism']);
    expect(r.status).toBe(1);
    expect(r.output).toBeUndefined();
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines.filter((l) => !l.startsWith('wiz: warning:'))).toEqual([
      'wiz: init is not deterministic: a second run, with fresh random bytes and the clock one day later, left a different state; nothing written',
      expect.stringMatching(/^wiz: {3}global 0 "seed" i64: 0x[0-9a-f]{16} \(-?\d+\) -> 0x[0-9a-f]{16} \(-?\d+\)$/),
      'wiz:   init read random bytes (random_get)',
    ]);
  });

  it('fails on a clock reading kept in memory, naming the range', async () => {
    const r = wizInit(await wasi(`(drop (call $clock (i32.const 0) (i64.const 1) (i32.const 0x100)))`), ['--allow-wasi', '--check-determinism']);
    expect(r.status).toBe(1);
    expect(r.output).toBeUndefined();
    const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('wiz: warning:'));
    expect(lines[1]).toMatch(/^wiz: {3}memory 0 \[0x10[0-7], 0x10[1-8]\): [1-8] bytes? differs?$/);
    expect(lines.at(-1)).toBe('wiz:   init read a clock (clock_time_get)');
  });

  it('passes a deterministic init, and writes what plain wiz init writes', async () => {
    const input = await wasi(`(global.set $seed (i64.const 42)) (i64.store (i32.const 64) (i64.const 7))`);
    const checked = wizInit(input, ['--allow-wasi', '--check-determinism']);
    expect([checked.status, checked.stderr]).toEqual([0, '']);
    const plain = wizInit(input, ['--allow-wasi']);
    expect(Buffer.from(checked.output!).equals(Buffer.from(plain.output!))).toBe(true);
  });

  it('with --deterministic, both runs get the same streams: the random seed passes', async () => {
    const input = await seeded();
    const r = wizInit(input, ['--allow-wasi', '--deterministic', '--check-determinism']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    const plain = wizInit(input, ['--allow-wasi', '--deterministic']);
    expect(Buffer.from(r.output!).equals(Buffer.from(plain.output!))).toBe(true);
  });

  it('also runs the two inits in child processes under --init-timeout', async () => {
    const r = wizInit(await seeded(), ['--allow-wasi', '--check-determinism', '--init-timeout', '20']);
    expect(r.status).toBe(1);
    expect(r.output).toBeUndefined();
    expect(r.stderr).toMatch(/^wiz: {3}global 0 "seed" i64: /m);
    // The children print their own warnings: which inputs init read is known only from the imports.
    expect(r.stderr).toMatch(/^wiz: {3}init may have read random_get, clock_time_get \(the module imports them\)$/m);
  });
});
