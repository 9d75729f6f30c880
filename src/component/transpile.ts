import { WizError } from '../errors.ts';

/** What jco's transpiler makes of a component: the JS glue, the core modules it loads, its imports and exports. */
export interface Transpiled {
  /** The glue, an ES module exporting `instantiate(getCoreModule, imports, instantiateCore)`. */
  js: string;
  /** Core modules by the file name the glue asks for. */
  files: Map<string, Uint8Array>;
  /** Interfaces the component imports, as the glue names them (`wasi:cli/environment`). */
  imports: string[];
  /** The component's exports as the glue names them (camelCase), functions or instances. */
  exports: [string, 'function' | 'instance'][];
}

interface Bindgen {
  $init: Promise<void>;
  generate(component: Uint8Array, options: Record<string, unknown>): {
    files: [string, Uint8Array][];
    imports: string[];
    exports: [string, 'function' | 'instance'][];
  };
}

// A variable specifier: bundlers leave it alone, and only a caller that gives a component loads the transpiler.
const BINDGEN = '@bytecodealliance/jco-transpile/component';
let bindgen: Promise<Bindgen> | undefined;

async function loadBindgen(): Promise<Bindgen> {
  bindgen ??= (async () => {
    let mod: Bindgen;
    try {
      mod = (await import(/* @vite-ignore */ BINDGEN)) as Bindgen;
    } catch (e) {
      bindgen = undefined;
      throw new WizError('unsupported', `pre-initializing a component needs jco's transpiler: npm install @bytecodealliance/jco-transpile@0.15.0 (${(e as Error).message})`);
    }
    await mod.$init;
    return mod;
  })();
  return bindgen;
}

/**
 * Transpiles a component with jco (in-process, async instantiation mode: the caller compiles and instantiates
 * every core module). Also the validation of a component: the transpiler refuses an invalid one.
 */
export async function transpile(component: Uint8Array): Promise<Transpiled> {
  const { generate } = await loadBindgen();
  let out: ReturnType<Bindgen['generate']>;
  try {
    out = generate(component, {
      name: 'component',
      instantiation: { tag: 'async' },
      map: [],
      noTypescript: true,
      noNodejsCompat: true,
      // Every core module as a file, none inlined: wiz maps them to the binary's sections by their bytes.
      base64Cutoff: 0,
      validLiftingOptimization: false,
      tracing: false,
      noNamespacedExports: false,
      multiMemory: false,
      tlaCompat: false,
      noComponentErrorWrapping: true,
    });
  } catch (e) {
    const message = String((e as Error)?.message ?? e).split('\n')[0]!.replace(/^(Error: )+/, '');
    throw new WizError('invalid', `invalid component: ${message}`);
  }
  const files = new Map<string, Uint8Array>();
  let js: string | undefined;
  for (const [name, bytes] of out.files) {
    if (name.endsWith('.wasm')) files.set(name, bytes);
    else if (name.endsWith('.js')) js = new TextDecoder().decode(bytes);
  }
  if (js === undefined) throw new WizError('unsupported', 'jco\'s transpiler produced no JavaScript for this component');
  return { js: exposeCaptureTables(lowerEmptyStringsThroughRealloc(js)), files, imports: out.imports, exports: out.exports };
}

/**
 * The imports key under which the glue hands each of its capture tables to wiz: a Map from representation to
 * the host object for every resource of an imported type the guest holds an own handle to (the glue deletes an
 * entry when the guest drops the handle). What is left in them after init is what init left open.
 */
export const CAPTURE_TABLES = Symbol.for('wiz.captureTables');
const CAPTURE_TABLE = /const (captureTable\d+)\s*=\s*new Map\(\);/g;
function exposeCaptureTables(js: string): string {
  return js.replace(CAPTURE_TABLE, (line, name: string) => `${line} imports[Symbol.for('wiz.captureTables')]?.(${name});`);
}

/**
 * jco's glue lowers an empty string as (1, 0) without calling the callee's realloc. The canonical ABI calls
 * realloc for every string, and the WASI preview1 adapter relies on it: it lays out the environment (and the
 * arguments) through realloc, string after string, and an empty value that skipped it loses its terminator, so
 * `getenv` of an empty variable reads the next variable (`GREETING=` gave "GRPC_...=/etc/..."; componentize-js
 * passes empty `EXPORTn_ARGS`/`EXPORTn_RET` and its engine could not parse its exports). The glue calls realloc.
 */
const EMPTY_STRING_SHORTCUT = 'if (s.length === 0) { return { ptr: 1, len: 0 }; }';
function lowerEmptyStringsThroughRealloc(js: string): string {
  return js.replaceAll(EMPTY_STRING_SHORTCUT, 'if (s.length === 0) { return { ptr: realloc(0, 0, 1, 0), len: 0 }; }');
}

/** Loads the glue as an ES module, from memory (a data: URL works in Node, Deno, Bun and browsers). */
export async function loadGlue(js: string): Promise<{ instantiate: GlueInstantiate }> {
  // A short name in stack traces instead of the whole data: URL.
  const bytes = new TextEncoder().encode(`${js}\n//# sourceURL=wiz-component-glue.js\n`);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  try {
    return (await import(/* @vite-ignore */ `data:text/javascript;base64,${btoa(binary)}`)) as { instantiate: GlueInstantiate };
  } catch (e) {
    // A browser's error quotes the whole URL (the glue: 100 KB and more); a page's CSP may forbid data: scripts.
    const why = String((e as Error)?.message ?? e).replace(/data:\S+/g, 'data:…').split('\n')[0];
    throw new WizError('unsupported', `cannot load jco's glue for the component as a module from a data: URL (${why}); a page's Content-Security-Policy must allow data: in script-src`);
  }
}

export type GlueInstantiate = (
  getCoreModule: (name: string) => WebAssembly.Module | Promise<WebAssembly.Module>,
  imports: Record<string, unknown>,
  instantiateCore: (module: WebAssembly.Module, imports?: WebAssembly.Imports) => WebAssembly.Instance | Promise<WebAssembly.Instance>,
) => Promise<Record<string, unknown>>;

/** jco's JS name for a WIT name: kebab-case to lowerCamelCase. */
export function jsName(wit: string): string {
  return wit.replace(/-([a-z0-9])/gi, (_, c: string) => c.toUpperCase());
}

/** A WIT name for jco's JS name (for messages): lowerCamelCase to kebab-case. */
export function witName(js: string): string {
  return js.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
