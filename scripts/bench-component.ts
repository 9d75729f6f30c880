// `npm run bench:component`: time and peak memory of `wiz init` on each component fixture (whole process, medians
// of 3 after a warm-up), and on the componentize-js engine (SpiderMonkey) made into a component, against the
// native Wizer 10 that componentize-js runs on its core module today (same flags, environment and stdin).
// Results also in .bench/component.json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasCToolchain } from './build-c-fixtures.ts';
import { buildComponentApp, buildEngineComponent, buildQuickJsComponent, componentWat, NATIVE_WIZER_10 } from './build-component-fixtures.ts';
import * as shapes from '../test/helpers/component.ts';

const root = join(import.meta.dirname, '..');
const out = join(root, '.bench', 'component');
mkdirSync(out, { recursive: true });
const WIZ = join(root, 'bin', 'wiz.js');

interface Run { ms: number; rssMB: number; size: number; ok: boolean; stderr: string }

/** One process, timed from here, its peak RSS from /usr/bin/time. */
function timed(command: string[], options: { env?: NodeJS.ProcessEnv; input?: string; output: string }): Run {
  rmSync(options.output, { force: true });
  const rss = join(out, 'rss.txt');
  const start = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', rss, ...command], { env: options.env ?? process.env, input: options.input, encoding: 'utf8', maxBuffer: 1 << 28 });
  const ms = performance.now() - start;
  return {
    ms, rssMB: Number(readFileSync(rss, 'utf8').trim().split('\n').at(-1)) / 1024,
    size: existsSync(options.output) ? statSync(options.output).size : 0, ok: r.status === 0, stderr: r.stderr,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A warm-up, then `n` runs: medians. */
function bench(run: () => Run, n = 3): Run {
  run();
  const runs = Array.from({ length: n }, run);
  const failed = runs.find((r) => !r.ok);
  if (failed) return { ...failed, ms: NaN };
  return { ms: median(runs.map((r) => r.ms)), rssMB: median(runs.map((r) => r.rssMB)), size: runs[0]!.size, ok: true, stderr: '' };
}

const rows: { fixture: string; inputBytes: number; tool: string; run: Run }[] = [];
const wizInit = (input: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}) => {
  const output = join(out, 'out.wasm');
  return bench(() => timed([process.execPath, WIZ, 'init', input, '-o', output, ...args], { ...options, output }));
};

for (const name of ['SHARED_MEMORY', 'NESTED', 'FLOAT_BITS'] as const) {
  const input = join(out, `${name.toLowerCase()}.wasm`);
  writeFileSync(input, await componentWat(shapes[name]));
  rows.push({ fixture: `WAT ${name.toLowerCase().replace('_', ' ')}`, inputBytes: statSync(input).size, tool: 'wiz', run: wizInit(input, []) });
}

if (hasCToolchain()) {
  const app = await buildComponentApp();
  const config = join(out, 'config');
  mkdirSync(config, { recursive: true });
  writeFileSync(join(config, 'settings.txt'), 'alpha 1\nbeta 20\ngamma 300\n');
  rows.push({
    fixture: 'C reactor + preview1 adapter (file, env, clock)', inputBytes: statSync(app).size, tool: 'wiz',
    run: wizInit(app, ['--allow-wasi', '--mapdir', `/config::${config}`, '--deterministic', '--inherit-stdio=false']),
  });
} else console.error('skipping the C component: no wasm32-wasi clang');

{
  // componentize-qjs's output (its native binding already pre-initialized it): wiz snapshots it after a call.
  const q = await buildQuickJsComponent();
  rows.push({
    fixture: 'componentize-qjs output (QuickJS, 8 core modules), snapshot after greet("build")', inputBytes: statSync(q.component).size, tool: 'wiz',
    run: wizInit(q.component, ['-f', 'greet("build")', '--keep-init-func']),
  });
}

if (process.env.WIZ_BENCH_ENGINE !== '0') {
  console.error('building the componentize-js engine component (once; cached in .fixtures/engine)…');
  const e = await buildEngineComponent();
  const env = { ...process.env, ...e.env };
  const mapdir = e.args.find((a) => a.startsWith('--mapdir='))!.slice('--mapdir='.length);
  rows.push({
    fixture: 'componentize-js engine as a component (init at component level)', inputBytes: statSync(e.component).size, tool: 'wiz',
    run: wizInit(e.component, ['-f', 'init', '--allow-wasi', '--mapdir', `${e.sourcesGuest}::${e.sourcesHost}`, '--mapdir', mapdir, '--inherit-env', '-q'], { env, input: e.stdin }),
  });
  // The native Wizer on the core module, exactly as componentize-js runs it (its sources directory restored).
  mkdirSync(e.sourcesGuest, { recursive: true });
  writeFileSync(join(e.sourcesGuest, 'initializer.js'), readFileSync(join(e.sourcesHost, 'initializer.js')));
  const output = join(out, 'native.wasm');
  const flags = e.args.slice(0, -1).filter((a) => !a.startsWith('-o='));
  rows.push({
    fixture: 'componentize-js engine, core module (as componentize-js runs Wizer)', inputBytes: statSync(e.core).size, tool: 'native Wizer 10.0.0',
    run: bench(() => timed([NATIVE_WIZER_10, ...flags, `-o=${output}`, e.core], { env, input: e.stdin, output })),
  });
  rows.push({
    fixture: 'componentize-js engine, core module (as componentize-js runs Wizer)', inputBytes: statSync(e.core).size, tool: 'wiz (core)',
    run: wizInit(e.core, [...flags, '-q'], { env, input: e.stdin }),
  });
}

console.log('| fixture | input bytes | tool | ms | peak RSS MB | output bytes |');
console.log('|---|---:|---|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.fixture} | ${r.inputBytes.toLocaleString('en-US')} | ${r.tool} | ${r.run.ok ? Math.round(r.run.ms) : `failed: ${r.run.stderr.trim().split('\n').at(-1)}`} | ${Math.round(r.run.rssMB)} | ${r.run.size.toLocaleString('en-US')} |`);
}
writeFileSync(join(root, '.bench', 'component.json'), JSON.stringify(rows, null, 2));
