// The CI slice of the differential fuzzer (npm run fuzz runs long ones), the checks the fuzzer relies on, and the
// reproducers of past failures as regression tests.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { preinitialize } from '../src/preinitialize.ts';
import { isFailure } from '../scripts/fuzz/check.ts';
import { firstDifference, observeModule } from '../scripts/fuzz/observe.ts';
import { checkInWorker, formatSummary, runFuzz } from '../scripts/fuzz/run.ts';
import { generate, moduleSeed } from '../scripts/fuzz/generate.ts';
import { tempDir } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const SLICE_SEED = 7;
const SLICE_MODULES = 24;

describe('the fuzzer\'s own checks can fail', () => {
  const source = `(module
    (memory 1)
    (global $f (mut f64) (f64.const 0))
    (global $n (mut i32) (i32.const 0))
    (func (export "wizer-initialize")
      (global.set $f (f64.const nan:0x4000000000001))
      (global.set $n (i32.const 5))
      (i32.store (i32.const 100) (i32.const 0xabcdef)))
    (func (export "n") (result i32) (global.get $n)))`;

  it('sees a snapshot that lost the init function\'s state (globals, memory)', async () => {
    const wasm = await wat(source);
    const names = ['wizer-initialize', 'n'];
    const afterInit = await observeModule(wasm, { init: 'wizer-initialize', exportNames: names });
    const withoutInit = await observeModule(wasm, { exportNames: names });
    expect(firstDifference(afterInit, withoutInit)).toMatch(/export "n": result differ/);
    const snapshot = await preinitialize(wasm, { keepInitFunc: true });
    expect(firstDifference(afterInit, await observeModule(snapshot, { exportNames: names }))).toBeUndefined();
  });

  it('compares globals bit for bit (a NaN payload counts)', async () => {
    const a = await wat(source);
    const b = await wat(source.replace('nan:0x4000000000001', 'nan:0x4000000000002'));
    const names = ['wizer-initialize', 'n'];
    const diff = firstDifference(
      await observeModule(a, { init: 'wizer-initialize', exportNames: names }),
      await observeModule(b, { init: 'wizer-initialize', exportNames: names }),
    );
    expect(diff).toMatch(/globals differ.*f64:7ff4000000000001.*f64:7ff4000000000002/);
  });

  it('kills a module whose init function never returns, and reports it', async () => {
    const looping = await wat(`(module (func (export "wizer-initialize") (loop $l (br $l))))`);
    const started = Date.now();
    await expect(checkInWorker(looping, { native: false }, 2000)).rejects.toThrow('timeout');
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('the same seed gives the same module', async () => {
    const seed = moduleSeed(SLICE_SEED, 3);
    const [a, b] = await Promise.all([generate(seed), generate(seed)]);
    expect(a.wasm.length).toBeGreaterThan(8);
    expect(Buffer.from(a.wasm).equals(Buffer.from(b.wasm))).toBe(true);
  });
});

describe('differential fuzzing, a fixed-seed slice', () => {
  it(`seed ${SLICE_SEED}, ${SLICE_MODULES} modules: no failure, and the comparisons ran`, async () => {
    const summary = await runFuzz({ seed: SLICE_SEED, iterations: SLICE_MODULES, reproDir: join(tempDir(), 'repro') });
    const text = formatSummary(summary);
    expect(summary.failures, text).toEqual([]);
    expect(summary.modules, text).toBeGreaterThan(SLICE_MODULES / 2);
    expect(summary.property.holds ?? 0, text).toBeGreaterThan(10);
    expect(summary.agreement.identical ?? 0, text).toBeGreaterThan(5);
  }, 300_000);
});

describe('reproducers of past failures', () => {
  const dir = join(import.meta.dirname, 'fuzz-repro');
  const cases = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  if (cases.length === 0) it.skip('no reproducer saved yet', () => {});
  for (const file of cases) {
    const repro = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { seed: number; failures: { init?: string }[] };
    const wasm = new Uint8Array(readFileSync(join(dir, file.replace(/\.json$/, '.wasm'))));
    const inits = [...new Set(repro.failures.map((f) => f.init).filter((x): x is string => x !== undefined))];
    // A failure of the whole module (a hang) names no init function: check them all, with the time limit.
    it(`${file}: ${inits.join(', ') || 'every init function'}`, async () => {
      const outcomes = await checkInWorker(wasm, inits.length > 0 ? { inits } : {}, 150_000);
      expect(outcomes.filter(isFailure)).toEqual([]);
      expect(outcomes.length).toBeGreaterThanOrEqual(Math.max(inits.length, 1));
    }, 180_000);
  }
});
