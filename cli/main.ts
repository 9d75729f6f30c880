import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { isWizError } from '../src/errors.ts';
import { parseInstrumented } from '../src/instrument/reparse.ts';
import { parseModule } from '../src/parse/module.ts';
import { preinitialize, snapshot } from '../src/preinitialize.ts';
import { instantiate } from '../src/run/initialize.ts';
import { formatInvocation, parseInvocation } from '../src/run/invoke.ts';
import { readProvenance } from '../src/snapshot/provenance.ts';
import { parseRenames } from '../src/snapshot/rewrite.ts';
import { DEFAULT_INIT_FUNC } from '../src/run/initialize.ts';
import { readInput, writeOutput } from './io.ts';

const warn = (message: string) => process.stderr.write(`wiz: warning: ${message}\n`);

/** Boolean flags, which take a value only as `--flag=true|false` (never as a separate argument, which could
 * swallow the input path). */
const BOOLEAN_FLAGS = ['--keep-init-func', '--keep-instrumentation'];

/** Rewrites `--flag=true` to `--flag` and `--flag=false` to `--no-flag`, for the flags above. */
export function normalizeBooleanFlags(argv: readonly string[]): string[] {
  return argv.map((arg) => {
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? '' : arg.slice(0, eq);
    if (!BOOLEAN_FLAGS.includes(flag)) return arg;
    const value = arg.slice(eq + 1);
    if (value === 'true') return flag;
    if (value === 'false') return `--no-${flag.slice(2)}`;
    throw new CommanderError(2, 'wiz.usage', `${flag} takes true or false, not "${value}"`);
  });
}

const collect = (v: string, prev: string[]) => [...prev, v];

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function program(): Command {
  const cli = new Command('wiz')
    .description('WebAssembly pre-initializer: run a module\'s start-up code once, and write the state it leaves as a new module')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run wiz --help for usage)')
    .exitOverride();

  cli.command('init')
    .description('instantiate a module, run its init function, and write the initialized module')
    .argument('<input>', 'the module (.wasm file, or - for stdin)')
    .option('-o, --output <file>', 'where to write the output (- for stdout; default: stdout unless it is a terminal)')
    .option('-f, --init-func <name>', `the exported function to run (default: ${DEFAULT_INIT_FUNC}, or wizer.initialize when only that is exported)`)
    .option('--keep-init-func', 'keep exporting the init function in the output (also --keep-init-func=true|false)')
    .addOption(new Option('--no-keep-init-func').hideHelp())
    .option('-r, --rename-func <dst=src>', 'rename export src to dst, replacing any dst (repeatable)', collect, [] as string[])
    .option('--keep-instrumentation', 'keep the __wizer_* exports, so that wiz snapshot can snapshot the output again')
    .addOption(new Option('--no-keep-instrumentation').hideHelp())
    .action(async (input: string, opts: { output?: string; initFunc?: string; keepInitFunc?: boolean; renameFunc: string[]; keepInstrumentation?: boolean }) => {
      const output = outputPath(opts.output);
      const wasm = readInput(input);
      const out = await preinitialize(wasm, {
        initFunc: opts.initFunc,
        keepInitFunc: opts.keepInitFunc,
        renames: opts.renameFunc,
        keepInstrumentation: opts.keepInstrumentation,
        onWarning: warn,
      });
      writeOutput(output, out);
    });

  cli.command('snapshot')
    .description('instantiate an instrumented module (from --keep-instrumentation), call exports, and snapshot the state')
    .argument('<input>', 'the instrumented module (.wasm file, or - for stdin)')
    .option('-o, --output <file>', 'where to write the output (- for stdout; default: stdout unless it is a terminal)')
    .option('--invoke <call>', 'call an export before the snapshot: name or name(arg, ...); repeatable, in order', collect, [] as string[])
    .option('--keep-instrumentation', 'keep the __wizer_* exports, so that the output can be snapshotted again')
    .addOption(new Option('--no-keep-instrumentation').hideHelp())
    .option('-r, --rename-func <dst=src>', 'rename export src to dst, replacing any dst (repeatable)', collect, [] as string[])
    .action(async (input: string, opts: { output?: string; invoke: string[]; keepInstrumentation?: boolean; renameFunc: string[] }) => {
      const output = outputPath(opts.output);
      const instrumented = await parseInstrumented(readInput(input));
      const calls = opts.invoke.map((spec) => parseInvocation(instrumented.context, spec));
      parseRenames(opts.renameFunc);
      const live = await instantiate(instrumented.context, instrumented.module);
      // Call results go to stdout, unless the module does.
      const results = output === '-' ? process.stderr : process.stdout;
      for (const call of calls) results.write(`${formatInvocation(call, live.call(call.name, call.args))}\n`);
      const out = await snapshot(instrumented, live.instance, {
        keepInstrumentation: opts.keepInstrumentation,
        renames: opts.renameFunc,
        onWarning: warn,
      });
      writeOutput(output, out);
    });

  cli.command('provenance')
    .description('show the generation and parent a snapshot records (informational: nothing checks it)')
    .argument('<input>', 'a module written by wiz (.wasm file, or - for stdin)')
    .action((input: string) => {
      const p = readProvenance(parseModule(readInput(input)));
      process.stdout.write(p ? `generation ${p.generation}, parent ${p.parent}\n` : 'no provenance recorded\n');
    });
  return cli;
}

/** The output target: a file, or stdout, which must not be a terminal. */
function outputPath(output: string | undefined): string {
  if ((output === undefined || output === '-') && process.stdout.isTTY) {
    throw new CommanderError(2, 'wiz.usage', 'wiz: refusing to write a binary module to a terminal; pass -o FILE (or pipe the output)');
  }
  return output ?? '-';
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(normalizeBooleanFlags(argv), { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has printed its own message (help, version, usage errors) unless the error is ours.
      if (e.code === 'wiz.usage') process.stderr.write(`${e.message.startsWith('wiz:') ? '' : 'wiz: '}${e.message}\n`);
      process.exitCode = e.exitCode;
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
