// The durable hosts at the edge: a worker in workerd (the durable module given at deploy time, as Cloudflare runs
// it) and a page in headless Chromium (images kept in IndexedDB between steps), each over the browser bundle.
//
// Chromium follows the rule of test/helpers/workerd.ts: `launchChromiumOrSkip(what)` prints why and returns
// undefined when Chromium is missing or cannot start; under CI=true (or WIZ_REQUIRE_BROWSER=1) it throws instead.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
export { launchChromiumOrSkip } from './chromium.ts';
import { HOST_JS, toBase64, type Host, type StepOptions, type Step, type WireState } from './durable-hosts.ts';
import { startWorkerd, type Workerd } from './workerd.ts';

/** What a library call that failed reports: the error's class, code and message. */
export interface Failure {
  name: string;
  code?: string;
  message: string;
}

export interface WorkerdHost extends Host {
  workerd: Workerd;
  /** `loadDurable(bytes)` in the worker, without the deploy-time module: how it fails. */
  loadWithoutModule(): Promise<Failure | { loaded: true }>;
  stop(): Promise<void>;
}

// Every request loads the module anew from what was deployed (the bytes and the compiled module): the worker keeps
// nothing between requests, so a request sees only what it carries.
const WORKER = `import app from './app.wasm';
import * as wiz from './wiz.js';
import { durableHost, fromBase64 } from './durable-host.js';
import { APP } from './app-bytes.js';

const host = durableHost(wiz, () => wiz.loadDurable(fromBase64(APP), { module: app }));
const failure = (e) => ({ name: e.name, code: e.code, message: e.message });
const routes = {
  start: (body) => host.start(body.n),
  resume: (body) => host.resume(body.state, body.answer, body.options),
  'load-without-module': () => wiz.loadDurable(fromBase64(APP)).then(() => ({ loaded: true }), failure),
};

export default {
  async fetch(request) {
    const route = routes[new URL(request.url).pathname.slice(1)];
    if (!route) return new Response('no such route', { status: 404 });
    try {
      return Response.json(await route(await request.json()));
    } catch (e) {
      return new Response(String(e?.stack ?? e), { status: 500 });
    }
  },
};
`;

/** Starts workerd with the durable module (`bytes`) deployed as a wasm module and the bundle (`bundle`, its code). */
export async function startWorkerdHost(bytes: Uint8Array, bundle: string): Promise<WorkerdHost> {
  const workerd = await startWorkerd({
    name: 'durable',
    main: WORKER,
    modules: { 'wiz.js': bundle, 'durable-host.js': HOST_JS, 'app-bytes.js': `export const APP = '${toBase64(bytes)}';\n` },
    wasm: { 'app.wasm': bytes },
  });
  const post = async <T>(route: string, body: unknown): Promise<T> => {
    const response = await workerd.fetch(`/${route}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    if (!response.ok) throw new Error(`workerd /${route}: ${response.status} ${await response.text()}\n${workerd.logs()}`);
    return response.json() as Promise<T>;
  };
  return {
    name: 'workerd',
    workerd,
    start: (n) => post<Step>('start', { n }),
    resume: (state, answer, options) => post<Step>('resume', { state, answer, options }),
    loadWithoutModule: () => post('load-without-module', {}),
    stop: () => workerd.stop(),
  };
}

export interface PageHost extends Host {
  page: Page;
  /** Loads the page anew: a fresh JavaScript realm, nothing kept but what IndexedDB holds. */
  reload(): Promise<void>;
  /** Starts `main(n)` and stores the image in IndexedDB. */
  startStored(n: number): Promise<Step>;
  /** Resumes the image IndexedDB holds with `answer`, and stores the next one there. */
  resumeStored(answer: string | null, options?: StepOptions): Promise<Step>;
  close(): Promise<void>;
}

// The page's script: the library's bundle, the shared host, and a store of one image in IndexedDB, kept as the
// library gives it (structured clone: the chunks stay bytes).
const PAGE_JS = `import * as wiz from '/wiz.js';
import { durableHost } from '/durable-host.js';

const bytes = new Uint8Array(await (await fetch('/app.wasm')).arrayBuffer());
const host = durableHost(wiz, () => wiz.loadDurable(bytes));

const request = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
async function store(mode, use) {
  const open = indexedDB.open('wiz-durable', 1);
  open.onupgradeneeded = () => open.result.createObjectStore('images');
  const db = await request(open);
  try {
    const tx = db.transaction('images', mode);
    const result = await request(use(tx.objectStore('images')));
    await new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); });
    return result;
  } finally {
    db.close();
  }
}
const keep = ({ image, chunks, step }) => store('readwrite', (s) => s.put({ image, chunks }, 'chain')).then(() => step);

globalThis.durable = {
  start: host.start,
  resume: host.resume,
  startStored: async (n) => keep(await host.startImage(n)),
  async resumeStored(answer, options) {
    const stored = await store('readonly', (s) => s.get('chain'));
    if (!stored) throw new Error('IndexedDB holds no image');
    return keep(await host.resumeImage(stored.image, stored.chunks, answer, options));
  },
};
document.documentElement.dataset.ready = '';
`;

const PAGE_HTML = '<!doctype html><meta charset="utf-8"><title>durable</title><script type="module" src="/page.js"></script>\n';

/**
 * Serves the page, the bundle, the host module and the durable module on 127.0.0.1 (a secure context: WebCrypto
 * and IndexedDB are there), and opens the page in a fresh context of `browser` (an empty IndexedDB).
 */
export async function startPageHost(browser: Browser, bytes: Uint8Array, bundle: string): Promise<PageHost> {
  const files: Record<string, [string, string | Uint8Array]> = {
    '/': ['text/html; charset=utf-8', PAGE_HTML],
    '/page.js': ['text/javascript; charset=utf-8', PAGE_JS],
    '/wiz.js': ['text/javascript; charset=utf-8', bundle],
    '/durable-host.js': ['text/javascript; charset=utf-8', HOST_JS],
    '/app.wasm': ['application/wasm', bytes],
  };
  const server: Server = createServer((req, res) => {
    const file = files[new URL(req.url ?? '/', 'http://localhost').pathname];
    if (!file) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    else res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' }).end(file[1]);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Waits have no short limit: on a busy machine a page may take seconds to load.
  page.setDefaultTimeout(120_000);
  const ready = async () => {
    await page.waitForSelector('html[data-ready]', { state: 'attached' }).catch((e: Error) => {
      throw new Error(`the page did not get ready: ${problems.join('; ') || e.message}`);
    });
  };
  await page.goto(url);
  await ready();
  type Durable = Record<string, (...args: unknown[]) => Promise<Step>>;
  const call = (method: string, ...args: unknown[]) =>
    page.evaluate(([m, a]) => ((globalThis as unknown as { durable: Durable }).durable[m as string]!)(...(a as unknown[])), [method, args] as const);
  return {
    name: 'chromium',
    page,
    start: (n) => call('start', n),
    resume: (state: WireState, answer, options) => call('resume', state, answer, options),
    startStored: (n) => call('startStored', n),
    resumeStored: (answer, options) => call('resumeStored', answer, options),
    async reload() {
      await page.reload();
      await ready();
    },
    async close() {
      await context.close();
      await new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); });
    },
  };
}
