// Runs a worker in workerd, Cloudflare's runtime, from the `workerd` dev dependency: the script, its extra ES
// modules and its WebAssembly modules are written to a temp dir with a capnp config, and `workerd serve` listens
// on 127.0.0.1 on a port it picks and reports on a control descriptor.
//
// The rule for tests: a test file calls `workerdOrSkip(what)` at its top level and skips its workerd tests when
// that returns false (it prints a line saying why); under CI=true (or WIZ_REQUIRE_WORKERD=1) it throws instead,
// because CI installs workerd with `npm ci` and a workerd that cannot start there is a failure, not a skip.
// WIZ_WORKERD names another workerd binary.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';

/** Fixed, so that a newer workerd does not change what the tests see; at most the binary's newest date. */
export const COMPATIBILITY_DATE = '2025-11-01';
/** The file name of the main module; other modules import each other as `./name`. */
export const MAIN_MODULE = 'worker.js';
const HINT = 'npm ci installs it: the workerd dev dependency brings @cloudflare/workerd-<platform>';

export interface WorkerdOptions {
  /** The worker's main ES module: `export default { fetch(request, env, ctx) { … } }`. */
  main: string;
  /** Extra ES modules by name (e.g. `wiz.js`), imported by the script as `./wiz.js`. */
  modules?: Record<string, string>;
  /** WebAssembly modules by name (e.g. `guest.wasm`), given at deploy time: `import m from './guest.wasm'` is a `WebAssembly.Module`. */
  wasm?: Record<string, Uint8Array>;
  /** The service's name, in workerd's messages and the temp dir's name. */
  name?: string;
}

export interface Workerd {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Sends a request to the worker; `path` is resolved against `url`. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Stops workerd (SIGTERM, then SIGKILL if it lingers) and removes its temp dir. */
  stop(): Promise<void>;
  /** What workerd and the worker's console wrote to stdout and stderr so far, in arrival order. */
  logs(): string;
}

/** The workerd binary for this platform, as the package resolves it (WIZ_WORKERD names another), or why there is none. */
function binary(): { path: string } | { problem: string } {
  if (process.env.WIZ_WORKERD) return { path: process.env.WIZ_WORKERD };
  try {
    const path = (createRequire(import.meta.url)('workerd') as { default: string }).default;
    return { path };
  } catch (e) {
    return { problem: `the workerd package does not resolve a binary: ${(e as Error).message.split('\n').find((l) => l.trim()) ?? e}` };
  }
}

let problemCache: string | null | undefined;
/** Why workerd cannot run here, or `undefined` when it can (the binary answers `--version`). */
export function workerdProblem(): string | undefined {
  if (problemCache === undefined) {
    const bin = binary();
    if ('problem' in bin) problemCache = bin.problem;
    else {
      const r = spawnSync(bin.path, ['--version'], { encoding: 'utf8' });
      problemCache = r.status === 0 ? null : `${bin.path} --version failed: ${(r.error?.message ?? r.stderr).trim() || `status ${r.status}`}`;
    }
  }
  return problemCache ?? undefined;
}

export function hasWorkerd(): boolean {
  return workerdProblem() === undefined;
}

/** The rule above: true when workerd can run; else prints why and returns false, or throws under CI. */
export function workerdOrSkip(what: string): boolean {
  const problem = workerdProblem();
  if (problem === undefined) return true;
  if (process.env.CI === 'true' || process.env.WIZ_REQUIRE_WORKERD) throw new Error(`${what} required but workerd cannot run: ${problem}; ${HINT}`);
  console.warn(`${what} skipped: workerd cannot run: ${problem}; ${HINT}`);
  return false;
}

// Embedded by path from the config, so names are kept to what is safe in a path and in a capnp string.
function checkName(name: string): void {
  if (!/^[\w-]+(\.[\w-]+)*(\/[\w-]+(\.[\w-]+)*)*$/.test(name)) throw new Error(`module name ${JSON.stringify(name)}: use letters, digits, _ - . and /`);
}

function config(service: string, modules: { name: string; kind: 'esModule' | 'wasm' }[]): string {
  const list = modules.map((m) => `    (name = "${m.name}", ${m.kind} = embed "src/${m.name}"),`).join('\n');
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "${service}", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:0", http = (), service = "${service}") ],
);

const worker :Workerd.Worker = (
  modules = [
${list}
  ],
  compatibilityDate = "${COMPATIBILITY_DATE}",
);
`;
}

const running = new Set<ChildProcess>();
// A test run that ends without stop() (a crash, a failed hook) leaves no workerd behind.
process.once('exit', () => { for (const child of running) child.kill('SIGKILL'); });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether something accepts TCP connections on the port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts workerd on the given worker and resolves once it accepts connections; rejects with workerd's output if
 * it exits first (a script that does not load, a config it refuses). There is no short start limit: on a busy
 * machine workerd may take seconds, so only `timeoutMs` (default 120 s) ends the wait.
 */
export async function startWorkerd(options: WorkerdOptions & { timeoutMs?: number }): Promise<Workerd> {
  const bin = binary();
  if ('problem' in bin) throw new Error(`${bin.problem}; ${HINT}`);
  const service = options.name ?? 'main';
  if (!/^[\w-]+$/.test(service)) throw new Error(`service name ${JSON.stringify(service)}: use letters, digits, _ and -`);
  const modules: { name: string; kind: 'esModule' | 'wasm'; body: string | Uint8Array }[] = [
    { name: MAIN_MODULE, kind: 'esModule', body: options.main }, // the first module is the main one
    ...Object.entries(options.modules ?? {}).map(([name, body]) => ({ name, kind: 'esModule' as const, body })),
    ...Object.entries(options.wasm ?? {}).map(([name, body]) => ({ name, kind: 'wasm' as const, body })),
  ];
  const seen = new Set<string>();
  for (const { name } of modules) {
    checkName(name);
    if (seen.has(name)) throw new Error(`module name ${name} given twice (${MAIN_MODULE} is the main module's)`);
    seen.add(name);
  }

  const dir = mkdtempSync(join(tmpdir(), `wiz-workerd-${service}-`));
  for (const { name, body } of modules) {
    const file = join(dir, 'src', name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, body);
  }
  writeFileSync(join(dir, 'config.capnp'), config(service, modules));

  // Descriptor 3 is the control channel: workerd writes `{"event":"listen","socket":"http","port":N}` when ready.
  const child = spawn(bin.path, ['serve', join(dir, 'config.capnp'), 'config', '--control-fd=3'], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { output += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { output += s; });
  const exited = new Promise<string>((resolve) => {
    child.once('error', (e) => resolve(`could not start ${bin.path}: ${e.message}`));
    // 'close', not 'exit': by then its last words on stderr are read.
    child.once('close', (code, signal) => resolve(`workerd exited (${signal ?? `status ${code}`})`));
  });
  exited.then(() => running.delete(child));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const listening = new Promise<number>((resolve) => {
    let text = '';
    (child.stdio[3] as Readable).setEncoding('utf8').on('data', (s: string) => {
      const lines = (text + s).split('\n');
      text = lines.pop()!;
      for (const line of lines) {
        let message: { event?: string; socket?: string; port?: number } = {};
        try { message = JSON.parse(line); } catch { output += `(control: ${line})\n`; }
        if (message.event === 'listen' && message.socket === 'http' && message.port) resolve(message.port);
      }
    });
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`workerd did not listen within ${timeoutMs} ms`), timeoutMs); });
  const failure = (why: string) => new Error(`${why}\n${output.trim() || '(no output)'}`);
  try {
    const port = await Promise.race([listening, exited, timedOut]);
    if (typeof port === 'string') throw failure(port);
    // Listening is reported once the socket is bound; poll until it accepts, with backoff, in case it lags.
    for (let wait = 10; !(await accepts(port)); wait = Math.min(wait * 2, 1000)) {
      if (child.exitCode !== null || child.signalCode !== null) throw failure(await exited);
      if (Date.now() > deadline) throw failure(`workerd did not accept connections within ${timeoutMs} ms`);
      await sleep(wait);
    }
    const url = `http://127.0.0.1:${port}`;
    return { url, fetch: (path, init) => fetch(new URL(path, url), init), stop, logs: () => output };
  } catch (e) {
    await stop();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
