// `npm run e2e`: real builds with the two JS toolchains that run Wizer today, with wiz in its place, in fresh
// temporary projects installed from the npm registry, each beside the same build with the native Wizer the toolchain
// ships: ComponentizeJS (its `wizerBin` option; the component is transpiled with jco and called from Node) and
// Fastly's js-compute (an npm override of @bytecodealliance/wizer; the output is validated, and run with Viceroy
// when the Fastly CLI can get it). Prints a table and one line per step; exits 1 if a step failed.
// Options: --keep (leave the temporary folder), --worktree (pack the working tree instead of HEAD),
// --only componentize|fastly, --viceroy PATH (a Viceroy binary; the Fastly CLI otherwise downloads one).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { freshEnv, MINUTES, node24, packWiz, run, stopAll, track, why, type Ran } from './e2e/project.ts';

const VERSIONS = {
  componentizeJs: '0.23.0',
  jco: '1.35.0',
  // ComponentizeJS imports preview2-shim without declaring it and was built against ^0.17.4; the 0.26 that jco
  // brings preopens no directory, so ComponentizeJS cannot read the WIT file with it.
  preview2Shim: '0.17.9',
  jsCompute: '3.46.0',
  fastlyCli: '16.1.0',
};

const { values: opts } = parseArgs({
  options: {
    keep: { type: 'boolean', default: false },
    worktree: { type: 'boolean', default: false },
    only: { type: 'string' },
    viceroy: { type: 'string' },
  },
});
if (opts.only !== undefined && !['componentize', 'fastly'].includes(opts.only)) {
  process.stderr.write('e2e: --only takes componentize or fastly\n');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------------------------
// Steps and the table

type Result = 'pass' | 'fail' | 'skip';
interface Row { step: string; result: Result; ms?: number; wizerMs?: number; bytes?: number; summary: string }
interface Outcome<T> { value: T; summary: string; ms?: number; wizerMs?: number; bytes?: number }

const rows: Row[] = [];

/** A step that cannot run here for a reason outside wiz (reported, not a failure). */
class Skip extends Error {}

/** Runs one step, unless a step it needs gave nothing; a thrown error is its failure, its message the summary. */
async function step<T>(name: string, needs: unknown[], body: () => Promise<Outcome<T>>): Promise<T | undefined> {
  if (needs.some((v) => v === undefined)) {
    rows.push({ step: name, result: 'skip', summary: 'not run: a step it needs did not pass' });
    return undefined;
  }
  process.stderr.write(`e2e: ${name}\n`);
  const start = performance.now();
  try {
    const o = await body();
    rows.push({ step: name, result: 'pass', ms: o.ms ?? performance.now() - start, wizerMs: o.wizerMs, bytes: o.bytes, summary: o.summary });
    return o.value;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    rows.push({ step: name, result: e instanceof Skip ? 'skip' : 'fail', ms: performance.now() - start, summary: message.split('\n').join(' / ') });
    return undefined;
  }
}

const seconds = (ms?: number) => (ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`);
const size = (bytes?: number) => (bytes === undefined ? '' : `${bytes.toLocaleString('en-US')} B`);

function printTable(): void {
  const head = ['step', 'result', 'time', 'wizer step', 'output'];
  const body = rows.map((r) => [r.step, r.result.toUpperCase(), seconds(r.ms), seconds(r.wizerMs), size(r.bytes)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line), ''];
  for (const r of rows) out.push(`${r.result.toUpperCase().padEnd(4)} ${r.step}: ${r.summary.replaceAll(base, '<tmp>')}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// The apps: their top level computes what a call returns, so a right answer from the snapshot shows that
// pre-initialized state, not a run at call time, produced it.

const EXPECTED_ANSWER = '1000 primes, the last 7919';

const PRIMES_JS = `const primes = new Uint32Array(1000);
for (let n = 2, count = 0; count < primes.length; n++) {
  let prime = true;
  for (let i = 0; i < count && primes[i] * primes[i] <= n; i++) if (n % primes[i] === 0) { prime = false; break; }
  if (prime) primes[count++] = n;
}
const text = \`\${primes.length} primes, the last \${primes[primes.length - 1]}\`;
`;

const COMPONENT_WIT = `package wiz:e2e;

world app {
  export answer: func() -> string;
  export initialized-at: func() -> f64;
}
`;

const COMPONENT_JS = `// Runs at build time, under Wizer: the component starts from its snapshot.
const initializedAtTime = Date.now();
${PRIMES_JS}
export function answer() { return text; }
export function initializedAt() { return initializedAtTime; }
`;

const FASTLY_JS = `// Runs at build time, under Wizer: each request starts from the snapshot.
${PRIMES_JS}
addEventListener('fetch', (event) => event.respondWith(new Response(text)));
`;

/** 32 of the primes as little-endian u32s: bytes only a snapshot of the app's Uint32Array holds. */
function primeTableBytes(): Uint8Array {
  const primes: number[] = [];
  for (let n = 2; primes.length < 532; n++) if (primes.every((p) => p * p > n || n % p !== 0)) primes.push(n);
  return new Uint8Array(Uint32Array.from(primes.slice(500)).buffer);
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(needle) >= 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers for the temporary projects

const here = join(import.meta.dirname, 'e2e');
const base = mkdtempSync(join(tmpdir(), 'wiz-e2e-'));
const nodeBin = join(base, 'node-bin');
mkdirSync(nodeBin);
symlinkSync(node24(), join(nodeBin, 'node'));
// Ctrl-C or a kill: end the commands still running (each in a process group of its own) and the temporary folder.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopAll();
    if (!opts.keep) rmSync(base, { recursive: true, force: true });
    process.exit(130);
  });
}
const env = freshEnv(nodeBin, { npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' });
const NODE = join(nodeBin, 'node');

function writeProject(dir: string, pkg: object, files: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ private: true, type: 'module', ...pkg }, null, 2)}\n`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  for (const helper of ['spawn-log.mjs', 'componentize.mjs', 'call-component.mjs']) copyFileSync(join(here, helper), join(dir, helper));
}

async function npmInstall(dir: string): Promise<Ran> {
  const r = await run('npm', ['install'], { cwd: dir, env, timeoutMs: 30 * MINUTES });
  if (r.status !== 0) throw new Error(`npm install failed: ${why(r, /ERR|error/)}`);
  return r;
}

/** The package `name` as Node resolves it from the folder `from` in `project`: nested first, then hoisted. */
function installedPackage(project: string, from: string, name: string): { dir: string; name: string; version: string } {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) {
      const pkg = JSON.parse(readFileSync(join(candidate, 'package.json'), 'utf8')) as { name: string; version: string };
      return { dir: candidate, name: pkg.name, version: pkg.version };
    }
    if (dir === project || dir === dirname(dir)) throw new Error(`${name} is not installed for ${relative(project, from) || 'the project'}`);
  }
}

/** The package a file belongs to, following links (npm's bin links among them). */
function packageOf(file: string): { dir: string; name: string; version: string } {
  for (let dir = dirname(realpathSync(file)); dir !== dirname(dir); dir = dirname(dir)) {
    if (!existsSync(join(dir, 'package.json'))) continue;
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; version: string };
    return { dir, name: pkg.name, version: pkg.version };
  }
  throw new Error(`${file} is in no package`);
}

/** Every copy of a package in a project's node_modules tree. */
function copiesOf(dir: string, name: string, found: string[] = []): string[] {
  const modules = join(dir, 'node_modules');
  if (!existsSync(modules)) return found;
  if (existsSync(join(modules, name, 'package.json'))) found.push(join(modules, name));
  for (const entry of readdirSync(modules)) {
    if (entry.startsWith('.')) continue;
    const scoped = entry.startsWith('@') ? readdirSync(join(modules, entry)).map((e) => join(entry, e)) : [entry];
    for (const pkg of scoped) copiesOf(join(modules, pkg), name, found);
  }
  return found;
}

interface SpawnEntry { command: string; args: string[]; ms: number; status: number | null }

function spawnLog(file: string): SpawnEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as SpawnEntry);
}

/** The Wizer runs a build made, from its spawn log: what ran, and how long it took. */
function wizerRuns(file: string): { command: string; ms: number } {
  const runs = spawnLog(file).filter((e) => /wizer/i.test(e.command));
  if (runs.length === 0) throw new Error('the build spawned no Wizer');
  return { command: runs[0]!.command.replace(/^"|"$/g, ''), ms: runs.reduce((t, e) => t + e.ms, 0) };
}

let logs = 0;
const newLog = () => join(base, `spawns-${++logs}.jsonl`);

// ---------------------------------------------------------------------------------------------------------------
// The run

let failed = false;
try {
  const pack = await step('pack wiz', [], async () => {
    const { tarball, ran } = await packWiz(join(base, 'pack'), env, opts.worktree ? 'worktree' : 'head');
    const files = ran.stderr.match(/total files:\s*(\d+)/)?.[1];
    return {
      value: { tarball, version: basename(tarball).replace(/^wiz-|\.tgz$/g, '') },
      bytes: statSync(tarball).size,
      summary: `${opts.worktree ? 'the working tree' : 'git archive HEAD'} copied, npm pack (its prepare script builds dist/): ${basename(tarball)}${files ? `, ${files} files` : ''}`,
    };
  });

  if (opts.only !== 'fastly') await componentizeJs(pack);
  if (opts.only !== 'componentize') await fastly(pack);
} catch (e) {
  rows.push({ step: 'e2e', result: 'fail', summary: e instanceof Error ? e.message : String(e) });
} finally {
  printTable();
  failed = rows.some((r) => r.result === 'fail');
  if (opts.keep) process.stdout.write(`kept ${base}\n`);
  else rmSync(base, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;

// ---------------------------------------------------------------------------------------------------------------
// 1. ComponentizeJS

interface Built { file: string; ms: number; wizerMs: number; bytes: number }
interface Component extends Built { startedAt: number; endedAt: number }

/** wiz's build beside the native ones (cold and warm wasmtime cache), for a summary. */
function compare(wiz: Built, cold: Built | undefined, warm: Built | undefined, what: string): string {
  if (!cold) return '';
  const pair = (f: (b: Built) => string) => `${f(wiz)} vs ${f(cold)}${warm ? ` / ${f(warm)}` : ''}`;
  return `; wiz vs native (cold${warm ? ' / warm' : ''} cache): build ${pair((b) => seconds(b.ms))}, wizer step ${pair((b) => seconds(b.wizerMs))}, ${what} ${size(wiz.bytes)} vs ${size(cold.bytes)} (${wiz.bytes >= cold.bytes ? '+' : ''}${(wiz.bytes - cold.bytes).toLocaleString('en-US')} B)`;
}

/**
 * Why a Wizer that is wiz failed to start, when its message says so: both toolchains spawn Wizer with an
 * environment of their own, without PATH, so `#!/usr/bin/env node` finds the default PATH's Node, not this one.
 */
function nodeHint(r: Ran): string {
  if (!/wiz: needs Node\.js/.test(r.stderr)) return '';
  return ' (the tool spawns Wizer without PATH, so its "#!/usr/bin/env node" runs the Node on the default PATH of /bin/sh or execvp)';
}

async function componentizeJs(pack: { tarball: string; version: string } | undefined): Promise<void> {
  const dir = join(base, 'componentize');
  const project = await step('componentize-js: install', [pack], async () => {
    writeProject(dir, {
      name: 'wiz-e2e-componentize',
      dependencies: {
        '@bytecodealliance/componentize-js': VERSIONS.componentizeJs,
        '@bytecodealliance/jco': VERSIONS.jco,
        '@bytecodealliance/preview2-shim': VERSIONS.preview2Shim,
        wiz: `file:${pack!.tarball}`,
      },
    }, { 'app/app.js': COMPONENT_JS, 'app/app.wit': COMPONENT_WIT });
    await npmInstall(dir);
    const cjs = installedPackage(dir, dir, '@bytecodealliance/componentize-js');
    const native = installedPackage(dir, cjs.dir, '@bytecodealliance/wizer');
    return {
      value: { nativeVersion: native.version },
      summary: `npm install: componentize-js ${cjs.version} (it depends on the native @bytecodealliance/wizer ${native.version}), jco ${VERSIONS.jco}, preview2-shim ${VERSIONS.preview2Shim}, wiz ${pack!.version} from the tarball`,
    };
  });

  const build = async (out: string, options: string, args: string[] = [], mustBeWiz = false): Promise<Outcome<Component>> => {
    const log = newLog();
    const r = await run(NODE, ['componentize.mjs', out, ...args], { cwd: dir, env: { ...env, WIZ_E2E_SPAWN_LOG: log } });
    if (r.status !== 0) throw new Error(`componentize failed: ${why(r, /wiz:|error:|failed/i)}${nodeHint(r)}`);
    const o = JSON.parse(r.stdout) as { ms: number; bytes: number; startedAt: number; endedAt: number };
    const wizer = wizerRuns(log);
    const owner = packageOf(wizer.command);
    if (mustBeWiz && owner.name !== 'wiz') throw new Error(`ComponentizeJS ran ${wizer.command}, of ${owner.name} ${owner.version}, not wiz`);
    const version = mustBeWiz ? `, --version ${(await run(wizer.command, ['--version'], { cwd: dir, env })).stdout.trim()}` : '';
    return {
      value: { file: join(dir, out), wizerMs: wizer.ms, ...o },
      ms: o.ms, wizerMs: wizer.ms, bytes: o.bytes,
      summary: `componentize({ ${options} }) ran ${relative(dir, wizer.command)} (package ${owner.name} ${owner.version}${version}; ${seconds(wizer.ms)}); component ${size(o.bytes)}`,
    };
  };
  // The native Wizer keeps compiled code in wasmtime's cache: an empty one of its own, then the same again.
  const cache = ['--env', `XDG_CACHE_HOME=${join(base, 'cache-componentize')}`];
  const nativeName = `componentize-js: build, native Wizer${project ? ` ${project.nativeVersion}` : ''}`;
  const native = await step(`${nativeName}, cold cache`, [project], () => build('native.wasm', 'env: { XDG_CACHE_HOME: <empty folder> }', cache));
  const warm = await step(`${nativeName}, warm cache`, [project], () => build('native-warm.wasm', 'env: { XDG_CACHE_HOME: <the same folder> }', cache));
  // The README's way: wizerBin is the path wiz exports (a launcher pinned to the Node that imported it).
  const exported = project && (await run(NODE, ['--input-type=module', '-e', "process.stdout.write((await import('wiz')).default)"], { cwd: dir, env }));
  const wizBin = exported?.status === 0 ? exported.stdout : join(dir, 'node_modules', 'wiz', 'bin', 'wizer.js');
  const documented = await step('componentize-js: build, wizerBin: the path wiz exports', [project], () => build('wiz.wasm', 'wizerBin: (await import(\'wiz\')).default', ['--wizer-bin', wizBin], true));
  const withPath = documented ? undefined : await step('componentize-js: build, that wizerBin + env: { PATH }', [project], () => build('wiz-path.wasm', 'wizerBin, env: { PATH } (ComponentizeJS spawns Wizer with no PATH otherwise)', ['--wizer-bin', wizBin, '--env', 'PATH'], true));

  /** Transpiles a component with jco and calls it from Node. */
  const call = async (built: Component): Promise<Outcome<string>> => {
    const outDir = join(dir, `out-${basename(built.file, '.wasm')}`);
    const start = performance.now();
    const t = await run(join(dir, 'node_modules', '.bin', 'jco'), ['transpile', built.file, '-o', outDir, '--name', 'app'], { cwd: dir, env });
    if (t.status !== 0) throw new Error(`jco transpile failed: ${why(t)}`);
    const c = await run(NODE, ['call-component.mjs', outDir], { cwd: dir, env });
    if (c.status !== 0) throw new Error(`calling the component failed: ${why(c)}`);
    const o = JSON.parse(c.stdout) as { answer: string; initializedAt: number; calledAt: number };
    if (o.answer !== EXPECTED_ANSWER) throw new Error(`answer() returned ${JSON.stringify(o.answer)}, not ${JSON.stringify(EXPECTED_ANSWER)}`);
    if (!(o.initializedAt >= built.startedAt && o.initializedAt <= built.endedAt)) {
      throw new Error(`initializedAt() is ${new Date(o.initializedAt).toISOString()}, not within the build (${new Date(built.startedAt).toISOString()}…${new Date(built.endedAt).toISOString()})`);
    }
    const core = readdirSync(outDir).filter((f) => f.endsWith('.wasm')).reduce((n, f) => n + statSync(join(outDir, f)).size, 0);
    return {
      value: o.answer,
      ms: performance.now() - start,
      bytes: core,
      summary: `jco transpile (${seconds(t.ms)}), import and call: answer() = ${JSON.stringify(o.answer)}; initializedAt() is the build's time, ${seconds(o.calledAt - o.initializedAt)} before the call (the top level ran under Wizer, not at instantiation); core modules ${size(core)}`,
    };
  };
  const nativeAnswer = await step('componentize-js: transpile + call, native', [native], () => call(native!));
  const wizBuild = documented ?? withPath;
  await step(`componentize-js: transpile + call, wiz${documented ? '' : ' (env: { PATH } build)'}`, [wizBuild], async () => {
    const o = await call(wizBuild!);
    const same = nativeAnswer === undefined ? 'no native answer to compare' : nativeAnswer === o.value ? 'the same answer as native' : `native answered ${JSON.stringify(nativeAnswer)}`;
    if (nativeAnswer !== undefined && nativeAnswer !== o.value) throw new Error(`${o.summary}; ${same}`);
    const vs = compare(wizBuild!, native, warm, 'component');
    return { ...o, summary: `${o.summary}; ${same}${vs}` };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Fastly js-compute

async function fastly(pack: { tarball: string; version: string } | undefined): Promise<void> {
  const nativeDir = join(base, 'fastly-native');
  const wizDir = join(base, 'fastly-wiz');
  const files = { 'src/index.js': FASTLY_JS, 'fastly.toml': 'manifest_version = 3\nname = "wiz-e2e"\nlanguage = "javascript"\n' };

  const nativeProject = await step('js-compute: install (native)', [], async () => {
    writeProject(nativeDir, { name: 'wiz-e2e-fastly-native', dependencies: { '@fastly/js-compute': VERSIONS.jsCompute } }, files);
    await npmInstall(nativeDir);
    const jsCompute = installedPackage(nativeDir, nativeDir, '@fastly/js-compute');
    const wizer = installedPackage(nativeDir, jsCompute.dir, '@bytecodealliance/wizer');
    return { value: wizer.version, summary: `npm install: @fastly/js-compute ${jsCompute.version}, which imports the native @bytecodealliance/wizer ${wizer.version}` };
  });

  const wizProject = await step('js-compute: install with the override', [pack], async () => {
    writeProject(wizDir, {
      name: 'wiz-e2e-fastly-wiz',
      dependencies: { '@fastly/js-compute': VERSIONS.jsCompute, '@fastly/cli': VERSIONS.fastlyCli, wiz: `file:${pack!.tarball}` },
      overrides: { '@bytecodealliance/wizer': `file:${pack!.tarball}` },
    }, files);
    await npmInstall(wizDir);
    const copies = copiesOf(wizDir, '@bytecodealliance/wizer').map((d) => JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')) as { name: string; version: string });
    const other = copies.filter((p) => p.name !== 'wiz');
    if (copies.length === 0 || other.length > 0) throw new Error(`@bytecodealliance/wizer in the tree: ${copies.map((p) => `${p.name}@${p.version}`).join(', ') || 'none'}`);
    const jsCompute = installedPackage(wizDir, wizDir, '@fastly/js-compute');
    const resolved = installedPackage(wizDir, jsCompute.dir, '@bytecodealliance/wizer');
    return {
      value: true,
      summary: `"overrides": {"@bytecodealliance/wizer": "file:<wiz tarball>"}: js-compute's @bytecodealliance/wizer is ${resolved.name} ${resolved.version} (${copies.length} cop${copies.length === 1 ? 'y' : 'ies'} in the tree, all wiz); also @fastly/cli ${VERSIONS.fastlyCli}`,
    };
  });

  await step('npm overrides: forms that put wiz in place', [pack], async () => {
    // Lock-file-only resolutions of the same project, one per form, in parallel.
    const tarballName = basename(pack!.tarball);
    const forms: Array<[string, Record<string, string>]> = [
      [`file:${pack!.tarball}`, {}],
      [`file:../${tarballName}`, {}],
      ['$wiz', { wiz: `file:${pack!.tarball}` }],
      [`npm:wiz@${pack!.version}`, {}],
    ];
    const results = await Promise.all(forms.map(async ([form, deps], i) => {
      const dir = join(base, 'overrides', String(i), 'app');
      mkdirSync(dir, { recursive: true });
      copyFileSync(pack!.tarball, join(dir, '..', tarballName));
      writeFileSync(join(dir, 'package.json'), JSON.stringify({
        name: 'override-form', private: true,
        dependencies: { '@fastly/js-compute': VERSIONS.jsCompute, ...deps },
        overrides: { '@bytecodealliance/wizer': form },
      }));
      const r = await run('npm', ['install', '--package-lock-only', '--ignore-scripts'], { cwd: dir, env, timeoutMs: 15 * MINUTES });
      const lock = existsSync(join(dir, 'package-lock.json')) ? JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')) as { packages: Record<string, { name?: string; version?: string }> } : undefined;
      const entries = Object.entries(lock?.packages ?? {}).filter(([k]) => k.endsWith('node_modules/@bytecodealliance/wizer'));
      const works = r.status === 0 && entries.length > 0 && entries.every(([, v]) => v.name === 'wiz');
      const display = form.replace(pack!.tarball, '<abs tarball>');
      return { form: display, works, note: works ? 'wiz' : r.status !== 0 ? why(r, /E404|ERR|error/).replace(/npm error /g, '').slice(0, 120) : entries.map(([, v]) => `${v.name ?? '?'}@${v.version}`).join(',') };
    }));
    const summary = results.map((f) => `${f.form} ${f.works ? '✓' : `✗ (${f.note})`}`).join('; ');
    if (!results[0]!.works) throw new Error(summary);
    return { value: true, summary: `npm ${(await run('npm', ['--version'], { cwd: base, env })).stdout.trim()}, lock-file-only: ${summary}` };
  });

  const marker = primeTableBytes();
  /** Builds src/index.js with js-compute-runtime, validates the output and looks for the table init computed. */
  const build = async (dir: string, out: string, args: string[] = []): Promise<Outcome<Built & { wizer: string; stderr: string }>> => {
    const log = newLog();
    const r = await run(join(dir, 'node_modules', '.bin', 'js-compute-runtime'), [...args, 'src/index.js', out], {
      cwd: dir, env: { ...env, WIZ_E2E_SPAWN_LOG: log, NODE_OPTIONS: `--import=${pathToFileURL(join(dir, 'spawn-log.mjs')).href}` },
    });
    if (r.status !== 0) throw new Error(`js-compute-runtime failed (exit ${r.status}): ${why(r, /wiz:|error:|failure/i)}${nodeHint(r)}`);
    const wizer = wizerRuns(log);
    const bytes = new Uint8Array(readFileSync(join(dir, out)));
    if (!WebAssembly.validate(bytes)) throw new Error(`${out} is not a valid module (WebAssembly.validate)`);
    const engine = new Uint8Array(readFileSync(join(installedPackage(dir, dir, '@fastly/js-compute').dir, 'fastly.wasm')));
    if (contains(engine, marker)) throw new Error('the prime table is in fastly.wasm already: the marker proves nothing');
    if (!contains(bytes, marker)) throw new Error(`${out} does not hold the prime table the app computes at init`);
    return {
      value: { file: join(dir, out), ms: r.ms, wizerMs: wizer.ms, bytes: bytes.length, wizer: wizer.command, stderr: r.stderr },
      ms: r.ms, wizerMs: wizer.ms, bytes: bytes.length,
      summary: `js-compute-runtime ${[...args, 'src/index.js', out].join(' ')}: it spawned ${relative(dir, wizer.command)}; output valid (WebAssembly.validate) and holds the prime table the app computed at init`,
    };
  };

  /** Checks that the Wizer a build spawned is wiz: its package, its --version, its warnings. */
  const wizProof = async (built: Built & { wizer: string; stderr: string }): Promise<string> => {
    const pkg = packageOf(built.wizer);
    if (pkg.name !== 'wiz') throw new Error(`js-compute spawned ${built.wizer}, of the package ${pkg.name}, not wiz`);
    const version = (await run(built.wizer, ['--version'], { cwd: wizDir, env })).stdout.trim();
    const warnings = built.stderr.split('\n').filter((l) => l.startsWith('wiz: warning')).length;
    return `the spawned path is in node_modules/${relative(join(wizDir, 'node_modules'), pkg.dir)} (package ${pkg.name} ${pkg.version}), its --version says ${version}, and it printed ${warnings} "wiz: warning" line${warnings === 1 ? '' : 's'}`;
  };

  // The native Wizer keeps compiled code in wasmtime's cache: an empty one of its own, then the same again.
  const cache = ['--env', `XDG_CACHE_HOME=${join(base, 'cache-fastly')}`];
  const nativeName = `js-compute: build, native Wizer${nativeProject ? ` ${nativeProject}` : ''}`;
  const native = await step(`${nativeName}, cold cache`, [nativeProject], () => build(nativeDir, 'bin/main.wasm', cache));
  const warm = await step(`${nativeName}, warm cache`, [nativeProject], () => build(nativeDir, 'bin/main-warm.wasm', cache));
  const documented = await step('js-compute: build with wiz (override only)', [wizProject], async () => {
    const o = await build(wizDir, 'bin/main.wasm');
    return { ...o, summary: `${o.summary}; ${await wizProof(o.value)}${compare(o.value, native, warm, 'output')}` };
  });
  const withPath = documented ? undefined : await step('js-compute: build with wiz, --env PATH', [wizProject], async () => {
    // js-compute spawns Wizer through /bin/sh with only the variables named by --env: no PATH.
    const o = await build(wizDir, 'bin/main-path.wasm', ['--env', 'PATH']);
    return { ...o, summary: `${o.summary}; ${await wizProof(o.value)}${compare(o.value, native, warm, 'output')}` };
  });

  await step('js-compute: run with Viceroy (fastly compute serve)', [wizProject, documented ?? withPath], async () => {
    const outputs: Array<[string, Built]> = [['wiz', (documented ?? withPath)!]];
    if (native) outputs.push(['native', native]);
    const answers: string[] = [];
    for (const [name, built] of outputs) answers.push(`${name}: ${JSON.stringify(await serve(wizDir, built.file))}`);
    for (const a of answers) if (!a.endsWith(JSON.stringify(EXPECTED_ANSWER))) throw new Error(`GET / answered ${answers.join(', ')}`);
    return { value: true, summary: `fastly compute serve --file, GET / answered ${answers.join(', ')}` };
  });
}

/** A port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Serves a module with the Fastly CLI's local server (Viceroy) and requests /; a Viceroy it cannot get is a Skip. */
async function serve(dir: string, wasm: string): Promise<string> {
  const port = await freePort();
  const args = ['compute', 'serve', '--file', wasm, '--skip-build', '--addr', `127.0.0.1:${port}`, '--non-interactive'];
  if (opts.viceroy) args.push('--viceroy-path', opts.viceroy);
  // The CLI's configuration and any Viceroy it downloads stay in the temporary folder.
  const child = spawn(join(dir, 'node_modules', '.bin', 'fastly'), args, { cwd: dir, env: { ...env, XDG_CONFIG_HOME: join(base, 'fastly-config') }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let output = '';
  let timer: NodeJS.Timeout | undefined;
  const listening = new Promise<boolean>((resolve) => {
    const seen = (b: Buffer) => { output += b.toString(); if (/Listening on http/i.test(output)) resolve(true); };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.on('close', () => resolve(false));
    timer = setTimeout(() => resolve(false), 10 * MINUTES);
  });
  try {
    if (!(await listening)) {
      const error = output.split('\n').map((l) => l.trim()).find((l) => l.startsWith('ERROR')) ?? output.trim().split('\n').slice(-2).join(' / ');
      if (/Viceroy/i.test(error)) throw new Skip(`the Fastly CLI cannot get Viceroy (Fastly's local server; not on npm, it downloads it on first use, or takes --viceroy-path): ${error}`);
      throw new Error(`fastly compute serve did not start: ${error}`);
    }
    const response = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5 * MINUTES) });
    return `${response.status} ${await response.text()}`.replace(/^200 /, '');
  } finally {
    clearTimeout(timer);
    try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
  }
}
