import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { isWizError, WizError, type WizErrorCode, type WizWarningCode } from '../src/errors.ts';
import { parseModule } from '../src/parse/module.ts';
import { DEFAULT_INIT_FUNC } from '../src/run/initialize.ts';
import { readProvenance } from '../src/snapshot/provenance.ts';
import { inspectModule } from '../src/inspect/inspect.ts';
import { formatInspection } from './inspect.ts';
import { sizeReport } from '../src/inspect/report.ts';
import { concat } from '../src/parse/writer.ts';
import { isComponent } from '../src/component/binary.ts';
import { binaryenVersion, optimize, requireBinaryen, type Optimized } from './optimize.ts';
import { formatReport } from './report.ts';
import { hostOptionsOf, type HostFlags, type HostOptions } from './host.ts';
import { readInput, writeOutput, writeText } from './io.ts';
import { directOutput, type Job, type JobOutput } from './job.ts';
import { buildStep, defaultCacheDir, runHere, type BuildStep, type Ran } from './build/index.ts';
import { addDiffCommand } from './diff.ts';
import { addDurableCommands } from './durable.ts';
import { initChecked } from './determinism.ts';
import type { ChildReply } from './child.ts';
import { findConfig } from './config.ts';

const warn = (line: string, _code: WizWarningCode) => process.stderr.write(`wiz: warning: ${line}\n`);

/** The reference's `--wasm-*` feature switches: accepted for compatibility, the engine decides. */
const FEATURE_FLAGS = ['multi-memory', 'multi-value', 'bulk-memory', 'simd', 'relaxed-simd', 'reference-types'].map((f) => `--wasm-${f}`);

/**
 * Boolean flags take a value only as `--flag=true|false`, never as a separate argument (which could swallow
 * the input path, a known trap of the reference's command line).
 */
const BOOLEAN_FLAGS = [
  '--keep-init-func', '--keep-instrumentation', '--inherit-stdio', '--inherit-env', '--relaxed-simd-deterministic', '--deterministic',
  '--quiet', '--check', '--json', ...FEATURE_FLAGS,
];

/** Short options that take a value, which the reference also accepts as `-o=FILE`. */
const SHORT_WITH_VALUE = ['-o', '-f', '-r'];

/**
 * Rewrites `--flag=true` to `--flag` and `--flag=false` to `--no-flag` for the boolean flags above, and
 * `-o=FILE` to `-o FILE`, as the reference's command line reads them. With `separateValues` (the `wizer`
 * command, which takes the reference's command line exactly) `--flag true` and `--flag false` are read as
 * `--flag=true` and `--flag=false` too.
 */
export function normalizeArgs(argv: readonly string[], separateValues = false): string[] {
  const joined = separateValues ? joinBooleanValues(argv) : argv;
  return joined.flatMap((arg) => {
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? '' : arg.slice(0, eq);
    // `--cache` takes its directory only as `--cache=DIR`: a separate value would swallow the input path.
    if (flag === '--cache') return arg.length > eq + 1 ? ['--cache-dir', arg.slice(eq + 1)] : ['--cache'];
    if (SHORT_WITH_VALUE.includes(flag)) return [flag, arg.slice(eq + 1)];
    if (!BOOLEAN_FLAGS.includes(flag)) return [arg];
    const value = arg.slice(eq + 1);
    if (value === 'true') return [flag];
    if (value === 'false') return [`--no-${flag.slice(2)}`];
    throw new CommanderError(2, 'wiz.usage', `${flag} takes true or false, not "${value}"`);
  });
}

/** `--flag true|false` as `--flag=true|false`, for the boolean flags above (up to a `--`). */
function joinBooleanValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return [...out, ...argv.slice(i)];
    const next = argv[i + 1];
    if (BOOLEAN_FLAGS.includes(arg) && (next === 'true' || next === 'false')) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

const collect = (v: string, prev: string[]) => [...prev, v];

/** This file runs from `cli/` (sources) or `dist/cli/` (the build): the package root is one or two levels up. */
const fromSources = import.meta.url.endsWith('.ts');

function packageVersion(): string {
  const path = new URL(fromSources ? '../package.json' : '../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
}

/** A boolean flag and its hidden `--no-` form. */
function addBoolean(cmd: Command, flag: string, description: string, hidden = false): Command {
  const positive = new Option(flag, description);
  if (hidden) positive.hideHelp();
  return cmd.addOption(positive).addOption(new Option(`--no-${flag.slice(2)}`).hideHelp());
}

interface CommonOptions extends HostFlags {
  output?: string;
  cache?: boolean;
  cacheDir?: string;
  check?: boolean;
  json?: boolean;
  renameFunc: string[];
  keepInstrumentation?: boolean;
  initTimeout?: string;
  relaxedSimdDeterministic?: boolean;
  report?: boolean;
  optimize?: boolean;
  quiet?: boolean;
}

/** The options both commands share: output, renames, instrumentation, what the host provides, a time limit. */
function addCommonOptions(cmd: Command, what: string): Command {
  cmd.option('-o, --output <file>', 'where to write the output (- for stdout; default: stdout unless it is a terminal)')
    .option('-r, --rename-func <dst=src>', 'rename export src to dst, replacing any dst (repeatable)', collect, [] as string[]);
  addBoolean(cmd, '--keep-instrumentation', `keep the __wizer_* exports, so that wiz snapshot can snapshot the output again`);
  cmd.option('--allow-wasi', `provide WASI (preview1, Node's implementation) while ${what}`)
    .addOption(new Option('--inherit-stdio', 'with --allow-wasi: the guest uses wiz\'s stdin/stdout/stderr (default; --inherit-stdio=false for none)').default(true))
    .addOption(new Option('--no-inherit-stdio').hideHelp());
  addBoolean(cmd, '--inherit-env', 'with --allow-wasi: the guest sees wiz\'s environment variables (default: none)');
  cmd.option('--dir <dir>', 'with --allow-wasi: give the guest this host directory, at the same path (repeatable)', collect, [] as string[])
    .option('--mapdir <guest::host>', 'with --allow-wasi: give the guest host directory HOST at path GUEST (repeatable)', collect, [] as string[])
    .addOption(new Option('--deterministic', 'with --allow-wasi: a fixed random stream and a clock that starts at 0, for reproducible builds'))
    .addOption(new Option('--no-deterministic').hideHelp())
    .option('--preload <name=file.wasm>', 'instantiate another module and provide its exports as the imports of module NAME (repeatable; not snapshotted)', collect, [] as string[])
    .option('--init-timeout <seconds>', `stop and fail if ${what} takes longer than this`);
  cmd.option('-v, --report', 'print the input and output sizes, the data written and what merging segments saved, to stderr')
    .option('--optimize', 'run Binaryen\'s optimizer (-Os) on the output, with only the features the module uses, to remove what only init needed (needs the binaryen package)')
    .addOption(new Option('-q, --quiet', 'print errors only, no warnings'))
    .addOption(new Option('--no-quiet').hideHelp())
    .addOption(new Option('--cache', 'reuse the output of an earlier run when everything init can see is unchanged (--cache=DIR: keep it in DIR; default: node_modules/.cache/wiz); -v says hit or miss'))
    .addOption(new Option('--cache-dir <dir>').hideHelp())
    .addOption(new Option('--no-cache').hideHelp())
    .addOption(new Option('--check', 'write nothing: exit 1 with one line when the -o file differs from what would be written (for CI)'))
    .addOption(new Option('--json', 'print what was done as JSON on stdout: sizes, time, warnings with their codes, cache status, files read (needs -o FILE)'));
  addBoolean(cmd, '--relaxed-simd-deterministic', 'accepted for compatibility; the engine decides relaxed SIMD results', true);
  for (const flag of FEATURE_FLAGS) addBoolean(cmd, flag, 'accepted for compatibility; the engine decides', true);
  return cmd;
}

/** What init sees of the host is traced when a cache keys on it or --json lists it. */
const hostOptions = (opts: CommonOptions, output: string): HostOptions => ({ ...hostOptionsOf(opts, output === '-'), trace: opts.cache || opts.json });

/** The options a config file may set (`wiz.config.json`, or `"wiz"` in package.json), where no flag set them. */
function withConfig<T extends CommonOptions>(opts: T): T {
  const { config, path } = findConfig();
  // A cache directory in a config file is relative to that file's folder, so that every tool finds the same one.
  const configCache = typeof config.cache === 'string' ? resolve(dirname(path!), config.cache) : config.cache;
  const cache = opts.cacheDir !== undefined ? opts.cacheDir : opts.cache ?? configCache;
  return {
    ...opts,
    quiet: opts.quiet ?? config.quiet,
    deterministic: opts.deterministic ?? config.deterministic,
    cache: cache !== undefined && cache !== false,
    cacheDir: typeof cache === 'string' ? cache : undefined,
  };
}

import type { InitJob } from './job.ts';
type InitOptions = CommonOptions & { initFunc?: string; keepInitFunc?: boolean; checkDeterminism?: boolean };

/** `wiz init`'s flags and action, on `wiz init` and on `wizer` (the reference's command line). */
function defineInit(cmd: Command): Command {
  cmd.option('-f, --init-func <name>', `the exported function to run (default: ${DEFAULT_INIT_FUNC}, or wizer.initialize when only that is exported)`)
    .option('--check-determinism', 'run init twice (the second time with fresh random bytes and the clock a day later) and fail, writing nothing, if the states differ');
  addBoolean(cmd, '--keep-init-func', 'keep exporting the init function in the output (also --keep-init-func=true|false)');
  return addCommonOptions(cmd, 'initializing')
    .action(async (input: string, flags: InitOptions) => {
      const started = now();
      const opts = withConfig(flags);
      const output = outputPath(opts);
      const job: Job = {
        kind: 'init', input: readInput(input), initFunc: opts.initFunc, keepInitFunc: opts.keepInitFunc,
        renames: opts.renameFunc, keepInstrumentation: opts.keepInstrumentation, host: hostOptions(opts, output),
        printToStderr: output === '-', quiet: opts.quiet, ownProcess: true,
      };
      const run = (j: Job) => (opts.checkDeterminism ? initChecked(j as InitJob, (k, out) => execute(k, opts, out)) : execute(j, opts));
      await step('init', input, output, job, opts, run, started);
    });
}

/** Milliseconds, for --json's timing (Node's global `performance` loads perf_hooks at first use: 3 ms of start-up). */
function now(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1e3 + nanoseconds / 1e6;
}

/** The commands `addDurableCommands` defines. */
const DURABLE_COMMANDS = new Set(['asyncify', 'run', 'resume', 'follow', 'fork', 'materialize']);
const OTHER_COMMANDS = new Set(['init', 'snapshot', 'inspect', 'provenance', 'diff']);

/**
 * The `wiz` command line. When `first` names a command, only that command is defined (setting up the others is
 * a tenth of a small module's run); anything else (help, a typo, an option) gets them all.
 */
function program(first?: string): Command {
  const all = first === undefined || !(OTHER_COMMANDS.has(first) || DURABLE_COMMANDS.has(first));
  const wanted = (name: string) => all || first === name;
  const cli = new Command('wiz')
    .description('WebAssembly pre-initializer: run a module\'s start-up code once, and write the state it leaves as a new module')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run wiz --help for usage)')
    .exitOverride();

  if (wanted('init')) {
    defineInit(cli.command('init')
      .description('instantiate a module, run its init function, and write the initialized module')
      .argument('<input>', 'the module (.wasm file, or - for stdin)'));
  }
  if (wanted('snapshot')) defineSnapshot(cli);
  if (wanted('inspect')) defineInspect(cli);
  if (wanted('provenance')) defineProvenance(cli);
  if (wanted('diff')) addDiffCommand(cli);
  if (all || DURABLE_COMMANDS.has(first!)) addDurableCommands(cli);
  return cli;
}

function defineSnapshot(cli: Command): void {
  const snap = cli.command('snapshot')
    .description('instantiate an instrumented module (from --keep-instrumentation), call exports, and snapshot the state')
    .argument('<input>', 'the instrumented module (.wasm file, or - for stdin)')
    .option('--invoke <call>', 'call an export before the snapshot: name or name(arg, ...); repeatable, in order', collect, [] as string[]);
  addCommonOptions(snap, 'running the calls')
    .action(async (input: string, flags: CommonOptions & { invoke: string[] }) => {
      const started = now();
      const opts = withConfig(flags);
      const output = outputPath(opts);
      const job: Job = {
        kind: 'snapshot', input: readInput(input), invoke: opts.invoke, renames: opts.renameFunc,
        // stdout holds the module, or the --json report: call results go to stderr then.
        keepInstrumentation: opts.keepInstrumentation, host: hostOptions(opts, output), printToStderr: output === '-' || !!opts.json,
        quiet: opts.quiet,
      };
      await step('snapshot', input, output, job, opts, (j) => execute(j, opts), started);
    });
}

function defineInspect(cli: Command): void {
  cli.command('inspect')
    .description('show what a module holds: sizes by section, memories, globals and their values, data, tables, exports, imports, instrumentation')
    .argument('<input>', 'the module (.wasm file, or - for stdin)')
    .option('--json', 'print everything as JSON (no list is cut short)')
    .action(async (input: string, opts: { json?: boolean }) => {
      const wasm = readInput(input);
      // A component: its exports and core modules (cli/component.ts, loaded only then).
      if (isComponent(wasm)) return void process.stdout.write(await (await import('./component.ts')).formatComponentInspection(input === '-' ? 'stdin' : input, wasm, !!opts.json));
      const inspection = inspectModule(wasm);
      process.stdout.write(opts.json ? `${JSON.stringify(inspection, null, 2)}\n` : formatInspection(input === '-' ? 'stdin' : input, inspection));
    });
}

function defineProvenance(cli: Command): void {
  cli.command('provenance')
    .description('show the generation and parent a snapshot records (informational: nothing checks it)')
    .argument('<input>', 'a module written by wiz (.wasm file, or - for stdin)')
    .action((input: string) => {
      const p = readProvenance(parseModule(readInput(input)));
      process.stdout.write(p ? `generation ${p.generation}, parent ${p.parent}\n` : 'no provenance recorded\n');
    });
}

/** The reference's command line, `wizer [flags] [input]`: `wiz init` without the subcommand, stdin by default. */
function wizerProgram(): Command {
  return defineInit(new Command('wizer')
    .description('WebAssembly pre-initializer (wiz, with the command line of Wizer): instantiate a module, run its init function, and write the initialized module')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run wizer --help for usage)')
    .exitOverride()
    .argument('[input]', 'the module (.wasm file, or - for stdin; default: stdin)', '-'));
}

/** The longest time limit a timer can hold (2^31 - 1 ms). */
const MAX_TIMEOUT_SECONDS = 2147483;

/** Runs a job here (warnings to `out`), or in a child process that is killed when `--init-timeout` runs out. */
async function execute(job: Job, opts: CommonOptions, out?: JobOutput): Promise<Ran> {
  if (opts.optimize) requireBinaryen();
  if (opts.initTimeout === undefined) return runHere(job, out ?? directOutput(job));
  const seconds = Number(opts.initTimeout);
  if (!(seconds > 0) || seconds > MAX_TIMEOUT_SECONDS) {
    throw new CommanderError(2, 'wiz.usage', `--init-timeout takes a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS}, not "${opts.initTimeout}"`);
  }
  // node:child_process is loaded only here: it brings half of Node's networking along.
  const { fork } = process.getBuiltinModule('node:child_process') as typeof import('node:child_process');
  const child = fork(fileURLToPath(new URL(fromSources ? './child.ts' : './child.js', import.meta.url)), [], {
    serialization: 'advanced', // the module's bytes go both ways as typed arrays
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise<Ran>((resolve, reject) => {
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      f();
    };
    const timer = setTimeout(() => settle(() => {
      child.kill('SIGKILL');
      const what = job.kind === 'init' ? 'initialization' : 'the --invoke calls';
      reject(new WizError('timeout', `${what} did not finish within ${seconds} s (--init-timeout); stopped it, nothing written`));
    }), seconds * 1000);
    child.on('message', (m: ChildReply) => settle(() => {
      if ('ok' in m) resolve({ parts: [m.ok], warnings: m.warnings, trace: m.trace });
      else if ('error' in m) reject(new WizError(m.error.code as WizErrorCode, m.error.message));
      else reject(new Error(m.internal));
    }));
    child.on('error', (e) => settle(() => reject(e)));
    child.on('exit', (code, signal) => settle(() => reject(new Error(`the child process ended (${signal ?? `code ${code}`}) without a result`))));
    child.send(job);
  });
}

/**
 * One `wiz init` or `wiz snapshot` as a build step: from the cache or run (`--cache`), then written, or compared
 * with the -o file (`--check`), and described (`-v`, `--json`).
 */
async function step(command: string, input: string, output: string, job: Job, opts: CommonOptions, run: (job: Job) => Promise<Ran | undefined>, started: number): Promise<void> {
  if (opts.relaxedSimdDeterministic && !opts.quiet) warn('--relaxed-simd-deterministic is ignored: the engine decides relaxed SIMD results', 'flag-ignored');
  let optimized: (Optimized & { before: number; ms: number }) | undefined;
  const done = await buildStep(job, {
    cache: opts.cache ? opts.cacheDir ?? defaultCacheDir() : undefined,
    extras: opts.optimize ? { optimize: binaryenVersion() } : {},
    run,
    finish: async (parts) => {
      if (!opts.optimize) return parts;
      const written = concat(parts);
      const start = now();
      const result = await optimize(written);
      optimized = { ...result, before: written.length, ms: now() - start };
      if (opts.report) process.stderr.write(formatReport(sizeReport(job.input, written), optimized));
      return [result.bytes];
    },
    replay: (w) => directOutput(job).warn(w.message, w.code),
  });
  if (!done) return; // it said why, and set the exit code
  // The output in one piece only where it is needed (--report, --check): writing takes the parts as they are.
  let whole: Uint8Array | undefined;
  const bytes = () => (whole ??= done.parts.length === 1 ? done.parts[0]! : concat(done.parts));
  const size = done.parts.reduce((n, p) => n + p.length, 0);
  if (opts.report && !optimized) process.stderr.write(formatReport(sizeReport(job.input, bytes())));
  if (opts.report && done.cache.status !== 'off') process.stderr.write(`wiz: cache      ${cacheLine(done)}\n`);
  let fresh: boolean | undefined;
  if (opts.check) {
    fresh = sameAsFile(output, size, bytes);
    if (!fresh) {
      process.stderr.write(`wiz: "${output}" is stale: ${existsSync(output) ? 'it differs from what wiz writes now' : 'it does not exist'}\n`);
      process.exitCode = 1;
    } else if (opts.report) process.stderr.write(`wiz: "${output}" is up to date\n`);
  } else writeOutput(output, done.parts, { flush: false });
  if (opts.json) {
    writeText(1, `${JSON.stringify({
      command,
      input: { path: input, bytes: job.input.length },
      output: { path: output, bytes: size, written: !opts.check },
      ms: Math.round((now() - started) * 10) / 10,
      warnings: done.warnings,
      cache: done.cache,
      filesRead: done.files,
      ...(fresh !== undefined && { check: { fresh } }),
    }, null, 2)}\n`);
  }
}

const cacheLine = ({ cache }: BuildStep) => {
  switch (cache.status) {
    case 'hit': return `hit (${cache.key!.slice(0, 16)} in ${cache.dir})`;
    case 'miss': return `miss, stored (${cache.key!.slice(0, 16)} in ${cache.dir})`;
    default: return `miss, not stored: ${cache.reason}`;
  }
};

function sameAsFile(path: string, size: number, bytes: () => Uint8Array): boolean {
  try {
    // A file of another size differs: no need to read it.
    if (statSync(path).size !== size) return false;
    const b = bytes();
    return Buffer.from(b.buffer, b.byteOffset, b.length).equals(readFileSync(path));
  } catch {
    return false;
  }
}

/** The output target: a file, or stdout, which must not be a terminal; --check and --json need a file. */
function outputPath({ output, check, json }: CommonOptions): string {
  if ((check || json) && (output === undefined || output === '-')) {
    throw new CommanderError(2, 'wiz.usage', `wiz: ${check ? '--check compares with' : '--json prints on stdout, so it needs'} an output file: pass -o FILE`);
  }
  if ((output === undefined || output === '-') && process.stdout.isTTY) {
    throw new CommanderError(2, 'wiz.usage', 'wiz: refusing to write a binary module to a terminal; pass -o FILE (or pipe the output)');
  }
  return output ?? '-';
}

/** The `wiz` command. */
export async function main(argv: string[]): Promise<void> {
  await run(() => program(argv[0]), () => normalizeArgs(argv));
}

/** The `wizer` command: the reference's command line, which is `wiz init`'s. */
export async function wizer(argv: string[]): Promise<void> {
  await run(wizerProgram, () => normalizeArgs(argv, true));
}

/** Exit codes as the reference's: 0, 1 for a failure, 2 for a usage error; 70 for a bug in wiz. */
async function run(command: () => Command, argv: () => string[]): Promise<void> {
  try {
    await command().parseAsync(argv(), { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has printed its own message (help, version, usage errors) unless the error is ours.
      if (e.code === 'wiz.usage') process.stderr.write(`${e.message.startsWith('wiz:') ? '' : 'wiz: '}${e.message}\n`);
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (isWizError(e)) {
      process.stderr.write(`wiz: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`wiz: internal error: ${e instanceof Error ? e.message : String(e)} (please report this)\n`);
    process.exitCode = 70;
  }
}
