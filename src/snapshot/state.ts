import { WizError } from '../errors.ts';
import type { InstrumentedGlobal, InstrumentedModule } from '../instrument/instrument.ts';
import type { ValType } from '../parse/types.ts';
import { BinaryWriter } from '../parse/writer.ts';

/** A global's value as its little-endian bits: 4 bytes for i32/f32, 8 for i64/f64, 16 for v128. */
export type GlobalBits = Uint8Array;

/** A defined memory's contents when the snapshot was taken. */
export interface MemoryState {
  /** Index in the memory index space. */
  index: number;
  pages: number;
  bytes: Uint8Array;
  /** The live memory that `bytes` views from offset 0, where there is one: the scanner then reads it in place. */
  memory?: WebAssembly.Memory;
}

/** A reference a module can name: a function index of the module, or null. */
export type Ref = number | null;

/** A table slot that holds, unchanged, an object that instantiation made (see `TableBaseline`). */
export const KEPT_OBJECT = -2;

/**
 * A defined table's contents: a function index per slot, -1 for null, or `KEPT_OBJECT` in a table of objects
 * that is exactly as instantiation left it (its element segments then make it again).
 */
export interface TableState {
  /** Index in the table index space. */
  index: number;
  entries: Int32Array;
}

/**
 * The state of an instance: every defined mutable global's value (bits for numbers and vectors, a function
 * index or null for references), every defined memory's bytes and table's contents, and which passive segments
 * were dropped.
 */
export interface Snapshot {
  globals: Map<number, GlobalBits>;
  refGlobals: Map<number, Ref>;
  memories: MemoryState[];
  tables: TableState[];
  dropped: { data: Set<number>; elem: Set<number> };
}

/**
 * The seam between the snapshot and a runtime. Reading a reference that the module cannot name (a function
 * of another instance or of the host, a non-null externref or GC object) throws a `WizError` that names it.
 */
export interface StateReader {
  /** Bits of numeric global `index` (global index space). */
  readGlobal(index: number): GlobalBits;
  /** Value of reference-typed global `index`. */
  readRefGlobal(index: number): Ref;
  /** Bytes of the memory exported as `__wizer_memory_{ordinal}` (a view, valid until the memory grows). */
  readMemory(ordinal: number): Uint8Array;
  /** The live memory whose buffer `readMemory(ordinal)` views, when the reader reads one. */
  liveMemory?(ordinal: number): WebAssembly.Memory;
  /** Contents of the table exported as `__wizer_table_{ordinal}`. */
  readTable(ordinal: number): Int32Array;
  /** Whether passive segment `droppable[k]` of the probe was dropped. */
  isDropped(k: number): boolean;
}

/** Reads every instrumented global, memory and table, and the dropped segments, through `reader`. */
export function takeSnapshot(instrumented: InstrumentedModule, reader: StateReader): Snapshot {
  const globals = new Map<number, GlobalBits>();
  const refGlobals = new Map<number, Ref>();
  for (const g of instrumented.globals) {
    if (g.top) refGlobals.set(g.index, reader.readRefGlobal(g.index));
    else globals.set(g.index, reader.readGlobal(g.index));
  }
  const memories = instrumented.memories.map((m) => {
    const bytes = reader.readMemory(m.ordinal);
    const memory = reader.liveMemory?.(m.ordinal);
    return { index: m.index, pages: bytes.length / 2 ** m.pageSizeLog2, bytes, ...(memory && { memory }) };
  });
  const tables = instrumented.tables.map((t) => ({ index: t.index, entries: reader.readTable(t.ordinal) }));
  const dropped = { data: new Set<number>(), elem: new Set<number>() };
  instrumented.probe.droppable.forEach((d, k) => {
    if (reader.isDropped(k)) dropped[d.kind].add(d.index);
  });
  return { globals, refGlobals, memories, tables, dropped };
}

const STORE: Record<string, { size: number; op: number[] }> = {
  i32: { size: 4, op: [0x36] },
  i64: { size: 8, op: [0x37] },
  f32: { size: 4, op: [0x38] },
  f64: { size: 8, op: [0x39] },
  v128: { size: 16, op: [0xfd, 0x0b] },
};
const VALTYPE_BYTE: Record<string, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

/**
 * Reads a live instance of an instrumented module. `WebAssembly.Global#value` loses NaN payloads and cannot
 * read v128 at all, so globals are read by a small generated module that imports the `__wizer_global_*`
 * exports and stores their bits into its own memory in one call; stores copy bits exactly.
 *
 * Preparing the reader is asynchronous (browsers compile modules over 4 KiB only asynchronously); reading is
 * not: the globals are read at the first `readGlobal`, so a caller that reads everything in one synchronous
 * run gets one consistent state.
 */
/**
 * The contents of the tables that can hold objects no constant can write (externref, GC references), taken
 * right after instantiation, before anything else runs: a table still holding exactly these objects at snapshot
 * time is what the module's own element segments make, and can be kept as they write it. Undefined when the
 * module has a start function (it ran already, and outputs drop it) or no such table.
 */
export type TableBaseline = Map<number, unknown[]>;

export function tableBaseline(instrumented: InstrumentedModule, instance: WebAssembly.Instance): TableBaseline | undefined {
  const tables = instrumented.tables.filter((t) => t.top !== 'func');
  if (tables.length === 0 || instrumented.context.start !== undefined) return undefined;
  const baseline: TableBaseline = new Map();
  for (const t of tables) {
    const table = instance.exports[t.exportName];
    if (!(table instanceof WebAssembly.Table)) continue;
    const get = table.get.bind(table) as (index: number | bigint) => unknown;
    const values: unknown[] = [];
    try {
      for (let slot = 0; slot < Number(table.length); slot++) values.push(get(t.table64 ? BigInt(slot) : slot));
    } catch {
      continue; // unreadable by this host (exnref): no baseline, so non-null values are refused
    }
    baseline.set(t.ordinal, values);
  }
  return baseline;
}

export async function instanceReader(
  instrumented: InstrumentedModule,
  instance: WebAssembly.Instance,
  baseline?: TableBaseline,
  readGlobals?: () => Map<number, GlobalBits>,
): Promise<StateReader> {
  const exports = instance.exports;
  const numeric = instrumented.globals.filter((g) => !g.top);
  // `readGlobals`: accessors the module carries (a durable module's), where nothing may be compiled at run time.
  const dumper = readGlobals ?? (numeric.length > 0 ? await globalDumper(numeric, exports) : () => new Map<number, GlobalBits>());
  let dump: Map<number, GlobalBits> | undefined;
  const names = new FunctionNames(instrumented, exports);
  const refGlobals = new Map(instrumented.globals.filter((g) => g.top).map((g) => [g.index, g]));
  const liveMemory = (ordinal: number): WebAssembly.Memory => {
    const name = instrumented.memories[ordinal]?.exportName;
    if (name === undefined) throw new Error(`memory ${ordinal} is not instrumented`);
    const memory = exports[name];
    if (!(memory instanceof WebAssembly.Memory)) {
      throw new WizError('instrumentation', `the instance's export "${name}" is not a memory`);
    }
    return memory;
  };
  return {
    readGlobal(index) {
      dump ??= dumper();
      const bits = dump.get(index);
      if (!bits) throw new Error(`global ${index} is not instrumented`);
      return bits;
    },
    readRefGlobal(index) {
      const g = refGlobals.get(index);
      if (!g) throw new Error(`global ${index} is not an instrumented reference-typed global`);
      const global = exports[g.exportName];
      if (!(global instanceof WebAssembly.Global)) {
        throw new WizError('instrumentation', `the instance's export "${g.exportName}" is not a global`);
      }
      let value: unknown;
      try {
        value = global.value;
      } catch {
        throw new WizError('unsupported', `global ${index} (mutable ${g.type}) cannot be read by this host, so wiz cannot write it into a snapshot`);
      }
      return names.ref(value, g.top!, () => `global ${index} (mutable ${g.type})`);
    },
    readTable(ordinal) {
      const t = instrumented.tables[ordinal];
      if (!t) throw new Error(`table ${ordinal} is not instrumented`);
      const table = exports[t.exportName];
      if (!(table instanceof WebAssembly.Table)) {
        throw new WizError('instrumentation', `the instance's export "${t.exportName}" is not a table`);
      }
      const entries = new Int32Array(Number(table.length)); // a BigInt for 64-bit tables
      const get = table.get.bind(table) as (index: number | bigint) => unknown;
      const before = baseline?.get(ordinal);
      let kept = false;
      for (let slot = 0; slot < entries.length; slot++) {
        let value: unknown;
        try {
          value = get(t.table64 ? BigInt(slot) : slot);
        } catch {
          throw new WizError('unsupported', `table ${t.index} (${t.type}) cannot be read by this host, so wiz cannot write it into a snapshot`);
        }
        if (value !== null && before && before[slot] === value) {
          entries[slot] = KEPT_OBJECT;
          kept = true;
        } else {
          entries[slot] = value === null ? -1 : names.ref(value, t.top, () => `table ${t.index} slot ${slot}`)!;
        }
      }
      if (kept) {
        // Kept objects can only be written by the module's own segments: the whole table must be as they left it.
        const changed = before!.length !== entries.length ? before!.length : entries.findIndex((e, slot) => (before![slot] === null) !== (e === -1));
        if (changed >= 0) {
          throw new WizError('unsupported', `table ${t.index} holds objects that instantiation made, and changed since (slot ${changed}): a module cannot hold objects as constants, so wiz can keep such a table only as instantiation left it`);
        }
      }
      return entries;
    },
    isDropped(k) {
      const probe = instrumented.probe.dropped && exports[instrumented.probe.dropped];
      if (typeof probe !== 'function') throw new WizError('instrumentation', 'the instance lacks the dropped-segment probe');
      try {
        probe(k);
        return false;
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError) return true;
        throw e;
      }
    },
    readMemory: (ordinal) => new Uint8Array(liveMemory(ordinal).buffer),
    liveMemory,
  };
}

/**
 * Names the functions an instance's references point to. A function read from a table or global is an object
 * whose identity is stable per instance and function; the probe table holds function `i` of this instance at
 * slot `i`. Imported functions are looked up among the import slots; for the others, engines name an exported
 * function by its index (JS API), so that slot is checked first, and the other slots are searched only when
 * that misses (a function that belongs elsewhere).
 */
class FunctionNames {
  private probe: WebAssembly.Table | undefined;
  private imports: Map<unknown, number[]> | undefined;
  private all: Map<unknown, number> | undefined;
  private readonly importedFunctions: number;

  constructor(instrumented: InstrumentedModule, exports: WebAssembly.Exports) {
    const probe = instrumented.probe.functions && exports[instrumented.probe.functions];
    if (probe instanceof WebAssembly.Table) this.probe = probe;
    this.importedFunctions = instrumented.context.importedFunctions;
  }

  /** The reference `value` (not null-checked by the caller) as a function index or null; `what` names it. */
  ref(value: unknown, top: string, what: () => string): Ref {
    if (value === null) return null;
    if (top !== 'func') {
      throw new WizError('unsupported', `${what()} holds a non-null ${top === 'extern' ? 'externref' : `${top} reference`}: a module cannot hold it as a constant, so wiz cannot write it into a snapshot`);
    }
    const probe = this.probe;
    if (!probe) throw new WizError('instrumentation', 'the instance lacks the function probe table');
    // Imports first: the same function given for two imports cannot be told apart, and is refused.
    if (!this.imports) {
      this.imports = new Map();
      for (let i = 0; i < this.importedFunctions; i++) {
        const f = probe.get(i);
        this.imports.set(f, [...(this.imports.get(f) ?? []), i]);
      }
    }
    const imported = this.imports.get(value);
    if (imported && imported.length > 1) {
      throw new WizError('unsupported', `${what()} holds a function the host gave for ${imported.length} imports (functions ${imported.join(', ')}): wiz cannot tell which import to write into the snapshot`);
    }
    const index = imported?.[0] ?? this.definedIndexOf(value, probe);
    if (index === undefined) {
      throw new WizError('unsupported', `${what()} holds a function of another instance or of the host: a module can refer only to its own functions, so wiz cannot write it into a snapshot`);
    }
    return index;
  }

  /** The index of a function this instance defines: its name first (engines name it by its index), else a search. */
  private definedIndexOf(f: unknown, probe: WebAssembly.Table): number | undefined {
    const name = typeof f === 'function' ? f.name : '';
    if (/^(0|[1-9][0-9]{0,9})$/.test(name)) {
      const candidate = Number(name);
      if (candidate >= this.importedFunctions && candidate < probe.length && probe.get(candidate) === f) return candidate;
    }
    if (!this.all) {
      this.all = new Map();
      for (let i = this.importedFunctions; i < probe.length; i++) this.all.set(probe.get(i), i);
    }
    return this.all.get(f);
  }
}

async function globalDumper(globals: readonly InstrumentedGlobal[], exports: WebAssembly.Exports): Promise<() => Map<number, GlobalBits>> {
  const layout = globals.map((g) => ({ ...g, store: storeOf(g.type), offset: 0 }));
  let size = 0;
  for (const slot of layout) {
    slot.offset = size;
    size += slot.store.size;
  }
  const imports: Record<string, WebAssembly.Global> = {};
  layout.forEach((g, k) => {
    const value = exports[g.exportName];
    if (!(value instanceof WebAssembly.Global)) {
      throw new WizError('instrumentation', `the instance's export "${g.exportName}" is not a global`);
    }
    imports[k] = value;
  });
  let reader: WebAssembly.Instance;
  try {
    // Asynchronous: browsers refuse to compile modules over 4 KiB synchronously on the main thread.
    ({ instance: reader } = await WebAssembly.instantiate(readerModule(layout, size) as BufferSource, { g: imports }));
  } catch (e) {
    const k = /Import #(\d+)/.exec(String(e))?.[1];
    const g = k === undefined ? undefined : layout[Number(k)];
    throw new WizError('instrumentation', g
      ? `the instance's export "${g.exportName}" is not a mutable ${g.type} global`
      : `cannot read the instance's globals: ${String(e)}`);
  }
  return () => {
    (reader.exports.dump as () => void)();
    const memory = new Uint8Array((reader.exports.m as WebAssembly.Memory).buffer);
    return new Map(layout.map((g) => [g.index, memory.slice(g.offset, g.offset + g.store.size)]));
  };
}

function storeOf(type: ValType) {
  const store = STORE[type];
  if (!store) throw new WizError('unsupported', `cannot read a ${type} global`);
  return store;
}

/** A module importing each global as `g.{k}` and exporting `dump`, which stores them all at their offsets. */
function readerModule(layout: { type: ValType; offset: number; store: { op: number[] } }[], size: number): Uint8Array {
  const w = new BinaryWriter().raw(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
  w.section(1, new BinaryWriter().u32(1).byte(0x60).u32(0).u32(0));
  const imports = new BinaryWriter().u32(layout.length);
  layout.forEach((g, k) => imports.name('g').name(String(k)).byte(0x03).byte(VALTYPE_BYTE[g.type]!).byte(0x01));
  w.section(2, imports);
  w.section(3, new BinaryWriter().u32(1).u32(0));
  w.section(5, new BinaryWriter().u32(1).byte(0x00).u32(Math.max(1, Math.ceil(size / 65536))));
  w.section(7, new BinaryWriter().u32(2).name('dump').byte(0x00).u32(0).name('m').byte(0x02).u32(0));
  const body = new BinaryWriter().u32(0);
  layout.forEach((g, k) => {
    body.byte(0x41).s32(g.offset).byte(0x23).u32(k);
    for (const b of g.store.op) body.byte(b);
    body.u32(0).u32(0); // memarg: align 2^0 (always valid), offset 0
  });
  body.byte(0x0b);
  w.section(10, new BinaryWriter().u32(1).sized(body));
  return w.finish();
}
