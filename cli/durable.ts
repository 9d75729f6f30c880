// `wiz asyncify`, `wiz run`, `wiz resume`, `wiz materialize`: durable runs from the command line, as files or in a
// store of state images. The work is done by the library (src/durable); this file reads flags and writes outputs.
import { Command, CommanderError, Option } from 'commander';
import { WizError } from '../src/errors.ts';
import type { DurableModule, DurableWorker, Outcome, WorkerOptions } from '../src/durable/worker.ts';
import type { ImageStore } from '../src/durable/store.ts';
import { parseModule } from '../src/parse/module.ts';
import { parseInvocation } from '../src/run/invoke.ts';
import { hostOptionsOf, withHost, type HostFlags } from './host.ts';
import { readInput, writeOutput, writeText } from './io.ts';
import { requireBinaryen } from './optimize.ts';
import type { StoreJournal } from './stores/journal.ts';
import { DEFAULT_LEASE_MS } from './stores/lease.ts';

// Loaded when a durable command runs: `wiz init` and the others do not pay for them at start-up.
const durableApi = async () => {
  const [asyncifying, capture, layout, worker, stores, journals, files] = await Promise.all([
    import('../src/durable/asyncify.ts'), import('../src/durable/capture.ts'), import('../src/durable/layout.ts'),
    import('../src/durable/worker.ts'), import('./stores/open.ts'), import('./stores/journal.ts'), import('../src/journal/files.ts'),
  ]);
  return { ...asyncifying, ...capture, ...layout, ...worker, ...stores, ...journals, ...files };
};

/** The unwind stack's default size, as `wiz asyncify --help` shows it (src/durable/asyncify.ts). */
const DEFAULT_STACK_SIZE = 1 << 20;

const collect = (v: string, prev: string[]) => [...prev, v];
const warn = (line: string) => writeText(2, `wiz: warning: ${line}\n`);

interface DurableFlags extends HostFlags {
  output?: string;
  store?: string;
  id?: string;
  checkpointCalls?: string;
  checkpointMs?: string;
  leaseMs?: string;
  sync?: string;
}

/** The host flags of `wiz init`, with the same meaning: what the guest's other imports are. */
function addHostOptions(cmd: Command): Command {
  return cmd.option('--allow-wasi', 'provide WASI (preview1, Node\'s implementation) to the program')
    .addOption(new Option('--inherit-stdio', 'with --allow-wasi: the guest uses wiz\'s stdin/stdout/stderr (default)').default(true))
    .addOption(new Option('--no-inherit-stdio').hideHelp())
    .option('--inherit-env', 'with --allow-wasi: the guest sees wiz\'s environment variables')
    .addOption(new Option('--no-inherit-env').hideHelp())
    .option('--dir <dir>', 'with --allow-wasi: give the guest this host directory (repeatable)', collect, [] as string[])
    .option('--mapdir <guest::host>', 'with --allow-wasi: give the guest host directory HOST at path GUEST (repeatable)', collect, [] as string[])
    .option('--deterministic', 'with --allow-wasi: a fixed random stream and a clock that starts at 0')
    .option('--preload <name=file.wasm>', 'provide another module\'s exports as the imports of module NAME (repeatable)', collect, [] as string[])
    .option('-o, --output <file>', 'where to write the program\'s state (- for stdout)')
    .option('--store <dir>', 'keep the state as images in a store in DIR (SQLite), with a journal of host calls, instead of a file')
    .option('--id <name>', 'with --store: the worker\'s name')
    .option('--checkpoint-calls <n>', 'with --store: save the state at the first call of a suspending import after N journaled calls')
    .option('--checkpoint-ms <ms>', 'with --store: … or after MS milliseconds')
    .option('--lease-ms <ms>', `with --store: how long the worker's lease lasts without a call (default ${DEFAULT_LEASE_MS})`)
    .addOption(new Option('--sync <mode>', 'with --store: full (each journal entry on disk before the guest sees it) or normal (survives a crash of wiz, not of the machine)').choices(['full', 'normal']).default('full'));
}

const hostOptions = (flags: DurableFlags) => hostOptionsOf(flags, flags.output === '-');

const usage = (message: string) => new CommanderError(2, 'wiz.usage', message);

/** Exactly one place for the state: `-o FILE` or `--store DIR --id NAME`. */
function target(flags: DurableFlags): { file: string } | { store: string; id: string } {
  if (flags.store !== undefined) {
    if (flags.output !== undefined) throw usage('give either -o FILE or --store DIR --id NAME, not both');
    if (flags.id === undefined) throw usage('--store needs --id NAME: the worker\'s name');
    return { store: flags.store, id: flags.id };
  }
  if (flags.id !== undefined) throw usage('--id needs --store DIR');
  if (flags.output === undefined && process.stdout.isTTY) throw usage('pass -o FILE (or --store DIR --id NAME) for the program\'s state');
  return { file: flags.output ?? '-' };
}

/** Prints the outcome's line: on stdout, or on stderr when the state itself goes to stdout. */
function report(outcome: Outcome, flags: DurableFlags): void {
  writeText(flags.output === '-' ? 2 : 1, `${outcome.line}\n`);
}

export function addDurableCommands(cli: Command): void {
  cli.command('asyncify')
    .description('make a module suspendable in the named imports (Binaryen\'s Asyncify) and ready for wiz run, resume and state images')
    .argument('<input>', 'the module (.wasm file, or - for stdin): plain, or pre-initialized with --keep-instrumentation')
    .option('-o, --output <file>', 'where to write the durable module (- for stdout)')
    .option('--suspend-on <imports>', 'imports that may suspend, as MODULE.NAME[,MODULE.NAME…] (repeatable)', collect, [] as string[])
    .option('--stack-size <bytes>', `room for the unwound stack (default ${DEFAULT_STACK_SIZE})`)
    .option('--no-optimize', 'skip Binaryen\'s optimizer after the pass (larger and slower code)')
    .action(async (input: string, opts: { output?: string; suspendOn: string[]; stackSize?: string; optimize: boolean }) => {
      const output = opts.output ?? '-';
      if (output === '-' && process.stdout.isTTY) throw usage('refusing to write a binary module to a terminal; pass -o FILE');
      requireBinaryen('wiz asyncify');
      const { asyncify } = await durableApi();
      const stackSize = opts.stackSize === undefined ? undefined : Number(opts.stackSize);
      writeOutput(output, [await asyncify(readInput(input), { suspendOn: specs(opts.suspendOn), stackSize, optimize: opts.optimize, onWarning: warn })]);
    });

  addHostOptions(cli.command('run')
    .description('run an export of a durable module until it returns or suspends in an import, and save the program')
    .argument('<input>', 'the module: a durable module (wiz asyncify), or a plain one with --suspend-on')
    .requiredOption('--invoke <call>', 'the export to run: name or name(arg, ...)')
    .option('--suspend-on <imports>', 'imports that may suspend, MODULE.NAME[,…] (asyncifies a plain module first; needs binaryen)', collect, [] as string[]))
    .action(async (input: string, flags: DurableFlags & { invoke: string; suspendOn: string[] }) => {
      const where = target(flags);
      const { DurableWorker, captureImage, openStore } = await durableApi();
      const durable = await durableOf(readInput(input), specs(flags.suspendOn));
      if (durable.suspended) throw new WizError('usage', `the program is suspended in ${durable.suspended.pending.name}: continue it with wiz resume`);
      const call = parseInvocation(durable.instrumented.context, flags.invoke);
      if ('store' in where) {
        await (await import('./journaled.ts')).journaled(flags, where, async (session) => {
          if (session.latest) throw new WizError('usage', `worker "${where.id}" exists in ${where.store}: continue it with wiz resume --store ${where.store} --id ${where.id}`);
          // Entries of a run that died before it saved its first state: nothing acknowledged them.
          session.journal.clear();
          await session.store.putModule(durable.bytes);
          const worker = await session.start(durable);
          worker.plan(call.name, call.args, true);
          await session.save(worker);
          await session.drive(worker, () => worker.continue());
        }, { create: true });
        return;
      }
      await withHost(flags, flags.output === '-', warn, durable.host, async (options, saveHost) => {
        const worker = await DurableWorker.start(durable, options);
        worker.initialize();
        const outcome = worker.invoke(call.name, call.args);
        report(outcome, flags);
        worker.host = saveHost();
        writeOutput(where.file, await worker.snapshotParts({ onWarning: warn }));
      });
    });

  addHostOptions(cli.command('resume')
    .description('resume a suspended program: the pending import returns the answer, and it runs on until it returns or suspends again')
    .argument('[input]', 'the suspended program (.wasm written by wiz run or resume); none with --store')
    .option('--answer <value>', 'what the pending import returns (integers as in --invoke; none for an import without results)')
    .option('--at <position>', 'with --store: the journal position of the call the answer is for (as wiz printed it: @N); an answer given before is not given again'))
    .action(async (input: string | undefined, flags: DurableFlags & { answer?: string; at?: string }) => {
      const where = target(flags);
      const { DurableWorker, captureImage, loadDurable, openStore, restoreWorker } = await durableApi();
      if ('store' in where && input !== undefined) throw usage('with --store, name the worker with --id, not a file');
      if ('file' in where && input === undefined) throw usage('name the suspended program\'s file (or --store DIR --id NAME)');
      if ('file' in where) {
        const durable = await loadDurable(readInput(input!));
        await withHost(flags, flags.output === '-', warn, durable.host, async (options, saveHost) => {
          const worker = await DurableWorker.start(durable, options);
          const outcome = resume(worker, flags.answer);
          report(outcome, flags);
          worker.host = saveHost();
          writeOutput(where.file, await worker.snapshotParts({ onWarning: warn }));
        });
        return;
      }
      const { journaled, suspendedLine, WAITING } = await import('./journaled.ts');
      await journaled(flags, where, async (session) => {
        if (!session.latest) throw new WizError('usage', `no worker "${where.id}" in ${where.store}`);
        const worker = await session.restore();
        const answer = session.answerFor(worker, flags.answer, flags.at);
        if (answer === WAITING) {
          // Nothing to give it: say where it waits (after a crash, the command that found out).
          writeText(1, `${suspendedLine(worker)}\n`);
          return;
        }
        await session.drive(worker, () => worker.continue(answer));
      });
    });

  addHostOptions(cli.command('follow')
    .description('follow a worker of a store as a replica: restore its latest state, replay its journal as it grows, and take over when its process dies'))
    .action(async (flags: DurableFlags) => {
      const where = target(flags);
      if (!('store' in where)) throw usage('wiz follow works on a store: --store DIR --id NAME');
      const { follow } = await import('./follow.ts');
      const { journaled } = await import('./journaled.ts');
      await journaled(flags, where, (session) => follow(session, where.id), { lease: false });
    });

  addHostOptions(cli.command('fork')
    .description('copy a worker of a store into COUNT new workers ID.0 … ID.N-1, each told its number through its wiz-fork export')
    .requiredOption('--count <n>', 'how many copies'))
    .action(async (flags: DurableFlags & { count: string }) => {
      const where = target(flags);
      if (!('store' in where)) throw usage('wiz fork works on a store: --store DIR --id NAME');
      const count = Number(flags.count);
      if (!Number.isSafeInteger(count) || count < 1 || count > 10_000) throw usage(`--count takes a number from 1 to 10000, not "${flags.count}"`);
      const { captureImage, openStore, restoreWorker } = await durableApi();
      const store = await openStore(where.store, 'sqlite', { create: false, worker: where.id });
      try {
        const { saved, durable } = await loadStored(store, where.store, where.id);
        for (let n = 0; n < count; n++) {
          const id = `${where.id}.${n}`;
          if ((await store.generations(id)).length > 0) throw new WizError('usage', `worker "${id}" exists in ${where.store}`);
        }
        let hooked = true;
        for (let n = 0; n < count; n++) {
          await withHost(flags, flags.output === '-', warn, saved.image.host, async (options, saveHost) => {
            const worker = await restoreWorker(durable, saved.image, saved.chunks, options);
            hooked = worker.fork(n);
            worker.host = saveHost() ?? worker.host;
            const { image, chunks } = await captureImage(worker, { previous: saved });
            await store.save(`${where.id}.${n}`, image, chunks);
          });
          writeText(flags.output === '-' ? 2 : 1, `forked: ${where.id}.${n}\n`);
        }
        if (!hooked) warn('the module exports no "wiz-fork" hook: the copies are identical, random streams included');
      } finally {
        await store.close();
      }
    });

  cli.command('materialize')
    .description('write a worker\'s state image from a store as the .wasm that wiz resume reads')
    .requiredOption('--store <dir>', 'the store')
    .requiredOption('--id <name>', 'the worker')
    .option('--generation <n>', 'which generation (default: the latest)')
    .option('-o, --output <file>', 'where to write it (- for stdout)')
    .action(async (opts: { store: string; id: string; generation?: string; output?: string }) => {
      const output = opts.output ?? '-';
      if (output === '-' && process.stdout.isTTY) throw usage('refusing to write a binary module to a terminal; pass -o FILE');
      const generation = opts.generation === undefined ? undefined : Number(opts.generation);
      if (generation !== undefined && !(Number.isSafeInteger(generation) && generation >= 0)) throw usage(`--generation takes a number, not "${opts.generation}"`);
      const { materialize, openStore } = await durableApi();
      const store = await openStore(opts.store, 'sqlite', { create: false, worker: opts.id });
      try {
        const { saved, durable } = await loadStored(store, opts.store, opts.id, generation);
        writeOutput(output, [await materialize(durable, saved.image, saved.chunks, { onWarning: warn })]);
      } finally {
        await store.close();
      }
    });
}

/** `--suspend-on` values, split at commas. */
function specs(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');
}

/** A durable module from the input: as it is, or asyncified first (`--suspend-on` on a plain module). */
async function durableOf(bytes: Uint8Array, suspendOn: string[]): Promise<DurableModule> {
  const { asyncify, loadDurable, readLayout } = await durableApi();
  const layout = readLayout(parseModule(bytes));
  if (layout) {
    const same = suspendOn.length === 0 || (new Set(suspendOn).size === layout.suspendOn.length && suspendOn.every((s) => layout.suspendOn.includes(s)));
    if (!same) throw new WizError('usage', `the module was asyncified to suspend on ${layout.suspendOn.join(', ')}, not ${suspendOn.join(', ')}: run wiz asyncify on the original again`);
    return loadDurable(bytes);
  }
  if (suspendOn.length === 0) throw new WizError('usage', 'the module is not asyncified: name the imports that may suspend with --suspend-on MODULE.NAME (or run wiz asyncify first)');
  requireBinaryen('--suspend-on');
  return loadDurable(await asyncify(bytes, { suspendOn, onWarning: warn }));
}

/** A worker's saved generation (the latest by default) from a store, and the durable module it belongs to. */
async function loadStored(store: ImageStore, dir: string, id: string, generation?: number) {
  const { loadDurable } = await durableApi();
  const saved = await store.load(id, generation);
  if (!saved) throw new WizError('usage', `no worker "${id}"${generation === undefined ? '' : ` generation ${generation}`} in ${dir}`);
  const bytes = await store.getModule(saved.image.module);
  if (!bytes) throw new WizError('malformed', `the store lacks module ${saved.image.module} of worker "${id}"`);
  return { saved, durable: await loadDurable(bytes) };
}

/** Resumes with `--answer`, which the pending import's type requires or forbids. */
function resume(worker: DurableWorker, answer: string | undefined): Outcome {
  const suspended = worker.suspended;
  if (!suspended) throw new WizError('usage', 'the program is not suspended: there is nothing to resume (run an export with wiz run)');
  const imp = worker.durable.instrumented.context.imports.find((i) => i.kind === 'func' && `${i.module}.${i.name}` === suspended.pending.name)!;
  const type = worker.durable.instrumented.context.types[imp.typeIndex!];
  const results = type?.kind === 'func' ? type.results : [];
  if (results.length === 0 && answer !== undefined) throw new WizError('usage', `--answer ${answer}: ${suspended.pending.name} returns nothing; resume without --answer`);
  if (results.length > 0 && answer === undefined) throw new WizError('usage', `${suspended.pending.name} returns ${results.join(', ')}: give it with --answer VALUE`);
  return worker.resume(answer);
}
