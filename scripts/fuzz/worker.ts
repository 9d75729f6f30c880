// Checks modules for the fuzz runner in a worker thread, which the runner terminates when a module takes too
// long (an init function that loops cannot be interrupted from its own thread).
import { parentPort } from 'node:worker_threads';
import { checkModule, type CheckOptions, type InitOutcome } from './check.ts';

export type WorkerRequest = { id: number; wasm: Uint8Array; options: CheckOptions };
export type WorkerReply = { id: number; outcomes: InitOutcome[] } | { id: number; error: string };

parentPort!.on('message', async ({ id, wasm, options }: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = { id, outcomes: await checkModule(wasm, options) };
  } catch (e) {
    reply = { id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
  parentPort!.postMessage(reply);
});
