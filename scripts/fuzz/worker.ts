// Checks modules for the fuzz runner in a worker thread, which the runner terminates when a module takes too
// long (an init function that loops cannot be interrupted from its own thread).
import { parentPort } from 'node:worker_threads';
import { runJob } from '../../cli/job.ts';
import { isWizError } from '../../src/errors.ts';
import { concat } from '../../src/parse/writer.ts';
import { checkModule, type CheckOptions, type InitOutcome } from './check.ts';

/** `check`: the differential checks of one module. `init`: `wiz init` as the CLI runs it, in this thread. */
export type WorkerRequest =
  | { id: number; kind: 'check'; wasm: Uint8Array; options: CheckOptions }
  | { id: number; kind: 'init'; wasm: Uint8Array };

/** What `wiz init` did: an output, a WizError (what the CLI prints), or anything else (a crash). */
export type InitResult = { ok: Uint8Array; warnings: string[] } | { wizError: { code: string; message: string } } | { crash: string };

export type WorkerReply = { id: number; outcomes: InitOutcome[] } | { id: number; init: InitResult } | { id: number; error: string };

/** The CLI's `wiz init IN -o OUT` job, without WASI, and how it ended. */
export async function cliInit(wasm: Uint8Array): Promise<InitResult> {
  const warnings: string[] = [];
  try {
    const parts = await runJob({
      kind: 'init', input: wasm, renames: [], printToStderr: false,
      host: { allowWasi: false, inheritStdio: false, inheritEnv: false, dirs: [], mapdirs: [], preloads: [], deterministic: false, stdoutTaken: false },
    }, { warn: (line) => warnings.push(line), print: () => {} });
    return { ok: concat(parts), warnings };
  } catch (e) {
    if (isWizError(e)) return { wizError: { code: e.code, message: e.message } };
    return { crash: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}

parentPort?.on('message', async (request: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = request.kind === 'check'
      ? { id: request.id, outcomes: await checkModule(request.wasm, request.options) }
      : { id: request.id, init: await cliInit(request.wasm) };
  } catch (e) {
    reply = { id: request.id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
  parentPort!.postMessage(reply);
});
