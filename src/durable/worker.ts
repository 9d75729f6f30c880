// A durable worker: a live instance of a durable module (`asyncify`'s output, or a state `.wasm` written from
// one) that runs until it calls an import that may suspend, unwinds into wiz's memory, and can then be saved
// (as a `.wasm`, or as a state image) and resumed later, elsewhere, with the answer the import returns.
import { WizError } from '../errors.ts';
import { checkClaims } from '../instrument/reparse.ts';
import { checkState, instrumentationOf, type InstrumentedModule } from '../instrument/instrument.ts';
import { functionType, parseModule } from '../parse/module.ts';
import type { ModuleContext, ValType } from '../parse/types.ts';
import { writeSnapshot, type SnapshotOptions } from '../preinitialize.ts';
import { compileModule, instantiate, type LiveInstance } from '../run/initialize.ts';
import { formatInvocation, parseValue, showValue } from '../run/invoke.ts';
import { concat } from '../parse/writer.ts';
import { instanceReader, type GlobalBits, type StateReader } from '../snapshot/state.ts';
import { decodeEntry, type JournalEntry } from '../journal/entry.ts';
import { journalImports, type Journal, type JournalOptions } from '../journal/journal.ts';
import { sha256Hex, type CallRecord, type JournalState, type SuspendedCall } from './image.ts';
import { ASYNCIFY, HOST_SECTION, jsonSection, readLayout, RUNTIME, SUSPENDED_SECTION, type DurableLayout } from './layout.ts';

/** A durable module read from untrusted bytes: validated, its instrumentation and layout checked, compiled. */
export interface DurableModule {
  bytes: Uint8Array;
  /** `sha256:<hex>` of `bytes`: what state images of its instances name. */
  digest: string;
  module: WebAssembly.Module;
  instrumented: InstrumentedModule;
  layout: DurableLayout;
  /** The call a state `.wasm` is suspended in (its `wiz.suspended` section), checked against the module. */
  suspended: SuspendedCall | undefined;
  /** What the host keeps for the program (its `wiz.host` section): a JSON object, for the host to check. */
  host: Record<string, unknown> | undefined;
}

export interface LoadDurableOptions {
  /**
   * The module compiled from `bytes` ahead of time: where compiling at run time is forbidden (Cloudflare Workers,
   * Vercel Edge), give the module the platform compiled at deploy time; the bytes are then only validated.
   */
  module?: WebAssembly.Module;
}

/**
 * Reads a durable module. Every claim is checked: the module is validated, each `__wizer_` export is what it
 * claims, the layout matches the module (and wiz's accessors are the code wiz writes), a recorded suspended
 * call names an export and a suspending import of the right types and wiz's unwind buffer.
 */
export async function loadDurable(bytes: Uint8Array, options: LoadDurableOptions = {}): Promise<DurableModule> {
  const context = parseModule(bytes);
  let module = options.module;
  if (!module) {
    module = await compileModule(bytes);
  } else if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) {
    throw new WizError('invalid', 'invalid module: the engine does not validate it');
  }
  checkState(context);
  const instrumentation = instrumentationOf(context);
  checkClaims(context, instrumentation);
  const layout = readLayout(context);
  if (!layout) throw new WizError('usage', 'the module is not prepared for durable runs (no wiz.durable section): run wiz asyncify on it first');
  const suspended = readSuspended(context, layout);
  const host = jsonSection(context, HOST_SECTION);
  if (host !== undefined && (host === null || typeof host !== 'object' || Array.isArray(host))) {
    throw new WizError('malformed', `the module's "${HOST_SECTION}" section is not a JSON object`);
  }
  const instrumented: InstrumentedModule = {
    context,
    bytes,
    ...instrumentation,
    probe: {
      functions: context.exports.some((e) => e.name === RUNTIME.functions && e.kind === 'table') ? RUNTIME.functions : undefined,
      dropped: layout.droppable.length > 0 ? RUNTIME.dropped : undefined,
      droppable: layout.droppable,
    },
    reparsed: true,
  };
  return { bytes, digest: `sha256:${await sha256Hex(bytes)}`, module, instrumented, layout, suspended, host: host as Record<string, unknown> | undefined };
}

/** The `wiz.suspended` record of a state `.wasm`, checked against the module. */
function readSuspended(context: ModuleContext, layout: DurableLayout): SuspendedCall | undefined {
  const raw = jsonSection(context, SUSPENDED_SECTION);
  if (raw === undefined) return undefined;
  return checkSuspended(context, layout, raw);
}

/** Checks a suspended call (from a file or a state image: untrusted) against the module. */
export function checkSuspended(context: ModuleContext, layout: DurableLayout, raw: unknown): SuspendedCall {
  const bad = (why: string): never => {
    throw new WizError('malformed', `the suspended call ${why}`);
  };
  const s = raw as Partial<SuspendedCall> | null;
  if (!s || typeof s !== 'object' || !isCall(s.entry) || !isCall(s.pending)) bad('is not a record of an entry call and a pending import');
  const entry = exportType(context, s!.entry!.name);
  if (!entry) bad(`enters "${s!.entry!.name}", which the module does not export as a function`);
  if (entry!.params.length !== s!.entry!.args.length) bad(`passes ${s!.entry!.args.length} arguments to "${s!.entry!.name}", which takes ${entry!.params.length}`);
  entry!.params.forEach((t, i) => parseValue(s!.entry!.args[i]!, t, `the suspended call's argument ${i + 1}`));
  if (!layout.suspendOn.includes(s!.pending!.name)) bad(`waits in "${s!.pending!.name}", which is not an import that may suspend (${layout.suspendOn.join(', ')})`);
  if (s!.buffer !== layout.buffer.start) bad(`names unwind buffer ${String(s!.buffer)}, not wiz's (${layout.buffer.start})`);
  if (s!.checkpoint !== undefined && typeof s!.checkpoint !== 'boolean') bad('has a checkpoint flag that is not a boolean');
  const pendingType = importType(context, s!.pending!.name);
  if (pendingType.params.length !== s!.pending!.args.length) bad(`passes ${s!.pending!.args.length} arguments to ${s!.pending!.name}, which takes ${pendingType.params.length}`);
  return {
    entry: { name: s!.entry!.name, args: [...s!.entry!.args] },
    pending: { name: s!.pending!.name, args: [...s!.pending!.args] },
    buffer: s!.buffer!,
    ...(s!.checkpoint && { checkpoint: true }),
  };
}

const isCall = (c: unknown): c is CallRecord =>
  !!c && typeof (c as CallRecord).name === 'string' && Array.isArray((c as CallRecord).args) && (c as CallRecord).args.every((a) => typeof a === 'string');

function exportType(context: ModuleContext, name: string): { params: ValType[]; results: ValType[] } | undefined {
  const e = context.exports.find((x) => x.name === name);
  const type = e?.kind === 'func' ? functionType(context, e.index) : undefined;
  return type?.kind === 'func' ? type : undefined;
}

function importType(context: ModuleContext, spec: string): { params: ValType[]; results: ValType[] } {
  const imp = context.imports.find((i) => i.kind === 'func' && `${i.module}.${i.name}` === spec)!;
  const type = context.types[imp.typeIndex!];
  if (type?.kind !== 'func') throw new WizError('malformed', `import "${spec}" has no function type`);
  return type;
}

/** How a call ended: the export returned, or the program is suspended inside an import. */
export type Outcome =
  | { status: 'returned'; result: unknown; /** `name(args) = result`, as `wiz snapshot --invoke` prints it. */ line: string }
  | {
    status: 'suspended';
    pending: CallRecord;
    /** `suspended: module.name(args)`. */
    line: string;
    /** What the host's import returned, when it returned a Promise: resume with its value once it settles. */
    promise?: Promise<unknown>;
  }
  | {
    /**
     * A journaled worker stopped at a call of a suspending import to be saved (`checkpoint` options): save it, then
     * `resume()` (no answer: the call is then made).
     */
    status: 'checkpoint';
    pending: CallRecord;
    /** `checkpoint: module.name(args)`. */
    line: string;
  };

/** How a journaled worker records its host calls. */
export interface WorkerJournal extends Pick<JournalOptions, 'log' | 'replay' | 'next' | 'onLive' | 'observe' | 'wasiModules'> {
  /**
   * Stop for a save (a `checkpoint` outcome) at the first call of a suspending import after this many journaled
   * calls, or this many milliseconds, since the last outcome.
   */
  checkpoint?: { calls?: number; ms?: number };
}

export interface WorkerOptions {
  /**
   * Host imports by module and name. A suspending import given here is called: a Promise it returns suspends the
   * program (resume with its value), any other value is returned at once. Without one, it always suspends.
   * Function imports given nowhere are stubs that fail the run when called.
   */
  imports?: WebAssembly.Imports;
  /** Called with the new instance before anything runs in it (e.g. to bind WASI to its memory). */
  onInstantiated?: (instance: WebAssembly.Instance) => void;
  /**
   * Journal every host call (src/journal): replayed from `replay` (and `next`) first, then live, appended to `log`
   * before the guest sees each result. Answers to suspended calls are journaled as the results of those calls.
   */
  journal?: WorkerJournal;
}

/** @internal Where the journal of a restored worker starts. */
export const JOURNAL_START = Symbol('journal start');

const enum_ = { normal: 0, unwinding: 1, rewinding: 2 } as const;

export class DurableWorker {
  readonly durable: DurableModule;
  readonly instance: WebAssembly.Instance;
  private readonly live: LiveInstance;
  private suspendedCall: SuspendedCall | undefined;
  /** What the host keeps for the program, saved with it (e.g. where `--deterministic`'s streams stand). */
  host: Record<string, unknown> | undefined;
  private promise: Promise<unknown> | undefined;
  private rewinding: { pending: string; answer: unknown; checkpoint: boolean } | undefined;
  private entryArgs: unknown[] = [];
  /** A hook runs: a suspending import may not suspend now. */
  private inHook = false;
  /** How far into wiz's buffer the stack being rewound reaches (cleared once rewound). */
  private used = 0;
  /** The journal of host calls, when the worker keeps one. */
  readonly journal: Journal | undefined;
  private checkpoint: WorkerJournal['checkpoint'];
  /** Where the journal and the clock stood at the last outcome (checkpoints count from there). */
  private since = { position: 0, time: 0 };
  /** A run planned but not begun (saved before it starts, so that a crash inside it can be recovered). */
  private planned: JournalState['next'];
  /** The line of the last run that returned, for a journaled worker (saved with its state). */
  private returned: string | undefined;
  private initializing = false;

  private constructor(durable: DurableModule, live: LiveInstance, suspended: SuspendedCall | undefined, journal: Journal | undefined) {
    this.durable = durable;
    this.live = live;
    this.instance = live.instance;
    this.suspendedCall = suspended;
    this.journal = journal;
    this.since = { position: journal?.position ?? 0, time: Date.now() };
  }

  /** A fresh instance of the module (its start function runs); suspended when the module records a suspended call. */
  static async start(durable: DurableModule, options: WorkerOptions & { [JOURNAL_START]?: number } = {}): Promise<DurableWorker> {
    let worker: DurableWorker | undefined;
    let instance: WebAssembly.Instance | undefined;
    let given = options.imports ?? {};
    let journal: Journal | undefined;
    if (options.journal) {
      const { checkpoint: _, ...journalOptions } = options.journal;
      const suspending = new Set(durable.layout.suspendOn);
      // The suspending imports are journaled by the worker itself: their answers may come later, from elsewhere.
      const plain: Record<string, Record<string, WebAssembly.ImportValue>> = {};
      for (const [module, values] of Object.entries(given)) {
        plain[module] = Object.fromEntries(Object.entries(values).filter(([name]) => !suspending.has(`${module}.${name}`)));
      }
      journal = journalImports(plain, {
        ...journalOptions,
        memory: () => guestMemory(durable, instance!),
        names: durable.instrumented.context.imports.filter((i) => i.kind === 'func').map((i) => `${i.module}.${i.name}`),
        start: options[JOURNAL_START] ?? 0,
      });
      given = { ...given, ...journal.imports };
      for (const [module, values] of Object.entries(options.imports ?? {})) given[module] = { ...values, ...journal.imports[module] };
    }
    const imports = suspendingImports(durable, given, options.imports ?? {}, () => worker!);
    const live = await instantiate(durable.instrumented.context, durable.module, {
      imports,
      onInstantiated: (i) => {
        instance = i;
        options.onInstantiated?.(i);
      },
      run: true,
    });
    worker = new DurableWorker(durable, live, durable.suspended, journal);
    worker.checkpoint = options.journal?.checkpoint;
    worker.host = durable.host;
    if (worker.suspendedCall) worker.entryArgs = worker.entryValues(worker.suspendedCall.entry);
    return worker;
  }

  /** @internal Used by `restoreWorker`: the worker after its state was written into it. */
  static attach(worker: DurableWorker, suspended: SuspendedCall | undefined, host: Record<string, unknown> | undefined, journal?: JournalState): void {
    worker.suspendedCall = suspended;
    worker.host = host;
    worker.entryArgs = suspended ? worker.entryValues(suspended.entry) : [];
    worker.planned = journal?.next && { initialize: journal.next.initialize, entry: { name: journal.next.entry.name, args: [...journal.next.entry.args] } };
    if (worker.planned) worker.entryValues(worker.planned.entry);
    worker.returned = typeof journal?.returned === 'string' ? journal.returned : undefined;
  }

  /**
   * Where the worker's journal stands, and the run it is to make when planned but not begun: what a state image of
   * a journaled worker records (undefined without a journal).
   */
  get journalState(): JournalState | undefined {
    if (!this.journal) return undefined;
    return { position: this.journal.position, ...(this.planned && { next: structuredClone(this.planned) }), ...(this.returned !== undefined && { returned: this.returned }) };
  }

  /** The line of the last run that returned (a journaled worker keeps it with its state), if it is at rest. */
  get returnedLine(): string | undefined {
    return this.suspendedCall || this.planned ? undefined : this.returned;
  }

  /**
   * Plans a run of export `name` (after `_initialize` when `initialize`), to be made by `continue()`: a journaled
   * worker is saved with its plan before it starts, so that a crash inside the run is recovered by replay.
   */
  plan(name: string, args: readonly unknown[] = [], initialize = false): void {
    if (this.suspendedCall) throw new WizError('usage', `the program is suspended in ${this.suspendedCall.pending.name}; resume it first`);
    const type = exportType(this.durable.instrumented.context, name);
    if (!type) throw new WizError('usage', `the module exports no function "${name}"`);
    if (type.params.length !== args.length) throw new WizError('usage', `"${name}" takes ${type.params.length} arguments, not ${args.length}`);
    const entry = { name, args: args.map(showValue) };
    this.entryValues(entry); // the arguments read back as they are
    this.planned = { initialize: initialize && typeof this.instance.exports._initialize === 'function', entry };
  }

  /**
   * Does what the worker has to do next: the planned run, or the resumption of a suspended call (with `answer`
   * when it waits for one the journal does not hold; at a checkpoint, none). How a journaled worker is recovered:
   * restored from its latest image, it replays its journal through this and goes on live.
   */
  continue(answer?: unknown): Outcome {
    const planned = this.planned;
    if (planned) {
      this.planned = undefined;
      if (planned.initialize) this.initialize();
      return this.invoke(planned.entry.name, this.entryValues(planned.entry));
    }
    if (this.suspendedCall) return this.resume(answer);
    throw new WizError('usage', 'the program is neither suspended nor about to run: there is nothing to continue');
  }

  /**
   * The journal's recorded answer to the call the program is suspended in, when the journal holds one (a crash
   * came after the answer was given): `continue()` then replays it, whatever answer it is given.
   */
  recordedAnswer(): JournalEntry | undefined {
    const suspended = this.suspendedCall;
    if (!this.journal || !suspended || suspended.checkpoint || !this.journal.recorded()) return undefined;
    const entry = this.journal.peek();
    return entry && decodeEntry(entry, this.journal.position);
  }

  /** Whether the worker waits for an answer that only its host can give (not at a checkpoint, not in its journal). */
  get awaiting(): boolean {
    return !!this.suspendedCall && !this.suspendedCall.checkpoint && !this.recordedAnswer();
  }

  /** The call the program waits in, if it is suspended. */
  get suspended(): SuspendedCall | undefined {
    return this.suspendedCall;
  }

  /** The host's Promise the program waits for, when a host import returned one in this process. */
  get pendingPromise(): Promise<unknown> | undefined {
    return this.promise;
  }

  private get exports(): Record<string, (...a: unknown[]) => unknown> {
    return this.instance.exports as Record<string, (...a: unknown[]) => unknown>;
  }

  private get wizMemory(): WebAssembly.Memory {
    const ordinal = this.durable.instrumented.memories.findIndex((m) => m.index === this.durable.layout.memory);
    return this.instance.exports[this.durable.instrumented.memories[ordinal]!.exportName] as WebAssembly.Memory;
  }

  /** Calls export `name` with `args` (JS values as the JS API takes them) and runs until it returns or suspends. */
  invoke(name: string, args: readonly unknown[] = []): Outcome {
    if (this.suspendedCall) {
      throw new WizError('usage', `the program is suspended in ${this.suspendedCall.pending.name}; resume it with an answer first`);
    }
    const type = exportType(this.durable.instrumented.context, name);
    if (!type) throw new WizError('usage', `the module exports no function "${name}"`);
    if (type.params.length !== args.length) throw new WizError('usage', `"${name}" takes ${type.params.length} arguments, not ${args.length}`);
    this.entryArgs = [...args];
    this.planned = undefined;
    this.returned = undefined;
    const entry: CallRecord = { name, args: args.map(showValue) };
    return this.enter(entry, type.results);
  }

  /**
   * Resumes a suspended program: the pending import returns `answer` (nothing for an import without results), and
   * the program runs until it returns or suspends again.
   */
  resume(answer?: unknown): Outcome {
    const suspended = this.suspendedCall;
    if (!suspended) throw new WizError('usage', 'the program is not suspended: there is nothing to resume');
    const type = importType(this.durable.instrumented.context, suspended.pending.name);
    const results = exportType(this.durable.instrumented.context, suspended.entry.name)!.results;
    // At a checkpoint the call is made when rewound; a journal that holds the answer gives it in replay.
    const given = type.results.length > 0 && !suspended.checkpoint && !(this.journal && this.journal.recorded());
    const value = given ? coerce(answer, type.results[0]!, `the answer to ${suspended.pending.name}`) : undefined;
    this.suspendedCall = undefined;
    this.promise = undefined;
    this.rewinding = { pending: suspended.pending.name, answer: value, checkpoint: suspended.checkpoint ?? false };
    this.used = this.bufferTop();
    this.call(ASYNCIFY.startRewind, [suspended.buffer]);
    return this.enter(suspended.entry, results);
  }

  /**
   * Runs a WASI reactor's `_initialize` if the module exports it: once in a program's life, before any other call
   * (snapshots leave it out, as `wiz init` does: it ran).
   */
  initialize(): void {
    if (typeof this.instance.exports._initialize !== 'function') return;
    this.initializing = true;
    let outcome: Outcome;
    try {
      outcome = this.invoke('_initialize');
    } finally {
      this.initializing = false;
    }
    if (outcome.status !== 'returned') throw new WizError('usage', `_initialize suspended in ${outcome.pending.name}: a program cannot wait before it is initialized`);
  }

  /**
   * Tells a forked copy of the program which fork it is: calls its `wiz-fork` export (`[i32] -> []`) with `n`, if
   * it has one, so that it can reseed what must differ between copies (a PRNG seeded at init: forks sharing one
   * random stream is the classic bug of snapshot systems). Returns whether the program has the hook. The hook
   * must not suspend; it may run while the program is suspended in an import.
   */
  fork(n: number): boolean {
    if (!Number.isSafeInteger(n) || n < 0 || n > 0x7fffffff) throw new WizError('usage', `a fork number is an integer from 0 to 2^31-1, not ${n}`);
    const type = exportType(this.durable.instrumented.context, FORK_HOOK);
    if (!type) return false;
    if (type.params.join() !== 'i32' || type.results.length > 0) throw new WizError('usage', `the module's "${FORK_HOOK}" export must be of type [i32] -> [], not [${type.params.join(' ')}] -> [${type.results.join(' ')}]`);
    this.inHook = true;
    try {
      this.live.call(FORK_HOOK, [n], `the fork hook "${FORK_HOOK}"`);
    } finally {
      this.inHook = false;
    }
    return true;
  }

  /** Runs export `name` to its end, awaiting each Promise a suspending host import returns (no save in between). */
  async run(name: string, args: readonly unknown[] = []): Promise<unknown> {
    let outcome = this.invoke(name, args);
    while (outcome.status !== 'returned') {
      if (outcome.status === 'checkpoint') {
        outcome = this.resume();
        continue;
      }
      if (!outcome.promise) throw new WizError('usage', `the program is suspended in ${outcome.pending.name}, and no host import answers it`);
      outcome = this.resume(await outcome.promise);
    }
    return outcome.result;
  }

  private enter(entry: CallRecord, results: readonly ValType[]): Outcome {
    let result: unknown;
    try {
      result = this.live.call(entry.name, this.entryArgs, `the export "${entry.name}"`);
    } catch (e) {
      // Asyncify traps when the frames it unwinds do not fit in its buffer.
      if (e instanceof WizError && e.code === 'trap' && this.call(ASYNCIFY.getState) === enum_.unwinding) {
        const { start, end } = this.durable.layout.buffer;
        throw new WizError('trap', `the program's stack did not fit in wiz's unwind buffer (${end - start} bytes) when it suspended in ${this.suspendedCall?.pending.name}: run wiz asyncify with a larger --stack-size`);
      }
      throw e;
    }
    const state = this.call(ASYNCIFY.getState) as number;
    this.since = { position: this.journal?.position ?? 0, time: Date.now() };
    if (state === enum_.unwinding) {
      this.call(ASYNCIFY.stopUnwind);
      const pending = this.suspendedCall!.pending;
      this.suspendedCall = { ...this.suspendedCall!, entry };
      const call = `${pending.name}(${pending.args.join(', ')})`;
      if (this.suspendedCall.checkpoint) return { status: 'checkpoint', pending, line: `checkpoint: ${call}` };
      return { status: 'suspended', pending, line: `suspended: ${call}`, ...(this.promise && { promise: this.promise }) };
    }
    if (state === enum_.rewinding || this.rewinding) {
      const pending = this.rewinding?.pending ?? 'the pending import';
      this.rewinding = undefined;
      throw new WizError('trap', `the resumed program did not return to ${pending}: its state does not match its code`);
    }
    this.clearBuffer();
    const line = formatInvocation({ name: entry.name, args: this.entryArgs, results: [...results] }, result);
    if (this.journal && entry.name !== '_initialize') this.returned = line;
    return { status: 'returned', result, line };
  }

  /**
   * wiz's memory outside a suspension is as an uninterrupted program leaves it: the unwound stack is cleared once
   * rewound (`clearStack`), and a completed call resets Asyncify's pointer to it.
   */
  private clearBuffer(): void {
    const { layout } = this.durable;
    const data = layout.globals.find((g) => g.index === layout.asyncify.data)!;
    const bytes = () => new Uint8Array(this.wizMemory.buffer);
    this.exports[RUNTIME.saveGlobals]!();
    const set = bytes().subarray(data.offset, data.offset + 4).some((b) => b !== 0);
    if (set) {
      bytes().fill(0, data.offset, data.offset + 4);
      this.exports[RUNTIME.loadGlobals]!();
    }
    bytes().fill(0, 0, layout.buffer.start);
  }

  /** Zeroes the unwound stack once it is rewound: no stale frames stay in wiz's memory. */
  private clearStack(): void {
    const { start, end } = this.durable.layout.buffer;
    new Uint8Array(this.wizMemory.buffer).fill(0, start, Math.min(Math.max(this.used, start + 8), end));
    this.used = 0;
  }

  /** Where the unwound stack ends: Asyncify's current pointer, in the buffer's header. */
  private bufferTop(): number {
    return new DataView(this.wizMemory.buffer).getUint32(this.durable.layout.buffer.start, true);
  }

  /** @internal The suspending import `spec` was called with `args`; `host` is the host's function, if any. */
  suspendingCall(spec: string, args: unknown[], host: ((...a: unknown[]) => unknown) | undefined, result: ValType | undefined): unknown {
    const state = this.call(ASYNCIFY.getState) as number;
    if (state === enum_.rewinding) {
      const rewinding = this.rewinding;
      if (!rewinding || rewinding.pending !== spec) {
        throw new WizError('trap', `the resumed program called ${spec} where it was suspended in ${rewinding?.pending ?? 'nothing'}: its state does not match its code`);
      }
      this.call(ASYNCIFY.stopRewind);
      this.rewinding = undefined;
      this.clearStack();
      // At a checkpoint the call was not made yet: it is made now, as if the program had never stopped.
      if (rewinding.checkpoint) return this.perform(spec, args, host, result);
      return this.journal ? this.journal.call(spec, args, () => rewinding.answer) : rewinding.answer;
    }
    if (this.inHook) throw new WizError('usage', `the fork hook "${FORK_HOOK}" called ${spec}, which may suspend: a hook must run to its end`);
    if (this.journal) {
      // Completed in the recorded run (answered, or made by the host): replayed, no suspension.
      if (this.journal.recorded()) return this.journal.call(spec, args, () => undefined);
      if (this.checkpointDue()) return this.unwind(spec, args, result, undefined, true);
    }
    return this.perform(spec, args, host, result);
  }

  /** Whether a journaled worker is due for a checkpoint (never inside `_initialize`). */
  private checkpointDue(): boolean {
    const c = this.checkpoint;
    if (!c || this.initializing || !this.journal) return false;
    return (c.calls !== undefined && this.journal.position - this.since.position >= c.calls) || (c.ms !== undefined && Date.now() - this.since.time >= c.ms);
  }

  /** A live call of a suspending import: the host answers now, or the program suspends (until its Promise settles). */
  private perform(spec: string, args: unknown[], host: ((...a: unknown[]) => unknown) | undefined, result: ValType | undefined): unknown {
    let value: unknown;
    if (host) {
      value = this.journal ? this.journal.call(spec, args, host, true) : host(...args);
      if (!(value instanceof Promise)) return value;
    }
    return this.unwind(spec, args, result, value as Promise<unknown> | undefined, false);
  }

  /** Unwinds the program out of the suspending import `spec` into wiz's buffer. */
  private unwind(spec: string, args: unknown[], result: ValType | undefined, promise: Promise<unknown> | undefined, checkpoint: boolean): unknown {
    const value = promise;
    const { start, end } = this.durable.layout.buffer;
    const view = new DataView(this.wizMemory.buffer);
    view.setUint32(start, start + 8, true);
    view.setUint32(start + 4, end, true);
    this.promise = value as Promise<unknown> | undefined;
    this.promise?.catch(() => {}); // the host awaits it, or saves the program and never does
    const pending = { name: spec, args: args.map(showValue) };
    this.suspendedCall = { entry: { name: '', args: [] }, pending, buffer: start, ...(checkpoint && { checkpoint: true }) };
    this.call(ASYNCIFY.startUnwind, [start]);
    return result === 'i64' ? 0n : result === undefined ? undefined : 0;
  }

  private call(name: string, args: unknown[] = []): unknown {
    return this.exports[name]!(...args);
  }

  private entryValues(entry: CallRecord): unknown[] {
    const type = exportType(this.durable.instrumented.context, entry.name)!;
    return entry.args.map((a, i) => parseValue(a, type.params[i]!, `the suspended call's argument ${i + 1}`));
  }

  /** A reader of this instance's state through wiz's runtime: nothing is compiled. */
  stateReader(): Promise<StateReader> {
    const { layout, instrumented } = this.durable;
    const exports = this.exports;
    const readGlobals = (): Map<number, GlobalBits> => {
      exports[RUNTIME.saveGlobals]!();
      const bytes = new Uint8Array(this.wizMemory.buffer);
      const bits = new Map<number, GlobalBits>();
      for (const g of layout.globals) bits.set(g.index, bytes.slice(g.offset, g.offset + GLOBAL_SIZE[g.type]!));
      // The save area is zero outside a save or a load, so snapshots do not depend on how they were taken.
      bytes.fill(0, 0, layout.buffer.start);
      return bits;
    };
    return instanceReader(instrumented, this.instance, undefined, readGlobals);
  }

  /**
   * The program as a `.wasm` that `loadDurable` reads back (keeping the instrumentation), recording the suspended
   * call if any: chunks in order, views of live memory; write them out before the worker runs again.
   */
  async snapshotParts(options: Pick<SnapshotOptions, 'provenance' | 'onWarning'> = {}): Promise<Uint8Array[]> {
    return writeSnapshot(this.durable.instrumented, () => this.stateReader(), {
      ...options,
      keepInstrumentation: true,
      ...stateSections(this.suspendedCall, this.host),
    }, true);
  }

  /** `snapshotParts`, concatenated. */
  async snapshot(options: Pick<SnapshotOptions, 'provenance' | 'onWarning'> = {}): Promise<Uint8Array> {
    return concat(await this.snapshotParts(options));
  }
}

/** The export a forked program is told its fork number through. */
export const FORK_HOOK = 'wiz-fork';

export const GLOBAL_SIZE: Record<string, number> = { i32: 4, i64: 8, f32: 4, f64: 8, v128: 16 };

/** The custom sections a durable snapshot writes: the suspended call and the host's record, each or none. */
export function stateSections(suspended: SuspendedCall | undefined, host: Record<string, unknown> | undefined): Pick<SnapshotOptions, 'customSections' | 'dropCustomSections' | 'removeExports'> {
  const json = (name: string, value: unknown) => ({ name, bytes: new TextEncoder().encode(JSON.stringify(value)) });
  return {
    customSections: [...(suspended ? [json(SUSPENDED_SECTION, suspended)] : []), ...(host ? [json(HOST_SECTION, host)] : [])],
    dropCustomSections: [...(suspended ? [] : [SUSPENDED_SECTION]), ...(host ? [] : [HOST_SECTION])],
    // `_initialize` ran (or the program never needs it again): a state is resumed, never initialized anew.
    removeExports: ['_initialize'],
  };
}

/** A value for a wasm parameter or result of `type`, from a JS value or text. */
function coerce(value: unknown, type: ValType, what: string): unknown {
  if (typeof value === 'string') return parseValue(value, type, what);
  if (type === 'i64') {
    if (typeof value === 'bigint') return value;
    if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
    throw new WizError('usage', `${what} must be an i64 (a BigInt or an integer), not ${String(value)}`);
  }
  if (typeof value !== 'number' && type !== 'externref' && !type.includes('ref')) {
    throw new WizError('usage', `${what} must be a number (${type}), not ${value === undefined ? 'nothing' : String(value)}`);
  }
  return value;
}

/** The host's imports, with each suspending import wrapped so that it can unwind and rewind the program. */
function suspendingImports(durable: DurableModule, given: WebAssembly.Imports, hosts: WebAssembly.Imports, worker: () => DurableWorker): WebAssembly.Imports {
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const [module, values] of Object.entries(given)) imports[module] = { ...values };
  for (const spec of durable.layout.suspendOn) {
    const imp = durable.instrumented.context.imports.find((i) => i.kind === 'func' && `${i.module}.${i.name}` === spec)!;
    const host = hosts[imp.module]?.[imp.name];
    if (host !== undefined && typeof host !== 'function') throw new WizError('usage', `the import "${spec}" must be a function`);
    const result = importType(durable.instrumented.context, spec).results[0];
    (imports[imp.module] ??= {})[imp.name] = (...args: unknown[]) => worker().suspendingCall(spec, args, host as ((...a: unknown[]) => unknown) | undefined, result);
  }
  return imports;
}

/** The memory WASI and the journal read: the module's `memory` export, else its first memory. */
function guestMemory(durable: DurableModule, instance: WebAssembly.Instance): WebAssembly.Memory {
  const memory = instance.exports.memory;
  if (memory instanceof WebAssembly.Memory) return memory;
  const first = durable.instrumented.memories[0];
  if (!first) throw new WizError('unsupported', 'a journaled program needs a memory for its host calls to write into');
  return instance.exports[first.exportName] as WebAssembly.Memory;
}
