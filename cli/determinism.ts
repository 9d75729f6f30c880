// `wiz init --check-determinism`: init twice, the second time with other host inputs, and refuse to write a
// snapshot whose state depends on them (the classic case: a PRNG seed from random_get baked into every instance).
import { isComponent, parseComponent } from '../src/component/binary.ts';
import { diffModules } from '../src/diff/diff.ts';
import { parseModule } from '../src/parse/module.ts';
import { concat } from '../src/parse/writer.ts';
import { formatDiff } from './diff.ts';
import { directOutput, type InitJob, type JobOutput } from './job.ts';
import type { Ran } from './build/index.ts';

/** How far the second run's clock is shifted: one day, far beyond any time init itself takes. */
export const CLOCK_SHIFT_NS = 86_400_000_000_000n;

/** Runs one init job with the given output for warnings (a child process may write its own instead). */
export type RunInit = (job: InitJob, out: JobOutput) => Promise<Ran>;

const HOST_INPUTS = ['random_get', 'clock_time_get', 'clock_res_get'];

/**
 * Runs `job` twice, in parallel: as given, and with a fresh host whose clock reads one day later (fresh random
 * bytes come with any host that is not `--deterministic`; a deterministic one serves the same streams both
 * times). Returns the first run's output when both states agree; otherwise reports each difference on stderr,
 * sets exit code 1 and returns undefined, so that nothing is written.
 */
export async function initChecked(job: InitJob, run: RunInit): Promise<Ran | undefined> {
  const direct = directOutput(job);
  const read = new Set<string>();
  // Which host inputs init read: the host says so in its warnings (never with --deterministic).
  const notice = (line: string) => {
    const name = /\((random_get|clock_time_get|clock_res_get|wasi:(?:random|clocks)\/[^)]+)\)/.exec(line)?.[1];
    if (name) read.add(name);
  };
  const second: InitJob = {
    ...job,
    host: { ...job.host, ...(job.host.deterministic ? {} : { clockOffsetNs: CLOCK_SHIFT_NS }) },
  };
  const [first, other] = await Promise.all([
    run(job, {
      warn: (line, code) => {
        notice(line);
        direct.warn(line, code);
      },
      print: direct.print,
    }),
    // The second run's warnings repeat the first's: noted, not printed.
    run(second, { warn: notice, print: direct.print }),
  ]);
  const differences = isComponent(job.input) ? componentDiff(concat(first.parts), concat(other.parts)) : moduleDiff(concat(first.parts), concat(other.parts));
  if (!differences) return first;

  const how = job.host.deterministic
    ? 'a second run with the same --deterministic inputs'
    : 'a second run, with fresh random bytes and the clock one day later,';
  const lines = [
    `init is not deterministic: ${how} left a different state; nothing written`,
    ...differences.map((line) => `  ${line}`),
    `  ${hostInputs(job, read)}`,
  ];
  process.stderr.write(lines.map((line) => `wiz: ${line}\n`).join(''));
  process.exitCode = 1;
  return undefined;
}

/** The differences of two snapshots of a module, as lines, or undefined when their states agree. */
function moduleDiff(a: Uint8Array, b: Uint8Array): string[] | undefined {
  const diff = diffModules(a, b);
  return diff.same ? undefined : formatDiff(diff);
}

/** The same for two snapshots of a component, module by module. */
function componentDiff(a: Uint8Array, b: Uint8Array): string[] | undefined {
  const [x, y] = [parseComponent(a).modules, parseComponent(b).modules];
  const lines = x.flatMap((m, i) => {
    const d = moduleDiff(m.bytes, y[i]!.bytes);
    return d ? [`core module ${m.ordinal}:`, ...d.map((line) => `  ${line}`)] : [];
  });
  if (lines.length === 0 && !a.every((byte, i) => byte === b[i])) return ['the components differ outside their core modules'];
  return lines.length ? lines : undefined;
}

function hostInputs(job: InitJob, read: ReadonlySet<string>): string {
  const kinds = [
    read.has('random_get') && 'random bytes (random_get)',
    ...['clock_time_get', 'clock_res_get'].filter((n) => read.has(n)).map((n) => `a clock (${n})`),
    ...[...read].filter((n) => n.startsWith('wasi:')).map((n) => `${n.startsWith('wasi:random') ? 'random bytes' : 'a clock'} (${n})`),
  ].filter(Boolean);
  if (kinds.length) return `init read ${kinds.join(' and ')}`;
  if (isComponent(job.input)) return 'init read no random bytes and no clock: the difference comes from another input (files, environment, timing)';
  const imported = parseModule(job.input).imports
    .filter((i) => i.kind === 'func' && i.module === 'wasi_snapshot_preview1' && HOST_INPUTS.includes(i.name))
    .map((i) => i.name);
  if (imported.length) return `init may have read ${imported.join(', ')} (the module imports ${imported.length === 1 ? 'it' : 'them'})`;
  return 'init read no random bytes and no clock: the difference comes from another input (files, environment, timing)';
}
