// The output cache of `--cache` and the bundler plugin: an output is found again by a key over everything init
// can see (the module, the options, wiz's own code, the environment it was given, preloaded modules), then
// served only while every file init reached through --dir/--mapdir is as it was. Layout:
//   DIR/<key>/<files>.json   what init saw of the files, its warnings, the output's hash and size
//   DIR/<key>/<files>.wasm   the output
// where <files> is a hash of the recorded file states, so that each state of the files has its own entry. Each
// file is written beside its place and renamed into it, the .wasm before the .json: a reader never sees half.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WizWarningCode } from '../../src/errors.ts';
import type { Job } from '../job.ts';
import type { HostTrace } from '../host.ts';
import { tempSuffix } from '../io.ts';

/** Bumped when the key or the layout changes meaning. */
const FORMAT = 1;

export interface Warning {
  code: WizWarningCode;
  message: string;
}

/** A path init reached, and what it was: a file (with the hash of its bytes), a directory (of its listing), absent. */
export interface FileRead {
  path: string;
  state: string;
}

export type CacheStatus = 'off' | 'hit' | 'miss' | 'not-stored';

interface Manifest {
  format: number;
  files: FileRead[];
  warnings: Warning[];
  output: { sha256: string; bytes: number };
}

export interface CacheHit {
  bytes: Uint8Array;
  files: FileRead[];
  warnings: Warning[];
}

/** node:crypto, loaded when a cache is used (it costs every other run milliseconds of start-up). */
const createHash = (algorithm: string) => (process.getBuiltinModule('node:crypto') as typeof import('node:crypto')).createHash(algorithm);
const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/**
 * The default cache directory, as build tools keep theirs: `node_modules/.cache/wiz` of the nearest folder
 * with a package.json (from `cwd` up), else of `cwd`.
 */
export function defaultCacheDir(cwd: string = process.cwd()): string {
  for (let at = resolve(cwd); ; at = dirname(at)) {
    if (existsSync(join(at, 'package.json'))) return join(at, 'node_modules', '.cache', 'wiz');
    if (dirname(at) === at) return join(resolve(cwd), 'node_modules', '.cache', 'wiz');
  }
}

let buildId: string | undefined;
/**
 * wiz's version and a hash of its own code (the build in dist/, or the sources when run from them): a change
 * to wiz is a change to what it writes, released or not.
 */
export function wizBuildId(): string {
  if (buildId) return buildId;
  // This code runs from the sources (cli/build/cache.ts), the build (dist/cli/build/cache.js) or the bundle of
  // the command line (dist/cli/wiz.cjs): the code is what lies below src/ and cli/ of that tree.
  const here = fileURLToPath(import.meta.url);
  const fromSources = here.endsWith('.ts');
  const dist = here.lastIndexOf(`${sep}dist${sep}`);
  const code = fromSources ? resolve(dirname(here), '..', '..') : here.slice(0, dist + 5);
  const hash = createHash('sha256');
  for (const dir of ['src', 'cli']) {
    const base = join(code, dir);
    const files = (readdirSync(base, { recursive: true }) as string[]).filter((f) => /\.(ts|js|cjs)$/.test(f) && !f.endsWith('.d.ts')).sort();
    for (const file of files) hash.update(`${dir}/${file}\0`).update(readFileSync(join(base, file)));
  }
  const root = fromSources ? code : dirname(code);
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  return (buildId = `${version}+${hash.digest('hex').slice(0, 16)}`);
}

/** Options outside the job that change the output (`--optimize`). */
export type KeyExtras = Record<string, unknown>;

/** The key of a job: everything init can see but the files it reaches, which the manifest records. */
export function cacheKey(job: Job, extras: KeyExtras = {}): string {
  const h = job.host;
  const dir = (host: string) => resolve(host);
  const mapdirs = h.mapdirs.map((spec) => {
    const sep = spec.indexOf('::');
    return sep < 0 ? [spec] : [spec.slice(0, sep), dir(spec.slice(sep + 2))];
  });
  const preloads = h.preloads.map((spec) => {
    const eq = spec.indexOf('=');
    return [spec.slice(0, eq), fileState(spec.slice(eq + 1))];
  });
  const env = h.allowWasi && h.inheritEnv ? Object.entries(process.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : undefined;
  return sha256(JSON.stringify({
    format: FORMAT,
    wiz: wizBuildId(),
    input: sha256(job.input),
    kind: job.kind,
    ...(job.kind === 'init' ? { initFunc: job.initFunc ?? null, keepInitFunc: !!job.keepInitFunc } : { invoke: job.invoke }),
    renames: job.renames,
    keepInstrumentation: !!job.keepInstrumentation,
    host: {
      allowWasi: h.allowWasi, inheritStdio: h.inheritStdio, stdoutTaken: h.stdoutTaken, env, deterministic: h.deterministic,
      dirs: h.dirs.map((d) => [d, dir(d)]), mapdirs, preloads,
    },
    extras,
  }));
}

/** What a path is now: `file:<sha256>`, `directory:<sha256 of its listing>`, `absent`, or `other`. */
export function fileState(path: string): string {
  try {
    const stat = statSync(path);
    if (stat.isFile()) return `file:${sha256(readFileSync(path))}`;
    if (stat.isDirectory()) {
      const listing = readdirSync(path, { withFileTypes: true }).map((e) => `${e.isDirectory() ? 'd' : 'f'}:${e.name}`).sort();
      return `directory:${sha256(listing.join('\0'))}`;
    }
    return 'other';
  } catch {
    return 'absent';
  }
}

/** The states of the paths init reached, now. */
export const filesRead = (paths: readonly string[]): FileRead[] => paths.map((path) => ({ path, state: fileState(path) }));

/** A stored output for `key` whose recorded files are all as they were, or undefined. */
export function lookup(dir: string, key: string): CacheHit | undefined {
  let names: string[];
  try {
    names = readdirSync(join(dir, key)).filter((n) => n.endsWith('.json'));
  } catch {
    return undefined;
  }
  for (const name of names) {
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(join(dir, key, name), 'utf8')) as Manifest;
    } catch {
      continue; // not ours, or damaged: never served
    }
    if (manifest.format !== FORMAT || !manifest.files.every((f) => fileState(f.path) === f.state)) continue;
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(join(dir, key, name.replace(/\.json$/, '.wasm')));
    } catch {
      continue;
    }
    // A damaged or altered entry is a miss, never a wrong output.
    if (bytes.length !== manifest.output.bytes || sha256(bytes) !== manifest.output.sha256) continue;
    return { bytes, files: manifest.files, warnings: manifest.warnings };
  }
  return undefined;
}

/**
 * Why the result of a run with this trace must not be stored, or undefined: init read a clock or random bytes
 * (without --deterministic), changed files, read stdin.
 */
export function notStorable(trace: HostTrace | undefined): string | undefined {
  if (!trace) return undefined;
  if (trace.nondeterministic.length) {
    return `init read ${trace.nondeterministic.map((k) => (k === 'clock' ? 'a clock' : 'random bytes')).join(' and ')} (pass --deterministic to cache it)`;
  }
  return trace.uncacheable;
}

/** Stores an output under `key`, with the files init reached as they are now. */
export function store(dir: string, key: string, bytes: Uint8Array, files: FileRead[], warnings: Warning[]): void {
  const at = join(dir, key);
  mkdirSync(at, { recursive: true });
  const name = sha256(JSON.stringify(files.map((f) => [f.path, f.state]))).slice(0, 32);
  const manifest: Manifest = { format: FORMAT, files, warnings, output: { sha256: sha256(bytes), bytes: bytes.length } };
  writeAtomically(join(at, `${name}.wasm`), bytes);
  writeAtomically(join(at, `${name}.json`), `${JSON.stringify(manifest, null, 1)}\n`);
}

/** Writes a file beside its place and renames it there: a reader sees the old file or the whole new one. */
export function writeAtomically(path: string, data: string | Uint8Array): void {
  const temp = `${path}.${tempSuffix()}.tmp`;
  try {
    writeFileSync(temp, data);
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw e;
  }
}
