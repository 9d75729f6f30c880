// One pre-initialization as a build step: served from the cache when everything init can see is as it was,
// otherwise run and stored when its result depends on nothing but that. `wiz init`/`snapshot` (with --cache,
// --check, --json) and the bundler plugin both go through here, so they share one cache and one key.
import { concat } from '../../src/parse/writer.ts';
import type { WizWarningCode } from '../../src/errors.ts';
import type { HostTrace } from '../host.ts';
import { directOutput, runJob, type Job, type JobOutput } from '../job.ts';
import { cacheKey, filesRead, lookup, notStorable, store, type CacheStatus, type FileRead, type KeyExtras, type Warning } from './cache.ts';

export { defaultCacheDir, writeAtomically, type CacheStatus, type FileRead, type Warning } from './cache.ts';

/** What one run of a job gave: its output, its warnings (already printed by whoever ran it), what it saw. */
export interface Ran {
  parts: Uint8Array[];
  warnings: Warning[];
  trace?: HostTrace;
}

export interface BuildStepOptions {
  /** The cache directory; undefined for none. */
  cache?: string;
  /** Options outside the job that change the output (`--optimize`). */
  extras?: KeyExtras;
  /** Runs the job; undefined when it failed and said so itself (`--check-determinism`). */
  run(job: Job): Promise<Ran | undefined>;
  /** Turns a run's output into what is written (`--optimize`); not called on a hit. */
  finish?(parts: Uint8Array[]): Promise<Uint8Array[]>;
  /** Shows a warning stored with a cached output, as the run that made it showed it. */
  replay(warning: Warning): void;
}

export interface BuildStep {
  parts: Uint8Array[];
  warnings: Warning[];
  cache: { status: CacheStatus; reason?: string; key?: string; dir?: string };
  /** The paths init reached through --dir/--mapdir, and what each was. */
  files: FileRead[];
}

/** Runs `job` as a build step (see the top of this file). Undefined when the run failed and said so. */
export async function buildStep(job: Job, options: BuildStepOptions): Promise<BuildStep | undefined> {
  const dir = options.cache;
  const key = dir === undefined ? undefined : cacheKey(job, options.extras);
  const cache = { dir, key };
  if (dir !== undefined && key !== undefined) {
    const hit = lookup(dir, key);
    if (hit) {
      for (const w of hit.warnings) options.replay(w);
      return { parts: [hit.bytes], warnings: hit.warnings, files: hit.files, cache: { ...cache, status: 'hit' } };
    }
  }
  const ran = await options.run(job);
  if (!ran) return undefined;
  const parts = options.finish ? await options.finish(ran.parts) : ran.parts;
  const files = filesRead(ran.trace?.paths ?? []);
  if (dir === undefined || key === undefined) return { parts, warnings: ran.warnings, files, cache: { status: 'off' } };
  const reason = notStorable(ran.trace);
  if (reason) return { parts, warnings: ran.warnings, files, cache: { ...cache, status: 'not-stored', reason } };
  try {
    store(dir, key, concat(parts), files, ran.warnings);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return { parts, warnings: ran.warnings, files, cache: { ...cache, status: 'not-stored', reason: `cannot write the cache in "${dir}": ${why}` } };
  }
  return { parts, warnings: ran.warnings, files, cache: { ...cache, status: 'miss' } };
}

/** Runs a job in this process, collecting its warnings as `out` shows them, and what init saw. */
export async function runHere(job: Job, out: JobOutput = directOutput(job)): Promise<Ran> {
  const warnings: Warning[] = [];
  let trace: HostTrace | undefined;
  const parts = await runJob(job, {
    warn: (message, code) => {
      warnings.push({ code, message });
      out.warn(message, code);
    },
    print: out.print,
  }, (t) => (trace = t));
  return { parts, warnings, trace };
}

/** Options of `initModule`: `wiz init`'s, as data. */
export interface InitModuleOptions {
  initFunc?: string;
  keepInitFunc?: boolean;
  renames?: string[];
  keepInstrumentation?: boolean;
  /** Provide WASI (preview1) during init; the others below need it. */
  allowWasi?: boolean;
  /** The guest's stdout and stderr are the process's (default); false: none. */
  inheritStdio?: boolean;
  inheritEnv?: boolean;
  /** Host directories given to the guest at the same path. */
  dirs?: string[];
  /** `GUEST::HOST` pairs. */
  mapdirs?: string[];
  deterministic?: boolean;
  /** `name=file.wasm` pairs. */
  preloads?: string[];
  /** A cache directory (see `defaultCacheDir`), or false for none (default). */
  cache?: string | false;
  /** Receives each warning (default: none printed). */
  onWarning?: (message: string, code: WizWarningCode) => void;
}

/**
 * `wiz init` on bytes, in this process, with the cache of `--cache`: the initialized module, its warnings, the
 * cache's verdict and the files init reached (for a watcher). Throws a WizError as the command would fail.
 */
export async function initModule(input: Uint8Array, options: InitModuleOptions = {}): Promise<BuildStep & { bytes: Uint8Array }> {
  const warn = options.onWarning ?? (() => {});
  const job: Job = {
    kind: 'init', input, initFunc: options.initFunc, keepInitFunc: options.keepInitFunc, renames: options.renames ?? [],
    keepInstrumentation: options.keepInstrumentation, printToStderr: false, quiet: true,
    host: {
      allowWasi: options.allowWasi ?? false, inheritStdio: options.inheritStdio ?? true, inheritEnv: options.inheritEnv ?? false,
      dirs: options.dirs ?? [], mapdirs: options.mapdirs ?? [], preloads: options.preloads ?? [],
      deterministic: options.deterministic ?? false, stdoutTaken: false, trace: true,
    },
  };
  const step = (await buildStep(job, {
    cache: options.cache === false ? undefined : options.cache,
    run: (j) => runHere(j, { warn, print: () => {} }),
    replay: (w) => warn(w.message, w.code),
  }))!;
  return { ...step, bytes: concat(step.parts) };
}
