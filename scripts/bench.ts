// `npm run bench`: times `wiz init` against the native Wizer on generated modules (and on any real modules
// named in WIZ_BENCH_MODULES, colon-separated, each with its init function: path[@init]). Runs A B A B after a
// warm-up and reports medians. A measurement, not a test: nothing here asserts a time.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import wabtInit from 'wabt';
import { BinaryWriter } from '../src/parse/writer.ts';
import { buildCFixtures, C_TOOLCHAIN_HINT, hasCToolchain } from './build-c-fixtures.ts';
import { benchEngine, wizer10 } from './bench-engine.ts';

const root = join(import.meta.dirname, '..');
// Measure the compiled build the launcher runs: it falls back to the slower TypeScript sources when dist/ is older.
if (spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' }).status !== 0) process.exit(1);
const dir = join(root, '.bench');
mkdirSync(dir, { recursive: true });
const WIZ = [process.execPath, join(root, 'bin', 'wiz.js'), 'init'];
const WIZER = join(root, 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer');
// The Wizer that ComponentizeJS pins, with its Wasmtime code cache warm (the warm-up run fills it).
const WIZER10 = wizer10(root);
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
const codeSizes = (process.env.WIZ_BENCH_CODE_MB ?? '1,5,20,50').split(',').map(Number);
for (const mb of codeSizes) {
  const path = join(dir, `code-${mb}mb.wasm`);
  if (!existsSync(path)) writeFileSync(path, codeModule(mb));
  corpus.push({ name: `code ${mb} MB`, path, args: [] });
}
const wabt = await wabtInit();
const demo = wabt.parseWat('demo.wat', readFileSync(join(root, 'fixtures', 'demo.wat'), 'utf8'), { bulk_memory: true });
writeFileSync(join(dir, 'demo.wasm'), demo.toBinary({}).buffer);
corpus.push({ name: 'demo (16 MiB sieve)', path: join(dir, 'demo.wasm'), args: [] });
// 4 GiB of memory declared, a few bytes touched: bound by reading memory that was never written.
const big = wabt.parseWat('big.wat', `(module (memory (export "memory") 65536)
  (func (export "wizer-initialize") (i32.store (i32.const 100) (i32.const 7)) (i32.store (i32.const 0xfffffff0) (i32.const 9))))`, {});
writeFileSync(join(dir, 'state-4gib.wasm'), big.toBinary({}).buffer);
big.destroy();
if (process.env.WIZ_BENCH_4GIB !== '0') corpus.push({ name: 'state 4 GiB declared, 8 bytes touched', path: join(dir, 'state-4gib.wasm'), args: [] });

/** A module whose init touches `mb` MiB of memory: all of it, a byte every 4 KiB, or a byte every 8 bytes. */
function stateModule(mb: number, pattern: 'dense' | 'sparse-4k' | 'sparse-8'): Uint8Array {
  const bytes = mb * 1024 * 1024;
  const body = pattern === 'dense'
    ? `(memory.fill (i32.const 0) (i32.const 1) (i32.const ${bytes}))`
    : `(loop $l (i32.store8 (local.get $i) (i32.const 1))
         (local.set $i (i32.add (local.get $i) (i32.const ${pattern === 'sparse-4k' ? 4096 : 8})))
         (br_if $l (i32.lt_u (local.get $i) (i32.const ${bytes}))))`;
  const m = wabt.parseWat('state.wat', `(module (memory (export "memory") ${mb * 16})
    (func (export "wizer-initialize") (local $i i32) ${body}))`, { bulk_memory: true });
  const out = m.toBinary({}).buffer;
  m.destroy();
  return out;
}
const stateSizes = (process.env.WIZ_BENCH_STATE_MB ?? '1,16,64,256').split(',').map(Number);
for (const pattern of ['dense', 'sparse-4k', 'sparse-8'] as const) {
  for (const mb of stateSizes) {
    const path = join(dir, `state-${pattern}-${mb}mb.wasm`);
    writeFileSync(path, stateModule(mb, pattern));
    corpus.push({ name: `state ${pattern} ${mb} MiB`, path, args: [] });
  }
}
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

/** Node's own start-up, `node -e 0`: what any JavaScript tool pays before its first line. */
const nodeStartMs = (() => {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    times.push(performance.now() - start);
  }
  return Math.round(median(times));
})();

const rows = [];
for (const c of corpus) {
  const mb = statSync(c.path).size / 1e6;
  const outWiz = join(dir, 'out-wiz.wasm');
  const outRef = join(dir, 'out-ref.wasm');
  const outRef10 = join(dir, 'out-ref10.wasm');
  // Warm-ups: the file cache, wiz's compile cache, Wizer 10's code cache.
  timeOnce(WIZ, c.path, outWiz, c.args);
  timeOnce([WIZER], c.path, outRef, c.args);
  // Wizer 10's default init function is the older `wizer.initialize`: name the one the module exports.
  const args10 = c.args.some((a) => a === '-f' || a.startsWith('--init-func')) ? c.args : ['-f', 'wizer-initialize', ...c.args];
  if (WIZER10) timeOnce([WIZER10], c.path, outRef10, args10);
  const wiz: Run[] = [];
  const ref: Run[] = [];
  const ref10: Run[] = [];
  for (let i = 0; i < pairs; i++) {
    wiz.push(timeOnce(WIZ, c.path, outWiz, c.args));
    ref.push(timeOnce([WIZER], c.path, outRef, c.args));
    if (WIZER10) ref10.push(timeOnce([WIZER10], c.path, outRef10, args10));
  }
  const floorOf = (mode: string) => {
    const times: number[] = [];
    for (let i = 0; i < pairs; i++) {
      const start = performance.now();
      const r = spawnSync(process.execPath, [join(root, 'scripts', 'floor.mjs'), mode, c.path, ...c.args], { stdio: 'ignore' });
      times.push(r.status === 0 ? performance.now() - start : NaN);
    }
    return Math.round(median(times));
  };
  const row = {
    compileFloorMs: floorOf('compile'), initFloorMs: floorOf('init'),
    module: c.name, sizeMB: +mb.toFixed(2),
    wizMs: Math.round(median(wiz.map((r) => r.ms))), nativeMs: Math.round(median(ref.map((r) => r.ms))),
    native10Ms: ref10.length ? Math.round(median(ref10.map((r) => r.ms))) : NaN,
    wizRssMB: wiz[0]!.rssMB && Math.round(median(wiz.map((r) => r.rssMB!))),
    nativeRssMB: ref[0]!.rssMB && Math.round(median(ref.map((r) => r.rssMB!))),
    wizOut: wiz[0]!.size, nativeOut: ref[0]!.size, ok: wiz.every((r) => r.ok) && ref.every((r) => r.ok) && ref10.every((r) => r.ok),
  };
  rows.push({ ...row, ratio: +(row.wizMs / row.nativeMs).toFixed(2) });
  if (!row.ok) console.error(`  failed: ${c.name}`);
  console.error(`measured ${c.name}`);
}
if (process.env.WIZ_BENCH_ENGINE !== '0') {
  const engine = await benchEngine(root, pairs, (line) => console.error(line));
  if (engine) {
    const wizMs = Math.round(median(engine.wiz.map((r) => r.ms)));
    const nativeMs = Math.round(median(engine.native.map((r) => r.ms)));
    const start = performance.now();
    const floor = spawnSync(process.execPath, [join(root, 'scripts', 'floor.mjs'), 'compile', join(dir, 'engine', 'input.wasm')]);
    const floorMs = performance.now() - start;
    rows.push({
      module: 'componentize-js engine (SpiderMonkey, WASI)', sizeMB: +(engine.inputSize / 1e6).toFixed(2), wizMs, nativeMs,
      native10Ms: engine.native10.length ? Math.round(median(engine.native10.map((r) => r.ms))) : NaN,
      compileFloorMs: floor.status === 0 ? Math.round(floorMs) : NaN, initFloorMs: NaN,
      wizRssMB: engine.wiz[0]?.rssMB && Math.round(median(engine.wiz.map((r) => r.rssMB!))),
      nativeRssMB: engine.native[0]?.rssMB && Math.round(median(engine.native.map((r) => r.rssMB!))),
      wizOut: engine.wiz[0]!.size, nativeOut: engine.native[0]!.size,
      ok: engine.wiz.every((r) => r.ok) && engine.native.every((r) => r.ok),
      ratio: +(wizMs / nativeMs).toFixed(2),
    });
    console.error('measured the componentize-js engine');
  }
}
/**
 * The goals: ahead of both native tools where the faster needs 300 ms or more, else at most Node's start-up +
 * 50 ms behind it; and within max(1.3 × floor, floor + 50 ms) + 1 ms per MB written, the floor being a plain
 * Node script that reads, compiles, instantiates and runs init.
 */
function goals(r: Row): { vsNative: string; floorBound: number; vsFloor: string } {
  const best = Math.min(r.nativeMs, Number.isFinite(r.native10Ms) ? r.native10Ms : Infinity);
  const nativeLimit = best >= 300 ? best : best + nodeStartMs + 50;
  const floor = r.initFloorMs;
  const floorBound = Number.isFinite(floor) ? Math.round(Math.max(1.3 * floor, floor + 50) + r.wizOut / 1e6) : NaN;
  return {
    vsNative: `${r.wizMs <= nativeLimit ? 'met' : 'MISSED'} (≤ ${nativeLimit})`,
    floorBound,
    vsFloor: Number.isFinite(floorBound) ? `${r.wizMs <= floorBound ? 'met' : 'MISSED'} (≤ ${floorBound}, ×${(r.wizMs / floor).toFixed(2)} floor)` : 'n/a',
  };
}

console.log(`node ${process.version} (node -e 0: ${nodeStartMs} ms), ${pairs} runs each after a warm-up, medians\n`);
console.log('| module | MB | wiz ms | Wizer 11 ms | Wizer 10 warm ms | wiz/best native | Node floor: compile / + init ms | vs native | vs floor | wiz RSS MB | native RSS MB | wiz out | native out |');
console.log('|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|');
for (const r of rows) {
  const best = Math.min(r.nativeMs, Number.isFinite(r.native10Ms) ? r.native10Ms : Infinity);
  const g = goals(r);
  console.log(`| ${r.module} | ${r.sizeMB} | ${r.wizMs} | ${r.nativeMs} | ${Number.isFinite(r.native10Ms) ? r.native10Ms : 'n/a'} | ${(r.wizMs / best).toFixed(2)} | ${r.compileFloorMs} / ${r.initFloorMs} | ${g.vsNative} | ${g.vsFloor} | ${r.wizRssMB ?? 'n/a'} | ${r.nativeRssMB ?? 'n/a'} | ${r.wizOut} | ${r.nativeOut}${r.ok ? '' : ' (failed)'} |`);
}
writeFileSync(join(dir, 'bench.svg'), chart(rows));
console.log(`chart: ${join('.bench', 'bench.svg')}`);
writeFileSync(join(dir, 'bench.json'), JSON.stringify(rows, null, 2));
console.log(`\nJSON: ${join('.bench', 'bench.json')}`);

type Row = (typeof rows)[number];

/** Two panels: time against code size (code modules) and against touched memory (dense state modules). */
function chart(all: Row[]): string {
  const panels = [
    { title: 'time vs code size (MB)', rows: all.filter((r) => r.module.startsWith('code')), x: (r: Row) => r.sizeMB },
    { title: 'time vs memory touched, dense (MiB)', rows: all.filter((r) => r.module.startsWith('state dense')), x: (r: Row) => Number(/(\d+) MiB/.exec(r.module)![1]) },
  ];
  const series = [
    { key: 'nativeMs' as const, color: '#c0392b', label: 'native Wizer' },
    { key: 'wizMs' as const, color: '#2471a3', label: 'wiz' },
    { key: 'initFloorMs' as const, color: '#7f8c8d', label: 'Node floor (compile + init)' },
  ];
  const W = 440, H = 300, m = 70;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W * 2 + 20}" height="${H + 40}" font-family="sans-serif" font-size="11">`;
  svg += `<rect width="100%" height="100%" fill="white"/>`;
  panels.forEach((p, i) => {
    const ox = i * (W + 20);
    const xs = p.rows.map(p.x);
    const ys = p.rows.flatMap((r) => series.map((s) => r[s.key] as number)).filter(Number.isFinite);
    const xMax = Math.max(1, ...xs), yMax = Math.max(1, ...ys);
    const px = (x: number) => ox + m + (x / xMax) * (W - m - 10);
    const py = (y: number) => H - m + 20 - (y / yMax) * (H - m - 10);
    svg += `<text x="${ox + W / 2}" y="14" text-anchor="middle" font-weight="bold">${p.title}</text>`;
    svg += `<line x1="${px(0)}" y1="${py(0)}" x2="${px(xMax)}" y2="${py(0)}" stroke="black"/><line x1="${px(0)}" y1="${py(0)}" x2="${px(0)}" y2="${py(yMax)}" stroke="black"/>`;
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      svg += `<text x="${px(0) - 4}" y="${py(yMax * t) + 4}" text-anchor="end">${Math.round(yMax * t)} ms</text>`;
      svg += `<text x="${px(xMax * t)}" y="${py(0) + 14}" text-anchor="middle">${+(xMax * t).toFixed(1)}</text>`;
    }
    for (const s of series) {
      const points = p.rows.filter((r) => Number.isFinite(r[s.key] as number)).map((r) => `${px(p.x(r))},${py(r[s.key] as number)}`);
      svg += `<polyline points="${points.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`;
      for (const pt of points) svg += `<circle cx="${pt.split(',')[0]}" cy="${pt.split(',')[1]}" r="3" fill="${s.color}"/>`;
    }
    series.forEach((s, k) => {
      svg += `<rect x="${ox + m + 10}" y="${30 + k * 14}" width="10" height="10" fill="${s.color}"/><text x="${ox + m + 24}" y="${39 + k * 14}">${s.label}</text>`;
    });
  });
  return `${svg}</svg>\n`;
}
