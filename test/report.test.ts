// wiz init/snapshot --report (-v) and --optimize: the numbers against independent counts, and the optimized
// module against the unoptimized one.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCFixtures, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { inspectModule } from '../src/inspect/inspect.ts';
import { sizeReport } from '../src/inspect/report.ts';
import { parseModule } from '../src/parse/module.ts';
import { observe } from './helpers/observe.ts';
import { tempDir, wizInit, wizSnapshot } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

// Init writes 01 00 00 02 at 256 (two runs, a gap of 2: merged) and 03 at 512 (a run of its own).
const STORES = `(module (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 0))
  (func $fill (i32.store8 (i32.const 256) (i32.const 1)) (i32.store8 (i32.const 259) (i32.const 2)) (i32.store8 (i32.const 512) (i32.const 3)))
  (func (export "wizer-initialize") (call $fill) (global.set $g (i32.const 42)))
  (func (export "get") (result i32) (i32.add (global.get $g) (i32.load8_u (i32.const 259)))))`;

const reportOf = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('wiz: ')).join('\n');

describe('--report', () => {
  it('counts runs, segments and the bytes merging saved, as one can count them by hand', async () => {
    const input = await wat(STORES);
    const r = wizInit(input, ['--report']);
    expect(r.status, r.stderr).toBe(0);
    const out = r.output!;
    const report = sizeReport(input, out);
    expect(report.outputSize).toBe(out.length);
    expect(report.snapshot.segments).toBe(parseModule(out).dataSegments.filter((s) => s.mode === 'active').length);
    // Segments: 5 bytes at 256, 1 at 512. Each entry: flags 0, i32.const, 2-byte offset, end, length, payload.
    expect(report.snapshot).toEqual({ segments: 2, bytes: 5, nonZeroBytes: 3, runs: 3, entryBytes: 6 + 4 + 6 + 1, entryBytesOnePerRun: 3 * (6 + 1) });
    expect(report.dataBefore).toEqual({ segments: 0, bytes: 0, sectionSize: 0 });
    expect(report.dataAfter.segments).toBe(2);

    const text = reportOf(r.stderr);
    expect(text).toContain(`wiz: output     ${out.length.toString().padStart(12)} bytes  +${out.length - input.length}`);
    expect(text).toContain('wiz: snapshot   2 active segments, 5 bytes: 3 non-zero bytes in 3 runs, 2 zero bytes between merged runs');
    expect(text).toContain('wiz: merging    3 runs -> 2 segments: 17 bytes of segment entries instead of 21 with one segment per run (saved 4)');
    expect(text).not.toContain('optimize');
    // -v is --report, and the report goes to stderr also when the module goes to stdout.
    const v = wizInit(input, ['-v']);
    expect(reportOf(v.stderr)).toBe(text);
  });

  it('reports a wiz snapshot of an instrumented module, whose previous segments it replaces', async () => {
    const first = wizInit(await wat(STORES), ['--keep-instrumentation']);
    const second = wizSnapshot(first.output!, ['-v']);
    expect(second.status, second.stderr).toBe(0);
    const report = sizeReport(first.output!, second.output!);
    expect(report.dataBefore.segments).toBe(2);
    expect(report.dataAfter.segments).toBe(2);
    expect(reportOf(second.stderr)).toContain(`wiz: input      ${first.output!.length.toString().padStart(12)} bytes`);
  });
});

describe('--optimize', () => {
  it('removes what only init needed, keeps what the module does, and uses no feature the module does not', async () => {
    const input = await wat(STORES);
    const plain = wizInit(input).output!;
    const r = wizInit(input, ['--optimize', '-v']);
    expect(r.status, r.stderr).toBe(0);
    const optimized = r.output!;
    expect(optimized.length).toBeLessThan(plain.length);
    expect(inspectModule(optimized).functions.defined).toBe(1); // $fill and the init function are gone
    expect(await observe(optimized)).toEqual(await observe(plain));
    expect(await observe(optimized)).toMatchObject({ get: { result: '44' } });
    const line = reportOf(r.stderr).split('\n').find((l) => l.startsWith('wiz: optimize'))!;
    expect(line).toMatch(new RegExp(`^wiz: optimize   ${plain.length.toLocaleString('en-US')} -> ${optimized.length} bytes  -\\d+ \\(-\\d+\\.\\d%\\) in \\d+\\.\\d\\d s \\(Binaryen -Os; features: none beyond MVP; names none\\)$`));
  });

  it('enables the features the module uses, and keeps a name section it has', async () => {
    const input = await wat(`(module (memory 1) (global $g (mut i32) (i32.const 0))
      (func $init (export "wizer-initialize") (global.set $g (i32.extend8_s (i32.const 0xff))))
      (func $get (export "get") (param i32) (result i32) (i32.add (global.get $g) (i32.extend16_s (local.get 0)))))`, { names: true });
    const r = wizInit(input, ['--optimize', '-v']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/features: sign-ext; names kept\)/);
    expect(parseModule(r.output!).sections.some((s) => s.id === 0 && s.name === 'name')).toBe(true);
    const { instance } = await WebAssembly.instantiate(r.output! as Uint8Array<ArrayBuffer>);
    expect((instance.exports.get as (x: number) => number)(0x8001)).toBe(-1 + -32767);
  });

  it('keeps bulk-memory-opt with bulk-memory, as Binaryen requires, for code that only init used', async () => {
    const input = await wat(`(module (memory (export "memory") 1) (data "ab")
      (func (export "wizer-initialize") (memory.fill (i32.const 8) (i32.const 7) (i32.const 4)) (memory.init 0 (i32.const 16) (i32.const 0) (i32.const 2)))
      (func (export "get") (result i32) (i32.load (i32.const 16))))`);
    const plain = wizInit(input).output!;
    const r = wizInit(input, ['--optimize', '-v']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/features: bulk-memory-opt, bulk-memory;/);
    expect(await observe(r.output!)).toEqual(await observe(plain));
  });

  it('renames kept instrumentation after the optimizer renumbers globals, so that wiz snapshot reads it back', async () => {
    const input = await wat(`(module (memory (export "memory") 1)
      (global $unused i32 (i32.const 7))
      (global $a (mut i32) (i32.const 0))
      (func $three (result i32) (i32.const 3))
      (func (export "wizer-initialize") (global.set $a (call $three)))
      (func (export "bump") (global.set $a (i32.add (global.get $a) (i32.const 1))))
      (func (export "a") (result i32) (global.get $a)))`);
    const r = wizInit(input, ['--keep-instrumentation', '--optimize']);
    expect(r.status, r.stderr).toBe(0);
    const exports = parseModule(r.output!).exports.filter((e) => e.name.startsWith('__wizer_'));
    expect(exports.map((e) => `${e.name}->${e.kind} ${e.index}`)).toEqual(['__wizer_global_0->global 0', '__wizer_memory_0->memory 0']);
    const next = wizSnapshot(r.output!, ['--invoke', 'bump', '--invoke', 'a()']);
    expect(next.stderr).toBe('');
    expect(next.stdout.toString()).toBe('bump()\na() = 4\n');
  });

  it('writes nothing when the job fails', async () => {
    const r = wizInit(await wat(`(module (func (export "wizer-initialize") unreachable))`), ['--optimize', '-v']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^wiz: the init function "wizer-initialize" trapped/);
    expect(r.output).toBeUndefined();
  });
});

describe.skipIf(!hasCToolchain())('--optimize on the C fixtures', () => {
  // Binaryen on every C fixture, twice each: minutes on a busy machine.
  it('gives smaller modules whose exports return what the unoptimized snapshot\'s return', { timeout: 10 * 60_000 }, async () => {
    const configDir = tempDir();
    writeFileSync(join(configDir, 'settings.txt'), 'alpha 1\nbeta 20\n');
    for (const [name, path] of Object.entries(buildCFixtures())) {
      const input = new Uint8Array(readFileSync(path));
      const args = ['--allow-wasi', '--inherit-stdio=false', '--mapdir', `/config::${configDir}`];
      const plain = wizInit(input, args).output!;
      const r = wizInit(input, [...args, '--optimize', '--report']);
      expect(r.status, `${name}: ${r.stderr}`).toBe(0);
      expect(r.output!.length, name).toBeLessThan(plain.length);
      expect(await observe(r.output!), name).toEqual(await observe(plain));
    }
  });
});
