// wiz workers as Restate virtual objects: one object per worker id, so Restate guarantees a single writer. The guest
// waits for RPC replies in its import `rpc.call`; while it waits, its state is an image in a wiz store and the
// handler awaits a Restate awakeable, which survives restarts of this process (and of the machine).
//
//   WIZ_STORE=.wiz RPC_URL=http://127.0.0.1:8000/rpc PORT=9080 npx node examples/restate/service.ts
//   restate deployments register http://127.0.0.1:9080        (or POST {"uri": …} to the admin API's /deployments)
//   curl -X POST http://127.0.0.1:8080/worker/order-17/start/send -H 'content-type: application/json' \
//        -d '{"module": "<base64 of a wiz asyncify output>", "invoke": "main(3)"}'
//
// Each time the guest calls rpc.call(x), RPC_URL receives {"worker", "generation", "awakeable", "request": x} and
// answers later by resolving the awakeable: POST http://127.0.0.1:8080/restate/awakeables/<id>/resolve with the
// reply as the JSON body.
import * as restate from '@restatedev/restate-sdk';
import { openStore, type StoreKind } from '../../cli/stores/open.ts';
import { captureImage, DurableWorker, loadDurable, parseInvocation, restoreWorker, sha256Hex } from '../../src/index.ts';
import type { DurableModule, ImageStore, Outcome, StateImage } from '../../src/index.ts';

export interface StartRequest {
  /** Base64 of a durable module (`wiz asyncify` output). */
  module: string;
  /** The export to run: `name` or `name(arg, …)`, as `wiz run --invoke` reads it. */
  invoke: string;
}

/** Where a worker stands after a step: waiting in rpc.call in a stored generation, or done. */
type Step =
  | { status: 'waiting'; generation: number; image: string; request: string[] }
  | { status: 'returned'; result: string; line: string };

export interface WorkerStatus {
  generation: number | null;
  waiting: boolean;
  /** `sha256:<hex>` of the latest image's JSON; with the generation, the position of the worker's log. */
  image: string | null;
}

const storeDir = process.env.WIZ_STORE ?? '.wiz';
const storeKind = (process.env.WIZ_STORE_KIND ?? 'sqlite') as StoreKind;
const rpcUrl = process.env.RPC_URL;
let opened: Promise<ImageStore> | undefined;
const store = (): Promise<ImageStore> => (opened ??= openStore(storeDir, storeKind));
// Compiled modules by digest: a process compiles each module once, whatever the workers that run it.
const modules = new Map<string, Promise<DurableModule>>();

async function durableModule(digest: string): Promise<DurableModule> {
  let durable = modules.get(digest);
  if (!durable) {
    const bytes = await (await store()).getModule(digest);
    if (!bytes) throw new restate.TerminalError(`the store holds no module ${digest}`);
    durable = loadDurable(bytes);
    modules.set(digest, durable);
    durable.catch(() => modules.delete(digest));
  }
  return durable;
}

const imageDigest = async (image: StateImage): Promise<string> => `sha256:${await sha256Hex(new TextEncoder().encode(JSON.stringify(image)))}`;

/**
 * Saves a suspended worker as generation `generation`, or finds it saved: a retried step (the process died after
 * the save, before Restate journaled the step) does not store a second copy.
 */
async function settle(key: string, generation: number, worker: DurableWorker, outcome: Outcome): Promise<Step> {
  if (outcome.status === 'returned') return { status: 'returned', result: String(outcome.result), line: outcome.line };
  const images = await store();
  const saved = (await images.generations(key)).includes(generation) ? await images.load(key, generation) : undefined;
  let image = saved?.image;
  if (!image) {
    const captured = await captureImage(worker);
    const at = await images.save(key, captured.image, captured.chunks);
    if (at.generation !== generation) throw new restate.TerminalError(`worker ${key}: the store saved generation ${at.generation}, Restate expected ${generation}`);
    image = captured.image;
  }
  return { status: 'waiting', generation, image: await imageDigest(image), request: outcome.pending.args };
}

/** The first step: stores the module, runs the export until the guest first waits (or returns). */
async function begin(key: string, request: StartRequest): Promise<Step & { moduleDigest: string }> {
  const moduleDigest = await (await store()).putModule(Buffer.from(request.module, 'base64'));
  const durable = await durableModule(moduleDigest);
  const call = parseInvocation(durable.instrumented.context, request.invoke);
  const worker = await DurableWorker.start(durable);
  return { moduleDigest, ...(await settle(key, 0, worker, worker.invoke(call.name, call.args))) };
}

/** A later step: a fresh instance restored from generation `generation`, resumed with the reply. */
async function advance(key: string, moduleDigest: string, generation: number, reply: unknown): Promise<Step> {
  const loaded = await (await store()).load(key, generation);
  if (!loaded) throw new restate.TerminalError(`worker ${key}: the store lost generation ${generation}`);
  const worker = await restoreWorker(await durableModule(moduleDigest), loaded.image, loaded.chunks);
  return settle(key, generation + 1, worker, worker.resume(reply));
}

/** Hands the guest's request to the RPC service; it may arrive twice after a crash, the awakeable id tells. */
async function send(message: { worker: string; generation: number; awakeable: string; request: string[] }): Promise<void> {
  if (!rpcUrl) return console.log(`${message.worker} waits in rpc.call(${message.request.join(', ')}): resolve awakeable ${message.awakeable}`);
  const response = await fetch(rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(message) });
  if (!response.ok) throw new Error(`the RPC service answered ${response.status}`); // retried by Restate
}

export const worker = restate.object({
  name: 'worker',
  handlers: {
    async start(ctx: restate.ObjectContext, request: StartRequest): Promise<{ result: string; line: string; generations: number }> {
      if ((await ctx.get<number>('generation')) !== null) throw new restate.TerminalError(`worker ${ctx.key} was started already`);
      // Every step that runs the guest or writes the store is a journaled `ctx.run`: on a replay after a crash its
      // recorded result is used, the guest does not run again, and nothing is stored twice.
      const first = await ctx.run('start', () => begin(ctx.key, request));
      const moduleDigest = first.moduleDigest;
      let step: Step = first;
      let generations = 0;
      while (step.status === 'waiting') {
        const { generation, image, request: args } = step;
        generations = generation + 1;
        ctx.set('generation', generation);
        ctx.set('image', image);
        ctx.set('waiting', true);
        const reply = ctx.awakeable<unknown>();
        await ctx.run(`send ${generation}`, () => send({ worker: ctx.key, generation, awakeable: reply.id, request: args }));
        const answer = await reply.promise; // seconds or days; this process may be gone meanwhile
        ctx.set('waiting', false);
        step = await ctx.run(`resume ${generation}`, () => advance(ctx.key, moduleDigest, generation, answer));
      }
      return { result: step.result, line: step.line, generations };
    },

    status: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext): Promise<WorkerStatus> => ({
      generation: await ctx.get<number>('generation'),
      waiting: (await ctx.get<boolean>('waiting')) ?? false,
      image: await ctx.get<string>('image'),
    })),
  },
});

if (import.meta.main) {
  const port = await restate.serve({ services: [worker], port: Number(process.env.PORT ?? 9080) });
  console.log(`wiz worker service on port ${port}, store ${storeDir} (${storeKind})`);
}
