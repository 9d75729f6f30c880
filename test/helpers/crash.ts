// Crash injection for journaled workers (`wiz run` / `wiz resume` with --store): fixtures/c/crashy.c is run once
// uninterrupted, then again and again with every command SIGKILLed after a random delay and recovered by the rule a
// harness follows (a killed `wiz resume` is issued again as it was; a killed `wiz run` is followed by
// `wiz resume --store DIR --id W`, or by the same `wiz run` when that finds no worker). Each interrupted run must end
// as the uninterrupted one: its last line, its materialized final state (memory and every global), its files and
// its stdout, where a line may be repeated only right after a kill that came during its fd_write.
// Used by test/crash.test.ts (a CI slice) and scripts/crash-inject.ts (the long run).
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One way of running the program: what may suspend, and the journal's flags. */
export interface Variant {
  name: string;
  suspendOn: string[];
  /** Extra flags of `wiz run` and `wiz resume` (checkpoints, sync). */
  flags: string[];
}

export const VARIANTS: readonly Variant[] = [
  { name: 'rpc', suspendOn: ['rpc.call'], flags: [] },
  { name: 'rpc, checkpoints', suspendOn: ['rpc.call'], flags: ['--checkpoint-calls', '5'] },
  { name: 'rpc+fd_write, checkpoints', suspendOn: ['rpc.call', 'wasi_snapshot_preview1.fd_write'], flags: ['--checkpoint-calls', '5'] },
  { name: 'rpc+fd_write, checkpoints, sync normal', suspendOn: ['rpc.call', 'wasi_snapshot_preview1.fd_write'], flags: ['--checkpoint-calls', '3', '--sync', 'normal'] },
];

/** How the harness reaches wiz: a Node binary and the CLI's entry (bin/wiz.js or a copy of it). */
export interface Cli {
  node: string;
  wiz: string;
}

const WORKER = 'w';
const CONFIG = 'mode=crash\nlimit=12\nlabel=the quick brown fox jumps over the lazy dog, again and again and again\n';

/** What the uninterrupted run left: the reference every interrupted run is compared with. */
export interface Reference {
  final: string;
  lines: string[];
  files: Map<string, Buffer>;
  state: Buffer;
  commands: number;
}

/** A variant made ready: its asyncified module and its reference. */
export interface Prepared {
  variant: Variant;
  rounds: number;
  module: string;
  reference: Reference;
}

/** What one interrupted run came to. */
export interface RunReport {
  variant: string;
  kills: number;
  /** Kills of a command that had printed (in host calls, appends, saves): the rest came before (start, restore, replay). */
  lateKills: number;
  commands: number;
  /** Lines printed again after a kill during their fd_write. */
  repeats: number;
  /** Stdout lines of the reference missing here. */
  lostLines: number;
  /** File bytes of the reference missing or different here. */
  lostBytes: number;
  divergences: string[];
  dir: string;
}

interface Command {
  kind: 'run' | 'resume';
  args: string[];
}

interface Finished {
  stdout: string;
  stderr: string;
  code: number | null;
  killed: boolean;
  /** Milliseconds from spawn to the first stdout byte (undefined: none) and to the exit. */
  firstOutput?: number;
  total: number;
}

/** When to kill a command: so many milliseconds after its start, or after its first output. */
export interface Kill {
  after: 'start' | 'output';
  ms: number;
}

/**
 * How long commands take, learnt from those that ran to the end. Half the kills come uniformly over a command's
 * whole run (mostly Node's start, then the restore, replay, host calls and saves), half uniformly over what is left
 * once it printed its first line (host calls, the journal's appends, the save at the end, the last line): Node's
 * start varies too much under load for a delay from the start to find those reliably.
 */
export class Timing {
  private readonly samples: Record<Command['kind'], Array<{ first: number; total: number }>> = { run: [], resume: [] };

  add(kind: Command['kind'], f: Finished): void {
    const list = this.samples[kind];
    list.push({ first: f.firstOutput ?? f.total, total: f.total });
    if (list.length > 64) list.shift();
  }

  kill(kind: Command['kind'], random: () => number): Kill {
    const list = this.samples[kind].length > 0 ? this.samples[kind] : this.samples.run;
    const s = list.length > 0 ? list[Math.floor(random() * list.length)]! : { first: 250, total: 300 };
    if (random() < 0.5) return { after: 'start', ms: random() * s.total * 1.05 };
    return { after: 'output', ms: random() * Math.max(5, (s.total - s.first) * 1.1) };
  }

  /** Median milliseconds to the first output and to the exit, per kind. */
  toString(): string {
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    return (['run', 'resume'] as const).map((k) => `${k} ${median(this.samples[k].map((s) => s.first)).toFixed(0)}/${median(this.samples[k].map((s) => s.total)).toFixed(0)} ms`).join(', ');
  }
}

/** A seeded PRNG (mulberry32): the harness's choices can be repeated, its timing cannot. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs one wiz command; with `kill`, SIGKILLs it then (if it still runs). */
function execute(cli: Cli, args: string[], kill?: Kill): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cli.node, [cli.wiz, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let firstOutput: number | undefined;
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      timer = setTimeout(() => {
        killed = child.kill('SIGKILL');
      }, kill!.ms);
    };
    if (kill?.after === 'start') arm();
    child.stdout.on('data', (b: Buffer) => {
      if (firstOutput === undefined) {
        firstOutput = performance.now() - started;
        if (kill?.after === 'output') arm();
      }
      out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code,
        killed: killed && signal === 'SIGKILL', firstOutput, total: performance.now() - started,
      });
    });
  });
}

const SUSPENDED = /^suspended: rpc\.call\((-?\d+)\) @(\d+)$/;
const wizLine = (line: string) => SUSPENDED.test(line) || /^run\(\d+\) = -?\d+$/.test(line);

/** The harness's answer to `rpc.call(request)`: (request * 7 + 1) mod 2^31. */
export const answerOf = (request: number): number => Number((BigInt(request) * 7n + 1n) % 2n ** 31n);

function lines(text: string): string[] {
  const all = text.split('\n');
  if (all.at(-1) === '') all.pop();
  return all;
}

/** The files of a directory, by name. */
function filesOf(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).sort().map((name) => [name, readFileSync(join(dir, name))]));
}

/** A fresh place for one run: the store and the guest's /data (holding the config file). */
function place(dir: string) {
  const store = join(dir, 'store');
  const data = join(dir, 'data');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'config.txt'), CONFIG);
  return { store, data };
}

/** The commands of one run: `wiz run`, the probe after a killed `wiz run`, and the answers. */
function commandsOf({ variant, module, rounds }: Omit<Prepared, 'reference'>, store: string, data: string) {
  const common = ['--store', store, '--id', WORKER, '--allow-wasi', '--mapdir', `/data::${data}`, '--deterministic', ...variant.flags];
  return {
    run: { kind: 'run', args: ['run', module, '--invoke', `run(${rounds})`, ...common] } as Command,
    probe: { kind: 'resume', args: ['resume', ...common] } as Command,
    answer: (request: number, at: string): Command => ({ kind: 'resume', args: ['resume', ...common, '--answer', String(answerOf(request)), '--at', at] }),
  };
}

async function materialize(cli: Cli, store: string, out: string): Promise<Buffer> {
  const r = await execute(cli, ['materialize', '--store', store, '--id', WORKER, '-o', out]);
  if (r.code !== 0) throw new Error(`wiz materialize exited ${r.code}: ${r.stderr}`);
  return readFileSync(out);
}

/**
 * Asyncifies crashy.wasm for `variant` into `dir` and runs it once uninterrupted, learning commands' durations
 * into `timing`.
 */
export async function prepare(cli: Cli, crashy: string, variant: Variant, rounds: number, dir: string, timing: Timing): Promise<Prepared> {
  mkdirSync(dir, { recursive: true });
  const module = join(dir, 'crashy.durable.wasm');
  const asyncified = await execute(cli, ['asyncify', crashy, '-o', module, '--suspend-on', variant.suspendOn.join(',')]);
  if (asyncified.code !== 0) throw new Error(`wiz asyncify exited ${asyncified.code}: ${asyncified.stderr}`);
  const { store, data } = place(join(dir, 'reference'));
  const commands = commandsOf({ variant, rounds, module }, store, data);
  const printed: string[] = [];
  let command = commands.run;
  for (let n = 1; ; n++) {
    const r = await execute(cli, command.args);
    if (r.code !== 0) throw new Error(`wiz ${command.args.join(' ')} exited ${r.code}: ${r.stderr}`);
    timing.add(command.kind, r);
    const out = lines(r.stdout);
    const last = out.at(-1) ?? '';
    printed.push(...out.filter((l) => !wizLine(l)));
    const suspended = SUSPENDED.exec(last);
    if (suspended) {
      command = commands.answer(Number(suspended[1]), suspended[2]!);
      continue;
    }
    if (!last.startsWith(`run(${rounds}) = `)) throw new Error(`the uninterrupted run ended with "${last}"`);
    const state = await materialize(cli, store, join(dir, 'reference.wasm'));
    return { variant, rounds, module, reference: { final: last, lines: printed, files: filesOf(data), state, commands: n } };
  }
}

/** Emitted stdout lines of the guest, with the command that printed them. */
interface Emitted {
  line: string;
  command: number;
  /** The last guest line of a command that was killed (its fd_write may be repeated on recovery). */
  lastOfKilled: boolean;
}

/**
 * Runs `prepared` in `dir` with kills: each command is killed with probability `killProbability` after a delay
 * `timing` draws, recovered by the rule, until the program returns; then compared with the reference.
 */
export async function crashRun(
  cli: Cli,
  prepared: Prepared,
  dir: string,
  options: { random: () => number; timing: Timing; killProbability: number; maxCommands?: number; onCommand?: (line: string) => void },
): Promise<RunReport> {
  const { random, timing } = options;
  const { store, data } = place(dir);
  const commands = commandsOf(prepared, store, data);
  const report: RunReport = { variant: prepared.variant.name, kills: 0, lateKills: 0, commands: 0, repeats: 0, lostLines: 0, lostBytes: 0, divergences: [], dir };
  const emitted: Emitted[] = [];
  let command = commands.run;
  let final: string | undefined;
  const maxCommands = options.maxCommands ?? 2000;
  while (final === undefined) {
    if (report.commands++ >= maxCommands) {
      report.divergences.push(`no end after ${maxCommands} commands`);
      return report;
    }
    const kill = random() < options.killProbability ? timing.kill(command.kind, random) : undefined;
    const r = await execute(cli, command.args, kill);
    options.onCommand?.(`${command.args[0]}${command.args.includes('--answer') ? ' --answer' : ''}: ${r.killed ? `killed ${kill!.ms.toFixed(0)} ms after its ${kill!.after}` : `exit ${r.code}`}, first output ${r.firstOutput?.toFixed(0) ?? '-'} ms, ${r.total.toFixed(0)} ms`);
    const out = lines(r.stdout);
    const guest = out.filter((l) => !wizLine(l));
    guest.forEach((line, i) => emitted.push({ line, command: report.commands, lastOfKilled: r.killed && i === guest.length - 1 }));
    if (r.killed) {
      report.kills++;
      if (r.firstOutput !== undefined) report.lateKills++;
      // A killed `wiz run` is followed by the probe; anything else is issued again as it was.
      if (command === commands.run) command = commands.probe;
      continue;
    }
    if (r.code !== 0) {
      if (command === commands.probe && r.stderr.includes(`no worker "${WORKER}"`)) {
        command = commands.run;
        continue;
      }
      report.divergences.push(`wiz ${command.args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
      return report;
    }
    timing.add(command.kind, r);
    const last = out.at(-1) ?? '';
    const suspended = SUSPENDED.exec(last);
    if (suspended) command = commands.answer(Number(suspended[1]), suspended[2]!);
    else if (/^run\(\d+\) = /.test(last)) final = last;
    else {
      report.divergences.push(`wiz ${command.args[0]} ended with "${last}"`);
      return report;
    }
  }
  compare(prepared.reference, final, emitted, filesOf(data), report);
  const state = await materialize(cli, store, join(dir, 'final.wasm'));
  if (!state.equals(prepared.reference.state)) report.divergences.push(`the final state differs from the uninterrupted run's (${state.length} bytes, ${firstDifference(state, prepared.reference.state)})`);
  return report;
}

/** Where two buffers first differ, as a phrase. */
function firstDifference(a: Buffer, b: Buffer): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `first difference at byte ${i}`;
  return a.length === b.length ? 'equal' : `one is a prefix of the other (${a.length} vs ${b.length} bytes)`;
}

/** Compares an interrupted run's outputs with the reference, into `report`. */
function compare(reference: Reference, final: string, emitted: Emitted[], files: Map<string, Buffer>, report: RunReport): void {
  if (final !== reference.final) report.divergences.push(`ended "${final}", uninterrupted "${reference.final}"`);
  // Stdout: the reference's lines in order; a line again right after its first copy only where that copy was the
  // last line of a killed command (its fd_write was in flight, not journaled, so recovery made it again).
  const index = new Map(reference.lines.map((l, i) => [l, i]));
  let next = 0;
  for (let k = 0; k < emitted.length; k++) {
    const e = emitted[k]!;
    if (next < reference.lines.length && e.line === reference.lines[next]) {
      next++;
      continue;
    }
    const previous = emitted[k - 1];
    if (previous && previous.line === e.line && previous.lastOfKilled && previous.command !== e.command) {
      report.repeats++;
      continue;
    }
    const at = index.get(e.line);
    if (at !== undefined && at > next) {
      report.lostLines += at - next;
      report.divergences.push(`stdout lost ${at - next} line(s) before "${e.line}"`);
      next = at + 1;
      continue;
    }
    report.divergences.push(`stdout has an unexpected line "${e.line}"${at !== undefined ? ' (again, not right after a kill in its write)' : ''}`);
  }
  if (next < reference.lines.length) {
    report.lostLines += reference.lines.length - next;
    report.divergences.push(`stdout lost its last ${reference.lines.length - next} line(s)`);
  }
  if (report.repeats > report.kills) report.divergences.push(`${report.repeats} repeated lines after ${report.kills} kills`);
  for (const [name, want] of reference.files) {
    const got = files.get(name);
    let lost = 0;
    for (let i = 0; i < want.length; i++) if (got?.[i] !== want[i]) lost++;
    report.lostBytes += lost;
    if (!got || !got.equals(want)) report.divergences.push(`file ${name} differs (${got ? `${got.length} bytes, ${firstDifference(got, want)}` : 'missing'})`);
  }
  for (const name of files.keys()) if (!reference.files.has(name)) report.divergences.push(`an unexpected file ${name}`);
}

/** Totals over runs. */
export interface Totals {
  runs: number;
  kills: number;
  lateKills: number;
  commands: number;
  repeats: number;
  lostLines: number;
  lostBytes: number;
  divergent: number;
}

export function total(reports: readonly RunReport[]): Totals {
  const t: Totals = { runs: 0, kills: 0, lateKills: 0, commands: 0, repeats: 0, lostLines: 0, lostBytes: 0, divergent: 0 };
  for (const r of reports) {
    t.runs++;
    t.kills += r.kills;
    t.lateKills += r.lateKills;
    t.commands += r.commands;
    t.repeats += r.repeats;
    t.lostLines += r.lostLines;
    t.lostBytes += r.lostBytes;
    if (r.divergences.length > 0) t.divergent++;
  }
  return t;
}
