// Runs the hostile-input corpus: every mutant through `wiz init` as the CLI runs it (in a worker with a time
// limit), a sample through the real CLI too (exit code, one stderr line, no output file).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wat } from '../../test/helpers/wat.ts';
import { isFailure } from './check.ts';
import { moduleSeed, ROOT } from './generate.ts';
import { BASE_MODULES, MUTATIONS, mutate, type MutationKind } from './hostile.ts';
import { Checker } from './run.ts';

export interface HostileFailure {
  index: number;
  kind: MutationKind;
  base: string;
  what: string;
  repro?: string;
}

export interface HostileSummary {
  tried: number;
  /** Mutants that were still valid and pre-initialized (their output checked: valid, and the property). */
  accepted: number;
  /** Refusals by error code. */
  refused: Record<string, number>;
  byKind: Record<string, { tried: number; refused: number }>;
  /** Mutants also run through the real CLI. */
  cliChecked: number;
  failures: HostileFailure[];
  seconds: number;
}

const WIZ_BIN = join(ROOT, 'bin', 'wiz.js');

/** The real CLI on a mutant: what must hold given how the in-process run ended. Returns a problem, or undefined. */
function checkCli(wasm: Uint8Array, expected: { ok: Uint8Array } | { message: string }): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'wiz-hostile-'));
  try {
    const input = join(dir, 'in.wasm');
    const output = join(dir, 'out.wasm');
    writeFileSync(input, wasm);
    const r = spawnSync(process.execPath, [WIZ_BIN, 'init', input, '-o', output], { timeout: 60_000 });
    const stderr = r.stderr.toString();
    if (r.error || r.signal) return `the CLI did not finish (${r.error?.message ?? r.signal})`;
    if (!Buffer.from(readFileSync(input)).equals(Buffer.from(wasm))) return 'the CLI modified its input';
    const leftovers = readdirSync(dir).filter((f) => f !== 'in.wasm' && f !== 'out.wasm');
    if (leftovers.length > 0) return `the CLI left files behind: ${leftovers.join(', ')}`;
    if ('ok' in expected) {
      if (r.status !== 0) return `the CLI failed (${r.status}: ${stderr.trim()}) where the library succeeded`;
      if (!existsSync(output) || !Buffer.from(readFileSync(output)).equals(Buffer.from(expected.ok))) return 'the CLI wrote a different output';
      return undefined;
    }
    if (r.status !== 1) return `exit status ${r.status}, not 1 (stderr: ${stderr.trim().slice(0, 300)})`;
    if (stderr !== `wiz: ${expected.message}\n`) return `stderr is not the one error line: ${JSON.stringify(stderr.slice(0, 500))}`;
    if (existsSync(output)) return 'an output file was written';
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runHostile(options: { seed: number; count: number; cliEvery?: number; reproDir?: string; log?: (line: string) => void }): Promise<HostileSummary> {
  const started = performance.now();
  const bases = await Promise.all(Object.entries(BASE_MODULES).map(async ([name, text]) => [name, await wat(text)] as const));
  const summary: HostileSummary = { tried: 0, accepted: 0, refused: {}, byKind: {}, cliChecked: 0, failures: [], seconds: 0 };
  const checker = new Checker();
  try {
    for (let i = 0; i < options.count; i++) {
      const kind = MUTATIONS[i % MUTATIONS.length]!;
      const [base, wasm] = bases[Math.floor(i / MUTATIONS.length) % bases.length]!;
      const mutant = mutate(wasm, kind, moduleSeed(options.seed, i));
      summary.tried++;
      const k = (summary.byKind[kind] ??= { tried: 0, refused: 0 });
      k.tried++;
      const fail = (what: string) => {
        let repro: string | undefined;
        if (options.reproDir) {
          mkdirSync(options.reproDir, { recursive: true });
          repro = join(options.reproDir, `hostile-${options.seed}-${i}-${kind}.wasm`);
          writeFileSync(repro, mutant);
        }
        summary.failures.push({ index: i, kind, base, what, repro });
        options.log?.(`hostile #${i} ${kind} of ${base}: ${what.split('\n')[0]}${repro ? ` (saved ${repro})` : ''}`);
      };
      let result;
      try {
        result = await checker.init(mutant, 20_000);
      } catch (e) {
        fail((e as Error).message === 'timeout' ? 'hang: wiz init did not finish in 20 s' : (e as Error).message);
        continue;
      }
      let expected: { ok: Uint8Array } | { message: string };
      if ('crash' in result) {
        fail(`crash: ${result.crash}`);
        continue;
      } else if ('wizError' in result) {
        k.refused++;
        summary.refused[result.wizError.code] = (summary.refused[result.wizError.code] ?? 0) + 1;
        if (/[\n\r]/.test(result.wizError.message)) fail(`a multi-line error: ${JSON.stringify(result.wizError.message)}`);
        expected = { message: result.wizError.message };
      } else {
        summary.accepted++;
        if (!WebAssembly.validate(result.ok as Uint8Array<ArrayBuffer>)) fail('an invalid output module');
        try {
          const outcomes = await checker.check(mutant, { inits: ['wizer-initialize'], native: false }, 60_000);
          for (const o of outcomes.filter(isFailure)) fail(`the output behaves differently: ${o.detail ?? o.crash}`);
        } catch (e) {
          fail(`checking the output: ${(e as Error).message}`);
        }
        expected = { ok: result.ok };
      }
      if (options.cliEvery && i % options.cliEvery === 0) {
        summary.cliChecked++;
        const problem = checkCli(mutant, expected);
        if (problem) fail(`through the CLI: ${problem}`);
      }
    }
  } finally {
    await checker.close();
  }
  summary.seconds = Math.round((performance.now() - started) / 100) / 10;
  return summary;
}

export function formatHostile(s: HostileSummary): string {
  const kinds = Object.entries(s.byKind).map(([k, v]) => `${k} ${v.refused}/${v.tried}`).join(', ');
  return [
    `hostile inputs: ${s.tried} mutants in ${s.seconds} s: ${Object.values(s.refused).reduce((a, b) => a + b, 0)} refused with one line, ${s.accepted} still valid and pre-initialized correctly`,
    `refusals by code: ${Object.entries(s.refused).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'}`,
    `refused/tried by mutation: ${kinds}`,
    `through the real CLI: ${s.cliChecked}`,
    `failures: ${s.failures.length}`,
    ...s.failures.map((f) => `  #${f.index} ${f.kind} of ${f.base}: ${f.what.split('\n')[0]}${f.repro ? ` -> ${f.repro}` : ''}`),
  ].join('\n');
}
