// Differential fuzzing: npm run fuzz -- [--hostile M] [--cli-every K] [--iterations N] [--minutes M] [--seed S] [--max-inits K] [--repro-dir DIR] [--no-native] [--json FILE]
// Exits 1 when any failure was found (each saved as a reproducer: module and seed).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatSummary, runFuzz } from './fuzz/run.ts';
import { formatHostile, runHostile } from './fuzz/hostile-run.ts';
import { ROOT } from './fuzz/generate.ts';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '100' },
    seed: { type: 'string' },
    'max-inits': { type: 'string', default: '6' },
    'repro-dir': { type: 'string', default: join(ROOT, 'fuzz-findings') },
    'module-timeout': { type: 'string', default: '180' },
    'no-native': { type: 'boolean', default: false },
    json: { type: 'string' },
    hostile: { type: 'string', default: '0' },
    minutes: { type: 'string' },
    'cli-every': { type: 'string', default: '10' },
  },
});

const int = (name: string, v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`fuzz: --${name} takes a non-negative integer, not "${v}"\n`);
    process.exit(2);
  }
  return n;
};

const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : int('seed', values.seed);
process.stdout.write(`fuzz: seed ${seed} (rerun with --seed ${seed})\n`);
const summary = await runFuzz({
  seed,
  iterations: int('iterations', values.iterations),
  maxInits: int('max-inits', values['max-inits']),
  moduleTimeoutMs: int('module-timeout', values['module-timeout']) * 1000,
  reproDir: values['repro-dir'],
  native: !values['no-native'],
  maxSeconds: values.minutes === undefined ? undefined : Number(values.minutes) * 60,
  log: (line) => process.stdout.write(`${line}\n`),
});
process.stdout.write(`${formatSummary(summary)}\n`);
const hostileCount = int('hostile', values.hostile);
const hostile = hostileCount > 0
  ? await runHostile({ seed, count: hostileCount, cliEvery: int('cli-every', values['cli-every']) || undefined, reproDir: values['repro-dir'], log: (line) => process.stdout.write(`${line}\n`) })
  : undefined;
if (hostile) process.stdout.write(`${formatHostile(hostile)}\n`);
if (values.json) writeFileSync(values.json, `${JSON.stringify({ ...summary, hostile }, null, 2)}\n`);
process.exitCode = summary.failures.length > 0 || (hostile?.failures.length ?? 0) > 0 ? 1 : 0;
