/** Value types as text: `i32`, `i64`, `f32`, `f64`, `v128`, or a reference type such as `funcref`, `(ref null 3)`. */
export type ValType = string;

/** An entry of the type section. Only function types are decoded in full; GC types are kept opaque. */
export type TypeDef =
  | { kind: 'func'; params: ValType[]; results: ValType[] }
  | { kind: 'struct' | 'array' };

export type ExternKind = 'func' | 'table' | 'memory' | 'global' | 'tag';

/** Memory limits as encoded: the flags byte is kept so that shared, memory64 and page-size bits survive. */
export interface MemoryType {
  flags: number;
  min: number;
  max: number | undefined;
  /** log2 of the page size (16 for the usual 64 KiB pages). */
  pageSizeLog2: number;
  memory64: boolean;
  shared: boolean;
}

export interface GlobalType {
  type: ValType;
  mutable: boolean;
}

export interface Import {
  module: string;
  name: string;
  kind: ExternKind;
  /** func: type index; tag: type index. */
  typeIndex?: number;
  memory?: MemoryType;
  global?: GlobalType;
  table?: DefinedTable;
}

export interface Export {
  name: string;
  kind: ExternKind;
  index: number;
}

/** A defined global: its type and where its entry lies in the input (type bytes, then init expression). */
export interface DefinedGlobal extends GlobalType {
  /** Index in the global index space (imports first). */
  index: number;
  /** Byte offset of the entry (its value type). */
  start: number;
  /** Byte offset of the init expression. */
  initStart: number;
  /** Byte offset just past the init expression's `end`. */
  end: number;
}

export interface DefinedMemory extends MemoryType {
  /** Index in the memory index space (imports first). */
  index: number;
}

/** The hierarchy a reference type belongs to: which probe table can hold its values. */
export type RefTop = 'func' | 'extern' | 'any' | 'exn';

/** A byte range of the input. */
export interface Range {
  start: number;
  end: number;
}

/** A defined table: its element type and limits, and where its entry lies in the input. */
export interface DefinedTable {
  /** Index in the table index space (imports first). */
  index: number;
  /** The element type as text, e.g. `funcref`, `(ref null 2)`. */
  type: ValType;
  /** The element type as encoded. */
  refType: Range;
  top: RefTop;
  /** Limits as encoded: flags (bit 0 max, bit 2 64-bit indices), minimum, maximum. */
  flags: number;
  min: number;
  max: number | undefined;
  table64: boolean;
  /** The entry's byte range; `limits` is the range of its limits; `init` the initial-value expression, if any. */
  start: number;
  limits: Range;
  init: Range | undefined;
  end: number;
}

/** An element segment as encoded (flags 0–7), with the ranges the rewrite and the state simulation need. */
export interface ElementSegment {
  flags: number;
  mode: 'active' | 'passive' | 'declarative';
  /** Target table of an active segment. */
  table: number;
  /** Offset expression of an active segment. */
  offset: Range | undefined;
  /** The element type as encoded (an elemkind byte 0x00 stands for funcref); absent for flags 0 and 4 (funcref). */
  elemType: Range | undefined;
  top: RefTop;
  /** Items are constant expressions (flags 4–7), else function indices. */
  exprs: boolean;
  count: number;
  /** Where the item vector starts (its count). */
  items: number;
  start: number;
  end: number;
}

export interface DataSegment {
  mode: 'active' | 'passive';
  memory: number;
  /** Byte range of the whole entry in the input. */
  start: number;
  end: number;
  /** Length of the segment's bytes. */
  length: number;
}

/** A section as a byte range of the input: `start` is its id byte, `contentStart` its first content byte. */
export interface Section {
  id: number;
  start: number;
  contentStart: number;
  end: number;
  /** Custom sections only. */
  name?: string;
}

/** What wiz knows of a module: its sections as byte ranges and the index spaces the pipeline needs. */
export interface ModuleContext {
  bytes: Uint8Array;
  sections: Section[];
  types: TypeDef[];
  imports: Import[];
  /** Type index of each defined function. */
  functionTypes: number[];
  importedFunctions: number;
  importedTables: number;
  importedMemories: number;
  importedGlobals: number;
  importedTags: number;
  memories: DefinedMemory[];
  tables: DefinedTable[];
  globals: DefinedGlobal[];
  exports: Export[];
  start: number | undefined;
  dataCount: number | undefined;
  dataSegments: DataSegment[];
  elementSegments: ElementSegment[];
}
