// `npm run demo`: builds fixtures/demo.wat, pre-initializes it with the wiz CLI, and shows the effect.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import wabtInit from 'wabt';

const root = join(import.meta.dirname, '..');
const out = join(root, 'demo-out');
mkdirSync(out, { recursive: true });
const input = join(out, 'demo.wasm');
const output = join(out, 'demo.init.wasm');

const wabt = await wabtInit();
const text = readFileSync(join(root, 'fixtures', 'demo.wat'), 'utf8');
const parsed = wabt.parseWat('demo.wat', text, { bulk_memory: true });
writeFileSync(input, parsed.toBinary({}).buffer);
parsed.destroy();

const rel = (p: string) => p.slice(root.length + 1);
const t0 = performance.now();
execFileSync(process.execPath, [join(root, 'bin', 'wiz.js'), 'init', input, '-o', output], { stdio: 'inherit' });
const wizMs = performance.now() - t0;

async function firstAnswer(path: string, init: boolean) {
  const start = performance.now();
  const { instance } = await WebAssembly.instantiate(readFileSync(path));
  if (init) (instance.exports['wizer-initialize'] as () => void)();
  const answer = (instance.exports.primes_below_block as (k: number) => number)(256);
  return { ms: performance.now() - start, answer };
}

const before = await firstAnswer(input, true);
const after = await firstAnswer(output, false);
const kib = (p: string) => `${(statSync(p).size / 1024).toFixed(1)} KiB`;
const n = (v: number) => v.toLocaleString('en-US');
console.log(`built   ${rel(input)} (${kib(input)}) from fixtures/demo.wat`);
console.log(`ran     wiz init ${rel(input)} -o ${rel(output)}  (${wizMs.toFixed(0)} ms, output ${kib(output)})`);
console.log(`before  instantiate + init + first answer: ${before.ms.toFixed(1).padStart(7)} ms   primes below 2^24 = ${n(before.answer)}`);
console.log(`after   instantiate + first answer:        ${after.ms.toFixed(1).padStart(7)} ms   primes below 2^24 = ${n(after.answer)}`);
if (before.answer !== after.answer) {
  console.error('the snapshot answers differently: this is a bug');
  process.exit(1);
}
