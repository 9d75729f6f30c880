// Builds the component fixtures: fixtures/component/app.c (a wasm32-wasi reactor, with Debian's clang and
// wasi-libc) made into a component with its WIT and the WASI preview1 reactor adapter that jco ships, and the
// hand-written component WAT shapes of test/helpers/component.ts. `node scripts/build-component-fixtures.ts`
// prints what it built; tests and the benchmark call the functions themselves.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { C_FIXTURES_DIR, C_TOOLCHAIN_HINT, hasCToolchain } from './build-c-fixtures.ts';

const root = join(import.meta.dirname, '..');
const sources = join(root, 'fixtures', 'component');

/** The WASI preview1 reactor adapter that jco ships (wit-component wraps a preview1 module with it). */
export function reactorAdapter(): Uint8Array {
  // jco comes with componentize-js (a dev dependency), hoisted or below it; its exports hide lib/.
  const file = join('@bytecodealliance', 'jco', 'lib', 'wasi_snapshot_preview1.reactor.wasm');
  const hoisted = join(root, 'node_modules', file);
  return readFileSync(existsSync(hoisted) ? hoisted : join(root, 'node_modules', '@bytecodealliance', 'componentize-js', 'node_modules', file));
}

interface WasmTools {
  componentEmbed(opts: { binary: Uint8Array; witSource: string; world: string }): Promise<Uint8Array>;
  componentNew(bytes: Uint8Array, adapters: [string, Uint8Array][]): Promise<Uint8Array>;
  parse(wat: string): Promise<Uint8Array>;
}

export async function wasmTools(): Promise<WasmTools> {
  return (await import('@bytecodealliance/jco-transpile/wasm-tools')) as unknown as WasmTools;
}

/** Assembles component text (wasm-tools, through jco-transpile). */
export async function componentWat(text: string): Promise<Uint8Array> {
  return (await wasmTools()).parse(text);
}

/** Compiles fixtures/component/app.c and makes it a component, unless the output is newer; returns its path. */
export async function buildComponentApp(): Promise<string> {
  mkdirSync(C_FIXTURES_DIR, { recursive: true });
  const source = join(sources, 'app.c');
  const wit = join(sources, 'app.wit');
  const core = join(C_FIXTURES_DIR, 'component-app.core.wasm');
  const out = join(C_FIXTURES_DIR, 'component-app.wasm');
  const newest = Math.max(statSync(source).mtimeMs, statSync(wit).mtimeMs, statSync(import.meta.filename).mtimeMs);
  if (existsSync(out) && statSync(out).mtimeMs >= newest) return out;
  execFileSync('clang', ['--target=wasm32-wasi', '-O2', '-mexec-model=reactor', '-Wl,--strip-debug', '-o', core, source], { stdio: 'inherit' });
  const tools = await wasmTools();
  const embedded = await tools.componentEmbed({ binary: readFileSync(core), witSource: readFileSync(wit, 'utf8'), world: 'app' });
  writeFileSync(out, await tools.componentNew(embedded, [['wasi_snapshot_preview1', reactorAdapter()]]));
  return out;
}

if (import.meta.main) {
  if (!hasCToolchain()) {
    console.error(`no clang for wasm32-wasi here: ${C_TOOLCHAIN_HINT}`);
    process.exit(1);
  }
  const path = await buildComponentApp();
  console.log(`component app: ${path} (${statSync(path).size} bytes)`);
}

/** How componentize-js runs Wizer on its engine: the module, the flags, the environment, stdin and the sources. */
export interface EngineCapture {
  dir: string;
  /** The engine's core module before init (bindings spliced in), as componentize-js hands it to Wizer. */
  core: string;
  /** Wizer's command line as componentize-js gives it (input and -o last). */
  args: string[];
  /** The variables componentize-js adds to the environment. */
  env: Record<string, string>;
  stdin: string;
  /** componentize-js's sources directory as the engine sees it (a --dir), and where its copy is. */
  sourcesGuest: string;
  sourcesHost: string;
  /** The component componentize-js wrote (pre-initialized at core level by the native Wizer). */
  nativeComponent: string;
  /** The same engine as a component whose export `init` runs the engine's init (`componentize.wizer`). */
  component: string;
}

const NATIVE_WIZER_10 = join(root, 'node_modules', '@bytecodealliance', 'wizer', 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer');

/**
 * Runs componentize-js on a small JS program with a recording stand-in for Wizer (which then runs the native
 * Wizer 10 componentize-js depends on), and makes the engine it recorded into a component that wiz can
 * pre-initialize at component level: its `init` export runs `componentize.wizer` (the bindings' post-return
 * for `init` is left out: it is not meant to follow the engine's init). Cached in .fixtures/engine.
 */
export async function buildEngineComponent(): Promise<EngineCapture> {
  // componentize-js reads its sources through WASI: they must be below the working directory.
  const dir = join(C_FIXTURES_DIR, 'engine');
  const capture = join(dir, 'capture');
  const done = join(dir, 'capture.json');
  if (existsSync(done)) return JSON.parse(readFileSync(done, 'utf8')) as EngineCapture;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'app.js'), 'let greeting = "not initialized";\ngreeting = `hello from ${["Star", "ling", "Monkey"].join("")}, ${[1, 2, 3].map((x) => x * x).join("+")}`;\nexport function hello() { return greeting; }\nexport function init() {}\n');
  writeFileSync(join(dir, 'app.wit'), 'package wiz:engine;\n\nworld app {\n  export hello: func() -> string;\n  export init: func();\n}\n');
  const recorder = join(dir, 'record-wizer.sh');
  writeFileSync(recorder, `#!/bin/sh
# Records how componentize-js runs Wizer, then runs the native one as it would have.
D='${capture}'; rm -rf "$D"; mkdir -p "$D"
for a in "$@"; do case "$a" in --dir=*) cp -r "\${a#--dir=}" "$D/sources";; -*) ;; *) cp "$a" "$D/input.wasm";; esac; done
printf '%s\\n' "$@" > "$D/args.txt"
env > "$D/env.txt"
tee "$D/stdin.txt" | '${NATIVE_WIZER_10}' "$@"
`, { mode: 0o755 });
  // preview2-shim 0.26 gives no preopens by default; componentize-js's splicer reads the WIT and sources through it.
  const fs = (await import('@bytecodealliance/preview2-shim/filesystem')) as unknown as { _setPreopens(p: Record<string, string>): void };
  fs._setPreopens({ '/': '/' });
  const { componentize } = (await import('@bytecodealliance/componentize-js')) as unknown as {
    componentize(o: Record<string, unknown>): Promise<{ component: Uint8Array }>;
  };
  const { component } = await componentize({ sourcePath: join(dir, 'app.js'), witPath: join(dir, 'app.wit'), worldName: 'app', wizerBin: recorder });
  const nativeComponent = join(dir, 'native.component.wasm');
  writeFileSync(nativeComponent, component);

  const args = readFileSync(join(capture, 'args.txt'), 'utf8').trimEnd().split('\n');
  const env = Object.fromEntries(readFileSync(join(capture, 'env.txt'), 'utf8').split('\n')
    .filter((l) => /^(FEATURE_|EXPORT|IMPORT_|DEBUG=|SOURCE_NAME=)/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  const core = join(capture, 'input.wasm');
  const { parseModule, SectionId } = await import('../src/parse/module.ts');
  const { assemble } = await import('../src/parse/assemble.ts');
  const { BinaryWriter } = await import('../src/parse/writer.ts');
  const ctx = parseModule(readFileSync(core));
  const engineInit = ctx.exports.find((e) => e.name === 'componentize.wizer')!;
  const kept = ctx.exports.filter((e) => e.name !== 'cabi_post_init');
  const exports = new BinaryWriter().u32(kept.length);
  for (const e of kept) exports.name(e.name).byte(['func', 'table', 'memory', 'global', 'tag'].indexOf(e.kind)).u32(e.name === 'init' ? engineInit.index : e.index);
  const tools = await wasmTools();
  const engine = join(dir, 'engine.component.wasm');
  writeFileSync(engine, await tools.componentNew(assemble(ctx, new Map([[SectionId.export, exports]])).finish(), [['wasi_snapshot_preview1', reactorAdapter()]]));
  const result: EngineCapture = {
    dir, core, args, env, stdin: readFileSync(join(capture, 'stdin.txt'), 'utf8'),
    sourcesGuest: args.find((a) => a.startsWith('--dir='))!.slice('--dir='.length), sourcesHost: join(capture, 'sources'),
    nativeComponent, component: engine,
  };
  writeFileSync(done, JSON.stringify(result, null, 2));
  return result;
}

export { NATIVE_WIZER_10 };

/** A component built by componentize-qjs (QuickJS; its native binding pre-initializes it with Wasmtime's Wizer). */
export interface QuickJsComponent {
  /** componentize-qjs's output. */
  component: string;
  /** The JavaScript inside it. */
  source: string;
}

/**
 * Builds a small stateful JavaScript app with componentize-qjs (a dev dependency, pinned: a native binding with
 * Wasmtime inside), cached in .fixtures/qjs. Its output is already pre-initialized by the binding, which gives
 * no way to get the component before that step; it exports `init` (the binding's, taking the sources) and
 * `greet`, which counts its calls. The component links several core modules dynamically (QuickJS, libc and
 * the bindings as shared libraries): wiz runs it and snapshots it after a call.
 */
export async function buildQuickJsComponent(): Promise<QuickJsComponent> {
  const dir = join(C_FIXTURES_DIR, 'qjs');
  mkdirSync(dir, { recursive: true });
  const source = 'let calls = 0;\nconst squares = [1, 2, 3].map((x) => x * x).join("+");\n'
    + 'export function greet(name) { calls += 1; return `hello ${name} from QuickJS, ${squares}, call ${calls}`; }\n';
  const wit = 'package wiz:qjs;\n\nworld app {\n  export greet: func(name: string) -> string;\n}\n';
  const component = join(dir, 'app.wasm');
  const stamp = join(dir, 'app.src');
  if (existsSync(component) && existsSync(stamp) && readFileSync(stamp, 'utf8') === source + wit) return { component, source };
  writeFileSync(join(dir, 'app.wit'), wit);
  const { componentize } = (await import('componentize-qjs')) as unknown as {
    componentize(opts: { witPath: string; jsSource: string; sync?: boolean }): Promise<{ component: Uint8Array }>;
  };
  // The non-async runtime: jco's glue (wiz's host) runs components without the component-model async ABI.
  const out = await componentize({ witPath: join(dir, 'app.wit'), jsSource: source, sync: true });
  writeFileSync(component, out.component);
  writeFileSync(stamp, source + wit);
  return { component, source };
}
