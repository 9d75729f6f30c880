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
