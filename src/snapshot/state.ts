import { WizError } from '../errors.ts';
import type { InstrumentedModule } from '../instrument/instrument.ts';
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
}

/** The state of an instance: every defined mutable global's bits and every defined memory's bytes. */
export interface Snapshot {
  globals: Map<number, GlobalBits>;
  memories: MemoryState[];
}

/** The seam between the snapshot and a runtime: read a global's bits, read a memory's bytes. */
export interface StateReader {
  /** Bits of global `index` (global index space). */
  readGlobal(index: number): GlobalBits;
  /** Bytes of the memory exported as `__wizer_memory_{ordinal}` (a view, valid until the memory grows). */
  readMemory(ordinal: number): Uint8Array;
}

/** Reads every instrumented global and memory through `reader`. */
export function takeSnapshot(instrumented: InstrumentedModule, reader: StateReader): Snapshot {
  const globals = new Map<number, GlobalBits>();
  for (const g of instrumented.globals) globals.set(g.index, reader.readGlobal(g.index));
  const memories = instrumented.memories.map((m) => {
    const bytes = reader.readMemory(m.ordinal);
    return { index: m.index, pages: bytes.length / 2 ** m.pageSizeLog2, bytes };
  });
  return { globals, memories };
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
export async function instanceReader(instrumented: InstrumentedModule, instance: WebAssembly.Instance): Promise<StateReader> {
  const exports = instance.exports;
  const dumper = instrumented.globals.length > 0 ? await globalDumper(instrumented, exports) : () => new Map<number, GlobalBits>();
  let dump: Map<number, GlobalBits> | undefined;
  return {
    readGlobal(index) {
      dump ??= dumper();
      const bits = dump.get(index);
      if (!bits) throw new Error(`global ${index} is not instrumented`);
      return bits;
    },
    readMemory(ordinal) {
      const name = instrumented.memories[ordinal]?.exportName;
      if (name === undefined) throw new Error(`memory ${ordinal} is not instrumented`);
      const memory = exports[name];
      if (!(memory instanceof WebAssembly.Memory)) {
        throw new WizError('instrumentation', `the instance's export "${name}" is not a memory`);
      }
      return new Uint8Array(memory.buffer);
    },
  };
}

async function globalDumper(instrumented: InstrumentedModule, exports: WebAssembly.Exports): Promise<() => Map<number, GlobalBits>> {
  const layout = instrumented.globals.map((g) => ({ ...g, store: storeOf(g.type), offset: 0 }));
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
