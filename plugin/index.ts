// wiz/plugin: pre-initializes the .wasm files an app imports, as one plugin for Vite, Rollup, esbuild, webpack
// and Rspack (through unplugin). An import is resolved to the pre-initialized file, written where the bundler can
// read it, so that the bundler's own Wasm handling (Vite's ?init and ?url, esbuild's file loader, webpack's and
// Rspack's async WebAssembly, Rollup's wasm plugin) emits it as it would have emitted the original.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, isAbsolute, join, matchesGlob, relative, resolve, sep } from 'node:path';
import { createUnplugin, type UnpluginBuildContext, type UnpluginContext, type UnpluginInstance, type UnpluginOptions } from 'unplugin';
import { defaultCacheDir, initModule, writeAtomically, type InitModuleOptions } from '../cli/build/index.ts';

/** A glob (relative ones are taken from the project root) or a regular expression over the absolute path. */
export type WizFilterPattern = string | RegExp | readonly (string | RegExp)[];

/** Options of the plugin: `wiz init`'s (as `initModule` takes them), which files, and where the cache is. */
export interface WizPluginOptions extends Omit<InitModuleOptions, 'cache' | 'onWarning' | 'deterministic'> {
  /** The .wasm files to pre-initialize (default: every one). */
  include?: WizFilterPattern;
  /** .wasm files to leave as they are, even if `include` names them. */
  exclude?: WizFilterPattern;
  /**
   * With `allowWasi`: a fixed random stream and clock during init (default true, so that bundles are
   * reproducible and outputs cacheable); false gives init the real ones.
   */
  deterministic?: boolean;
  /**
   * The cache of `wiz init --cache` (default: `node_modules/.cache/wiz` of the project), or false to run init on
   * every build. Relative paths here, in `dirs`, `mapdirs` and `preloads` are taken from `root`.
   */
  cache?: string | false;
  /** The project root (default: Vite's root, webpack's and Rspack's context, esbuild's absWorkingDir, else the working directory). */
  root?: string;
}

const NAME = 'wiz';
/** Imports the plugin looks at: a path ending in .wasm, with any query (`?init`, `?url`) after it. */
const WASM_IMPORT = /\.wasm(\?.*)?$/;

/** One pre-initialized module: the file to resolve to, and what init depended on. */
interface Preinitialized {
  file: string;
  /** The module and every host path init reached: a change to any of them means init must run again. */
  watch: string[];
  warnings: string[];
}

/** How a bundler reports a problem with one import. */
interface Report {
  warn(message: string): void;
  error(message: string): void;
}

/** What the plugin keeps across the imports of one bundler: the project, the options, this build's results. */
class WizBuild {
  private _root: string;
  private readonly options: WizPluginOptions;
  private readonly include: (path: string) => boolean;
  private readonly exclude: (path: string) => boolean;
  /** This build's results by module path: imported twice, initialized once. */
  private builds = new Map<string, Promise<Preinitialized>>();
  /** Importers by the paths their pre-initialized imports depend on (to re-resolve them in watch mode). */
  private readonly importers = new Map<string, Set<string>>();
  /** Importers whose imports must be resolved again (Rollup keeps an unchanged module's resolutions). */
  readonly stale = new Set<string>();

  constructor(options: WizPluginOptions, root: string) {
    this.options = options;
    this._root = options.root === undefined ? root : resolve(options.root);
    this.include = options.include === undefined ? () => true : matcher(options.include, () => this.root);
    this.exclude = options.exclude === undefined ? () => false : matcher(options.exclude, () => this.root);
  }

  get root(): string {
    return this._root;
  }

  /** The bundler's idea of the project root, which the `root` option overrides. */
  set root(root: string) {
    if (this.options.root === undefined) this._root = root;
  }

  /** Where pre-initialized files are written (beside the cache; also with `cache: false`). */
  get outDir(): string {
    const cache = this.options.cache;
    return join(typeof cache === 'string' ? resolve(this.root, cache) : defaultCacheDir(this.root), 'plugin');
  }

  /** A new build (also each rebuild in watch mode): everything is looked up again, the cache says what still holds. */
  start(): void {
    this.builds = new Map();
  }

  /** Whether `path` is one of the plugin's own outputs (a resolved import, never pre-initialized twice). */
  isOutput(path: string): boolean {
    return path.startsWith(this.outDir + sep);
  }

  wanted(path: string): boolean {
    return !this.isOutput(path) && this.include(path) && !this.exclude(path);
  }

  /** A watched path changed: the importers that depend on it resolve their imports again. */
  changed(path: string): void {
    const importers = this.importers.get(resolve(path));
    if (!importers) return;
    for (const importer of importers) this.stale.add(importer);
    // A dev server has no new build to start: what was looked up is looked up again.
    this.builds = new Map();
  }

  /**
   * The import of `source` (an absolute path) from `importer`, resolved to its pre-initialized file with `query`
   * kept; undefined after reporting a failure. `watch` receives the paths to watch.
   */
  async redirect(source: string, query: string, importer: string | undefined, report: Report, watch: (path: string) => void): Promise<string | undefined> {
    let built = this.builds.get(source);
    if (!built) this.builds.set(source, (built = this.preinitialize(source)));
    const name = relative(this.root, source) || source;
    let result: Preinitialized;
    try {
      result = await built;
    } catch (e) {
      // The module stays watched, so that fixing it rebuilds.
      watch(source);
      report.error(`${name}: ${oneLine(e)}`);
      return undefined;
    }
    for (const warning of result.warnings) report.warn(`${name}: ${oneLine(warning)}`);
    for (const path of result.watch) {
      watch(path);
      if (importer !== undefined) {
        let set = this.importers.get(path);
        if (!set) this.importers.set(path, (set = new Set()));
        set.add(importer);
      }
    }
    return result.file + query;
  }

  private async preinitialize(source: string): Promise<Preinitialized> {
    const o = this.options;
    const input = readFileSync(source);
    const warnings: string[] = [];
    const fromRoot = (path: string) => resolve(this.root, path);
    const allowWasi = o.allowWasi ?? false;
    const result = await initModule(input, {
      initFunc: o.initFunc, keepInitFunc: o.keepInitFunc, renames: o.renames, keepInstrumentation: o.keepInstrumentation,
      allowWasi, inheritStdio: o.inheritStdio, inheritEnv: o.inheritEnv,
      dirs: o.dirs?.map(fromRoot),
      mapdirs: o.mapdirs?.map((spec) => {
        const at = spec.indexOf('::');
        return at < 0 ? spec : `${spec.slice(0, at)}::${fromRoot(spec.slice(at + 2))}`;
      }),
      preloads: o.preloads?.map((spec) => {
        const at = spec.indexOf('=');
        return at < 0 ? spec : `${spec.slice(0, at)}=${fromRoot(spec.slice(at + 1))}`;
      }),
      // Only meaningful (and only accepted) with WASI.
      ...(allowWasi ? { deterministic: o.deterministic ?? true } : {}),
      cache: o.cache === false ? false : typeof o.cache === 'string' ? fromRoot(o.cache) : defaultCacheDir(this.root),
      onWarning: (message) => warnings.push(message),
    });
    // Named by content and keeping the module's name, so emitted assets keep a meaningful name and equal outputs
    // share one file; a new state is a new path, which no bundler mistakes for the old file.
    const digest = createHash('sha256').update(result.bytes).digest('hex').slice(0, 16);
    const file = join(this.outDir, digest, basename(source));
    writeIfChanged(file, result.bytes);
    return { file, watch: [source, ...result.files.map((f) => f.path)], warnings };
  }
}

/** Writes `bytes` to `file` unless it holds them already; atomically, so a reader never sees half. */
function writeIfChanged(file: string, bytes: Uint8Array): void {
  try {
    if (statSync(file).size === bytes.length && Buffer.from(bytes).equals(readFileSync(file))) return;
  } catch {
    // absent: written below
  }
  mkdirSync(dirname(file), { recursive: true });
  writeAtomically(file, bytes);
}

/** wiz's messages name the command line's flags; here they are options of the plugin. */
const FLAGS: Record<string, string> = {
  '-f/--init-func': 'initFunc', '--init-func': 'initFunc', '--keep-init-func': 'keepInitFunc', '--rename-func': 'renames',
  '--keep-instrumentation': 'keepInstrumentation', '--allow-wasi': 'allowWasi', '--inherit-stdio': 'inheritStdio',
  '--inherit-env': 'inheritEnv', '--dir': 'dirs', '--mapdir': 'mapdirs', '--deterministic': 'deterministic', '--preload': 'preloads',
};
const FLAG = /(?:-f\/)?--[a-z][a-z-]*(?![\w-])/g;

/** One line for a bundler: the first line of the message, in the plugin's terms. */
function oneLine(e: unknown): string {
  const message = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
  return message.replace(FLAG, (flag) => FLAGS[flag] ?? flag);
}

/** A predicate over absolute paths for globs and regular expressions; relative globs start at `root()`. */
function matcher(pattern: WizFilterPattern, root: () => string): (path: string) => boolean {
  const patterns = (Array.isArray(pattern) ? pattern : [pattern]) as (string | RegExp)[];
  return (path) => {
    const posix = path.split(sep).join('/');
    return patterns.some((p) => {
      if (p instanceof RegExp) {
        p.lastIndex = 0;
        return p.test(posix);
      }
      const glob = isAbsolute(p) || p.startsWith('**') ? p : join(root(), p).split(sep).join('/');
      return matchesGlob(posix, glob);
    });
  };
}

/** Splits `./a.wasm?init` into the path and the query (with its `?`). */
function splitQuery(id: string): [string, string] {
  const at = id.indexOf('?');
  return at < 0 ? [id, ''] : [id.slice(0, at), id.slice(at)];
}

const isRelative = (path: string) => path.startsWith('./') || path.startsWith('../') || path === '.' || path === '..';

/**
 * The file an import names: relative to `from` (the importer's folder), an absolute path (in Vite also one from the root), or
 * for a package path what `bare` finds (the bundler's own resolver where it lends one, else Node's).
 */
async function locate(path: string, from: string, root: string, rootRelative: boolean, bare?: (path: string) => Promise<string | undefined>): Promise<string | undefined> {
  if (isRelative(path)) return resolve(from, path);
  if (isAbsolute(path)) {
    if (isFile(path)) return path;
    return rootRelative && isFile(join(root, path)) ? join(root, path) : undefined;
  }
  if (bare) return bare(path);
  try {
    return createRequire(join(from, 'noop.js')).resolve(path);
  } catch {
    return undefined; // the bundler reports it as it reports any import it cannot find
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

type ResolveContext = UnpluginBuildContext & UnpluginContext & {
  /** Rollup's and Vite's own resolver, present in their hooks. */
  resolve?: (id: string, importer?: string, options?: { skipSelf?: boolean }) => Promise<{ id: string; external?: unknown } | null>;
};

interface WebpackLikeCompilation {
  warnings: Error[];
}

/** The plugin, for each bundler: `wizPlugin.vite()`, `.rollup()`, `.esbuild()`, `.webpack()`, `.rspack()`. */
export const wizPlugin: UnpluginInstance<WizPluginOptions | undefined, false> = createUnplugin<WizPluginOptions | undefined, false>((options = {}, meta) => {
  const compiler = meta.framework === 'webpack' ? meta.webpack.compiler : meta.framework === 'rspack' ? meta.rspack.compiler : undefined;
  const wiz = new WizBuild(options, compiler?.options.context ?? process.cwd());
  const rootRelative = meta.framework === 'vite';
  const webpackLike = meta.framework === 'webpack' || meta.framework === 'rspack';
  /** webpack and Rspack: the compilation being built, whose warnings list is the bundler's. */
  let compilation: WebpackLikeCompilation | undefined;

  const plugin: UnpluginOptions = {
    name: NAME,
    // Before the bundler's own resolution (Vite resolves in a core plugin that runs before normal ones).
    enforce: 'pre',
    buildStart() {
      wiz.start();
    },
    watchChange(id) {
      wiz.changed(id);
    },
    resolveId: {
      filter: { id: WASM_IMPORT },
      async handler(this: ResolveContext, id, importer, { isEntry }) {
        if (isEntry || id.startsWith('\0') || id.includes('!')) return null;
        const [path, query] = splitQuery(id);
        const bare = this.resolve && (async (p: string) => {
          const found = await this.resolve!(p, importer, { skipSelf: true });
          return found && !found.external ? splitQuery(found.id)[0] : undefined;
        });
        const source = await locate(path, importer ? dirname(importer) : wiz.root, wiz.root, rootRelative, bare);
        if (source === undefined || !wiz.wanted(source)) return null;
        const report: Report = {
          // One line: Rollup and Vite print a stack after the message, Rspack prints the stack alone.
          error: (message) => this.error({ message, stack: webpackLike ? message : '' }),
          warn: compilation ? (message) => compilation!.warnings.push(warning(message)) : (message) => this.warn(message),
        };
        return (await wiz.redirect(source, query, importer, report, (p) => this.addWatchFile(p))) ?? null;
      },
    },
    vite: {
      configResolved(config) {
        wiz.root = config.root;
      },
      shouldTransformCachedModule: ({ id }) => wiz.stale.delete(id) || null,
    },
    rollup: {
      // Rollup keeps the resolutions of a module whose code did not change: one whose pre-initialized import is
      // out of date is transformed again, which resolves its imports again.
      shouldTransformCachedModule: ({ id }) => wiz.stale.delete(id) || null,
    },
    webpack(compiler) {
      compiler.hooks.thisCompilation.tap(NAME, (c) => {
        compilation = c as unknown as WebpackLikeCompilation;
        wiz.root = compiler.options.context ?? wiz.root;
      });
      compiler.hooks.afterEnvironment.tap(NAME, () => {
        // webpack's default unsafe cache (every module below node_modules, where the outputs are) keeps a cached
        // module's resolution and drops what resolving it depended on: init's files would not be watched, and an
        // output would never be resolved again.
        const module = compiler.options.module;
        const unsafe = module.unsafeCache;
        if (unsafe) module.unsafeCache = (m) => !wiz.isOutput(m.nameForCondition() ?? '') && (unsafe === true || unsafe(m));
      });
    },
    rspack(compiler) {
      compiler.hooks.thisCompilation.tap(NAME, (c) => {
        compilation = c as unknown as WebpackLikeCompilation;
        wiz.root = compiler.options.context ?? wiz.root;
      });
      // Rspack rebuilds only the modules whose own files changed, and keeps the resolutions of the others: the
      // importers of an out-of-date output count as changed, so that their imports are resolved again.
      compiler.hooks.watchRun.tap(NAME, (c) => {
        const modified = c.modifiedFiles as Set<string> | undefined;
        if (!modified) return;
        for (const file of modified) wiz.changed(file);
        for (const importer of wiz.stale) modified.add(importer);
        wiz.stale.clear();
      });
    },
  };

  if (meta.framework === 'esbuild') {
    // unplugin puts what resolveId returns in a namespace of the plugin's own, where esbuild's loaders (the file
    // loader above all) do not read files: here the import resolves in the file namespace, as esbuild's would.
    delete plugin.resolveId;
    plugin.esbuild = {
      setup(build) {
        wiz.root = build.initialOptions.absWorkingDir ?? process.cwd();
        build.onResolve({ filter: WASM_IMPORT }, async (args) => {
          // Imports of files only ('' is stdin's); pluginData marks this plugin's own look-up of a package path.
          if (args.pluginData?.[NAME] || args.kind === 'entry-point' || (args.namespace !== 'file' && args.namespace !== '')) return undefined;
          const [path, query] = splitQuery(args.path);
          const source = await locate(path, args.resolveDir || wiz.root, wiz.root, false, async (p) => {
            const found = await build.resolve(p, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { [NAME]: true } });
            return found.errors.length || found.external ? undefined : found.path;
          });
          if (source === undefined || !wiz.wanted(source)) return undefined;
          const warnings: { text: string }[] = [];
          const errors: { text: string }[] = [];
          const watchFiles: string[] = [];
          const report: Report = { warn: (text) => warnings.push({ text }), error: (text) => errors.push({ text }) };
          const to = await wiz.redirect(source, query, args.importer, report, (p) => watchFiles.push(p));
          if (to === undefined) return { errors, watchFiles };
          const [file, suffix] = splitQuery(to);
          return { path: file, suffix: suffix || undefined, namespace: 'file', warnings, watchFiles };
        });
      },
    };
  }
  return plugin;
});

/** A warning as webpack and Rspack list them: the message alone, no stack. */
function warning(message: string): Error {
  const e = new Error(message);
  e.name = 'wiz';
  e.stack = undefined;
  return e;
}

export default wizPlugin;
