// `npm run bench:snapshot`: where `wiz snapshot` spends its time on a big module (validating the untrusted
// input versus the rest), and module sizes over generations of a stable state. A measurement, not a test.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import wabtInit from 'wabt';
import { parseModule } from '../src/parse/module.ts';
import { parseInstrumented } from '../src/instrument/reparse.ts';
import { preinitialize, snapshot } from '../src/preinitialize.ts';
import { instantiate } from '../src/run/initialize.ts';

const root = join(import.meta.dirname, '..');
const big = process.argv[2] ?? join(root, '.bench', 'code-20mb.wasm');
if (!existsSync(big)) {
  console.error(`no ${big}: run npm run bench first (it generates the code-size modules), or pass a module`);
  process.exit(1);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = async <T>(f: () => Promise<T> | T): Promise<[T, number]> => {
  const start = performance.now();
  const value = await f();
  return [value, performance.now() - start];
};

// Phases of one `wiz snapshot` on the big module, after `wiz init --keep-instrumentation`.
const gen0 = await preinitialize(new Uint8Array(readFileSync(big)), { keepInstrumentation: true });
const phases: Record<string, number[]> = {
  'all input checks (parseInstrumented)': [], '  of which: parse': [], '  of which: engine validation': [],
  instantiate: [], 'read state + rewrite': [], 'validate output': [],
};
for (let i = 0; i < 7; i++) {
  const [, parse] = await time(() => parseModule(gen0));
  const [module, compile] = await time(() => WebAssembly.compile(gen0 as BufferSource));
  const [instrumented, whole] = await time(() => parseInstrumented(gen0));
  const [live, inst] = await time(() => instantiate(instrumented.context, instrumented.module));
  const [output, rest] = await time(() => snapshot(instrumented, live.instance, { keepInstrumentation: true }));
  const [, validateOut] = await time(() => WebAssembly.validate(output as BufferSource));
  void module;
  // parseInstrumented parses, validates (compiles) and checks the claims.
  phases['all input checks (parseInstrumented)']!.push(whole);
  phases['  of which: parse']!.push(parse);
  phases['  of which: engine validation']!.push(compile);
  phases.instantiate!.push(inst);
  phases['read state + rewrite']!.push(rest - validateOut);
  phases['validate output']!.push(validateOut);
}
console.log(`wiz snapshot phases on ${big.split('/').pop()} (${(gen0.length / 1e6).toFixed(1)} MB), medians of 7, ms:`);
for (const [name, xs] of Object.entries(phases)) console.log(`  ${name.padEnd(38)} ${median(xs).toFixed(1)}`);

// Sizes over generations of a stable state (the demo module: a 1 KiB table).
const wabt = await wabtInit();
const demo = wabt.parseWat('demo.wat', readFileSync(join(root, 'fixtures', 'demo.wat'), 'utf8'), { bulk_memory: true });
let current = await preinitialize(demo.toBinary({}).buffer, { keepInstrumentation: true });
const sizes: Record<number, number> = { 0: current.length };
for (let generation = 1; generation <= 20; generation++) {
  const instrumented = await parseInstrumented(current);
  const live = await instantiate(instrumented.context, instrumented.module);
  live.call('primes_below_block', [256]);
  current = await snapshot(instrumented, live.instance, { keepInstrumentation: true });
  sizes[generation] = current.length;
}
console.log(`demo module size by generation (bytes): ${[0, 1, 5, 20].map((g) => `gen ${g}: ${sizes[g]}`).join(', ')}`);
