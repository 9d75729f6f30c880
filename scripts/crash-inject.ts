// `npm run crash`: crash injection at length. fixtures/c/crashy.c runs as a journaled worker (`wiz run` / `wiz
// resume` with --store) under four variants (what may suspend, checkpoints, sync), each command SIGKILLed at random
// moments and recovered, until --kills N kills (default 10000) were made; every run is compared with the
// uninterrupted one (test/helpers/crash.ts). Options: --parallel K runs at once (2), --rounds R (12), --seed S,
// --kill-probability P (0.7). Prints progress and a summary; exits 1 on any divergence (its directory is kept).
// The CLI is run from a copy of dist/ made at the start, so that a rebuild during the run changes nothing
// (--build DIR: copied from another built checkout instead). SIGINT or SIGTERM stops it with the summary so far.
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildCFixtures, C_TOOLCHAIN_HINT, hasCToolchain } from './build-c-fixtures.ts';
import { crashRun, prepare, prng, total, Timing, VARIANTS, type Cli, type Prepared, type RunReport } from '../test/helpers/crash.ts';

const root = join(import.meta.dirname, '..');
const work = join(root, '.bench', 'crash');

const { values: opts } = parseArgs({
  options: {
    kills: { type: 'string', default: '10000' },
    parallel: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '12' },
    seed: { type: 'string' },
    'kill-probability': { type: 'string', default: '0.7' },
    build: { type: 'string', default: root },
  },
});
const kills = Number(opts.kills);
const parallel = Number(opts.parallel);
const rounds = Number(opts.rounds);
const killProbability = Number(opts['kill-probability']);
const seed = opts.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(opts.seed);
if (![kills, parallel, rounds, seed].every((n) => Number.isSafeInteger(n) && n >= 0) || parallel < 1 || rounds < 1 || !(killProbability > 0 && killProbability < 1)) {
  console.error('usage: npm run crash -- [--kills N] [--parallel K] [--rounds R] [--seed S] [--kill-probability P (0 < P < 1)]');
  process.exit(2);
}
if (!hasCToolchain()) {
  console.error(`no clang for wasm32-wasi here: ${C_TOOLCHAIN_HINT}`);
  process.exit(1);
}

const crashy = buildCFixtures().crashy!;
rmSync(work, { recursive: true, force: true });
const copy = join(work, 'cli');
for (const part of ['bin', 'dist', 'package.json']) cpSync(join(opts.build, part), join(copy, part), { recursive: true });
const cli: Cli = { node: process.execPath, wiz: join(copy, 'bin', 'wiz.js') };
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
console.log(`crash injection: ${kills} kills, ${parallel} at once, ${rounds} rounds, kill probability ${killProbability}, seed ${seed}, wiz from ${opts.build}, load ${loadavg()[0]!.toFixed(2)}`);

const timing = new Timing();
const prepared: Prepared[] = [];
for (const [i, variant] of VARIANTS.entries()) {
  const p = await prepare(cli, crashy, variant, rounds, join(work, `variant-${i}`), timing);
  prepared.push(p);
  console.log(`uninterrupted (${variant.name}): ${p.reference.final}, ${p.reference.commands} commands, ${p.reference.lines.length} lines, state ${p.reference.state.length} bytes`);
}

const reports: RunReport[] = [];
const random = prng(seed);
let made = 0;
let runs = 0;
let lastPrint = 0;
const progress = (force = false) => {
  if (!force && performance.now() - lastPrint < 10_000) return;
  lastPrint = performance.now();
  const t = total(reports);
  const seconds = (performance.now() - started) / 1000;
  console.log(`[${elapsed()}] kills ${t.kills}/${kills} (${t.lateKills} after output began), runs ${t.runs}, commands ${t.commands}, divergent runs ${t.divergent}, lost ${t.lostLines} lines ${t.lostBytes} bytes, repeated lines ${t.repeats}, ${(t.kills / seconds).toFixed(1)} kills/s, load ${loadavg()[0]!.toFixed(2)}`);
};

async function lane(): Promise<void> {
  while (made < kills) {
    const n = runs++;
    const p = prepared[n % prepared.length]!;
    const report = await crashRun(cli, p, join(work, `run-${n}`), { random, timing, killProbability });
    reports.push(report);
    made += report.kills;
    if (report.divergences.length > 0) {
      console.log(`DIVERGED: run ${n} (${report.variant}), kept in ${report.dir}:\n  ${report.divergences.join('\n  ')}`);
    } else {
      rmSync(report.dir, { recursive: true, force: true });
    }
    progress();
  }
}

/** Prints the summary of the runs that ended, and exits 1 on any divergence or loss. */
function summary(): never {
  progress(true);
  const t = total(reports);
  const divergences = reports.reduce((sum, r) => sum + r.divergences.length, 0);
  console.log(`\nsummary: ${t.kills} kills (${t.lateKills} after the command's first output) in ${t.runs} runs (${t.commands} commands), ${elapsed()}`);
  console.log(`  commands' median time to first output / exit: ${timing}`);
  console.log(`  divergences: ${divergences} (in ${t.divergent} runs)`);
  console.log(`  lost acknowledged effects: ${t.lostLines} stdout lines, ${t.lostBytes} file bytes`);
  console.log(`  repeated stdout lines (a kill during their fd_write): ${t.repeats}`);
  for (const v of VARIANTS) {
    const of = total(reports.filter((r) => r.variant === v.name));
    console.log(`  ${v.name}: ${of.kills} kills, ${of.runs} runs, ${of.divergent} divergent, ${of.repeats} repeats`);
  }
  process.exit(t.divergent > 0 || t.lostLines + t.lostBytes > 0 ? 1 : 0);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.log(`\n${signal}: stopped; runs still going are left out`);
    summary();
  });
}
mkdirSync(work, { recursive: true });
await Promise.all(Array.from({ length: parallel }, lane));
summary();
