// A journaled durable worker: every host call and every answer is journaled; a worker that dies between two saves
// is recovered from its latest image by replaying the journal suffix, and ends exactly as the uninterrupted run.
import { describe, expect, test } from 'vitest';
import { captureImage, restoreWorker } from '../src/durable/capture.ts';
import type { ImageChunks, StateImage } from '../src/durable/image.ts';
import { DurableWorker, loadDurable, type Outcome, type WorkerOptions } from '../src/durable/worker.ts';
import { WizError } from '../src/errors.ts';
import { memoryLog } from '../src/journal/journal.ts';
import { answer, durableApp, reference } from './helpers/durable-app.ts';


interface Saved { image: StateImage; chunks: ImageChunks }

/** The log of a store: entries by position, truncated below the latest save's position. */
function storeLog() {
  const entries = new Map<number, Uint8Array>();
  return {
    entries,
    /** Set when the process "died": nothing more reaches the store. */
    dead: false,
    append(entry: Uint8Array, position: number) {
      if (this.dead) return;
      if (entries.has(position)) throw new Error(`position ${position} taken`);
      entries.set(position, entry);
    },
    suffix(from: number): Uint8Array[] {
      const out: Uint8Array[] = [];
      for (let p = from; entries.has(p); p++) out.push(entries.get(p)!);
      return out;
    },
    truncate(below: number) {
      for (const p of entries.keys()) if (p < below) entries.delete(p);
    },
  };
}

function observed(worker: DurableWorker) {
  return {
    memory: new Uint8Array((worker.instance.exports.memory as WebAssembly.Memory).buffer).slice(),
    count: (worker.instance.exports.count as WebAssembly.Global).value as number,
  };
}

describe('a journaled worker', () => {
  test('answers are journaled: a crash after an answer is recovered by replay, and the answer is not asked again', async () => {
    const n = 7;
    const ref = await reference(n);
    const durable = await loadDurable(await durableApp());
    const log = storeLog();
    let worker = await DurableWorker.start(durable, { journal: { log } });
    worker.plan('main', [n]);
    let saved: Saved = await captureImage(worker);
    expect(saved.image.journal).toEqual({ position: 0, next: { initialize: false, entry: { name: 'main', args: [String(n)] } } });
    let outcome: Outcome = worker.continue();
    let crashes = 0;
    let asked = 0;
    for (let step = 0; outcome.status === 'suspended'; step++) {
      saved = await captureImage(worker);
      log.truncate(saved.image.journal!.position);
      // Every second step dies after giving the answer, before its save: the next process recovers.
      worker = await restoreWorker(durable, saved.image, saved.chunks, { journal: { log, replay: log.suffix(saved.image.journal!.position) } });
      expect(worker.awaiting).toBe(true);
      asked++;
      outcome = worker.continue(answer(outcome.pending.name, outcome.pending.args));
      if (step % 2 === 1 && outcome.status === 'suspended') {
        crashes++;
        worker = await restoreWorker(durable, saved.image, saved.chunks, { journal: { log, replay: log.suffix(saved.image.journal!.position) } });
        expect(worker.awaiting).toBe(false);
        const given = answer(saved.image.suspended!.pending.name, saved.image.suspended!.pending.args);
        expect(worker.recordedAnswer()?.result).toEqual(given === undefined ? { kind: 'none' } : { kind: 'value', value: given });
        const again = worker.continue(); // no answer: the journal has it
        expect(again.line).toBe(outcome.line);
        outcome = again;
      }
    }
    expect(crashes).toBeGreaterThan(3);
    expect(asked).toBe(2 * n + 2);
    expect(outcome).toMatchObject({ status: 'returned', result: ref.result });
    expect(observed(worker)).toEqual({ memory: ref.memory, count: ref.count });
  });

  test('host calls with checkpoints: a crash at any call is recovered from the latest checkpoint, bit for bit', async () => {
    const n = 9;
    const ref = await reference(n);
    const durable = await loadDurable(await durableApp());
    // The calls of the uninterrupted run: fetch and big in each round, wait in rounds 1, 4, 7.
    const calls = 2 * n + 3;
    for (let at = 1; at <= calls; at++) {
      const log = storeLog();
      let tried = 0;
      let performed = 0;
      let crashAt = at;
      const make = <T>(value: () => T) => {
        if (++tried === crashAt) {
          log.dead = true; // the process dies inside this call, before making it
          throw new Error('killed');
        }
        performed++;
        return value();
      };
      const hosts = {
        rpc: {
          fetch: (x: number) => make(() => answer('rpc.fetch', [String(x)])),
          wait: () => make(() => undefined),
          big: (x: bigint) => make(() => answer('rpc.big', [String(x)])),
        },
      };
      const options = (replay: Uint8Array[]): WorkerOptions => ({ imports: hosts, journal: { log, replay, checkpoint: { calls: 4 } } });
      let worker = await DurableWorker.start(durable, options([]));
      worker.plan('main', [n]);
      let saved: Saved = await captureImage(worker);
      let outcome: Outcome | undefined;
      let checkpoints = 0;
      let crashed = 0;
      while (outcome?.status !== 'returned') {
        try {
          outcome = worker.continue();
          while (outcome.status === 'checkpoint') {
            checkpoints++;
            saved = await captureImage(worker);
            log.truncate(saved.image.journal!.position);
            outcome = worker.continue();
          }
        } catch (e) {
          if (!log.dead) throw e;
          log.dead = false;
          crashed++;
          crashAt = -1;
          // The call in flight was made but not journaled: it is made again (here: it was not, the crash came first).
          worker = await restoreWorker(durable, saved.image, saved.chunks, options(log.suffix(saved.image.journal!.position)));
        }
      }
      expect(crashed).toBe(1);
      expect(checkpoints).toBeGreaterThan(3);
      expect(outcome).toMatchObject({ status: 'returned', result: ref.result });
      expect(observed(worker)).toEqual({ memory: ref.memory, count: ref.count });
      // Each call was made once: those before the crash were replayed from the journal, never made again.
      expect(performed).toBe(calls);
    }
  });

  test('a replay that does not match the journal stops with one line naming the entry', async () => {
    const durable = await loadDurable(await durableApp());
    const log = memoryLog();
    const worker = await DurableWorker.start(durable, { imports: { rpc: { fetch: (x: number) => x + 1, wait: () => {}, big: (x: bigint) => x } }, journal: { log } });
    worker.plan('main', [3]);
    const saved = await captureImage(worker);
    expect(worker.continue().status).toBe('returned');
    // A journal whose first two entries are swapped: the first call is not the recorded one.
    const [first, second, ...rest] = log.entries;
    const other = await restoreWorker(durable, saved.image, saved.chunks, { journal: { log: memoryLog(), replay: [second!, first!, ...rest] } });
    let error: unknown;
    try {
      other.continue();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WizError);
    expect((error as Error).message).toBe('replay diverged at journal entry 0: expected rpc.big(1), got rpc.fetch(0)');
  });
});
