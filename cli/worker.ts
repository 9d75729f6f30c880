// Runs a job in a worker thread, so that the main thread can stop it when its time is up.
import { parentPort, workerData } from 'node:worker_threads';
import { isWizError } from '../src/errors.ts';
import { runJob, type Job } from './job.ts';

export type WorkerReply =
  | { warn: string }
  | { print: string }
  | { ok: Uint8Array }
  | { error: { code: string; message: string } }
  | { internal: string };

const reply = (message: WorkerReply, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(message, transfer);

try {
  const output = await runJob(workerData as Job, {
    warn: (line) => reply({ warn: line }),
    print: (line) => reply({ print: line }),
  });
  const copy = output.slice();
  reply({ ok: copy }, [copy.buffer]);
} catch (e) {
  if (isWizError(e)) reply({ error: { code: e.code, message: e.message } });
  else reply({ internal: e instanceof Error ? e.message : String(e) });
}
