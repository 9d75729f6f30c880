// Nothing lost: the input is never modified, the output appears whole or not at all (even when wiz is killed
// while it writes), and -o may name the input itself.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prng } from '../scripts/fuzz/generate.ts';
import { tempDir, WIZ_BIN, wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

/** Init fills 48 MiB of memory with non-zero bytes: a large output that takes a while to write. */
const BIG = `(module (memory (export "memory") 1)
  (func (export "wizer-initialize")
    (drop (memory.grow (i32.const 768)))
    (memory.fill (i32.const 0) (i32.const 0x5a) (i32.const 0x3000000))
    (i32.store (i32.const 12345) (i32.const 0x01020304))))`;

function runWiz(args: string[], killAfterMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, [WIZ_BIN, ...args], { stdio: 'ignore' });
    if (killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => resolve({ code, signal, ms: performance.now() - started }));
  });
}

describe('nothing lost', () => {
  it('SIGKILL at random moments: the output is absent, the previous file, or the whole new module', async () => {
    const dir = tempDir();
    const input = join(dir, 'big.wasm');
    const wasm = await wat(BIG);
    writeFileSync(input, wasm);
    const reference = join(dir, 'reference.wasm');
    const full = await runWiz(['init', input, '-o', reference]);
    expect(full.code).toBe(0);
    const complete = readFileSync(reference);
    expect(complete.length).toBeGreaterThan(0x3000000);

    const rand = prng(42);
    const RUNS = 14;
    const seen = { absent: 0, previous: 0, complete: 0, killed: 0 };
    for (let i = 0; i < RUNS; i++) {
      const out = join(dir, `out-${i}.wasm`);
      const previous = i % 2 === 1 ? Buffer.from(`previous output ${i}`) : undefined;
      if (previous) writeFileSync(out, previous);
      // Delays spread over the whole run, weighted towards its end (where the writing happens).
      const delay = Math.round(full.ms * (0.3 + 0.9 * ((rand() % 1000) / 1000)));
      const r = await runWiz(['init', input, '-o', out], delay);
      if (r.signal === 'SIGKILL') seen.killed++;
      if (!existsSync(out)) {
        seen.absent++;
        expect(previous, `run ${i}: the previous output vanished`).toBeUndefined();
        continue;
      }
      const bytes = readFileSync(out);
      if (previous && bytes.equals(previous)) seen.previous++;
      else {
        expect(bytes.equals(complete), `run ${i} (killed after ${delay} ms): a partial or different output`).toBe(true);
        seen.complete++;
      }
    }
    expect(readFileSync(input).equals(Buffer.from(wasm))).toBe(true);
    // Both outcomes happened: some runs were killed before the rename, some finished.
    expect(seen.killed).toBeGreaterThan(0);
    expect(seen.absent + seen.previous + seen.complete).toBe(RUNS);
    // A kill while writing leaves the temporary file (nothing can remove it after SIGKILL); it is never the output.
    const leftovers = readdirSync(dir).filter((f) => f.endsWith('.tmp'));
    for (const f of leftovers) expect(f).toMatch(/^\.out-\d+\.wasm\.[0-9a-z]+-[0-9a-z]+-[0-9a-z]*\.tmp$/);
    console.log(`kill test: ${RUNS} runs, ${seen.killed} killed; outputs: ${seen.absent} absent, ${seen.previous} previous file kept, ${seen.complete} complete; ${leftovers.length} temporary files left by killed runs`);
  }, 240_000);

  it('-o naming the input replaces it with the whole output', async () => {
    const dir = tempDir();
    const wasm = await wat(`(module (memory (export "m") 1) (global (export "g") (mut i32) (i32.const 1))
      (func (export "wizer-initialize") (global.set 0 (i32.const 2)) (i32.store (i32.const 0) (i32.const 3))))`);
    const expected = wizInit(wasm).output!;
    const input = join(dir, 'same.wasm');
    writeFileSync(input, wasm);
    const r = await runWiz(['init', input, '-o', input]);
    expect(r.code).toBe(0);
    expect(readFileSync(input).equals(Buffer.from(expected))).toBe(true);
    expect(readdirSync(dir)).toEqual(['same.wasm']);
  });

  it('a failing run leaves the input as it was, and no output', async () => {
    const dir = tempDir();
    const wasm = await wat(`(module (func (export "wizer-initialize") unreachable))`);
    const input = join(dir, 'in.wasm');
    writeFileSync(input, wasm);
    const r = await runWiz(['init', input, '-o', input]);
    expect(r.code).toBe(1);
    expect(readFileSync(input).equals(Buffer.from(wasm))).toBe(true);
    expect(readdirSync(dir)).toEqual(['in.wasm']);
  });
});
