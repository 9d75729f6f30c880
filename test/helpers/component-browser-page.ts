// A page for components in headless Chromium: the library's browser bundle, jco's transpiler and preview2-shim's
// browser build served from node_modules, and an import map that resolves their bare specifiers as a browser
// bundler would (each package's `exports`, never its `node` condition). Components are put on the server by the
// test and fetched by the page; PAGE_MODULE holds what the page does with them.
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize, posix } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = join(import.meta.dirname, '..', '..');
/** The packages the page loads from node_modules: nothing else there is served. */
export const PAGE_PACKAGES = ['@bytecodealliance/jco-transpile', '@bytecodealliance/preview2-shim'];
/** Conditions a bundler targeting browsers matches (`node` never does). */
const BROWSER_CONDITIONS = new Set(['browser', 'import', 'module', 'default']);

/** The file an `exports` entry names for a browser: the first condition in the entry's order that a browser matches. */
function browserTarget(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (typeof entry !== 'object' || entry === null) return undefined;
  for (const [condition, value] of Object.entries(entry)) {
    if (!BROWSER_CONDITIONS.has(condition)) continue;
    const target = browserTarget(value);
    if (target) return target;
  }
  return undefined;
}

/** Import map entries for a package's `exports` (a `*` pattern expanded over the files it matches). */
export function packageImports(name: string): Record<string, string> {
  const dir = join(root, 'node_modules', name);
  const { exports } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  const url = (target: string) => `/node_modules/${name}/${posix.normalize(target)}`;
  const out: Record<string, string> = {};
  for (const [key, entry] of Object.entries(exports)) {
    const target = browserTarget(entry);
    if (!target || target.endsWith('.d.ts')) continue;
    const specifier = key === '.' ? name : `${name}/${key.slice(2)}`;
    if (!key.includes('*')) {
      out[specifier] = url(target);
      continue;
    }
    const [prefix, suffix] = target.split('*') as [string, string];
    for (const file of readdirSync(join(dir, prefix)).filter((f) => f.endsWith(suffix)).sort()) {
      out[specifier.replace('*', file.slice(0, -suffix.length))] ??= url(`${prefix}${file}`);
    }
  }
  return out;
}

/** The page's import map: every browser export of the packages. */
export function importMap(): { imports: Record<string, string> } {
  return { imports: Object.assign({}, ...PAGE_PACKAGES.map(packageImports)) as Record<string, string> };
}

/**
 * WASI for a component from preview2-shim's browser build, as one ES module (`/wasi-host.js` in the page; Node
 * loads the same text, with the browser build imported by path, to write the same snapshot for the same host):
 * the files of in-memory preopens, an environment, stdout collected as lines, and clocks that start at 0 and
 * tick 1 ms a read (as wiz init --deterministic's). Every namespace is given to `WASIShim` explicitly, so that
 * none of its defaults (the Node build, in Node) is used.
 */
export const WASI_HOST = String.raw`
export function browserWasi({ WASIShim, shim }, { files = {}, env = {} } = {}) {
  const lines = [];
  let pending = '';
  const decoder = new TextDecoder();
  const stdout = {
    write(bytes) {
      pending += decoder.decode(bytes, { stream: true });
      const parts = pending.split('\n');
      pending = parts.pop();
      lines.push(...parts);
    },
    blockingFlush() {},
    flush() {},
  };
  const preopens = {};
  for (const [guest, entries] of Object.entries(files)) {
    preopens[guest] = { dir: Object.fromEntries(Object.entries(entries).map(([n, text]) => [n, { source: text }])) };
  }
  let ns = 0n;
  const tick = () => (ns += 1000000n);
  const clocks = {
    wallClock: { now: () => { const t = tick(); return { seconds: t / 1000000000n, nanoseconds: Number(t % 1000000000n) }; }, resolution: () => ({ seconds: 0n, nanoseconds: 1000000 }) },
    monotonicClock: { ...shim.clocks.monotonicClock, now: tick, resolution: () => 1000000n },
  };
  const wasi = new WASIShim({
    sandbox: { env, args: [] },
    cli: shim.cli.createCli({ stdout }),
    filesystem: shim.filesystem.createFilesystem({ adapter: new shim.filesystem.InMemoryFilesystemAdapter(), preopens }),
    io: shim.io, random: shim.random, clocks, sockets: shim.sockets, http: shim.http,
  });
  return { imports: wasi.getImportObject(), stdout: lines };
}
`;

/** What `browserWasi` takes: the files of each preopen (guest path → name → text), the environment. */
export interface WasiConfig {
  files?: Record<string, Record<string, string>>;
  env?: Record<string, string>;
}

/** `browserWasi` in Node: preview2-shim's browser build, imported by path (its `exports` give Node the Node build). */
export async function browserWasiInNode(config: WasiConfig): Promise<{ imports: Record<string, unknown>; stdout: string[] }> {
  const dist = join(root, 'node_modules', '@bytecodealliance', 'preview2-shim', 'dist');
  const [shim, { WASIShim }, { browserWasi }] = await Promise.all([
    import(pathToFileURL(join(dist, 'browser', 'index.js')).href),
    import(pathToFileURL(join(dist, 'common', 'instantiation.js')).href),
    import(`data:text/javascript,${encodeURIComponent(WASI_HOST)}`),
  ]) as [unknown, { WASIShim: unknown }, { browserWasi: (shim: unknown, config: WasiConfig) => { imports: Record<string, unknown>; stdout: string[] } }];
  return browserWasi({ WASIShim, shim }, config);
}

/**
 * What the page does, as a module (`/component-page.js`), with components put on the server by name:
 * `preinitialize(name, options)` with the bundle (the output as a list of bytes, or the error), and `run(name,
 * { init, calls })`, which runs a component as a browser user of a snapshot would, with jco's transpiler and its
 * glue (loaded from a blob: URL), calling `init` first if given and then each of `calls`; results are JSON (a
 * BigInt as `"<n>n"`, as test/helpers/component-run.ts writes them). Either takes `wasi` (a `WasiConfig`) for
 * preview2-shim's browser build.
 */
export const PAGE_MODULE = String.raw`
import * as wiz from '/dist/browser/wiz.js';
import { generate, $init } from '@bytecodealliance/jco-transpile/component';
import * as shim from '@bytecodealliance/preview2-shim';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { browserWasi } from '/wasi-host.js';

export async function component(name) {
  const response = await fetch('/components/' + name);
  if (!response.ok) throw new Error('no component ' + name);
  return new Uint8Array(await response.arrayBuffer());
}

const host = (config) => (config ? browserWasi({ WASIShim, shim }, config) : { imports: undefined, stdout: [] });

export async function preinitialize(name, options = {}) {
  const { wasi, ...rest } = options;
  const { imports, stdout } = host(wasi);
  try {
    const out = await wiz.preinitializeComponent(await component(name), { ...rest, ...(imports && { imports }) });
    return { bytes: Array.from(out), stdout };
  } catch (e) {
    return { error: { name: e?.constructor?.name, code: e?.code, message: String(e?.message ?? e) }, stdout };
  }
}

const show = (v) => (typeof v === 'bigint' ? v + 'n' : v);

export async function run(name, { init, calls = [], wasi } = {}) {
  await $init;
  const out = generate(await component(name), {
    name: 'component', instantiation: { tag: 'async' }, map: [], noTypescript: true, noNodejsCompat: true,
    base64Cutoff: 0, validLiftingOptimization: false, tracing: false, noNamespacedExports: false, multiMemory: false,
    tlaCompat: false, noComponentErrorWrapping: true,
  });
  const files = new Map(out.files);
  const glue = URL.createObjectURL(new Blob([files.get('component.js')], { type: 'text/javascript' }));
  const { instantiate } = await import(glue);
  URL.revokeObjectURL(glue);
  const { imports, stdout } = host(wasi);
  const exports = await instantiate((n) => WebAssembly.compile(files.get(n)), imports ?? {}, (m, i) => WebAssembly.instantiate(m, i ?? {}));
  // 'name', 'iface#name', either with '(JSON args)', as wiz's --init-func.
  const call = (spec) => {
    const open = spec.indexOf('(');
    const head = open > 0 ? spec.slice(0, open) : spec;
    const args = open > 0 ? JSON.parse('[' + spec.slice(open + 1, -1) + ']') : [];
    const hash = head.lastIndexOf('#');
    const iface = hash > 0 ? head.slice(0, hash) : undefined;
    const holder = iface ? exports[iface] ?? exports[iface.replace(/@[^/]*$/, '').split(/[/:]/).at(-1)] : exports;
    const f = holder?.[head.slice(hash + 1).replace(/-([a-z0-9])/gi, (_, c) => c.toUpperCase())];
    if (typeof f !== 'function') return { missing: true };
    try {
      return { value: show(f(...args)) };
    } catch (e) {
      return { error: String(e?.message ?? e) };
    }
  };
  const initResult = init ? call(init) : undefined;
  const results = Object.fromEntries(calls.map((name) => [name, call(name)]));
  return { exports: out.exports.map(([n]) => n).sort(), init: initResult, results, stdout };
}
`;

/** A call's result in the page: its value (a BigInt as `"<n>n"`), what it threw, or that there is no such export. */
export interface PageCall { value?: unknown; error?: string; missing?: boolean }
/** What the page's `preinitialize` returns: the output, or the error (a `WizError`'s code and message). */
export interface PagePreinit { bytes?: number[]; error?: { name: string; code?: string; message: string }; stdout: string[] }
/** What the page's `run` returns: the component's exports (jco's names), the results, what it wrote to stdout. */
export interface PageRun { exports: string[]; init?: PageCall; results: Record<string, PageCall>; stdout: string[] }

export interface ComponentPageServer {
  /** The page's address: `http://127.0.0.1:PORT/component.html`. */
  url: string;
  /** The same page under a strict Content-Security-Policy (`STRICT_CSP`): scripts from the server only. */
  strictUrl: string;
  /** Puts a component where the page fetches it: `/components/<name>`. */
  put(name: string, bytes: Uint8Array): void;
  /** Paths asked for that were not found (a page that asks for something missing is a broken page). */
  missing: string[];
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json',
  '.wasm': 'application/wasm',
};

/** A nonce for the strict page's import map (an inline script). */
const NONCE = 'wiz-import-map';
/** Scripts from the server (and the import map) only, WebAssembly compilation allowed: no data: or blob: URLs. */
export const STRICT_CSP = `script-src 'self' 'wasm-unsafe-eval' 'nonce-${NONCE}'`;

/** Serves the page on 127.0.0.1 (a secure context); `bundleDir` holds the browser build's wiz.js. */
export async function startComponentPageServer(bundleDir: string): Promise<ComponentPageServer> {
  const html = `<!doctype html>\n<meta charset="utf-8">\n<title>wiz: components</title>\n<link rel="icon" href="data:,">\n`
    + `<script type="importmap" nonce="${NONCE}">\n${JSON.stringify(importMap(), null, 2)}\n</script>\n`;
  const components = new Map<string, Uint8Array>();
  const fixed: Record<string, () => Promise<Uint8Array | string>> = {
    '/component.html': async () => html,
    '/component-strict.html': async () => html,
    '/component-page.js': async () => PAGE_MODULE,
    '/wasi-host.js': async () => WASI_HOST,
    '/dist/browser/wiz.js': () => readFile(join(bundleDir, 'wiz.js')),
    '/dist/browser/wiz.js.map': () => readFile(join(bundleDir, 'wiz.js.map')),
  };
  const lookup = (path: string): (() => Promise<Uint8Array | string>) | undefined => {
    if (fixed[path]) return fixed[path];
    if (path.startsWith('/components/')) {
      const bytes = components.get(path.slice('/components/'.length));
      return bytes && (async () => bytes);
    }
    const file = normalize(join(root, decodeURIComponent(path)));
    const allowed = PAGE_PACKAGES.some((p) => file.startsWith(join(root, 'node_modules', p) + '/'));
    return allowed ? () => readFile(file) : undefined;
  };
  const missing: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const file = lookup(path);
    const type = path.startsWith('/components/') ? TYPES['.wasm'] : TYPES[path.slice(path.lastIndexOf('.'))];
    if (!file || !type) {
      missing.push(path);
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}\n`);
      return;
    }
    file().then(
      (body) => res.writeHead(200, {
        'content-type': type, 'cache-control': 'no-store',
        ...(path === '/component-strict.html' && { 'content-security-policy': STRICT_CSP }),
      }).end(body),
      (e: Error) => {
        missing.push(path);
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`${e.message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/component.html`,
    strictUrl: `http://127.0.0.1:${port}/component-strict.html`,
    put: (name, bytes) => void components.set(name, bytes),
    missing,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
