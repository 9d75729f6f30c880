import { functionType, parseModule } from '../../src/parse/module.ts';

/** What a user can observe of an instance after one call to an export, starting from a fresh instance. */
export interface Observation {
  [exportName: string]: { result: string; memories: Record<string, Uint8Array>; globals: Record<string, string> };
}

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  return typeof v;
}

/** Stubs that trap for every function import; the instance must not need anything else. */
function stubImports(module: WebAssembly.Module): WebAssembly.Imports {
  const imports: Record<string, Record<string, unknown>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== 'function') throw new Error(`cannot stub a ${imp.kind} import`);
    (imports[imp.module] ??= {})[imp.name] = () => {
      throw new Error(`stub ${imp.module}.${imp.name} called`);
    };
  }
  return imports as WebAssembly.Imports;
}

/**
 * For each exported function without parameters: a fresh instance (after `init`, when given, as wiz runs it:
 * `_initialize` first, then `calls` in order), one call, then the result and every exported memory and global. Observing the same
 * thing on a live instance and on its snapshot is the property that defines a correct snapshot.
 */
export async function observe(
  wasm: Uint8Array,
  options: { init?: string; skip?: string[]; calls?: [string, unknown[]][]; memories?: boolean } = {},
): Promise<Observation> {
  const ctx = parseModule(wasm);
  const module = await WebAssembly.compile(wasm as BufferSource);
  const skip = new Set([options.init, '_initialize', ...(options.skip ?? [])]);
  const observation: Observation = {};
  for (const exp of ctx.exports) {
    if (exp.kind !== 'func' || skip.has(exp.name)) continue;
    const type = functionType(ctx, exp.index);
    if (type?.kind !== 'func' || type.params.length > 0) continue;
    const instance = await WebAssembly.instantiate(module, stubImports(module));
    if (options.init) {
      if (options.init !== '_initialize' && typeof instance.exports._initialize === 'function') (instance.exports._initialize as () => void)();
      (instance.exports[options.init] as () => void)();
    }
    for (const [name, args] of options.calls ?? []) (instance.exports[name] as (...a: unknown[]) => unknown)(...args);
    let result: string;
    try {
      result = show((instance.exports[exp.name] as () => unknown)());
    } catch (e) {
      result = `trap: ${e instanceof Error ? e.message : String(e)}`;
    }
    const memories: Record<string, Uint8Array> = {};
    const globals: Record<string, string> = {};
    for (const [name, value] of Object.entries(instance.exports)) {
      if (name.startsWith('__wizer_')) continue;
      if (value instanceof WebAssembly.Memory && options.memories !== false) memories[name] = new Uint8Array(value.buffer).slice();
      if (value instanceof WebAssembly.Global) {
        try {
          globals[name] = show(value.value);
        } catch {
          globals[name] = 'unreadable';
        }
      }
    }
    observation[exp.name] = { result, memories, globals };
  }
  return observation;
}
