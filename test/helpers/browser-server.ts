// A tiny static server for the browser demo: the page and its script (browser/), the module it fetches
// (browser/counter.wat, assembled on start), and the library's browser bundle. Nothing else is served.
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { wat } from './wat.ts';

const root = join(import.meta.dirname, '..', '..');
export const BROWSER_SOURCES = join(root, 'browser');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json',
  '.wasm': 'application/wasm',
};

export interface DemoServer {
  /** The demo page's address, e.g. `http://127.0.0.1:PORT/browser/demo.html`. */
  url: string;
  /** The module the page fetches. */
  wasm: Uint8Array;
  /** Paths asked for that were not found (a page that asks for something missing is a broken page). */
  missing: string[];
  close(): Promise<void>;
}

/** Serves the demo on 127.0.0.1 (a secure context, so WebCrypto is there); `bundleDir` holds wiz.js. */
export async function startDemoServer(bundleDir: string, port = 0): Promise<DemoServer> {
  const wasm = await wat(await readFile(join(BROWSER_SOURCES, 'counter.wat'), 'utf8'));
  const files: Record<string, () => Promise<Uint8Array | string>> = {
    '/browser/demo.html': () => readFile(join(BROWSER_SOURCES, 'demo.html')),
    '/browser/demo.js': () => readFile(join(BROWSER_SOURCES, 'demo.js')),
    '/browser/counter.wasm': async () => wasm,
    '/dist/browser/wiz.js': () => readFile(join(bundleDir, 'wiz.js')),
    '/dist/browser/wiz.js.map': () => readFile(join(bundleDir, 'wiz.js.map')),
  };
  const missing: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/' || path === '/browser/') {
      res.writeHead(302, { location: '/browser/demo.html' }).end();
      return;
    }
    const file = files[path];
    if (!file) {
      missing.push(path);
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}\n`);
      return;
    }
    file().then(
      (body) => res.writeHead(200, { 'content-type': TYPES[path.slice(path.lastIndexOf('.'))]!, 'cache-control': 'no-store' }).end(body),
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}/browser/demo.html`,
    wasm,
    missing,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
