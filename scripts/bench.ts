// `npm run bench`: times `wiz init` against the native Wizer on generated modules (and on any real modules
// named in WIZ_BENCH_MODULES, colon-separated, each with its init function: path[@init]). Runs A B A B after a
// warm-up and reports medians. A measurement, not a test: nothing here asserts a time.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import wabtInit from 'wabt';
import { BinaryWriter } from '../src/parse/writer.ts';
import { buildCFixtures, C_TOOLCHAIN_HINT, hasCToolchain } from './build-c-fixtures.ts';

const root = join(import.meta.dirname, '..');
const dir = join(root, '.bench');
mkdirSync(dir, { recursive: true });
const WIZ = [process.execPath, join(root, 'bin', 'wiz.js'), 'init'];
const WIZER = join(root, 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer');
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const pairs = Number(process.env.WIZ_BENCH_PAIRS ?? 3);

/** A module with about `mb` MB of code in 1 KiB functions, and an init that writes a little state. */
function codeModule(mb: number): Uint8Array {
  const functions = Math.round((mb * 1024 * 1024) / 1030);
  const body = new BinaryWriter().u32(0);
  for (let i = 0; i < 100; i++) body.byte(0x41).s32(100000 + i).byte(0x41).s32(7).byte(0x6a).byte(0x1a); // i32.const; i32.const; i32.add; drop
  body.byte(0x0b);
  const filler = body.finish();
  const init = new BinaryWriter().u32(0)
    .byte(0x41).s32(1024).byte(0x41).s32(0x12345678).byte(0x36).u32(2).u32(0) // i32.store
    .byte(0x41).s32(42).byte(0x24).u32(0) // global.set 0
    .byte(0x0b).finish();
  const w = new BinaryWriter().raw(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  w.section(1, new BinaryWriter().u32(1).byte(0x60).u32(0).u32(0));
  const funcs = new BinaryWriter().u32(functions + 1);
  for (let i = 0; i <= functions; i++) funcs.u32(0);
  w.section(3, funcs);
  w.section(5, new BinaryWriter().u32(1).byte(0).u32(1));
  w.section(6, new BinaryWriter().u32(1).byte(0x7f).byte(1).byte(0x41).s32(0).byte(0x0b));
  w.section(7, new BinaryWriter().u32(1).name('wizer-initialize').byte(0).u32(functions));
  const code = new BinaryWriter().u32(functions + 1);
  for (let i = 0; i < functions; i++) code.u32(filler.length).raw(filler);
  code.u32(init.length).raw(init);
  w.section(10, code);
  return w.finish();
}

interface Run { ms: number; rssMB: number | undefined; size: number; ok: boolean }

function timeOnce(command: string[], input: string, output: string, extra: string[]): Run {
  const argv = [...command, input, '-o', output, ...extra];
  const full = TIME ? [TIME, '-f', '%M', ...argv] : argv;
  const start = performance.now();
  const r = spawnSync(full[0]!, full.slice(1), { maxBuffer: 1 << 30 });
  const ms = performance.now() - start;
  const stderr = r.stderr.toString().trim().split('\n');
  const rssMB = TIME ? Number(stderr.at(-1)) / 1024 : undefined;
  return { ms, rssMB, size: r.status === 0 ? statSync(output).size : 0, ok: r.status === 0 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const corpus: { name: string; path: string; args: string[] }[] = [];
for (const mb of [1, 5, 20]) {
  const path = join(dir, `code-${mb}mb.wasm`);
  if (!existsSync(path)) writeFileSync(path, codeModule(mb));
  corpus.push({ name: `code ${mb} MB`, path, args: [] });
}
const wabt = await wabtInit();
const demo = wabt.parseWat('demo.wat', readFileSync(join(root, 'fixtures', 'demo.wat'), 'utf8'), { bulk_memory: true });
writeFileSync(join(dir, 'demo.wasm'), demo.toBinary({}).buffer);
corpus.push({ name: 'demo (16 MiB sieve)', path: join(dir, 'demo.wasm'), args: [] });
if (hasCToolchain()) {
  const c = buildCFixtures();
  const configDir = join(dir, 'config');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, 'settings.txt'), 'alpha 1\nbeta 20\ngamma 300\n');
  corpus.push({ name: 'config.c (WASI: file, env, malloc)', path: c.config!, args: ['--allow-wasi', '--mapdir', `/config::${configDir}`, '--inherit-stdio=false'] });
  corpus.push({ name: 'hello.c (WASI: prints)', path: c.hello!, args: ['--allow-wasi', '--inherit-stdio=false'] });
  corpus.push({ name: 'table.c (4 MiB table)', path: c.table!, args: [] });
} else {
  console.error(`skipping the C fixtures: no wasm32-wasi clang (${C_TOOLCHAIN_HINT})`);
}
for (const spec of (process.env.WIZ_BENCH_MODULES ?? '').split(':').filter(Boolean)) {
  const [path, init] = spec.split('@');
  corpus.push({ name: path!.split('/').pop()!, path: path!, args: init ? ['-f', init] : [] });
}

const rows = [];
for (const c of corpus) {
  const mb = statSync(c.path).size / 1e6;
  const outWiz = join(dir, 'out-wiz.wasm');
  const outRef = join(dir, 'out-ref.wasm');
  timeOnce(WIZ, c.path, outWiz, c.args); // warm-up (file cache)
  timeOnce([WIZER], c.path, outRef, c.args);
  const wiz: Run[] = [];
  const ref: Run[] = [];
  for (let i = 0; i < pairs; i++) {
    wiz.push(timeOnce(WIZ, c.path, outWiz, c.args));
    ref.push(timeOnce([WIZER], c.path, outRef, c.args));
  }
  const row = {
    module: c.name, sizeMB: +mb.toFixed(2),
    wizMs: Math.round(median(wiz.map((r) => r.ms))), nativeMs: Math.round(median(ref.map((r) => r.ms))),
    wizRssMB: wiz[0]!.rssMB && Math.round(median(wiz.map((r) => r.rssMB!))),
    nativeRssMB: ref[0]!.rssMB && Math.round(median(ref.map((r) => r.rssMB!))),
    wizOut: wiz[0]!.size, nativeOut: ref[0]!.size, ok: wiz.every((r) => r.ok) && ref.every((r) => r.ok),
  };
  rows.push({ ...row, ratio: +(row.wizMs / row.nativeMs).toFixed(2) });
  console.error(`measured ${c.name}`);
}
console.log(`node ${process.version}, ${pairs} pairs after a warm-up, medians\n`);
console.log('| module | MB | wiz ms | native ms | wiz/native | wiz RSS MB | native RSS MB | wiz out | native out |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.module} | ${r.sizeMB} | ${r.wizMs} | ${r.nativeMs} | ${r.ratio} | ${r.wizRssMB ?? 'n/a'} | ${r.nativeRssMB ?? 'n/a'} | ${r.wizOut} | ${r.nativeOut}${r.ok ? '' : ' (failed)'} |`);
}
writeFileSync(join(dir, 'bench.json'), JSON.stringify(rows, null, 2));
console.log(`\nJSON: ${join('.bench', 'bench.json')}`);
