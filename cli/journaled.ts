// A worker in a store, run with its journal: `wiz run`, `resume` and `follow` with --store. One place holds the
// lease, restores the latest state with the journal suffix to replay, keeps the host (open files, deterministic
// streams) in step with replayed calls, saves at checkpoints and outcomes, and truncates the journal behind saves.
import { writeText } from './io.ts';
import { WizError } from '../src/errors.ts';
import { captureImage, restoreWorker } from '../src/durable/capture.ts';
import type { ImageStore, LoadedGeneration } from '../src/durable/store.ts';
import type { DurableModule, DurableWorker, Outcome, WorkerJournal, WorkerOptions } from '../src/durable/worker.ts';
import { loadDurable } from '../src/durable/worker.ts';
import { OpenFiles } from '../src/journal/files.ts';
import type { ObservedCall } from '../src/journal/journal.ts';
import { parseValue, showValue } from '../src/run/invoke.ts';
import { durableHost, type DurableHost, type HostFlags } from './host.ts';
import { openJournal, type StoreJournal } from './stores/journal.ts';
import { openStore } from './stores/open.ts';

export interface JournaledFlags extends HostFlags {
  checkpointCalls?: string;
  checkpointMs?: string;
  leaseMs?: string;
  sync?: string;
}

/** `answerFor`'s word for: the worker waits for an answer, and none was given for it. */
export const WAITING = Symbol('waiting');

export interface Session {
  store: ImageStore;
  journal: StoreJournal;
  /** The worker's latest saved generation, if any (what `restore` restores). */
  latest: LoadedGeneration | undefined;
  /** A fresh journaled instance of `durable` (for `wiz run`). */
  start(durable: DurableModule): Promise<DurableWorker>;
  /** The latest state, restored, with the journal after it to replay. */
  restore(options?: Pick<WorkerJournal, 'next'>): Promise<DurableWorker>;
  save(worker: DurableWorker): Promise<void>;
  /** Runs `first` and on through checkpoints (each saved); reports and saves the outcome. */
  drive(worker: DurableWorker, first: () => Outcome): Promise<Outcome>;
  /** What to resume with: the answer, undefined (none needed), or WAITING. */
  answerFor(worker: DurableWorker, answer: string | undefined, at: string | undefined): unknown;
  warn(line: string): void;
  /** Closes the host. */
  end(): void;
}

const warn = (line: string) => writeText(2, `wiz: warning: ${line}\n`);

/** `suspended: module.name(args) @position`: where a journaled worker waits, and the position an answer is for. */
export function suspendedLine(worker: DurableWorker): string {
  const s = worker.suspended!;
  return `suspended: ${s.pending.name}(${s.pending.args.join(', ')}) @${worker.journal!.position}`;
}

function count(flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new WizError('usage', `${flag} takes a whole number from ${min}, not "${value}"`);
  return n;
}

/**
 * Opens the store and the worker's journal, takes its lease (unless `lease: false`: a replica takes it later),
 * and runs `work` with a session; the lease is released and everything closed however it ends.
 */
export async function journaled(
  flags: JournaledFlags,
  where: { store: string; id: string },
  work: (session: Session) => Promise<void>,
  options: { lease?: boolean; create?: boolean } = {},
): Promise<void> {
  const checkpoint = { calls: count('--checkpoint-calls', flags.checkpointCalls, 1), ms: count('--checkpoint-ms', flags.checkpointMs, 0) };
  const leaseMs = count('--lease-ms', flags.leaseMs, 1);
  const store = await openStore(where.store, 'sqlite', { create: options.create ?? false, worker: where.id });
  let journal: StoreJournal | undefined;
  let session: Session | undefined;
  try {
    journal = await openJournal(where.store, where.id, { leaseMs, sync: flags.sync === 'normal' ? 'normal' : 'full' });
    if (options.lease !== false && !journal.acquire()) {
      const lease = journal.lease();
      throw new WizError('journal', `worker "${where.id}" is running in another process (${lease?.holder}; its lease ends in ${Math.max(0, Math.ceil(((lease?.expires ?? 0) - Date.now()) / 1000))} s)`);
    }
    const latest = await store.load(where.id);
    session = await sessionOf(flags, where, store, journal, latest, { calls: checkpoint.calls, ms: checkpoint.ms });
    await work(session);
  } finally {
    session?.end();
    journal?.release();
    journal?.close();
    await store.close();
  }
}

async function sessionOf(
  flags: JournaledFlags,
  where: { store: string; id: string },
  store: ImageStore,
  journal: StoreJournal,
  latest: LoadedGeneration | undefined,
  checkpoint: { calls?: number; ms?: number },
): Promise<Session> {
  let previous = latest;
  let host: DurableHost | undefined;
  let files: OpenFiles | undefined;
  let instance: WebAssembly.Instance | undefined;

  const memory = (): WebAssembly.Memory => {
    const exports = instance!.exports;
    const m = exports.memory instanceof WebAssembly.Memory ? exports.memory : Object.values(exports).find((e) => e instanceof WebAssembly.Memory);
    if (!(m instanceof WebAssembly.Memory)) throw new WizError('unsupported', 'the program has no memory for its host calls');
    return m;
  };

  // A host per instance (WASI binds to one): a replica that joins again starts a new one.
  const hostFor = async (saved: Record<string, unknown> | undefined): Promise<DurableHost> => {
    host?.host.close();
    host = undefined;
    files = new OpenFiles(memory, saved?.files);
    host = await durableHost(flags, false, warn, saved);
    return host;
  };

  const journalOptions = (h: DurableHost): WorkerJournal => ({
    log: journal,
    checkpoint: checkpoint.calls === undefined && checkpoint.ms === undefined ? undefined : checkpoint,
    observe: (call: ObservedCall) => {
      files!.observe(call);
      if (call.replayed && call.wasi && call.result.kind === 'value' && call.result.value === 0) h.host.replayed(call.name, call.args);
    },
    onLive: () => {
      if (h.host.wasi) files!.reopen(h.host.wasi);
    },
  });

  const workerOptions = (h: DurableHost, extra: Partial<WorkerJournal> = {}): WorkerOptions => ({
    imports: h.options.imports,
    onInstantiated: (i) => {
      instance = i;
      h.options.onInstantiated?.(i);
    },
    journal: { ...journalOptions(h), ...extra },
  });

  const record = (): Record<string, unknown> | undefined => {
    const r = { ...(host?.record() ?? {}), ...(files && files.size > 0 && { files: files.toJSON() }) };
    return Object.keys(r).length > 0 ? r : undefined;
  };

  const session: Session = {
    store,
    journal,
    latest,
    warn,
    async start(durable) {
      const h = await hostFor(undefined);
      return (await import('../src/durable/worker.ts')).DurableWorker.start(durable, workerOptions(h));
    },
    async restore(extra = {}) {
      const saved = session.latest!;
      previous = saved;
      const bytes = await store.getModule(saved.image.module);
      if (!bytes) throw new WizError('malformed', `the store lacks module ${saved.image.module} of worker "${where.id}"`);
      const durable = await loadDurable(bytes);
      const h = await hostFor(saved.image.host);
      const from = saved.image.journal?.position ?? 0;
      return restoreWorker(durable, saved.image, saved.chunks, workerOptions(h, { replay: extra.next ? [] : journal.read(from), ...extra }));
    },
    async save(worker) {
      worker.host = record();
      const captured = await captureImage(worker, { previous });
      await store.save(where.id, captured.image, captured.chunks);
      // The journal is kept from the save before this one: a replica replaying behind this save still finds it.
      journal.truncate(previous?.image.journal?.position ?? 0);
      previous = { generation: -1, ...captured };
    },
    async drive(worker, first) {
      // A run that returned keeps its line with its last save: a command killed after that save and before it
      // printed is issued again, and says the same.
      const returned = worker.returnedLine;
      if (returned !== undefined) {
        writeText(1, `${returned}\n`);
        return { status: 'returned', result: undefined, line: returned };
      }
      let outcome = first();
      while (outcome.status === 'checkpoint') {
        await session.save(worker);
        outcome = worker.continue();
      }
      await session.save(worker);
      writeText(1, `${outcome.status === 'suspended' ? suspendedLine(worker) : outcome.line}\n`);
      return outcome;
    },
    end() {
      host?.host.close();
    },
    answerFor(worker, answer, at) {
      const suspended = worker.suspended;
      const position = worker.journal!.position;
      const atPosition = count('--at', at, 0);
      if (!suspended || suspended.checkpoint) {
        // Not waiting: a crash came after its last answer (that answer is in its state or journal).
        if (answer !== undefined && atPosition === undefined) warn(`worker "${where.id}" is not waiting for an answer (it recovers from a crash after its last one): --answer ${answer} is not used`);
        return undefined;
      }
      const imp = worker.durable.instrumented.context.imports.find((i) => i.kind === 'func' && `${i.module}.${i.name}` === suspended.pending.name)!;
      const type = worker.durable.instrumented.context.types[imp.typeIndex!];
      const result = type?.kind === 'func' ? type.results[0] : undefined;
      if (atPosition !== undefined && atPosition > position) throw new WizError('usage', `worker "${where.id}" waits at journal position ${position}, not ${atPosition}`);
      if (atPosition !== undefined && atPosition < position) return WAITING; // answered long ago; it waits for another
      const recorded = worker.recordedAnswer();
      if (recorded) {
        // Given before a crash: the journal replays it. Another answer now would be a second, different one.
        if (answer !== undefined && result !== undefined && recorded.result.kind === 'value') {
          const given = showValue(parseValue(answer, result, '--answer'));
          if (given !== showValue(recorded.result.value)) throw new WizError('usage', `${suspended.pending.name} at journal position ${position} was answered ${showValue(recorded.result.value)} already, not ${given}`);
        }
        return undefined;
      }
      if (result === undefined) {
        if (answer !== undefined) throw new WizError('usage', `--answer ${answer}: ${suspended.pending.name} returns nothing; resume without --answer`);
        return undefined;
      }
      return answer === undefined ? WAITING : answer;
    },
  };
  return session;
}
