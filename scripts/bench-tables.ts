// `npm run bench:tables`: what snapshotting tables costs on a module with many functions and a large table.
// A measurement, not a test. Options: --functions N (100000), --slots N (200000), --runs N (7).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { instrument, preinitialize } from '../src/index.ts';
import { compileModule } from '../src/run/initialize.ts';
import { instanceReader, takeSnapshot } from '../src/snapshot/state.ts';
import { BinaryWriter } from '../src/parse/writer.ts';

const { values } = parseArgs({ options: { functions: { type: 'string', default: '100000' }, slots: { type: 'string', default: '200000' }, runs: { type: 'string', default: '7' } } });
const functions = Number(values.functions);
const slots = Number(values.slots);
const runs = Number(values.runs);
const root = join(import.meta.dirname, '..');
// Measure the compiled build the launcher runs: it falls back to the slower TypeScript sources when dist/ is older.
if (spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' }).status !== 0) {
  process.exit(1);
}
const dir = join(root, '.bench');
mkdirSync(dir, { recursive: true });

/**
 * `functions` functions `() -> i32` returning their index, a funcref table of `slots` slots whose first
 * `functions` slots hold them in reverse order, and an init function that either leaves the table alone
 * (`touch` false: the reference can process it too) or swaps two slots.
 */
function tableModule(touch: boolean): Uint8Array {
  const w = new BinaryWriter().raw(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
  w.section(1, new BinaryWriter().u32(2).byte(0x60).u32(0).u32(1).byte(0x7f).byte(0x60).u32(0).u32(0));
  const funcs = new BinaryWriter().u32(functions + 1);
  for (let i = 0; i < functions; i++) funcs.u32(0);
  funcs.u32(1);
  w.section(3, funcs);
  w.section(4, new BinaryWriter().u32(1).byte(0x70).byte(0x00).u32(slots));
  w.section(5, new BinaryWriter().u32(1).byte(0x00).u32(1));
  w.section(6, new BinaryWriter().u32(1).byte(0x7f).byte(0x01).byte(0x41).byte(0x00).byte(0x0b));
  w.section(7, new BinaryWriter().u32(1).name('wizer-initialize').byte(0x00).u32(functions));
  const elems = new BinaryWriter().u32(1).byte(0x00).byte(0x41).byte(0x00).byte(0x0b).u32(functions);
  for (let i = functions - 1; i >= 0; i--) elems.u32(i);
  w.section(9, elems);
  const code = new BinaryWriter().u32(functions + 1);
  for (let i = 0; i < functions; i++) code.sized(new BinaryWriter().u32(0).byte(0x41).s32(i).byte(0x0b));
  const init = new BinaryWriter().u32(0).byte(0x41).byte(0x01).byte(0x24).byte(0x00); // global.set 0 (i32.const 1)
  if (touch) {
    // table.set 0 (table.get 1); table.set 1 (ref.null func)
    init.byte(0x41).byte(0x00).byte(0x41).byte(0x01).byte(0x25).u32(0).byte(0x26).u32(0);
    init.byte(0x41).byte(0x01).byte(0xd0).byte(0x70).byte(0x26).u32(0);
  }
  code.sized(init.byte(0x0b));
  w.section(10, code);
  return w.finish();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function measure<T>(f: () => Promise<T> | T): Promise<[T, number]> {
  const times: number[] = [];
  let value!: T;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    value = await f();
    times.push(performance.now() - start);
  }
  return [value, median(times)];
}

for (const touch of [false, true]) {
  const input = tableModule(touch);
  const file = join(dir, `tables-${touch ? 'touched' : 'untouched'}.wasm`);
  writeFileSync(file, input);
  const [instrumented, tInstrument] = await measure(() => instrument(input));
  const [module, tCompile] = await measure(() => compileModule(instrumented.bytes));
  const [plainModule, tCompilePlain] = await measure(() => compileModule(input));
  const [instance, tInstantiate] = await measure(() => WebAssembly.instantiate(module));
  const [, tInstantiatePlain] = await measure(() => WebAssembly.instantiate(plainModule));
  (instance.exports['wizer-initialize'] as () => void)();
  const [, tRead] = await measure(async () => takeSnapshot(instrumented, await instanceReader(instrumented, instance)));
  const [output, tWhole] = await measure(() => preinitialize(input));
  const cli = spawnSync(process.execPath, [join(root, 'bin', 'wiz.js'), 'init', file, '-o', join(dir, 'tables-out.wasm')], { encoding: 'utf8' });
  const native = spawnSync(join(root, 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer'), [file, '-o', join(dir, 'tables-native.wasm')], { encoding: 'utf8' });
  const wallCli = timeCommand(process.execPath, [join(root, 'bin', 'wiz.js'), 'init', file, '-o', join(dir, 'tables-out.wasm')]);
  const wallNative = native.status === 0 ? timeCommand(join(root, 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer'), [file, '-o', join(dir, 'tables-native.wasm')]) : NaN;
  console.log(`${functions} functions, ${slots}-slot table, init ${touch ? 'changes two slots' : 'leaves the table alone'} (module ${(input.length / 1e6).toFixed(2)} MB; medians of ${runs}, ms):`);
  console.log(`  probe size: +${instrumented.bytes.length - input.length - exportBytes(instrumented)} bytes (${((instrumented.bytes.length / input.length - 1) * 100).toFixed(1)}% with the exports)`);
  console.log(`  instrument ${tInstrument.toFixed(1)} | compile ${tCompile.toFixed(1)} (without probe ${tCompilePlain.toFixed(1)}) | instantiate ${tInstantiate.toFixed(1)} (without probe ${tInstantiatePlain.toFixed(1)}) | read state incl. ${slots} slots ${tRead.toFixed(1)}`);
  console.log(`  preinitialize in-process ${tWhole.toFixed(1)} | wiz init ${wallCli.toFixed(0)} (${cli.status === 0 ? 'ok' : cli.stderr.trim()}) | native ${native.status === 0 ? wallNative.toFixed(0) : `refuses: ${native.stderr.trim().split('\n').at(-1)}`} | output ${output.length} bytes`);
}

function exportBytes(i: ReturnType<typeof instrument>): number {
  return [...i.globals, ...i.memories, ...i.tables].reduce((n, x) => n + x.exportName.length + 3, 0);
}

function timeCommand(command: string, args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < Math.min(runs, 5); i++) {
    const start = performance.now();
    spawnSync(command, args);
    times.push(performance.now() - start);
  }
  return median(times);
}
