// wiz workers as Restate virtual objects (examples/restate/service.ts) on the real Restate server: two workers wait
// in rpc.call through several round trips, the service process is SIGKILLed while both wait and started again,
// and both end with the results of the same guest run uninterrupted in this process.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openStore } from '../cli/stores/open.ts';
import { asyncify } from '../src/durable/asyncify.ts';
import { DurableWorker, loadDurable } from '../src/durable/worker.ts';
import { freePort, GUEST, startRestate, startService, type Child, type Restate } from './helpers/restate.ts';
import { wat } from './helpers/wat.ts';

/** What the RPC service answers to `x`. */
const reply = (x: number): number => (((x % 997) + 997) % 997) * 3 + 1;
const SERVICE = 'examples/restate/service.ts';
const DELAY_MS = 300;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface RpcMessage { worker: string; generation: number; awakeable: string; request: string[] }

/** The RPC service of the test: keeps each worker's requests by generation (a repeated send is dropped). */
class Inbox {
  private readonly messages = new Map<string, RpcMessage & { at: number }>();
  private readonly waiters = new Map<string, ((m: RpcMessage & { at: number }) => void)[]>();
  take(m: RpcMessage): void {
    const key = `${m.worker}/${m.generation}`;
    if (this.messages.has(key)) return;
    const arrived = { ...m, at: performance.now() };
    this.messages.set(key, arrived);
    for (const wake of this.waiters.get(key) ?? []) wake(arrived);
  }
  get(worker: string, generation: number): Promise<RpcMessage & { at: number }> {
    const key = `${worker}/${generation}`;
    const m = this.messages.get(key);
    return m ? Promise.resolve(m) : new Promise((resolve) => this.waiters.set(key, [...(this.waiters.get(key) ?? []), resolve]));
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

let restate: Restate | undefined;
let service: Child | undefined;
let rpcServer: Server | undefined;
let storeDir = '';
let servicePort = 0;
let serviceEnv: Record<string, string> = {};
const inbox = new Inbox();
let moduleBase64 = '';
let uninterrupted: (n: number) => Promise<string>;

beforeAll(async () => {
  restate = await startRestate('the Restate tests');
  if (!restate) return;
  const durableBytes = await asyncify(await wat(GUEST), { suspendOn: ['rpc.call'] });
  moduleBase64 = Buffer.from(durableBytes).toString('base64');
  const durable = await loadDurable(durableBytes);
  uninterrupted = async (n) => {
    const worker = await DurableWorker.start(durable, { imports: { rpc: { call: (x: number) => reply(x) } } });
    const outcome = worker.invoke('main', [n]);
    if (outcome.status !== 'returned') throw new Error('the uninterrupted run suspended');
    return String(outcome.result);
  };
  rpcServer = createServer((request, response) => {
    let body = '';
    request.on('data', (d: Buffer) => { body += d.toString(); });
    request.on('end', () => { inbox.take(JSON.parse(body) as RpcMessage); response.end('ok'); });
  });
  const rpcPort = await freePort();
  await new Promise<void>((resolve) => rpcServer!.listen(rpcPort, '127.0.0.1', resolve));
  storeDir = mkdtempSync(join(tmpdir(), 'wiz-restate-store-'));
  servicePort = await freePort();
  serviceEnv = { WIZ_STORE: storeDir, RPC_URL: `http://127.0.0.1:${rpcPort}/rpc` };
  service = await startService(SERVICE, servicePort, serviceEnv);
  expect(await restate.register(`http://127.0.0.1:${servicePort}`)).toContain('worker');
}, 300_000);

afterAll(async () => {
  await service?.stop();
  await restate?.stop();
  rpcServer?.close();
  if (storeDir) rmSync(storeDir, { recursive: true, force: true });
});

/** Starts worker `key` on `main(n)` without waiting for it (Restate's send, idempotent by key); its invocation id. */
async function start(key: string, n: number): Promise<string> {
  const response = await fetch(`${restate!.ingress}/worker/${key}/start/send`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': `start-${key}` },
    body: JSON.stringify({ module: moduleBase64, invoke: `main(${n})` }),
  });
  expect(response.ok, await response.clone().text()).toBe(true);
  return ((await response.json()) as { invocationId: string }).invocationId;
}

async function answer(m: RpcMessage): Promise<number> {
  const response = await fetch(`${restate!.ingress}/restate/awakeables/${m.awakeable}/resolve`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(reply(Number(m.request[0]))),
  });
  expect(response.ok, await response.clone().text()).toBe(true);
  return performance.now();
}

async function outcome(invocation: string): Promise<{ result: string; line: string; generations: number }> {
  const response = await fetch(`${restate!.ingress}/restate/invocation/${invocation}/attach`);
  expect(response.ok, await response.clone().text()).toBe(true);
  return response.json() as Promise<{ result: string; line: string; generations: number }>;
}

async function status(key: string): Promise<{ generation: number | null; waiting: boolean; image: string | null }> {
  const response = await fetch(`${restate!.ingress}/worker/${key}/status`, { method: 'POST' });
  expect(response.ok, await response.clone().text()).toBe(true);
  return response.json() as Promise<{ generation: number | null; waiting: boolean; image: string | null }>;
}

describe('wiz workers as Restate virtual objects', () => {
  test('two workers through several RPC round trips and a SIGKILL of the service equal the uninterrupted runs', async (ctx) => {
    if (!restate) return ctx.skip();
    const workers = [{ key: 'alice', n: 3 }, { key: 'bob', n: 5 }];
    const KILL_AT = 1;
    let restarted!: () => void;
    const afterRestart = new Promise<void>((resolve) => { restarted = resolve; });
    const roundTrips: number[] = [];
    const recoveries: number[] = [];

    const invocations = await Promise.all(workers.map((w) => start(w.key, w.n)));
    // Each worker's replies come DELAY_MS after its request, except the KILL_AT one: after the restart.
    const answered = workers.map(async (w) => {
      let resolvedAt: number | undefined;
      for (let g = 0; g < w.n; g++) {
        const m = await inbox.get(w.key, g);
        if (resolvedAt !== undefined) (g === KILL_AT + 1 ? recoveries : roundTrips).push(m.at - resolvedAt);
        await (g === KILL_AT ? afterRestart : sleep(DELAY_MS));
        resolvedAt = await answer(m);
      }
    });

    await Promise.all(workers.map((w) => inbox.get(w.key, KILL_AT)));
    for (const w of workers) expect(await status(w.key)).toMatchObject({ generation: KILL_AT, waiting: true });
    await service!.stop('SIGKILL');
    await sleep(DELAY_MS);
    service = await startService(SERVICE, servicePort, serviceEnv);
    restarted();

    await Promise.all(answered);
    const results = await Promise.all(invocations.map(outcome));
    const store = await openStore(storeDir);
    for (const [i, w] of workers.entries()) {
      const expected = await uninterrupted(w.n);
      expect(results[i]).toEqual({ result: expected, line: `main(${w.n}) = ${expected}`, generations: w.n });
      expect(await status(w.key)).toMatchObject({ generation: w.n - 1, waiting: false });
      // One generation per suspension, none saved twice by a replayed step.
      expect(await store.generations(w.key)).toEqual([...Array(w.n).keys()]);
    }
    await store.close();
    // The restarted process did the resumes after the kill.
    for (const w of workers) expect(service!.logs()).toContain(`worker/${w.key}/start`);
    console.log(`Restate round trips with two workers (resolve → next request): median ${median(roundTrips).toFixed(1)} ms over ${roundTrips.length}; the first after the restart: ${recoveries.map((t) => t.toFixed(0)).join(', ')} ms`);
  }, 600_000);

  test('round trip per suspended RPC, answered at once', async (ctx) => {
    if (!restate) return ctx.skip();
    const n = 12;
    const invocation = await start('bench', n);
    const roundTrips: number[] = [];
    let resolvedAt: number | undefined;
    for (let g = 0; g < n; g++) {
      const m = await inbox.get('bench', g);
      if (resolvedAt !== undefined) roundTrips.push(m.at - resolvedAt);
      resolvedAt = await answer(m);
    }
    expect((await outcome(invocation)).result).toBe(await uninterrupted(n));
    console.log(`Restate round trip per suspended RPC (resolve awakeable → restore image → resume → save → next request): median ${median(roundTrips).toFixed(1)} ms, min ${Math.min(...roundTrips).toFixed(1)} ms, max ${Math.max(...roundTrips).toFixed(1)} ms over ${roundTrips.length}`);
  }, 600_000);
});
