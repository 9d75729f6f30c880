// Runs the real Restate server from the `@restatedev/restate-server` dev dependency (its per-platform binary, no
// network): a temp dir holds its config and data, and it listens on 127.0.0.1 on free ports (ingress, admin, and
// the node-to-node port). Also runs a service program (an SDK endpoint) as a child process that can be killed.
//
// The rule for tests: `startRestate(what)` returns undefined and prints a line when the server cannot start, and the
// test skips; under CI=true (or WIZ_REQUIRE_RESTATE=1) it throws, because CI installs the server with `npm ci`.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HINT = 'npm ci installs it: the @restatedev/restate-server dev dependency brings @restatedev/restate-server-<platform>-<arch>';
/** How long the server or a service may take to answer: long, since the machine may be busy; a dead process fails at once. */
const READY_WITHIN_MS = 180_000;

export interface Restate {
  /** `http://127.0.0.1:PORT` of the ingress (calls to services, awakeables). */
  ingress: string;
  /** `http://127.0.0.1:PORT` of the admin API (deployments). */
  admin: string;
  /** Registers (or re-registers) the SDK endpoint at `uri`; returns the names of its services. */
  register(uri: string): Promise<string[]>;
  /** Stops the server (SIGTERM, then SIGKILL if it lingers) and removes its temp dir. */
  stop(): Promise<void>;
  /** What the server wrote so far. */
  logs(): string;
}

export interface Child {
  process: ChildProcess;
  logs(): string;
  /** Resolves once the process has exited. */
  exited: Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const running = new Set<ChildProcess>();
// A test run that ends without stop() leaves no server or service behind.
process.once('exit', () => { for (const child of running) child.kill('SIGKILL'); });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port nothing listens on now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Spawns a program, keeps its output, and remembers it so that it dies with the test run. */
export function spawnChild(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Child {
  const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => { running.delete(child); resolve(); }));
  child.once('error', (e) => { out += `\n${e.message}`; });
  return {
    process: child,
    logs: () => out,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const lingers = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(lingers);
    },
  };
}

/**
 * Polls `probe` with backoff (50 ms doubling up to 1 s) until it returns true; fails at once when `child` exits,
 * and after READY_WITHIN_MS with `what` and the child's output.
 */
export async function waitFor(what: string, probe: () => Promise<boolean>, child?: Child): Promise<void> {
  const deadline = Date.now() + READY_WITHIN_MS;
  let dead = false;
  void child?.exited.then(() => { dead = true; });
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    if (await probe().catch(() => false)) return;
    if (dead) throw new Error(`${what}: the process exited (${child!.process.exitCode ?? child!.process.signalCode}):\n${child!.logs().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`${what}: no answer within ${READY_WITHIN_MS / 1000} s:\n${child?.logs().slice(-3000) ?? ''}`);
    await sleep(delay);
  }
}

/** Whether something accepts TCP connections on the port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Runs an SDK endpoint program (`node script`, Node's type stripping) with `env`, once it listens on `port`. */
export async function startService(script: string, port: number, env: Record<string, string>): Promise<Child> {
  const child = spawnChild(process.execPath, [script], { env: { ...process.env, ...env, PORT: String(port) } });
  await waitFor(`the service ${script}`, () => accepts(port), child);
  return child;
}

const answers = async (url: string): Promise<boolean> => (await fetch(url)).ok;

/** The server's binary for this platform, as its npm package resolves it, or why there is none. */
function binary(): { path: string } | { problem: string } {
  const name = `@restatedev/restate-server-${process.platform}-${process.arch}/bin/restate-server`;
  try {
    return { path: createRequire(import.meta.url).resolve(name) };
  } catch (e) {
    return { problem: `${name} does not resolve: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** Starts a single-node Restate server; undefined (with a printed line) when it cannot, or throws under CI. */
export async function startRestate(what: string): Promise<Restate | undefined> {
  const required = process.env.CI === 'true' || !!process.env.WIZ_REQUIRE_RESTATE;
  const bin = binary();
  if ('problem' in bin) {
    if (required) throw new Error(`${what} required but the Restate server cannot start: ${bin.problem}; ${HINT}`);
    console.warn(`${what} skipped: the Restate server cannot start: ${bin.problem}; ${HINT}`);
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'wiz-restate-'));
  const [node, admin, ingress] = [await freePort(), await freePort(), await freePort()];
  // One partition is plenty for a test and starts faster; telemetry off: no network.
  writeFileSync(join(dir, 'restate.toml'), `disable-telemetry = true
default-num-partitions = 1
bind-address = "127.0.0.1:${node}"
advertised-address = "http://127.0.0.1:${node}/"
[admin]
bind-address = "127.0.0.1:${admin}"
[ingress]
bind-address = "127.0.0.1:${ingress}"
`);
  const server = spawnChild(bin.path, ['--config-file', join(dir, 'restate.toml'), '--base-dir', join(dir, 'data'), '--node-name', 'wiz-test', '--no-logo', '--log-disable-ansi-codes', 'true'], {
    cwd: dir, env: { ...process.env, RESTATE_LISTEN_MODE: 'tcp' },
  });
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const restate: Restate = {
    ingress: `http://127.0.0.1:${ingress}`,
    admin: `http://127.0.0.1:${admin}`,
    async register(uri) {
      const response = await fetch(`${restate.admin}/deployments`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ uri, force: true }),
      });
      if (!response.ok) throw new Error(`registering ${uri}: ${response.status} ${await response.text()}`);
      const body = await response.json() as { services: { name: string }[] };
      return body.services.map((s) => s.name);
    },
    async stop() {
      await server.stop();
      remove();
    },
    logs: server.logs,
  };
  try {
    await waitFor('the Restate admin API', () => answers(`${restate.admin}/health`), server);
    await waitFor('the Restate ingress', () => answers(`${restate.ingress}/restate/health`), server);
    return restate;
  } catch (e) {
    await server.stop('SIGKILL');
    remove();
    if (required) throw new Error(`${what} required but the Restate server cannot start: ${(e as Error).message}`);
    console.warn(`${what} skipped: the Restate server cannot start: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

/**
 * The guest the Restate test and benchmark run: each round's request depends on the replies so far (kept on the
 * stack across the recursion); each reply is written to memory, and the result mixes both.
 */
export const GUEST = `(module
  (import "rpc" "call" (func $call (param i32) (result i32)))
  (memory (export "memory") 1)
  (func $round (param $i i32) (param $n i32) (param $acc i32) (result i32) (local $reply i32)
    (if (result i32) (i32.ge_u (local.get $i) (local.get $n))
      (then (local.get $acc))
      (else
        (local.set $reply (call $call (i32.add (i32.mul (local.get $acc) (i32.const 7)) (local.get $i))))
        (i32.store (i32.shl (local.get $i) (i32.const 2)) (local.get $reply))
        (i32.add (i32.mul (local.get $i) (i32.const 1000))
          (call $round (i32.add (local.get $i) (i32.const 1)) (local.get $n)
            (i32.xor (i32.mul (local.get $acc) (i32.const 31)) (local.get $reply)))))))
  (func (export "main") (param $n i32) (result i32) (local $i i32) (local $sum i32) (local $r i32)
    (local.set $r (call $round (i32.const 0) (local.get $n) (i32.const 1)))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $sum (i32.add (i32.mul (local.get $sum) (i32.const 3)) (i32.load (i32.shl (local.get $i) (i32.const 2)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $each)))
    (i32.add (local.get $r) (local.get $sum))))`;

