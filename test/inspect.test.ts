// wiz inspect: what a module holds, read statically, on one screen or as JSON.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCFixtures, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { decodeConstExpr, inspectModule, type ModuleInspection } from '../src/inspect/inspect.ts';
import { tempDir, wiz, wizInit, wizSnapshot } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const KNOWN = `(module
  (import "env" "base" (global $base i32))
  (import "env" "log" (func $log (param i32)))
  (memory (export "mem") 1 4)
  (global $a (mut i32) (i32.const -1))
  (global $b (mut i64) (i64.const 9007199254740993))
  (global $c (mut f32) (f32.const -nan:0x200001))
  (global $d (mut f64) (f64.const -0))
  (global $e (mut f64) (f64.const nan:0x8000000000001))
  (global $f i32 (i32.const 7))
  (global $v (mut v128) (v128.const i64x2 1 2))
  (global $r funcref (ref.func $init))
  (global $n externref (ref.null extern))
  (global $g i32 (global.get $base))
  (global $x (export "x") (mut i64) (i64.const -9223372036854775808))
  (table 2 10 funcref)
  (elem (i32.const 0) $init)
  (data (i32.const 16) "\\01\\00\\02")
  (data (i32.const 17) "\\03\\00")
  (data "passive")
  (data (global.get $base) "\\ff")
  (func $init (export "wizer-initialize") (call $log (i32.const 0))))`;

const byIndex = (m: ModuleInspection, index: number) => m.globals.defined.find((g) => g.index === index)!;

describe('inspectModule', () => {
  let m: ModuleInspection;
  let bytes: Uint8Array;
  beforeAll(async () => {
    bytes = await wat(KNOWN);
    m = inspectModule(bytes);
  });

  it('sizes every section, and the sections plus the 8-byte header make the module', () => {
    expect(m.size).toBe(bytes.length);
    expect(8 + m.sections.reduce((a, s) => a + s.size, 0)).toBe(bytes.length);
    expect(m.sections.map((s) => s.name)).toEqual(['type', 'import', 'function', 'table', 'memory', 'global', 'export', 'element', 'code', 'data']);
  });

  it('gives integer globals as bits and as signed numbers, exactly beyond 2^53', () => {
    expect(byIndex(m, 1).init).toEqual({ op: 'const', type: 'i32', bits: '0xffffffff', value: '-1' });
    expect(byIndex(m, 2).init).toEqual({ op: 'const', type: 'i64', bits: '0x0020000000000001', value: '9007199254740993' });
    expect(byIndex(m, 11).init).toEqual({ op: 'const', type: 'i64', bits: '0x8000000000000000', value: '-9223372036854775808' });
  });

  it('gives float globals as bits, with NaN sign and payload and negative zero', () => {
    expect(byIndex(m, 3).init).toEqual({ op: 'const', type: 'f32', bits: '0xffa00001', value: '-nan:0x200001' });
    expect(byIndex(m, 4).init).toEqual({ op: 'const', type: 'f64', bits: '0x8000000000000000', value: '-0' });
    expect(byIndex(m, 5).init).toEqual({ op: 'const', type: 'f64', bits: '0x7ff8000000000001', value: 'nan:0x8000000000001' });
  });

  it('gives v128, reference and global.get initializers', () => {
    expect(byIndex(m, 7).init).toEqual({ op: 'const', type: 'v128', bits: '0x00000000000000020000000000000001', value: '0x00000000000000020000000000000001' });
    expect(byIndex(m, 8).init).toEqual({ op: 'ref.func', func: 1 });
    expect(byIndex(m, 9).init).toEqual({ op: 'ref.null', heapType: 'extern' });
    expect(byIndex(m, 10).init).toEqual({ op: 'global.get', global: 0 });
    expect(m.globals.imported).toBe(1);
    expect(m.globals.defined.filter((g) => g.mutable).map((g) => g.index)).toEqual([1, 2, 3, 4, 5, 7, 11]);
    expect(byIndex(m, 11).exportedAs).toEqual(['x']);
  });

  it('counts the non-zero bytes active segments leave in memory, later segments overwriting earlier ones', () => {
    // 16: 01, 17: 00 then 03, 18: 02 then 00; the segment at global.get $base cannot be placed statically.
    expect(m.memories).toEqual([{ index: 0, imported: false, min: 1, max: 4, pageSize: 65536, shared: false, memory64: false, exportedAs: ['mem'], nonZeroBytes: 2 }]);
    expect(m.data).toEqual({ segments: 4, active: 3, passive: 1, emptyPassive: 0, bytes: 3 + 2 + 7 + 1, unplaced: 1 });
  });

  it('lists tables, counts exports and imports by kind, and finds the init function', () => {
    expect(m.tables).toEqual([{ index: 0, imported: false, type: 'funcref', min: 2, max: 10 }]);
    expect(m.elementSegments).toBe(1);
    expect(m.exports).toEqual({ total: 3, byKind: { memory: 1, global: 1, func: 1 } });
    expect(m.imports).toEqual({ total: 2, byKind: { global: 1, func: 1 }, modules: ['env'] });
    expect(m.initFunctions).toEqual(['wizer-initialize']);
    expect(m.instrumentation).toBeUndefined();
    expect(m.provenance).toBeUndefined();
  });

  it('reads imported tables and memories', async () => {
    const imported = inspectModule(await wat(`(module (import "a" "t" (table 3 funcref)) (import "a" "m" (memory 2 5 shared)) (table 1 externref))`));
    expect(imported.tables).toEqual([
      { index: 0, imported: true, type: 'funcref', min: 3, max: undefined },
      { index: 1, imported: false, type: 'externref', min: 1, max: undefined },
    ]);
    expect(imported.memories[0]).toMatchObject({ index: 0, imported: true, min: 2, max: 5, shared: true });
  });

  it('shows an initializer that is not a single constant as its bytes', () => {
    expect(decodeConstExpr(new Uint8Array([0x41, 0x01, 0x41, 0x02, 0x6a, 0x0b]))).toEqual({ op: 'expr', bytes: '41 01 41 02 6a 0b' });
  });
});

describe('wiz inspect', () => {
  it('prints one screen with the values, and --json prints what inspectModule returns', async () => {
    const input = await wat(KNOWN);
    const screen = wiz(['inspect', '-'], { input });
    expect(screen.status).toBe(0);
    const text = screen.stdout.toString();
    expect(text).toMatch(/^stdin: \d+ bytes\n/);
    expect(text).toMatch(/ {3}2 mut i64 {2}0x0020000000000001 {2}9007199254740993\n/);
    expect(text).toMatch(/ {3}3 mut f32 {2}0xffa00001 {2}-nan:0x200001\n/);
    expect(text).toMatch(/0: 1 page \(max 4\), 2 non-zero bytes {2}exported as "mem"/);
    expect(text).toMatch(/data {10}4 segments \(3 active, 1 passive\), 13 bytes; 1 at offsets not known statically/);
    expect(text).toMatch(/init function exported: wizer-initialize/);
    expect(text.split('\n').length).toBeLessThan(45);

    const json = wiz(['inspect', '--json', '-'], { input });
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout.toString())).toEqual(JSON.parse(JSON.stringify(inspectModule(input))));
  });

  it('cuts long lists to one screen, and says what it left out', async () => {
    const globals = Array.from({ length: 50 }, (_, i) => `(global (mut i32) (i32.const ${i}))`).join(' ');
    const customs = Array.from({ length: 30 }, (_, i) => `(@custom "c${i}" "x")`).join(' ');
    const input = await wat(`(module ${globals} ${customs})`);
    const text = wiz(['inspect', '-'], { input }).stdout.toString();
    expect(text).toMatch(/… 41 more mutable globals \(--json lists them all\)/);
    expect(text).toMatch(/ {2}… 16 more +112  24\.2%\n/);
    expect(text.split('\n').length).toBeLessThan(45);
  });

  it('shows instrumentation and provenance after --keep-instrumentation, and the next generation after wiz snapshot', async () => {
    const input = await wat(`(module (memory 1) (global (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set 0 (i32.const 5)) (i32.store (i32.const 8) (i32.const 0x01020304)))
      (func (export "bump") (global.set 0 (i32.add (global.get 0) (i32.const 1)))))`);
    const first = wizInit(input, ['--keep-instrumentation']);
    expect(first.status).toBe(0);
    const gen0 = inspectModule(first.output!);
    expect(gen0.instrumentation).toEqual({ globals: 1, memories: 1, tables: 0 });
    expect(gen0.provenance).toEqual({ generation: 0, parent: `sha256:${createHash('sha256').update(input).digest('hex')}` });
    expect(gen0.initFunctions).toEqual([]);
    expect(gen0.globals.defined[0]!.init).toMatchObject({ bits: '0x00000005' });
    expect(gen0.memories[0]!.nonZeroBytes).toBe(4);

    const second = wizSnapshot(first.output!, ['--invoke', 'bump', '--keep-instrumentation']);
    expect(second.status).toBe(0);
    const gen1 = inspectModule(second.output!);
    expect(gen1.provenance).toEqual({ generation: 1, parent: `sha256:${createHash('sha256').update(first.output!).digest('hex')}` });
    expect(gen1.globals.defined[0]!.init).toMatchObject({ bits: '0x00000006', value: '6' });

    const dir = tempDir();
    writeFileSync(join(dir, 'gen1.wasm'), second.output!);
    const text = wiz(['inspect', join(dir, 'gen1.wasm')]).stdout.toString();
    expect(text).toMatch(/instrumented {2}yes: __wizer_ exports for 1 global, 1 memory/);
    expect(text).toMatch(/provenance {4}generation 1, parent sha256:[0-9a-f]{64}\n/);
    expect(text).toMatch(/init function none exported/);
  });

  it('refuses what is not a module with one line and exit code 1', () => {
    const notWasm = wiz(['inspect', '-'], { input: new TextEncoder().encode('hello') });
    expect(notWasm.status).toBe(1);
    expect(notWasm.stderr).toBe('wiz: not a WebAssembly module: the file does not start with the `\\0asm` magic bytes\n');
    const missing = wiz(['inspect', join(tempDir(), 'nope.wasm')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^wiz: cannot read ".*nope.wasm": no such file\n$/);
    const truncated = wiz(['inspect', '-'], { input: new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 9, 1]) });
    expect(truncated.status).toBe(1);
    expect(truncated.stderr).toMatch(/^wiz: malformed module: type section of 9 bytes runs past the end of the file/);
  });
});

describe.skipIf(!hasCToolchain())('wiz inspect on the C fixtures', () => {
  it('reads each fixture before and after wiz init', { timeout: 10 * 60_000 }, () => {
    const configDir = tempDir();
    writeFileSync(join(configDir, 'settings.txt'), 'alpha 1\nbeta 20\n');
    for (const [name, path] of Object.entries(buildCFixtures())) {
      const input = new Uint8Array(readFileSync(path));
      const before = inspectModule(input);
      expect(before.initFunctions, name).toContain('wizer-initialize');
      expect(8 + before.sections.reduce((a, s) => a + s.size, 0), name).toBe(input.length);
      const out = wizInit(input, ['--allow-wasi', '--inherit-stdio=false', '--mapdir', `/config::${configDir}`]);
      expect(out.status, `${name}: ${out.stderr}`).toBe(0);
      const after = inspectModule(out.output!);
      expect(after.initFunctions, name).toEqual([]);
      expect(after.data.active, name).toBeGreaterThan(0);
      expect(wiz(['inspect', path]).status, name).toBe(0);
    }
  });
});
