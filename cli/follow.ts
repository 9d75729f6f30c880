// `wiz follow`: a replica of a worker. It restores the worker's latest state and replays its journal as the
// running process appends to it, so that it stands where that process stands; when the lease of that process
// runs out (it died), it takes the lease and goes on live from there. A replica that falls behind a truncation
// of the journal joins again from the latest state.
import { writeText } from './io.ts';
import { WizError } from '../src/errors.ts';
import type { Session } from './journaled.ts';

/** How long a replica waits between two looks at the journal. */
const POLL_MS = 2;

const BEHIND = 'the replica fell behind a truncation of the journal';

class Behind extends Error {
  constructor() {
    super(BEHIND);
  }
}

export async function follow(session: Session, id: string): Promise<void> {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const say = (line: string) => writeText(2, `wiz: ${line}\n`);
  let leading = false;
  for (;;) {
    session.latest = await session.store.load(id);
    if (!session.latest) throw new WizError('usage', `no worker "${id}" in the store`);
    const { image } = session.latest;
    if (!image.suspended && !image.journal?.next) throw new WizError('usage', `worker "${id}" has finished its run: there is nothing to follow`);
    const from = image.journal?.position ?? 0;
    let caughtUp = false;
    const next = (position: number): Uint8Array | undefined => {
      for (;;) {
        const entry = session.journal.entry(position);
        if (entry) return entry;
        const first = session.journal.first();
        if (first !== undefined && first > position) throw new Behind();
        if (!caughtUp) {
          caughtUp = true;
          say(`following worker "${id}": caught up at journal position ${position} (joined ${Math.round(performance.now())} ms after start, ${position - from} entries replayed)`);
        }
        // The process that ran it is gone (not merely done: a released lease means it stopped where it may stop).
        if (session.journal.lease() !== undefined && session.journal.leaseFree() && session.journal.acquire()) {
          leading = true;
          say(`took over worker "${id}" at journal position ${position}`);
          return undefined;
        }
        Atomics.wait(nap, 0, 0, POLL_MS);
      }
    };
    try {
      const worker = await session.restore({ next });
      if (!leading) {
        // Followed to an outcome the running process reached and saved: say it; saving is that process's.
        const outcome = worker.continue();
        if (!leading) {
          writeText(1, `followed: ${outcome.line}\n`);
          return;
        }
        // Took over on the way: from here it is this process's run.
        await session.drive(worker, () => outcome);
        return;
      }
      await session.drive(worker, () => worker.continue());
      return;
    } catch (e) {
      if (e instanceof Behind || (e instanceof WizError && e.message.includes(BEHIND))) {
        say(`worker "${id}"'s journal was truncated past this replica: joining again from its latest state`);
        continue;
      }
      throw e;
    }
  }
}
