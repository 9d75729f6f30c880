// Random valid modules: seeded random bytes, turned into a module by Binaryen's translate-to-fuzz.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
const WASM_OPT = join(ROOT, 'node_modules', 'binaryen', 'bin', 'wasm-opt');

/** A small, fast, seeded PRNG (mulberry32): 32-bit outputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** The seed of module `i` of a run with seed `seed`: each module can be regenerated alone. */
export function moduleSeed(seed: number, i: number): number {
  return prng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0)();
}

/**
 * Binaryen feature flags Node 24 runs (checked by compiling generated modules): besides these, translate-to-fuzz
 * emits mutable globals and sign extension. Each module gets a random subset; `requires` lists what a flag needs.
 */
const FEATURES: { flag: string; requires?: string[] }[] = [
  { flag: 'bulk-memory' },
  { flag: 'nontrapping-float-to-int' },
  { flag: 'multivalue' },
  { flag: 'simd' },
  { flag: 'relaxed-simd', requires: ['simd'] },
  { flag: 'reference-types' },
  { flag: 'tail-call' },
  { flag: 'extended-const' },
  { flag: 'multimemory' },
  { flag: 'memory64' },
  { flag: 'threads' },
  { flag: 'exception-handling', requires: ['reference-types'] },
  { flag: 'gc', requires: ['reference-types'] },
];

export interface GeneratedModule {
  seed: number;
  features: string[];
  /** Size of the random input given to Binaryen. */
  entropy: number;
  wasm: Uint8Array;
}

/** The feature subset and entropy size for a module seed. */
export function plan(seed: number): { features: string[]; entropy: number } {
  const rand = prng(seed);
  // A third of the modules stick to the MVP-ish core, where the reference and wiz should agree most often.
  const rich = rand() % 3 !== 0;
  const chosen = new Set<string>();
  if (rich) for (const f of FEATURES) if (rand() % 2 === 0) chosen.add(f.flag);
  for (const f of FEATURES) if (chosen.has(f.flag) && f.requires?.some((r) => !chosen.has(r))) chosen.delete(f.flag);
  const entropy = 512 + (rand() % 24_000);
  return { features: FEATURES.map((f) => f.flag).filter((f) => chosen.has(f)), entropy };
}

/** Random bytes from a seed. */
export function randomBytes(seed: number, n: number): Uint8Array {
  const rand = prng(seed ^ 0x5bd1e995);
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const r = rand();
    for (let k = 0; k < 4 && i + k < n; k++) bytes[i + k] = (r >>> (8 * k)) & 0xff;
  }
  return bytes;
}

/** Runs Binaryen's translate-to-fuzz on the seed's random bytes (in a child process, with a time limit). */
export async function generate(seed: number): Promise<GeneratedModule> {
  const { features, entropy } = plan(seed);
  const dir = mkdtempSync(join(tmpdir(), 'wiz-fuzz-gen-'));
  try {
    const input = join(dir, 'random.bin');
    const output = join(dir, 'module.wasm');
    writeFileSync(input, randomBytes(seed, entropy));
    const args = [WASM_OPT, input, '-ttf', ...features.map((f) => `--enable-${f}`), '-o', output];
    await new Promise<void>((resolve, reject) => {
      execFile(process.execPath, args, { timeout: 120_000, maxBuffer: 1 << 26 }, (error, _stdout, stderr) => {
        if (error) reject(new Error(`wasm-opt failed for seed ${seed}: ${String(stderr).split('\n').filter(Boolean).slice(-2).join(' / ') || error.message}`));
        else resolve();
      });
    });
    return { seed, features, entropy, wasm: new Uint8Array(readFileSync(output)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
