// The package as a user gets it: `npm pack`ed, installed from the tarball into a fresh project, and run from there
// on Node 24: `npx wiz`, the `wizer` bin with the reference's command line, the @bytecodealliance/wizer-shaped
// entry reached through an npm override (as a build tool that depends on that package spawns it), the library.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir, wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const root = join(import.meta.dirname, '..');
const MINUTES = 60_000;

/** Node 24, which the package needs: this process's when it is one, else the checkout's dev dependency. */
function node24(): string {
  if (Number(process.versions.node.split('.')[0]) >= 24) return process.execPath;
  const local = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(local)) throw new Error('no Node 24 to run the installed package: run npm ci in the checkout');
  return realpathSync(local);
}

/** What the checkout's `npm pack` would pack (its "files", and what its build needs), so the shared tree's dist is left alone. */
function copyProject(to: string): void {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] };
  for (const entry of [...pkg.files.filter((f) => f !== 'dist' && !f.startsWith('!')), 'package.json', 'tsconfig.json', 'tsconfig.build.json', join('scripts', 'build-browser.ts'), join('scripts', 'build-cli.ts')]) {
    cpSync(join(root, entry), join(to, entry), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(to, 'node_modules'));
}

/** This environment, with Node 24 first on PATH and nothing of an npm script that runs this test (its prefix above all). */
function freshEnv(bin: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_(?!config_)/i.test(key) || /^npm_config_(local_prefix|prefix|global|workspaces?|include_workspace_root)$/i.test(key)) continue;
    env[key] = value;
  }
  env.PATH = `${bin}${delimiter}${process.env.PATH ?? ''}`;
  return env;
}

let base: string;
let app: string;
let env: NodeJS.ProcessEnv;
let input: string;
let legacy: string;
let random: string;

/** Runs a command in the fresh project (or `cwd`), with Node 24 first on PATH. */
function sh(command: string, args: string[], options: SpawnSyncOptions = {}) {
  const r = spawnSync(command, args, { cwd: app, env, maxBuffer: 1 << 28, ...options });
  return { status: r.status, stdout: r.stdout?.toString() ?? '', stderr: r.stderr?.toString() ?? '' };
}

/** Runs a command that must succeed, and says why when it does not. */
function must(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const r = sh(command, args, options);
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${r.status}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

const installed = (...path: string[]) => join(app, 'node_modules', ...path);
const bytes = (file: string) => new Uint8Array(readFileSync(file));

beforeAll(async () => {
  base = tempDir();
  const bin = join(base, 'node-bin');
  mkdirSync(bin);
  symlinkSync(node24(), join(bin, 'node'));
  env = freshEnv(bin);

  // The project, packed as `npm pack` packs it: its prepare script builds dist into the tarball.
  const project = join(base, 'project');
  copyProject(project);
  must('npm', ['pack', '--pack-destination', base], { cwd: project });
  const tarball = join(base, readdirSync(base).find((f) => /^wiz-.*\.tgz$/.test(f))!);

  // A build tool that depends on @bytecodealliance/wizer and spawns the path it exports, as @fastly/js-compute does.
  const tool = join(base, 'tool');
  mkdirSync(tool);
  writeFileSync(join(tool, 'package.json'), JSON.stringify({
    name: 'wasm-build-tool', version: '1.0.0', type: 'module', main: 'index.js',
    dependencies: { '@bytecodealliance/wizer': '^11.0.3' },
  }));
  writeFileSync(join(tool, 'index.js'), [
    "import { spawnSync } from 'node:child_process';",
    "import wizer from '@bytecodealliance/wizer';",
    'export { wizer };',
    "export const build = (args) => spawnSync(wizer, args, { stdio: ['inherit', 'inherit', 'pipe'], shell: true, encoding: 'utf-8' });",
    // As ComponentizeJS and js-compute spawn it: with an environment of their own, without PATH.
    "export const buildWithoutPath = (args) => spawnSync(wizer, args, { stdio: ['inherit', 'inherit', 'pipe'], env: {}, encoding: 'utf-8' });",
    '',
  ].join('\n'));
  must('npm', ['pack', '--pack-destination', base], { cwd: tool });

  // The fresh project: wiz from the tarball, and the tool, whose @bytecodealliance/wizer the override replaces.
  app = join(base, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({
    name: 'app', private: true, type: 'module',
    dependencies: { wiz: `file:${tarball}`, 'wasm-build-tool': `file:${join(base, 'wasm-build-tool-1.0.0.tgz')}` },
    overrides: { '@bytecodealliance/wizer': `file:${tarball}` },
  }, null, 2));
  must('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app });

  // Sources newer than the build, in any order npm may leave them: the installed CLI still runs the build.
  const later = new Date(Date.now() + 60 * MINUTES);
  for (const dir of [installed('wiz', 'cli'), installed('wiz', 'src')]) {
    for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' })) if (f.endsWith('.ts')) utimesSync(join(dir, f), later, later);
  }

  input = join(base, 'in.wasm');
  writeFileSync(input, await wat(`(module
    (memory (export "memory") 1)
    (global $g (mut i32) (i32.const 0))
    (func (export "wizer-initialize") (global.set $g (i32.const 42)) (i32.store (i32.const 64) (i32.const 7)))
    (func (export "get") (result i32) (global.get $g)))`));
  // Its init function has the older name: wiz runs it, with a warning.
  legacy = join(base, 'legacy.wasm');
  writeFileSync(legacy, await wat(`(module
    (global $g (mut i32) (i32.const 0))
    (func (export "wizer.initialize") (global.set $g (i32.const 1))))`));
  // Init keeps 8 random bytes: a warning, and a different output each run unless deterministic.
  random = join(base, 'random.wasm');
  writeFileSync(random, await wat(`(module
    (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "wizer-initialize") (drop (call $random (i32.const 16) (i32.const 8)))))`));
}, 15 * MINUTES);

describe('the package installed from its tarball into a fresh project', () => {
  it('npx wiz init writes the bytes wiz init writes in the checkout', () => {
    must('npx', ['wiz', 'init', input, '-o', 'npx.wasm']);
    expect(bytes(join(app, 'npx.wasm'))).toEqual(wizInit(bytes(input)).output);
  }, 5 * MINUTES);

  it('the wizer bin takes the reference\'s command line: flags and the input, no subcommand; stdin by default', () => {
    const expected = wizInit(bytes(input), ['-r', 'answer=get', '--keep-init-func=true']).output;
    must(installed('.bin', 'wizer'), ['--allow-wasi', '--inherit-stdio', 'true', '--keep-init-func', 'true', '-r', 'answer=get', '-o=bin.wasm', input]);
    expect(bytes(join(app, 'bin.wasm'))).toEqual(expected);
    must(installed('.bin', 'wizer'), ['-r', 'answer=get', '--keep-init-func=true', '-o', 'stdin.wasm'], { input: readFileSync(input) });
    expect(bytes(join(app, 'stdin.wasm'))).toEqual(expected);
  }, 5 * MINUTES);

  it('import wizer from \'@bytecodealliance/wizer\', overridden by wiz, is an executable path that spawnSync runs with shell: true', () => {
    const script = [
      "import { wizer, build } from 'wasm-build-tool';",
      "import direct from '@bytecodealliance/wizer';",
      `const r = build(['--allow-wasi', '--inherit-env=true', '--dir=.', '-r answer=get', '-o=entry.wasm', ${JSON.stringify(input)}]);`,
      'process.stdout.write(JSON.stringify({ wizer, direct, status: r.status, stderr: r.stderr }));',
    ].join('\n');
    writeFileSync(join(app, 'entry.mjs'), script);
    const out = JSON.parse(must('node', ['entry.mjs'])) as { wizer: string; direct: string; status: number; stderr: string };
    expect(out).toMatchObject({ status: 0, stderr: '' });
    expect(isAbsolute(out.wizer) && existsSync(out.wizer)).toBe(true);
    expect(out.direct).toBe(out.wizer);
    expect(out.wizer.startsWith(installed('@bytecodealliance', 'wizer'))).toBe(true);
    expect(bytes(join(app, 'entry.wasm'))).toEqual(wizInit(bytes(input), ['-r', 'answer=get']).output);
  }, 5 * MINUTES);

  it('the path it exports runs wiz on the Node that imported it, also when spawned without PATH', () => {
    writeFileSync(join(app, 'bare.mjs'), [
      "import { buildWithoutPath } from 'wasm-build-tool';",
      `const r = buildWithoutPath(['-r', 'answer=get', '-o', 'bare.wasm', ${JSON.stringify(input)}]);`,
      'process.stdout.write(JSON.stringify({ status: r.status, stderr: r.stderr, error: r.error?.message }));',
    ].join('\n'));
    const out = JSON.parse(must('node', ['bare.mjs'])) as { status: number; stderr: string };
    expect(out).toMatchObject({ status: 0, stderr: '' });
    expect(bytes(join(app, 'bare.wasm'))).toEqual(wizInit(bytes(input), ['-r', 'answer=get']).output);
  }, 5 * MINUTES);

  it('the library: import { preinitialize } from \'wiz\'', () => {
    writeFileSync(join(app, 'library.mjs'), [
      "import { readFileSync, writeFileSync } from 'node:fs';",
      "import { preinitialize } from 'wiz';",
      `writeFileSync('library.wasm', await preinitialize(readFileSync(${JSON.stringify(input)})));`,
    ].join('\n'));
    must('node', ['library.mjs']);
    expect(bytes(join(app, 'library.wasm'))).toEqual(wizInit(bytes(input)).output);
  }, 5 * MINUTES);

  it('exits 2 for a usage error and 1 for a failure, as the reference does', () => {
    const wizer = installed('.bin', 'wizer');
    const wiz = installed('.bin', 'wiz');
    expect(sh(wizer, ['--no-such-flag', input]).status).toBe(2);
    expect(sh(wizer, [input, 'second.wasm']).status).toBe(2);
    expect(sh(wiz, ['init']).status).toBe(2);
    expect(sh(wiz, []).status).toBe(2);
    expect(sh(wiz, ['init', input, '--init-timeout', 'soon', '-o', 'x.wasm']).status).toBe(2);
    const missing = sh(wizer, [join(base, 'missing.wasm'), '-o', 'x.wasm']);
    expect([missing.status, missing.stderr]).toEqual([1, `wiz: cannot read "${join(base, 'missing.wasm')}": no such file\n`]);
    expect(sh(wiz, ['init', '-f', 'nothing', input, '-o', 'x.wasm']).status).toBe(1);
    expect(sh(wizer, ['--help']).status).toBe(0);
  }, 5 * MINUTES);
});

describe('-q and the config file, through the installed CLI', () => {
  /** A folder below `base` with the given files (name → JSON), to run the CLI in. */
  function folder(name: string, files: Record<string, unknown>): string {
    const dir = join(base, name, 'nested', 'deeper');
    mkdirSync(dir, { recursive: true });
    for (const [file, json] of Object.entries(files)) writeFileSync(join(base, name, file), JSON.stringify(json));
    return dir;
  }
  const wizer = (args: string[], cwd = app) => sh(installed('.bin', 'wizer'), args, { cwd });
  const warning = 'wiz: warning: the module exports no "wizer-initialize"; running its "wizer.initialize" as the init function\n';

  it('-q/--quiet prints errors only', () => {
    expect(wizer([legacy, '-o', 'legacy.wasm'])).toMatchObject({ status: 0, stderr: warning });
    expect(wizer(['-q', legacy, '-o', 'legacy.wasm'])).toMatchObject({ status: 0, stderr: '' });
    expect(sh(installed('.bin', 'wiz'), ['init', '--quiet', legacy, '-o', 'legacy.wasm'])).toMatchObject({ status: 0, stderr: '' });
    expect(wizer(['-q', '-f', 'nothing', input, '-o', 'x.wasm'])).toMatchObject({ status: 1, stderr: expect.stringMatching(/^wiz: .*"nothing"/) });
  }, 5 * MINUTES);

  it('wiz.config.json, found from the working directory upward, sets quiet; a flag on the command line wins', () => {
    const cwd = folder('quiet', { 'wiz.config.json': { quiet: true } });
    expect(wizer([legacy, '-o', 'legacy.wasm'], cwd)).toMatchObject({ status: 0, stderr: '' });
    expect(wizer(['--quiet=false', legacy, '-o', 'legacy.wasm'], cwd)).toMatchObject({ status: 0, stderr: warning });
  }, 5 * MINUTES);

  it('the "wiz" key of package.json sets deterministic: the same bytes every run, as with --deterministic', () => {
    const cwd = folder('deterministic', { 'package.json': { name: 'x', private: true, wiz: { deterministic: true } } });
    const run = (name: string, args: string[] = []) => {
      const r = wizer(['--allow-wasi', ...args, random, '-o', name], cwd);
      return { ...r, output: r.status === 0 ? bytes(join(cwd, name)) : undefined };
    };
    const first = run('a.wasm');
    expect([first.status, first.stderr]).toEqual([0, '']);
    expect(run('b.wasm').output).toEqual(first.output);
    expect(run('flag.wasm', ['--deterministic']).output).toEqual(first.output);
    const overridden = run('random.wasm', ['--deterministic=false']);
    expect(overridden.stderr).toMatch(/random_get/); // init read randomness: said once
    expect(overridden.output).not.toEqual(first.output);
  }, 5 * MINUTES);

  it('an unknown key, a wrong type, or a file that is not JSON: one line, exit 2', () => {
    const unknown = folder('unknown', { 'wiz.config.json': { quiet: true, cached: 'yes' } });
    expect(wizer([input, '-o', 'x.wasm'], unknown)).toEqual({
      status: 2, stdout: '', stderr: `wiz: ${join(base, 'unknown', 'wiz.config.json')}: unknown key "cached" (known: quiet, deterministic, cache)\n`,
    });
    const typed = folder('typed', { 'package.json': { name: 'x', wiz: { quiet: 'yes' } } });
    expect(sh(installed('.bin', 'wiz'), ['init', input, '-o', 'x.wasm'], { cwd: typed })).toMatchObject({
      status: 2, stderr: `wiz: ${join(base, 'typed', 'package.json')} ("wiz" key): "quiet" must be a boolean, not "yes"\n`,
    });
    const broken = folder('broken', {});
    writeFileSync(join(base, 'broken', 'wiz.config.json'), '{ "quiet": ');
    const r = wizer([input, '-o', 'x.wasm'], broken);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^wiz: .*wiz\.config\.json: cannot read it as JSON: .*\n$/);
  }, 5 * MINUTES);
});
