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

export interface DataSegment {
  mode: 'active' | 'passive';
  memory: number;
  /** Byte range of the whole entry in the input. */
  start: number;
  end: number;
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
  globals: DefinedGlobal[];
  exports: Export[];
  start: number | undefined;
  dataCount: number | undefined;
  dataSegments: DataSegment[];
}
