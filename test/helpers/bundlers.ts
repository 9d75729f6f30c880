// Real builds of a tiny app with each bundler wiz/plugin supports, as their users configure them: Vite (`?init`),
// Rollup with @rollup/plugin-wasm, esbuild's file loader, webpack's and Rspack's async WebAssembly. An app is a
// temp folder with a package.json and src/main.js, which imports one .wasm and exports (default) a promise of
// what the module answers; the built app is run in a fresh Node process.
import { wasm as wasmPlugin } from '@rollup/plugin-wasm';
import { rspack, type Compiler as RspackCompiler, type Configuration as RspackConfiguration, type Stats as RspackStats } from '@rspack/core';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { rollup, watch as rollupWatch, type RollupOptions } from 'rollup';
import { build as viteBuild, type InlineConfig, type Logger } from 'vite';
import webpack, { type Configuration as WebpackConfiguration, type Stats as WebpackStats } from 'webpack';
import { wizPlugin, type WizPluginOptions } from '../../plugin/index.ts';

export const BUNDLERS = ['vite', 'rollup', 'esbuild', 'webpack', 'rspack'] as const;
export type Bundler = (typeof BUNDLERS)[number];

/** A built app: where it is, the file Node runs, the .wasm files it emitted, the bundler's warnings. */
export interface Built {
  outDir: string;
  entry: string;
  wasm: { name: string; bytes: Uint8Array }[];
  warnings: string[];
}

/**
 * A temp project: package.json, the module as `src/<name>.wasm` (`module` is `{ name: bytes }`), `files` (paths
 * from the project) as given, and src/main.js for `bundler`, which answers `answer` (a JS expression over `e`, the
 * module's exports).
 */
export function makeApp(bundler: Bundler, module: Record<string, Uint8Array>, answer: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `wiz-plugin-${bundler}-`));
  apps.push(dir);
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: `app-${bundler}`, private: true, type: 'module' })}\n`);
  const [name, bytes] = Object.entries(module)[0]!;
  writeFileSync(join(dir, 'src', `${name}.wasm`), bytes);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  writeFileSync(join(dir, 'src', 'main.js'), mainSource(bundler, name, answer));
  // webpack and Rspack link a module's imports as JS modules: WASI comes from a module of trapping functions.
  const wasi = WebAssembly.Module.imports(new WebAssembly.Module(bytes as BufferSource)).filter((i) => i.module === 'wasi_snapshot_preview1');
  writeFileSync(join(dir, 'src', 'wasi-trap.js'), [
    'const trap = (name) => () => { throw new Error(`WASI ${name} called after init`); };',
    ...wasi.map((i) => `export const ${i.name} = trap('${i.name}');`),
  ].join('\n') + '\n');
  return dir;
}

const apps: string[] = [];

/** Removes the apps made so far (with their builds and caches). */
export function removeApps(): void {
  for (const dir of apps.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** After init the modules call no import: a call is a snapshot that still needs its host, and fails the app. */
const TRAPS = "new Proxy({}, { get: (_, name) => () => { throw new Error(`WASI ${String(name)} called after init`); } })";

function mainSource(bundler: Bundler, name: string, answer: string): string {
  const report = `(e) => (${answer})`;
  switch (bundler) {
    case 'vite':
      return `import init from './${name}.wasm?init';\nconst report = ${report};\n`
        + `export default init({ wasi_snapshot_preview1: ${TRAPS} }).then((instance) => report(instance.exports));\n`;
    case 'rollup':
      return `import init from './${name}.wasm';\nconst report = ${report};\n`
        + `export default init({ wasi_snapshot_preview1: ${TRAPS} }).then(({ instance }) => report(instance.exports));\n`;
    case 'esbuild':
      // The file loader gives the emitted file's path, relative to the bundle.
      return `import { readFile } from 'node:fs/promises';\nimport file from './${name}.wasm';\nconst report = ${report};\n`
        + `export default readFile(new URL(file, import.meta.url)).then((bytes) => WebAssembly.instantiate(bytes, { wasi_snapshot_preview1: ${TRAPS} })).then(({ instance }) => report(instance.exports));\n`;
    case 'webpack':
    case 'rspack':
      return `import * as e from './${name}.wasm';\nconst report = ${report};\nexport default Promise.resolve(report(e));\n`;
  }
}

/** The .wasm files below `dir`, by path relative to it. */
function emittedWasm(dir: string): Built['wasm'] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => extname(f) === '.wasm').sort()
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
}

function viteConfig(app: string, options: WizPluginOptions, outDir: string, logger: Logger, ssr: boolean): InlineConfig {
  return {
    root: app, configFile: false, logLevel: 'warn', customLogger: logger, plugins: [wizPlugin.vite(options)],
    build: {
      outDir, emptyOutDir: true,
      assetsInlineLimit: 0, // the .wasm as a file, not a data URL
      ...(ssr ? { ssr: 'src/main.js', ssrEmitAssets: true } : {}),
    },
  };
}

/** A Vite logger that keeps warnings and errors and prints nothing. */
function quietLogger(warnings: string[]): Logger {
  const warned = new Set<string>();
  return {
    info: () => {}, clearScreen: () => {}, hasErrorLogged: () => false, hasWarned: false,
    warn: (message) => { warnings.push(message); },
    warnOnce: (message) => { if (!warned.has(message)) warnings.push(message); warned.add(message); },
    error: (message) => { warnings.push(message); },
  };
}

function rollupOptions(app: string, options: WizPluginOptions, outDir: string, warnings: string[]): RollupOptions {
  return {
    input: join(app, 'src', 'main.js'),
    // Rollup has no project root of its own: the plugin's default is the working directory.
    plugins: [wizPlugin.rollup({ root: app, ...options }), wasmPlugin({ maxFileSize: 0, targetEnv: 'node', fileName: '[name]-[hash][extname]' })],
    onwarn: (w) => { warnings.push(w.message); },
    // The wasm plugin's Node code uses require(): CommonJS.
    output: { dir: outDir, format: 'cjs', entryFileNames: 'main.cjs', exports: 'default' },
  };
}

function esbuildOptions(app: string, options: WizPluginOptions, outDir: string): esbuild.BuildOptions {
  return {
    absWorkingDir: app, entryPoints: ['src/main.js'], bundle: true, format: 'esm', platform: 'node', outdir: outDir,
    loader: { '.wasm': 'file' }, plugins: [wizPlugin.esbuild(options)], logLevel: 'silent',
  };
}

function webpackOptions(app: string, options: WizPluginOptions, outDir: string, mode: 'production' | 'development') {
  return {
    context: app, mode, devtool: false, target: 'node', entry: './src/main.js',
    output: { path: outDir, filename: 'main.mjs', module: true, library: { type: 'module' }, chunkFormat: 'module' },
    resolve: { alias: { wasi_snapshot_preview1: join(app, 'src', 'wasi-trap.js') } },
    experiments: { asyncWebAssembly: true, outputModule: true },
  } as const satisfies WebpackConfiguration & RspackConfiguration;
}

function makeCompiler(bundler: 'webpack' | 'rspack', app: string, options: WizPluginOptions, outDir: string, mode: 'production' | 'development') {
  const config = webpackOptions(app, options, outDir, mode);
  return bundler === 'webpack'
    ? webpack({ ...config, plugins: [wizPlugin.webpack(options)] } as WebpackConfiguration)
    : rspack({ ...config, plugins: [wizPlugin.rspack(options)] } as RspackConfiguration);
}

/** webpack's and Rspack's outcome: their warnings, or their errors as one thrown Error. */
function outcome(stats: WebpackStats | RspackStats): string[] {
  const json = stats.toJson({ all: false, errors: true, warnings: true });
  if (stats.hasErrors()) throw new Error((json.errors ?? []).map((e) => e.message).join('\n'));
  return (json.warnings ?? []).map((w) => w.message);
}

/** Builds the app for Node with `bundler` and the plugin; a failed build throws the bundler's error. */
export async function bundle(bundler: Bundler, app: string, options: WizPluginOptions = {}): Promise<Built> {
  const outDir = join(app, `dist-${bundler}`);
  rmSync(outDir, { recursive: true, force: true }); // what is there after a build is what it emitted
  const warnings: string[] = [];
  switch (bundler) {
    case 'vite':
      // An SSR build runs in Node (its ?init reads the emitted file); the page has its own build (viteClientBuild).
      await viteBuild(viteConfig(app, options, outDir, quietLogger(warnings), true));
      return { outDir, entry: join(outDir, 'main.js'), wasm: emittedWasm(outDir), warnings };
    case 'rollup': {
      const build = await rollup(rollupOptions(app, options, outDir, warnings));
      try {
        await build.write(rollupOptions(app, options, outDir, warnings).output as object);
      } finally {
        await build.close();
      }
      return { outDir, entry: join(outDir, 'main.cjs'), wasm: emittedWasm(outDir), warnings };
    }
    case 'esbuild': {
      const result = await esbuild.build(esbuildOptions(app, options, outDir));
      warnings.push(...result.warnings.map((w) => w.text));
      return { outDir, entry: join(outDir, 'main.js'), wasm: emittedWasm(outDir), warnings };
    }
    case 'webpack':
    case 'rspack': {
      const compiler = makeCompiler(bundler, app, options, outDir, 'production');
      const stats = await new Promise<WebpackStats | RspackStats>((resolve, reject) =>
        (compiler.run as (cb: (e: Error | null, s?: WebpackStats | RspackStats) => void) => void)((e, s) => (e ? reject(e) : resolve(s!))));
      await new Promise<void>((resolve) => (compiler.close as (cb: () => void) => void)(() => resolve()));
      warnings.push(...outcome(stats));
      return { outDir, entry: join(outDir, 'main.mjs'), wasm: emittedWasm(outDir), warnings };
    }
  }
}

/** Vite's browser build of an app with an index.html that shows main.js's answer in `#answer`. */
export async function viteClientBuild(app: string, options: WizPluginOptions = {}): Promise<Built> {
  writeFileSync(join(app, 'index.html'), [
    '<!doctype html>', '<meta charset="utf-8">', '<title>wiz plugin</title>', '<pre id="answer"></pre>',
    '<script type="module">',
    "import answer from './src/main.js';",
    "answer.then((a) => { document.getElementById('answer').textContent = JSON.stringify(a); },",
    "  (e) => { document.getElementById('answer').textContent = JSON.stringify({ error: String(e) }); });",
    '</script>', '',
  ].join('\n'));
  const outDir = join(app, 'dist-vite-client');
  const warnings: string[] = [];
  await viteBuild(viteConfig(app, options, outDir, quietLogger(warnings), false));
  return { outDir, entry: join(outDir, 'index.html'), wasm: emittedWasm(outDir), warnings };
}

/** Runs a built app in a fresh Node process: what its default export resolves to. */
export function runBuilt(entry: string): unknown {
  const script = 'const m = await import(process.env.WIZ_APP); process.stdout.write(JSON.stringify(await m.default));';
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, WIZ_APP: pathToFileURL(entry).href }, encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`the built app failed (${relative(tmpdir(), entry)}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout);
}

/** What Rollup's and Vite's (Rolldown's) watchers have in common. */
interface RollupLikeWatcher {
  on(event: 'event', listener: (e: { code: string; result?: { close(): Promise<void> }; error?: Error }) => void): void;
  close(): Promise<void>;
}

/** A build in watch mode: each finished build, in order, and a way to stop. */
export interface WatchedBuild {
  /** The next build's outcome (its entry, or the error it failed with); undefined when none came in `ms`. */
  next(ms?: number): Promise<Built | undefined>;
  close(): Promise<void>;
}

/**
 * Starts `bundler` in watch mode on the app (webpack and Rspack in development mode, as their watch is used);
 * entries keep their names from build to build, so `entry` always runs the latest.
 */
export async function watchBundle(bundler: Bundler, app: string, options: WizPluginOptions = {}): Promise<WatchedBuild> {
  const outDir = join(app, `dist-${bundler}-watch`);
  const done: Built[] = [];
  const failed: Error[] = [];
  let wake: (() => void) | undefined;
  const warnings: string[] = [];
  const finish = (entry: string) => {
    done.push({ outDir, entry, wasm: emittedWasm(outDir), warnings: warnings.splice(0) });
    wake?.();
  };
  const fail = (e: Error) => {
    failed.push(e);
    wake?.();
  };
  const next = async (ms = Infinity): Promise<Built | undefined> => {
    const deadline = performance.now() + ms;
    while (!done.length && !failed.length) {
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (left !== Infinity) setTimeout(resolve, left).unref();
      });
    }
    if (failed.length) throw failed.shift()!;
    return done.shift()!;
  };
  const rollupEvents = (watcher: RollupLikeWatcher, entry: string) => {
    watcher.on('event', (e) => {
      if (e.code === 'BUNDLE_END') void e.result?.close();
      else if (e.code === 'END') finish(entry);
      else if (e.code === 'ERROR') {
        void e.result?.close();
        fail(new Error(e.error?.message));
      }
    });
    return { next, close: () => watcher.close() };
  };
  switch (bundler) {
    case 'vite': {
      const config = viteConfig(app, options, outDir, quietLogger(warnings), true);
      const watcher = await viteBuild({ ...config, build: { ...config.build, watch: {} } }) as unknown as RollupLikeWatcher;
      return rollupEvents(watcher, join(outDir, 'main.js'));
    }
    case 'rollup': {
      const base = rollupOptions(app, options, outDir, warnings);
      return rollupEvents(rollupWatch({ ...base, watch: { skipWrite: false } }) as unknown as RollupLikeWatcher, join(outDir, 'main.cjs'));
    }
    case 'esbuild': {
      const report: esbuild.Plugin = {
        name: 'report',
        setup(build) {
          build.onEnd((result) => {
            if (result.errors.length) fail(new Error(result.errors.map((e) => e.text).join('\n')));
            else finish(join(outDir, 'main.js'));
          });
        },
      };
      const base = esbuildOptions(app, options, outDir);
      const context = await esbuild.context({ ...base, plugins: [...base.plugins!, report] });
      await context.watch();
      return { next, close: () => context.dispose() };
    }
    case 'webpack':
    case 'rspack': {
      const compiler = makeCompiler(bundler, app, options, outDir, 'development') as { watch: RspackCompiler['watch'] };
      const watching = compiler.watch({ aggregateTimeout: 100 }, (e, stats) => {
        if (e) return fail(e);
        try {
          warnings.push(...outcome(stats as RspackStats));
          finish(join(outDir, 'main.mjs'));
        } catch (error) {
          fail(error as Error);
        }
      });
      return { next, close: () => new Promise<void>((resolve) => watching.close(() => resolve())) };
    }
  }
}

/** Serves a folder on 127.0.0.1 (a static host for a built page); paths asked for and not found are kept. */
export async function serveFolder(root: string): Promise<{ url: string; missing: string[]; close(): Promise<void> }> {
  const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm' };
  const missing: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/favicon.ico') return void res.writeHead(204).end(); // asked for by the browser, not the page
    const file = join(root, path === '/' ? 'index.html' : path);
    let body: Buffer;
    try {
      if (relative(root, file).startsWith('..')) throw new Error('outside');
      body = readFileSync(file);
    } catch {
      missing.push(path);
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    missing,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
