// Crash injection, the CI slice: fixtures/c/crashy.c as a journaled worker (files, stdout, clocks, random bytes,
// RPCs, heap state), every `wiz run` / `wiz resume` SIGKILLed at random moments and recovered by the rule, until
// the program returns; each run must end as the uninterrupted one (test/helpers/crash.ts says how it compares).
// `npm run crash` does the same at length (10,000 kills by default).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildCFixtures, C_TOOLCHAIN_HINT, hasCToolchain } from '../scripts/build-c-fixtures.ts';
import { crashRun, prepare, prng, total, Timing, VARIANTS, type Cli, type RunReport } from './helpers/crash.ts';
import { tempDir, WIZ_BIN } from './helpers/run.ts';

const cToolchain = hasCToolchain();
if (!cToolchain && (process.env.CI === 'true' || process.env.WIZ_REQUIRE_C_FIXTURES)) throw new Error(`C fixtures required but no wasm32-wasi clang: ${C_TOOLCHAIN_HINT}`);
if (!cToolchain) console.warn(`crash injection skipped: no wasm32-wasi clang (${C_TOOLCHAIN_HINT})`);

/** Kills per variant (four variants), and interrupted runs going on at once. */
const KILLS = 60;
const PARALLEL = 2;
const ROUNDS = 12;

describe('crash injection: SIGKILLs at random moments of journaled wiz run and wiz resume', () => {
  test.runIf(cToolchain).each(VARIANTS.map((v) => [v.name, v] as const))('%s: every run ends as the uninterrupted one, nothing acknowledged lost', async (_, variant) => {
    const cli: Cli = { node: process.execPath, wiz: WIZ_BIN };
    const dir = tempDir();
    const timing = new Timing();
    const prepared = await prepare(cli, buildCFixtures().crashy!, variant, ROUNDS, dir, timing);
    expect(prepared.reference.lines).toHaveLength(ROUNDS);
    const seed = Math.floor(Math.random() * 2 ** 31);
    const random = prng(seed);
    const reports: RunReport[] = [];
    let kills = 0;
    let n = 0;
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (kills < KILLS) {
        const report = await crashRun(cli, prepared, join(dir, `run-${n++}`), { random, timing, killProbability: 0.7 });
        reports.push(report);
        kills += report.kills;
        if (report.divergences.length === 0) rmSync(report.dir, { recursive: true, force: true });
      }
    }));
    const t = total(reports);
    const divergences = reports.flatMap((r) => r.divergences.map((d) => `${r.dir}: ${d}`));
    expect(divergences, `seed ${seed}`).toEqual([]);
    expect(t.lostLines + t.lostBytes).toBe(0);
    expect(t.repeats).toBeLessThanOrEqual(t.kills);
    expect(t.kills).toBeGreaterThanOrEqual(KILLS);
    // Half the kills wait for the command's first line: those land in host calls, appends and saves.
    expect(t.lateKills).toBeGreaterThan(KILLS / 5);
  }, 15 * 60_000);
});
