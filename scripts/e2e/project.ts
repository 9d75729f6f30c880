// Fresh temporary projects for `npm run e2e`: wiz packed as `npm pack` packs it (the approach of
// test/package.test.ts, from a copy so the shared tree's dist/ is left alone), Node 24 first on PATH, and commands
// run with a time limit that ends their whole process group.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export const root = join(import.meta.dirname, '..', '..');
export const MINUTES = 60_000;

/** Node 24, which the installed package needs: this process's when it is one, else the checkout's dev dependency. */
export function node24(): string {
  if (Number(process.versions.node.split('.')[0]) >= 24) return process.execPath;
  const local = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(local)) throw new Error('no Node 24 to run the installed package: run npm ci in the checkout');
  return realpathSync(local);
}

/** This environment, with `bin` first on PATH and nothing of an npm script that runs this one (its prefix above all). */
export function freshEnv(bin: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_(?!config_)/i.test(key) || /^npm_config_(local_prefix|prefix|global|workspaces?|include_workspace_root)$/i.test(key)) continue;
    env[key] = value;
  }
  env.PATH = `${bin}${delimiter}${process.env.PATH ?? ''}`;
  return { ...env, ...extra };
}

export interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export interface RunOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Generous by default: installs and builds are slow on a busy machine. */
  timeoutMs?: number;
  input?: string;
}

/** Process groups started here and still running: each command runs in its own, so its time limit ends it all. */
const running = new Set<number>();

/** Tracks a child started in its own process group (detached), until it closes. */
export function track(child: ChildProcess): void {
  if (child.pid === undefined) return;
  const pid = child.pid;
  running.add(pid);
  child.on('close', () => running.delete(pid));
}

/** Ends the process groups of the children still running (Ctrl-C reaches only this process's own group). */
export function stopAll(): void {
  for (const pid of running) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/** Runs a command to its end (or its time limit, then its whole process group is ended) and keeps its output. */
export function run(command: string, args: string[], options: RunOptions): Promise<Ran> {
  const start = performance.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    track(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.end(options.input ?? '');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, options.timeoutMs ?? 20 * MINUTES);
    const done = (status: number | null, signal: NodeJS.Signals | null, error?: Error) => {
      clearTimeout(timer);
      resolve({
        status, signal, timedOut, ms: performance.now() - start,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString() + (error ? `${error.message}\n` : ''),
      });
    };
    child.on('error', (e) => done(null, null, e));
    child.on('close', (status, signal) => done(status, signal));
  });
}

/** The lines of a failed command's output that say why, for a one-line summary. */
export function why(r: Ran, pattern = /error|wiz:|cannot|failed|not found|needs/i): string {
  if (r.timedOut) return `timed out after ${(r.ms / 1000).toFixed(0)} s`;
  // Stack frames, the source line Node prints above a throw, and deprecation notices say nothing about why.
  const noise = /^(at |file:\/\/|throw |Node\.js v|\^+$)|DeprecationWarning|--trace-deprecation/;
  const lines = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !noise.test(l));
  const telling = lines.filter((l) => pattern.test(l));
  return (telling.length > 0 ? telling : lines).slice(0, 2).join(' / ').slice(0, 300) || `exit ${r.status ?? r.signal}`;
}

/** What `npm pack` packs (the package's "files", and what its build needs), taken from HEAD or from the working tree. */
function copyProject(to: string, from: 'head' | 'worktree'): void {
  // The build's scripts (build-browser.ts, build-cli.ts, …): all of scripts/, so a new one needs no change here.
  const extra = ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'scripts'];
  if (from === 'worktree') {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] };
    for (const entry of [...pkg.files.filter((f) => f !== 'dist'), ...extra]) cpSync(join(root, entry), join(to, entry), { recursive: true });
  } else {
    // Committed files only: other work in progress in the checkout does not leak into the package.
    const git = (args: string[]) => spawnSync('git', args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
    const pkg = JSON.parse(git(['show', 'HEAD:package.json']).stdout) as { files: string[] };
    const paths = [...pkg.files, ...extra].filter((p) => git(['cat-file', '-e', `HEAD:${p}`]).status === 0);
    const archive = join(to, '..', 'head.tar');
    const made = git(['archive', '--format=tar', '-o', archive, 'HEAD', '--', ...paths]);
    if (made.status !== 0) throw new Error(`git archive failed: ${made.stderr}`);
    mkdirSync(to, { recursive: true });
    const unpacked = spawnSync('tar', ['-xf', archive, '-C', to], { encoding: 'utf8' });
    if (unpacked.status !== 0) throw new Error(`tar failed: ${unpacked.stderr}`);
  }
  symlinkSync(join(root, 'node_modules'), join(to, 'node_modules'));
}

/** Packs wiz into `dir` (its prepare script builds dist/ in the copy) and returns the tarball's path. */
export async function packWiz(dir: string, env: NodeJS.ProcessEnv, from: 'head' | 'worktree'): Promise<{ tarball: string; ran: Ran }> {
  const project = join(dir, 'project');
  mkdirSync(dir, { recursive: true });
  copyProject(project, from);
  const ran = await run('npm', ['pack', '--pack-destination', dir], { cwd: project, env, timeoutMs: 15 * MINUTES });
  const name = readdirSync(dir).find((f) => /^wiz-.*\.tgz$/.test(f));
  if (ran.status !== 0 || name === undefined) throw new Error(`npm pack failed: ${why(ran)}`);
  return { tarball: join(dir, name), ran };
}
