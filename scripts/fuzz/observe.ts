// What a user can observe of a module after init: for each exported function without parameters, on a fresh
// instance (after the init function, when given), the call's result or trap, the calls it made to the host,
// and then every defined global (bit for bit), every memory (hashed) and every table. Observing the original
// after init and the snapshot without init must give the same record: that is what a correct snapshot means.
import { createHash } from 'node:crypto';
import { entriesAfterCount, findSection, parseModule, SectionId, functionType } from '../../src/parse/module.ts';
import { assemble } from '../../src/parse/assemble.ts';
import { BinaryReader } from '../../src/parse/reader.ts';
import { BinaryWriter } from '../../src/parse/writer.ts';
import type { ModuleContext } from '../../src/parse/types.ts';
import { wat } from '../../test/helpers/wat.ts';

export const OBSERVE_PREFIX = '__fuzz_';

/** The record of one export's call on a fresh instance. */
export interface ExportObservation {
  result: string;
  /** Host calls made during the export's call (not during init). */
  log: string[];
  globals: Record<string, string>;
  memories: Record<string, string>;
  tables: Record<string, string>;
}

export type Observation = Record<string, ExportObservation>;

/** A readable, stable form of a value that crossed into JS (floats lose NaN payloads here; globals do not). */
export function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  if (v === null) return 'null';
  if (v === undefined) return 'void';
  if (typeof v === 'function') return `func:${v.name}`;
  return typeof v;
}

export function showError(e: unknown): string {
  const Exception = (WebAssembly as unknown as { Exception?: new (...a: never[]) => unknown }).Exception;
  if (Exception && e instanceof Exception) return 'wasm exception';
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `thrown ${typeof e}`;
}

/**
 * The module with every defined global, memory and table exported under `__fuzz_` names, so that state which the
 * module does not export is observed too. Exports are appended: existing export indices do not move.
 */
export function exposeState(wasm: Uint8Array): Uint8Array {
  const ctx = parseModule(wasm);
  const extra: [string, number, number][] = [];
  for (const g of ctx.globals) if (NUMERIC.has(g.type)) extra.push([`${OBSERVE_PREFIX}global_${g.index}`, 0x03, g.index]);
  for (const m of ctx.memories) extra.push([`${OBSERVE_PREFIX}memory_${m.index}`, 0x02, m.index]);
  for (let t = 0; t < ctx.importedTables + definedTables(ctx); t++) extra.push([`${OBSERVE_PREFIX}table_${t}`, 0x01, t]);
  const exports = new BinaryWriter().u32(ctx.exports.length + extra.length);
  const existing = findSection(ctx, SectionId.export);
  if (existing) exports.raw(entriesAfterCount(ctx, existing.contentStart, existing.end));
  for (const [name, kind, index] of extra) exports.name(name).byte(kind).u32(index);
  return assemble(ctx, new Map([[SectionId.export, exports]])).finish();
}

const NUMERIC = new Set(['i32', 'i64', 'f32', 'f64', 'v128']);

function definedTables(ctx: ModuleContext): number {
  const s = findSection(ctx, SectionId.table);
  return s ? new BinaryReader(ctx.bytes, s.contentStart, s.end).u32() : 0;
}

/** Small modules that import a global and return its bits as integers (a JS `.value` loses NaN payloads). */
const bitReaders = new Map<string, Promise<WebAssembly.Module>>();

function bitReader(type: string, mutable: boolean): Promise<WebAssembly.Module> {
  const key = `${type}/${mutable}`;
  let m = bitReaders.get(key);
  if (!m) {
    const g = mutable ? `(mut ${type})` : type;
    const body: Record<string, string> = {
      i32: '(func (export "a") (result i64) (i64.extend_i32_u (global.get 0)))',
      i64: '(func (export "a") (result i64) (global.get 0))',
      f32: '(func (export "a") (result i64) (i64.extend_i32_u (i32.reinterpret_f32 (global.get 0))))',
      f64: '(func (export "a") (result i64) (i64.reinterpret_f64 (global.get 0)))',
      v128: '(func (export "a") (result i64) (i64x2.extract_lane 0 (global.get 0))) (func (export "b") (result i64) (i64x2.extract_lane 1 (global.get 0)))',
    };
    m = wat(`(module (import "m" "g" (global ${g})) ${body[type]})`).then((bytes) => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>));
    bitReaders.set(key, m);
  }
  return m;
}

async function globalBits(global: WebAssembly.Global, type: string, mutable: boolean): Promise<string> {
  const instance = await WebAssembly.instantiate(await bitReader(type, mutable), { m: { g: global } });
  const hex = (f: string) => BigInt.asUintN(64, (instance.exports[f] as () => bigint)()).toString(16);
  return type === 'v128' ? `${type}:${hex('b')}:${hex('a')}` : `${type}:${hex('a')}`;
}

function tableContents(table: WebAssembly.Table): string {
  const entries: string[] = [];
  for (let i = 0; i < table.length; i++) {
    let v: unknown;
    try {
      v = table.get(i);
    } catch (e) {
      v = `unreadable ${showError(e)}`;
    }
    entries.push(typeof v === 'string' ? v : show(v));
  }
  const text = entries.join(',');
  return `${table.length}:${text.length > 2000 ? createHash('sha256').update(text).digest('hex') : text}`;
}

/** A per-instance host log and the imports that write to it. */
export interface Host {
  imports: WebAssembly.Imports;
  log: string[];
  /** Binds `call-export` to the instance once it exists. */
  bind(instance: WebAssembly.Instance): void;
  /** Empties the log and refills the `call-export` budget (between init and the observed call). */
  reset(): void;
}

/**
 * Calls back into the module per phase (init, then the observed call). Binaryen's hang limit is refilled by each
 * trap, so a loop around `call-export-catch` of a trapping export could run for ever: the budget bounds it, the
 * same way on both sides of a comparison.
 */
const CALL_EXPORT_BUDGET = 64;

/**
 * Deterministic implementations of the imports Binaryen's fuzzer emits (`fuzzing-support`): logging records the
 * values; `call-export(-catch)` calls the export at that index of `exportNames` (a list fixed by the caller, so
 * that a snapshot that drops an export calls the same functions as the original); `sleep` returns its id; any
 * other import records its arguments and returns zeros.
 */
export function fuzzHost(ctx: ModuleContext, exportNames: readonly string[]): Host {
  const log: string[] = [];
  let instance: WebAssembly.Instance | undefined;
  let budget = CALL_EXPORT_BUDGET;
  const callExport = (index: number) => {
    if (budget-- <= 0) throw new Error('call-export: budget exhausted');
    const name = exportNames[index >>> 0];
    const fn = name === undefined ? undefined : instance?.exports[name];
    if (typeof fn !== 'function') throw new Error(`call-export: no function at export ${index >>> 0}`);
    (fn as () => unknown)();
  };
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const imp of ctx.imports) {
    if (imp.kind === 'tag') {
      // A fresh tag of the import's type per instance, as wiz gives one during init.
      const type = ctx.types[imp.typeIndex!];
      const parameters = type?.kind === 'func' ? type.params.map((p) => (p === 'funcref' ? 'anyfunc' : p)) : [];
      const Tag = (WebAssembly as unknown as { Tag: new (t: { parameters: string[] }) => WebAssembly.ImportValue }).Tag;
      (imports[imp.module] ??= {})[imp.name] = new Tag({ parameters });
      continue;
    }
    if (imp.kind !== 'func') continue;
    const type = ctx.types[imp.typeIndex!];
    const results = type?.kind === 'func' ? type.results : [];
    const zero = (t: string): unknown => (t === 'i64' ? 0n : t === 'i32' || t === 'f32' || t === 'f64' ? 0 : null);
    const ret = results.length === 0 ? undefined : results.length === 1 ? zero(results[0]!) : results.map(zero);
    const label = `${imp.module}.${imp.name}`;
    let fn: (...args: unknown[]) => unknown;
    if (imp.name === 'call-export') {
      fn = (index) => {
        log.push(`${label}(${show(index)})`);
        callExport(index as number);
        return ret;
      };
    } else if (imp.name === 'call-export-catch') {
      fn = (index) => {
        log.push(`${label}(${show(index)})`);
        try {
          callExport(index as number);
          return 0;
        } catch {
          return 1;
        }
      };
    } else if (imp.name === 'sleep') {
      fn = (_ms, id) => {
        log.push(`${label}(${show(id)})`);
        return id;
      };
    } else {
      fn = (...args) => {
        log.push(`${label}(${args.map(show).join(', ')})`);
        return ret;
      };
    }
    (imports[imp.module] ??= {})[imp.name] = fn as WebAssembly.ImportValue;
  }
  return {
    imports, log, bind: (i) => (instance = i), reset: () => {
      log.length = 0;
      budget = CALL_EXPORT_BUDGET;
    },
  };
}

/**
 * Observes each exported function without parameters on a fresh instance of `wasm`, after running `init` (and
 * `_initialize` first, as wiz does) when given. `exportNames` fixes what `call-export` indices mean.
 */
export async function observeModule(
  wasm: Uint8Array,
  options: { init?: string; exportNames: readonly string[] },
): Promise<Observation> {
  const ctx = parseModule(wasm);
  const module = await WebAssembly.compile(exposeState(wasm) as Uint8Array<ArrayBuffer>);
  const observation: Observation = {};
  const types = new Map(ctx.globals.map((g) => [`${OBSERVE_PREFIX}global_${g.index}`, g]));
  for (const exp of ctx.exports) {
    if (exp.kind !== 'func' || exp.name === '_initialize') continue;
    const type = functionType(ctx, exp.index);
    if (type?.kind !== 'func' || type.params.length > 0) continue;
    const host = fuzzHost(ctx, options.exportNames);
    const instance = await WebAssembly.instantiate(module, host.imports);
    host.bind(instance);
    const call = (name: string) => (instance.exports[name] as () => unknown)();
    if (options.init) {
      try {
        if (options.init !== '_initialize' && typeof instance.exports._initialize === 'function') call('_initialize');
        call(options.init);
      } catch (e) {
        observation[exp.name] = { result: `init failed: ${showError(e)}`, log: [], globals: {}, memories: {}, tables: {} };
        continue;
      }
    }
    host.reset();
    let result: string;
    try {
      result = show(call(exp.name));
    } catch (e) {
      result = `trap: ${showError(e)}`;
    }
    const record: ExportObservation = { result, log: [...host.log], globals: {}, memories: {}, tables: {} };
    for (const [name, value] of Object.entries(instance.exports)) {
      if (!name.startsWith(OBSERVE_PREFIX)) continue;
      if (value instanceof WebAssembly.Global) {
        const g = types.get(name)!;
        record.globals[name] = await globalBits(value, g.type, g.mutable);
      } else if (value instanceof WebAssembly.Memory) {
        const bytes = new Uint8Array(value.buffer);
        record.memories[name] = `${bytes.length}:${createHash('sha256').update(bytes).digest('hex')}`;
      } else if (value instanceof WebAssembly.Table) {
        record.tables[name] = tableContents(value);
      }
    }
    observation[exp.name] = record;
  }
  return observation;
}

/** The first difference between two observations, or undefined when they are the same. */
export function firstDifference(a: Observation, b: Observation): string | undefined {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  for (const name of names) {
    const x = a[name];
    const y = b[name];
    if (!x || !y) return `export "${name}" observed on one side only`;
    for (const key of ['result', 'log', 'globals', 'memories', 'tables'] as const) {
      const sx = JSON.stringify(x[key]);
      const sy = JSON.stringify(y[key]);
      if (sx !== sy) return `export "${name}": ${key} differ: ${sx.slice(0, 300)} vs ${sy.slice(0, 300)}`;
    }
  }
  return undefined;
}
