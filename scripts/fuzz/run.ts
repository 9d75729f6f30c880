// The fuzz loop: generate module i of the run (in a child process, overlapped with checking module i - 1),
// check it in a worker thread with a time limit, count the outcomes, save every failure as a reproducer.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { isFailure, type Agreement, type CheckOptions, type InitOutcome, type Property } from './check.ts';
import { generate, moduleSeed, type GeneratedModule } from './generate.ts';
import type { InitResult, WorkerReply, WorkerRequest } from './worker.ts';

export interface FuzzOptions {
  seed: number;
  iterations: number;
  /** Init functions tried per module at most. */
  maxInits?: number;
  /** Time allowed to check one module (all its init functions) before the worker is killed. */
  moduleTimeoutMs?: number;
  /** Where reproducers of failures go (none saved when undefined). */
  reproDir?: string;
  native?: boolean;
  /** Stop starting new modules after this many seconds (the summary says how many ran). */
  maxSeconds?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface Failure {
  seed: number;
  features: string[];
  init?: string;
  kind: string;
  detail: string;
  repro?: string;
}

export interface FuzzSummary {
  seed: number;
  iterations: number;
  modules: number;
  /** Modules Binaryen could not generate, or that this engine does not compile. */
  skipped: Record<string, number>;
  /** Modules without any `[] -> []` export. */
  noInit: number;
  inits: number;
  agreement: Partial<Record<Agreement, number>>;
  property: Partial<Record<Property, number>>;
  /** Why the reference refused when wiz accepted, by message. */
  wizAcceptsMore: Record<string, number>;
  /** Why both refused, by wiz's error code. */
  bothFail: Record<string, number>;
  failures: Failure[];
  seconds: number;
}

const bump = <K extends string>(counts: Partial<Record<K, number>>, key: K) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

/** A message without the specifics (names, numbers), to group reasons. */
function reason(message: string): string {
  return message.replace(/`[^`]*`/g, '`…`').replace(/"[^"]*"/g, '"…"').replace(/\b\d+\b/g, 'N').slice(0, 160);
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export class Checker {
  private worker: Worker | undefined;
  private next = 0;

  private spawn(): Worker {
    return (this.worker ??= new Worker(new URL('./worker.ts', import.meta.url)));
  }

  /** Checks one module; rejects with 'timeout' (the worker is killed) or the worker's error. */
  check(wasm: Uint8Array, options: CheckOptions, timeoutMs: number): Promise<InitOutcome[]> {
    return this.request({ kind: 'check', wasm, options }, timeoutMs).then((m) => (m as { outcomes: InitOutcome[] }).outcomes);
  }

  /** `wiz init` as the CLI runs it; rejects with 'timeout' (the worker is killed) or the worker's error. */
  init(wasm: Uint8Array, timeoutMs: number): Promise<InitResult> {
    return this.request({ kind: 'init', wasm }, timeoutMs).then((m) => (m as { init: InitResult }).init);
  }

  private request(body: DistributiveOmit<WorkerRequest, 'id'>, timeoutMs: number): Promise<WorkerReply> {
    const worker = this.spawn();
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const kill = () => {
        this.worker = undefined;
        void worker.terminate();
      };
      const timer = setTimeout(() => {
        done();
        kill();
        reject(new Error('timeout'));
      }, timeoutMs);
      const onMessage = (m: WorkerReply) => {
        if (m.id !== id) return;
        done();
        if ('error' in m) reject(new Error(m.error));
        else resolve(m);
      };
      const onError = (e: Error) => {
        done();
        kill();
        reject(new Error(`the checking worker died: ${e.stack ?? e.message}`));
      };
      const onExit = (code: number) => onError(new Error(`exit ${code}`));
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage({ id, ...body });
    });
  }

  close(): Promise<number> | undefined {
    const w = this.worker;
    this.worker = undefined;
    return w?.terminate();
  }
}

/** Checks one module in a fresh worker, killed after `timeoutMs` (rejects with 'timeout'). */
export async function checkInWorker(wasm: Uint8Array, options: CheckOptions, timeoutMs: number): Promise<InitOutcome[]> {
  const checker = new Checker();
  try {
    return await checker.check(wasm, options, timeoutMs);
  } finally {
    await checker.close();
  }
}

type Generated = { ok: true; module: GeneratedModule } | { ok: false; seed: number; error: string };

function generated(seed: number): Promise<Generated> {
  return generate(seed).then((module) => ({ ok: true as const, module }), (e: Error) => ({ ok: false as const, seed, error: e.message }));
}

function saveRepro(dir: string, module: GeneratedModule, failures: Failure[]): string {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `seed-${module.seed}`);
  writeFileSync(`${base}.wasm`, module.wasm);
  writeFileSync(`${base}.json`, `${JSON.stringify({ seed: module.seed, features: module.features, entropy: module.entropy, failures }, null, 2)}\n`);
  return `${base}.wasm`;
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const summary: FuzzSummary = {
    seed: options.seed, iterations: options.iterations, modules: 0, skipped: {}, noInit: 0, inits: 0,
    agreement: {}, property: {}, wizAcceptsMore: {}, bothFail: {}, failures: [], seconds: 0,
  };
  const checker = new Checker();
  const seedOf = (i: number) => moduleSeed(options.seed, i);
  let pending: Promise<Generated> | undefined = options.iterations > 0 ? generated(seedOf(0)) : undefined;
  try {
    for (let i = 0; i < options.iterations; i++) {
      if (options.maxSeconds !== undefined && performance.now() - started > options.maxSeconds * 1000) {
        log(`time is up after ${i} modules`);
        summary.iterations = i;
        break;
      }
      const gen = await pending!;
      pending = i + 1 < options.iterations ? generated(seedOf(i + 1)) : undefined;
      if (!gen.ok) {
        bump(summary.skipped, 'generator failed');
        log(`#${i} seed ${gen.seed}: ${gen.error}`);
        continue;
      }
      const { module } = gen;
      if (!WebAssembly.validate(module.wasm as Uint8Array<ArrayBuffer>)) {
        bump(summary.skipped, 'not valid in this engine');
        continue;
      }
      summary.modules++;
      const failures: Failure[] = [];
      let outcomes: InitOutcome[] = [];
      try {
        outcomes = await checker.check(module.wasm, { maxInits: options.maxInits, native: options.native }, options.moduleTimeoutMs ?? 180_000);
      } catch (e) {
        const message = (e as Error).message;
        failures.push({ seed: module.seed, features: module.features, kind: message === 'timeout' ? 'hang' : 'checker-error', detail: message });
      }
      if (outcomes.length === 0 && failures.length === 0) summary.noInit++;
      for (const o of outcomes) {
        summary.inits++;
        bump(summary.agreement, o.agreement);
        bump(summary.property, o.property);
        if (o.agreement === 'wiz-accepts-more') bump(summary.wizAcceptsMore, reason(o.nativeError ?? '?'));
        if (o.agreement === 'both-fail') bump(summary.bothFail, (o.wizError ?? '?').split(':')[0]!);
        if (isFailure(o)) {
          const kind = o.crash ? 'crash' : o.property === 'VIOLATED' ? 'property' : o.agreement;
          failures.push({ seed: module.seed, features: module.features, init: o.init, kind, detail: o.crash ?? o.detail ?? '' });
        }
      }
      if (failures.length > 0) {
        const repro = options.reproDir ? saveRepro(options.reproDir, module, failures) : undefined;
        for (const f of failures) summary.failures.push({ ...f, repro });
        for (const f of failures) log(`#${i} seed ${module.seed} [${module.features.join(',')}] ${f.init ?? ''}: ${f.kind}: ${f.detail.split('\n')[0]}${repro ? ` (saved ${repro})` : ''}`);
      }
      if ((i + 1) % 10 === 0) log(`${i + 1}/${options.iterations} modules, ${summary.inits} init functions, ${summary.failures.length} failures, ${Math.round((performance.now() - started) / 1000)} s`);
    }
  } finally {
    await pending;
    await checker.close();
  }
  summary.seconds = Math.round((performance.now() - started) / 100) / 10;
  return summary;
}

/** The summary as lines of text. */
export function formatSummary(s: FuzzSummary): string {
  const counts = (c: Record<string, number | undefined>) =>
    Object.entries(c).sort((a, b) => b[1]! - a[1]!).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
  const lines = [
    `seed ${s.seed}, ${s.iterations} iterations in ${s.seconds} s`,
    `modules checked: ${s.modules} (skipped: ${counts(s.skipped)}; without a [] -> [] export: ${s.noInit})`,
    `init functions: ${s.inits}`,
    `agreement with the reference: ${counts(s.agreement)}`,
    `property (snapshot behaves as the original after init): ${counts(s.property)}`,
    `both refused, by wiz error code: ${counts(s.bothFail)}`,
    `wiz accepts more (reference's reason): ${counts(s.wizAcceptsMore)}`,
    `failures: ${s.failures.length}`,
    ...s.failures.map((f) => `  seed ${f.seed} ${f.init ?? ''} [${f.features.join(',')}] ${f.kind}: ${f.detail.split('\n')[0]}${f.repro ? ` -> ${f.repro}` : ''}`),
  ];
  return lines.join('\n');
}
