// Hosts that run one step of a durable chain each: restore a state image into a fresh instance, resume it with an
// answer, and hand back the next image (or the end state). Node runs the library's source; workerd and Chromium
// run HOST_JS over the library's browser bundle. All speak one wire format, so a chain may hop between them.
import { Buffer } from 'node:buffer';
import { captureImage, materialize, restoreWorker } from '../../src/durable/capture.ts';
import type { CallRecord, StateImage } from '../../src/durable/image.ts';
import { DurableWorker, loadDurable, type Outcome } from '../../src/durable/worker.ts';
import { answer, type EndState } from './durable-app.ts';

/** A state image on the wire: the image as JSON, its chunks in base64 by digest. */
export interface WireState {
  image: StateImage;
  chunks: Record<string, string>;
}

/** What a host reports after a step; `state` is the image it captured at the step's end. */
export type Step = { line: string; state: WireState; /** base64 of `materialize` of the image the step started from. */ materialized?: string } & (
  | { status: 'suspended'; pending: CallRecord }
  | { status: 'returned'; /** The i64 result, in decimal. */ result: string; /** base64 of the program's memory. */ memory: string; count: number }
);

export interface StepOptions {
  /** Also materialize the incoming image to a `.wasm` (where it runs: nothing may compile there). */
  materialize?: boolean;
}

export interface Host {
  name: string;
  /** Starts the program: a fresh instance, `main(n)`, run until it suspends or returns. */
  start(n: number): Promise<Step>;
  /** Restores `state` into a fresh instance and resumes it; `answer` as text (null for an import without results). */
  resume(state: WireState, answer: string | null, options?: StepOptions): Promise<Step>;
}

/**
 * The host side for workerd and pages, an ES module over the bundle: `durableHost(wiz, load)`, where `load()`
 * reads the durable module (each step loads it anew: a step keeps nothing from an earlier one).
 */
export const HOST_JS = `
export const toBase64 = (bytes) => {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
};
export const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
export const toWire = (image, chunks) => ({ image, chunks: Object.fromEntries([...chunks].map(([d, b]) => [d, toBase64(b)])) });
export const fromWire = (state) => ({ image: state.image, chunks: new Map(Object.entries(state.chunks).map(([d, t]) => [d, fromBase64(t)])) });

export function durableHost(wiz, load) {
  // The step's report, and the image it holds as the library gives it (for a store that keeps bytes).
  async function report(worker, outcome) {
    const { image, chunks } = await wiz.captureImage(worker);
    const state = toWire(image, chunks);
    if (outcome.status !== 'returned') return { image, chunks, step: { status: 'suspended', line: outcome.line, pending: outcome.pending, state } };
    const e = worker.instance.exports;
    const memory = toBase64(new Uint8Array(e.memory.buffer));
    return { image, chunks, step: { status: 'returned', line: outcome.line, result: String(outcome.result), memory, count: e.count.value, state } };
  }
  async function start(n) {
    const worker = await wiz.DurableWorker.start(await load());
    return report(worker, worker.invoke('main', [n]));
  }
  async function resume(image, chunks, answer, options = {}) {
    const durable = await load();
    const materialized = options.materialize ? toBase64(await wiz.materialize(durable, image, chunks)) : undefined;
    const worker = await wiz.restoreWorker(durable, image, chunks);
    const out = await report(worker, worker.resume(answer ?? undefined));
    if (materialized !== undefined) out.step.materialized = materialized;
    return out;
  }
  return {
    start: async (n) => (await start(n)).step,
    resume: async (state, answer, options) => {
      const { image, chunks } = fromWire(state);
      return (await resume(image, chunks, answer, options)).step;
    },
    /** Both steps, also giving the image and its chunks as bytes. */
    startImage: start,
    resumeImage: resume,
  };
}
`;

export const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
export const fromBase64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'));

export function toWire(image: StateImage, chunks: ReadonlyMap<string, Uint8Array>): WireState {
  return { image, chunks: Object.fromEntries([...chunks].map(([d, b]) => [d, toBase64(b)])) };
}

export function fromWire(state: WireState): { image: StateImage; chunks: Map<string, Uint8Array> } {
  return { image: state.image, chunks: new Map(Object.entries(state.chunks).map(([d, t]) => [d, fromBase64(t)])) };
}

/** The answer to a suspended step's pending call, as text on the wire. */
export function wireAnswer(step: Step): string | null {
  if (step.status !== 'suspended') throw new Error(`no pending call: the program returned (${step.line})`);
  const value = answer(step.pending.name, step.pending.args);
  return value === undefined ? null : String(value);
}

/** The end state a returned step reports. */
export function endState(step: Step): EndState {
  if (step.status !== 'returned') throw new Error(`the program did not return: ${step.line}`);
  return { result: BigInt(step.result), memory: fromBase64(step.memory), count: step.count };
}

/** The same host in Node, on the library's source: the reference for every other host's images and files. */
export async function nodeHost(bytes: Uint8Array): Promise<Host> {
  const durable = await loadDurable(bytes);
  const report = async (worker: DurableWorker, outcome: Outcome): Promise<Step> => {
    const { image, chunks } = await captureImage(worker);
    const state = toWire(image, chunks);
    if (outcome.status !== 'returned') return { status: 'suspended', line: outcome.line, pending: outcome.pending, state };
    const e = worker.instance.exports;
    return {
      status: 'returned', line: outcome.line, result: String(outcome.result),
      memory: toBase64(new Uint8Array((e.memory as WebAssembly.Memory).buffer)), count: (e.count as WebAssembly.Global).value as number, state,
    };
  };
  return {
    name: 'node',
    async start(n) {
      const worker = await DurableWorker.start(durable);
      return report(worker, worker.invoke('main', [n]));
    },
    async resume(wire, text, options = {}) {
      const { image, chunks } = fromWire(wire);
      const materialized = options.materialize ? toBase64(await materialize(durable, image, chunks)) : undefined;
      const worker = await restoreWorker(durable, image, chunks);
      const step = await report(worker, worker.resume(text ?? undefined));
      return materialized === undefined ? step : { ...step, materialized };
    },
  };
}

export interface Chain {
  steps: Step[];
  /** Which host ran each step. */
  hosts: string[];
  /** Each step's time as its caller saw it (a request, a page call), in ms. */
  ms: number[];
}

/**
 * Runs `main(n)` to its end, one step per suspension, step k on `hostFor(k)`: only the wire state and the answer
 * pass from one step to the next.
 */
export async function runChain(n: number, hostFor: (k: number) => Host, options: StepOptions = {}): Promise<Chain> {
  const chain: Chain = { steps: [], hosts: [], ms: [] };
  for (let k = 0; ; k++) {
    const host = hostFor(k);
    const before = performance.now();
    const last = chain.steps[k - 1];
    const step = last ? await host.resume(last.state, wireAnswer(last), options) : await host.start(n);
    chain.ms.push(performance.now() - before);
    chain.steps.push(step);
    chain.hosts.push(host.name);
    if (step.status === 'returned') return chain;
    if (k > 1000) throw new Error('the chain does not end');
  }
}

/** Step times for a report line: `name: median x ms, max y ms over k steps`. */
export function timings(name: string, ms: readonly number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${name}: median ${sorted[sorted.length >> 1]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms over ${ms.length} steps`;
}
