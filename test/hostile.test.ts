// Broken and hostile inputs: a corpus of mutated modules (each refused with one line, or still valid and
// pre-initialized correctly), and resource abuse during init.
import { describe, expect, it } from 'vitest';
import { parseModule } from '../src/parse/module.ts';
import { formatHostile, runHostile } from '../scripts/fuzz/hostile-run.ts';
import { MUTATIONS } from '../scripts/fuzz/hostile.ts';
import { wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const STACK_LINE = /^\s+at /m;

/** What must hold of a refused run of the CLI: status 1, one `wiz:` line on stderr, no output file. */
function expectRefused(r: ReturnType<typeof wizInit>, message: RegExp): void {
  expect(r.status, r.stderr).toBe(1);
  expect(r.stderr).toMatch(/^wiz: [^\n]*\n$/);
  expect(r.stderr).not.toMatch(STACK_LINE);
  expect(r.stderr).toMatch(message);
  expect(r.output).toBeUndefined();
}

describe('a corpus of mutated modules', () => {
  it('every mutant is refused with one line or pre-initialized correctly; a sample through the real CLI', async () => {
    const summary = await runHostile({ seed: 11, count: MUTATIONS.length * 30, cliEvery: 13 });
    const text = formatHostile(summary);
    expect(summary.failures, text).toEqual([]);
    expect(summary.tried).toBe(MUTATIONS.length * 30);
    const refused = Object.values(summary.refused).reduce((a, b) => a + b, 0);
    expect(refused + summary.accepted).toBe(summary.tried);
    // Structural damage is refused before anything runs (a truncation at a section boundary can leave a valid module).
    expect(summary.byKind.truncate!.refused).toBeGreaterThan(25);
    for (const kind of ['leb-overlong', 'leb-overflow', 'size-past-end', 'duplicate-section', 'swap-sections', 'huge-count', 'bad-header']) {
      expect(summary.byKind[kind], kind).toEqual({ tried: 30, refused: 30 });
    }
    expect(summary.cliChecked).toBeGreaterThan(25);
  }, 300_000);
});

describe('hostile limits and segments', () => {
  it('a data segment past the end of memory: one line, nothing written', async () => {
    const r = wizInit(await wat(`(module (memory 1) (data (i32.const 65530) "0123456789") (func (export "wizer-initialize")))`));
    expectRefused(r, /data segment 0 is out of bounds/);
  });

  it('memory limits of 65537 pages (past 4 GiB) are refused; 65536 pages (4 GiB, most never touched) work', async () => {
    const over = await wat(`(module (memory 1) (func (export "wizer-initialize")))`);
    // Patch the memory limits to 65537 pages (wabt refuses to write it).
    const bytes = Buffer.from(over);
    const at = bytes.indexOf(Buffer.from([0x05, 0x03, 0x01, 0x00, 0x01]));
    expect(at).toBeGreaterThan(0);
    const patched = Buffer.concat([bytes.subarray(0, at), Buffer.from([0x05, 0x05, 0x01, 0x00, 0x81, 0x80, 0x04]), bytes.subarray(at + 5)]);
    expectRefused(wizInit(patched), /invalid module|memory/);

    const full = await wat(`(module (memory (export "m") 65536) (func (export "wizer-initialize") (i32.store8 (i32.const 0xfffffff0) (i32.const 7))))`);
    const r = wizInit(full);
    expect(r.status, r.stderr).toBe(0);
    const out = parseModule(r.output!);
    expect(out.memories[0]!.min).toBe(65536);
    expect(out.dataSegments.filter((s) => s.mode === 'active')).toHaveLength(1);
  });
});

describe('resource abuse during init', () => {
  it('an infinite loop is stopped by --init-timeout, with one line and no output', async () => {
    const started = Date.now();
    const r = wizInit(await wat(`(module (func (export "wizer-initialize") (loop $l (br $l))))`), ['--init-timeout', '1']);
    expectRefused(r, /did not finish within 1 s \(--init-timeout\)/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('deep recursion is a trap with a clear message', async () => {
    const r = wizInit(await wat(`(module (func $f (export "wizer-initialize") (call $f)))`));
    expectRefused(r, /the init function "wizer-initialize" trapped: call stack exhausted/);
  });

  it('memory.grow up to the engine maximum, and past it (-1), is snapshotted as it ended', async () => {
    const r = wizInit(await wat(`(module (memory 1)
      (global $first (export "first") (mut i32) (i32.const 0))
      (global $past (export "past") (mut i32) (i32.const 0))
      (func (export "wizer-initialize")
        (global.set $first (memory.grow (i32.const 65535)))
        (global.set $past (memory.grow (i32.const 1)))
        (i32.store8 (i32.const 0xffffffff) (i32.const 9))))`));
    expect(r.status, r.stderr).toBe(0);
    const out = parseModule(r.output!);
    expect(out.memories[0]!.min).toBe(65536);
    const { instance } = await WebAssembly.instantiate(r.output! as Uint8Array<ArrayBuffer>);
    expect((instance.exports.first as WebAssembly.Global).value).toBe(1);
    expect((instance.exports.past as WebAssembly.Global).value).toBe(-1);
  });

  it('a module that declares 4 GiB of 64-bit memory and touches its last byte', async () => {
    const r = wizInit(await wat(`(module (memory (export "m") i64 65536)
      (func (export "wizer-initialize") (i32.store8 (i64.const 0xffffffff) (i32.const 1))))`));
    expect(r.status, r.stderr).toBe(0);
    expect(parseModule(r.output!).memories[0]).toMatchObject({ min: 65536, memory64: true });
  });
});
