// Runs one job in a child process, so that the parent can kill it when its time is up: a worker thread
// blocked in a host call (a WASI sleep or read) could not be stopped, and would keep wiz from exiting.
import { isWizError } from '../src/errors.ts';
import { concat } from '../src/parse/writer.ts';
import { runHere, type Warning } from './build/index.ts';
import type { HostTrace } from './host.ts';
import type { Job } from './job.ts';

export type ChildReply =
  | { ok: Uint8Array; warnings: Warning[]; trace?: HostTrace }
  | { error: { code: string; message: string } }
  | { internal: string };

process.once('message', async (job: Job) => {
  let reply: ChildReply;
  try {
    // One array crosses the process boundary (cloning views would clone whole memories).
    const ran = await runHere(job);
    reply = { ok: concat(ran.parts), warnings: ran.warnings, trace: ran.trace };
  } catch (e) {
    reply = isWizError(e) ? { error: { code: e.code, message: e.message } } : { internal: e instanceof Error ? e.message : String(e) };
  }
  process.send!(reply, () => process.exit(0));
});
