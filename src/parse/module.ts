import { WizError } from '../errors.ts';
import { BinaryReader } from './reader.ts';
import type {
  DataSegment,
  DefinedGlobal,
  DefinedMemory,
  DefinedTable,
  ElementSegment,
  Export,
  ExternKind,
  GlobalType,
  Import,
  MemoryType,
  ModuleContext,
  RefTop,
  Section,
  TypeDef,
  ValType,
} from './types.ts';

export const SectionId = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13,
} as const;

/** Position of each non-custom section id in the order the binary format requires. */
const SECTION_RANK: Record<number, number> = { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13 };

export function sectionRank(id: number): number {
  const rank = SECTION_RANK[id];
  if (rank === undefined) throw new Error(`no rank for section ${id}`);
  return rank;
}

export const SECTION_NAMES: Record<number, string> = {
  0: 'custom', 1: 'type', 2: 'import', 3: 'function', 4: 'table', 5: 'memory', 6: 'global', 7: 'export',
  8: 'start', 9: 'element', 10: 'code', 11: 'data', 12: 'data count', 13: 'tag',
};

const EXTERN_KINDS: ExternKind[] = ['func', 'table', 'memory', 'global', 'tag'];

const ABSTRACT_HEAP: Record<number, string> = {
  0x70: 'func', 0x6f: 'extern', 0x6e: 'any', 0x6d: 'eq', 0x6c: 'i31', 0x6b: 'struct', 0x6a: 'array',
  0x71: 'none', 0x72: 'noextern', 0x73: 'nofunc', 0x69: 'exn', 0x74: 'noexn',
};
const NULLABLE_SHORTHAND: Record<string, string> = {
  func: 'funcref', extern: 'externref', any: 'anyref', eq: 'eqref', i31: 'i31ref', struct: 'structref',
  array: 'arrayref', none: 'nullref', noextern: 'nullexternref', nofunc: 'nullfuncref', exn: 'exnref',
  noexn: 'nullexnref',
};
const NUMERIC: Record<number, ValType> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128' };

const MAGIC = [0x00, 0x61, 0x73, 0x6d];

/**
 * Reads a core module into a context in one pass: every section as a byte range of `bytes`, and the index
 * spaces the pipeline needs; element segments as byte ranges of their parts. Function bodies are not decoded;
 * with `dataSegments: false`, neither are data segments (for a module whose data nothing reads).
 */
export function parseModule(bytes: Uint8Array, options: { dataSegments?: boolean } = {}): ModuleContext {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new WizError('malformed', MAGIC.slice(0, Math.min(4, bytes.length)).every((b, i) => bytes[i] === b)
      ? 'not a complete WebAssembly module: the file ends inside its 8-byte header'
      : 'not a WebAssembly module: the file does not start with the `\\0asm` magic bytes');
  }
  const version = bytes[4]! | (bytes[5]! << 8);
  const layer = bytes[6]! | (bytes[7]! << 8);
  if (layer === 1) {
    throw new WizError('component', 'this is a WebAssembly component; wiz pre-initializes core modules (pass the core module inside it)');
  }
  if (version !== 1 || layer !== 0) {
    throw new WizError('malformed', `unsupported WebAssembly binary version ${version} (wiz reads version 1 core modules)`);
  }

  const ctx: ModuleContext = {
    bytes, sections: [], types: [], imports: [], functionTypes: [], importedFunctions: 0, importedTables: 0,
    importedMemories: 0, importedGlobals: 0, importedTags: 0, memories: [], tables: [], globals: [], exports: [],
    start: undefined, dataCount: undefined, dataSegments: [], elementSegments: [],
  };
  const r = new BinaryReader(bytes, 8);
  let lastRank = 0;
  while (!r.done) {
    const start = r.pos;
    const id = r.u8();
    const size = r.u32();
    const contentStart = r.pos;
    if (size > r.end - contentStart) {
      r.fail(`${SECTION_NAMES[id] ?? `unknown (id ${id})`} section of ${size} bytes runs past the end of the file (${r.end - contentStart} bytes left)`, start);
    }
    const end = contentStart + size;
    const section: Section = { id, start, contentStart, end };
    const body = new BinaryReader(bytes, contentStart, end);
    if (id === SectionId.custom) {
      section.name = body.name();
    } else {
      const rank = SECTION_RANK[id];
      if (rank === undefined) return r.fail(`unknown section id ${id}`, start);
      if (rank <= lastRank) r.fail(`${SECTION_NAMES[id]} section is duplicated or out of order`, start);
      lastRank = rank;
      if (id === SectionId.data && options.dataSegments === false) body.pos = end; // not read: `dataSegments` stays empty
      else readSection(ctx, id, body);
      if (!body.done) body.fail(`${SECTION_NAMES[id]} section has ${end - body.pos} unread bytes at its end`);
    }
    ctx.sections.push(section);
    r.pos = end;
  }
  return ctx;
}

function readSection(ctx: ModuleContext, id: number, r: BinaryReader): void {
  switch (id) {
    case SectionId.type:
      for (let n = r.count(); n > 0; n--) readRecType(ctx.types, r);
      break;
    case SectionId.import:
      for (let n = r.count(); n > 0; n--) ctx.imports.push(readImport(ctx, r));
      break;
    case SectionId.function:
      for (let n = r.count(); n > 0; n--) ctx.functionTypes.push(r.u32());
      break;
    case SectionId.table:
      for (let n = r.count(); n > 0; n--) ctx.tables.push(readTable(ctx, r, ctx.importedTables + ctx.tables.length));
      break;
    case SectionId.memory:
      for (let n = r.count(); n > 0; n--) {
        ctx.memories.push({ ...readMemoryType(r), index: ctx.importedMemories + ctx.memories.length });
      }
      break;
    case SectionId.tag:
      for (let n = r.count(); n > 0; n--) readTag(r);
      break;
    case SectionId.global:
      for (let n = r.count(); n > 0; n--) ctx.globals.push(readGlobal(ctx, r));
      break;
    case SectionId.export:
      for (let n = r.count(); n > 0; n--) ctx.exports.push(readExport(r));
      break;
    case SectionId.start:
      ctx.start = r.u32();
      break;
    case SectionId.element:
      for (let n = r.count(); n > 0; n--) ctx.elementSegments.push(readElementSegment(ctx, r));
      break;
    case SectionId.code:
      r.pos = r.end; // copied as bytes; the engine validates them
      break;
    case SectionId.dataCount:
      ctx.dataCount = r.u32();
      break;
    case SectionId.data:
      for (let n = r.count(); n > 0; n--) ctx.dataSegments.push(readDataSegment(r));
      break;
  }
}

function readRecType(types: TypeDef[], r: BinaryReader): void {
  if (r.bytes[r.pos] === 0x4e) {
    r.pos++;
    for (let n = r.count(); n > 0; n--) types.push(readSubType(r));
  } else {
    types.push(readSubType(r));
  }
}

function readSubType(r: BinaryReader): TypeDef {
  const at = r.pos;
  const form = r.u8();
  if (form === 0x50 || form === 0x4f) {
    for (let n = r.count(); n > 0; n--) r.u32();
    return readCompositeType(r, r.u8(), r.pos - 1);
  }
  return readCompositeType(r, form, at);
}

function readCompositeType(r: BinaryReader, form: number, at: number): TypeDef {
  switch (form) {
    case 0x60: {
      const params: ValType[] = [];
      for (let n = r.count(); n > 0; n--) params.push(readValType(r));
      const results: ValType[] = [];
      for (let n = r.count(); n > 0; n--) results.push(readValType(r));
      return { kind: 'func', params, results };
    }
    case 0x5f:
      for (let n = r.count(); n > 0; n--) readFieldType(r);
      return { kind: 'struct' };
    case 0x5e:
      readFieldType(r);
      return { kind: 'array' };
    default:
      return r.fail(`unknown type form 0x${form.toString(16)}`, at);
  }
}

function readFieldType(r: BinaryReader): void {
  const b = r.bytes[r.pos];
  if (b === 0x78 || b === 0x77) r.pos++; // i8, i16 packed storage
  else readValType(r);
  readMutability(r);
}

function readMutability(r: BinaryReader): boolean {
  const at = r.pos;
  const m = r.u8();
  if (m > 1) r.fail(`invalid mutability 0x${m.toString(16)}`, at);
  return m === 1;
}

export function readValType(r: BinaryReader): ValType {
  const at = r.pos;
  const b = r.u8();
  const numeric = NUMERIC[b];
  if (numeric) return numeric;
  const shorthand = ABSTRACT_HEAP[b];
  if (shorthand) return NULLABLE_SHORTHAND[shorthand]!;
  if (b === 0x63 || b === 0x64) {
    const heap = readHeapType(r);
    if (b === 0x63 && NULLABLE_SHORTHAND[heap]) return NULLABLE_SHORTHAND[heap]!;
    return b === 0x63 ? `(ref null ${heap})` : `(ref ${heap})`;
  }
  return r.fail(`unknown value type 0x${b.toString(16)}`, at);
}

function readHeapType(r: BinaryReader): string {
  const at = r.pos;
  const v = r.s33();
  if (v >= 0) return String(v);
  const name = ABSTRACT_HEAP[v & 0x7f];
  if (!name) r.fail(`unknown heap type`, at);
  return name;
}

function readLimits(r: BinaryReader, what: string): MemoryType {
  const at = r.pos;
  const flags = r.u8();
  if (flags & ~0x0f) r.fail(`unknown ${what} limits flags 0x${flags.toString(16)}`, at);
  const is64 = (flags & 0x04) !== 0;
  const min = is64 ? r.u64() : r.u32();
  const max = flags & 0x01 ? (is64 ? r.u64() : r.u32()) : undefined;
  const pageSizeLog2 = flags & 0x08 ? r.u32() : 16;
  return { flags, min, max, pageSizeLog2, memory64: is64, shared: (flags & 0x02) !== 0 };
}

function readMemoryType(r: BinaryReader): MemoryType {
  return readLimits(r, 'memory');
}

function readTable(ctx: ModuleContext, r: BinaryReader, index: number): DefinedTable {
  const start = r.pos;
  const withInit = r.bytes[r.pos] === 0x40;
  if (withInit) {
    r.pos++;
    if (r.u8() !== 0x00) r.fail('invalid table encoding', r.pos - 1);
  }
  const typeStart = r.pos;
  const type = readValType(r);
  const refType = { start: typeStart, end: r.pos };
  const limitsStart = r.pos;
  const { flags, min, max, memory64 } = readLimits(r, 'table');
  const limits = { start: limitsStart, end: r.pos };
  let init: DefinedTable['init'];
  if (withInit) {
    init = { start: r.pos, end: 0 };
    skipConstExpr(r);
    init.end = r.pos;
  }
  const top = refTop(ctx, type);
  if (!top) r.fail(`a table of ${type} elements`, typeStart);
  return { index, type, refType, top, flags, min, max, table64: memory64, start, limits, init, end: r.pos };
}

/** The hierarchy of a reference type (undefined for numeric types). */
export function refTop(ctx: ModuleContext, type: ValType): RefTop | undefined {
  const heap = /^\(ref (?:null )?(\w+)\)$/.exec(type)?.[1] ?? HEAP_OF_SHORTHAND[type];
  if (heap === undefined) return undefined;
  if (/^\d+$/.test(heap)) return ctx.types[Number(heap)]?.kind === 'func' ? 'func' : 'any';
  return TOP_OF_HEAP[heap];
}
const HEAP_OF_SHORTHAND: Record<string, string> = Object.fromEntries(Object.entries(NULLABLE_SHORTHAND).map(([heap, name]) => [name, heap]));
const TOP_OF_HEAP: Record<string, RefTop> = {
  func: 'func', nofunc: 'func', extern: 'extern', noextern: 'extern', exn: 'exn', noexn: 'exn',
  any: 'any', eq: 'any', i31: 'any', struct: 'any', array: 'any', none: 'any',
};

function readElementSegment(ctx: ModuleContext, r: BinaryReader): ElementSegment {
  const start = r.pos;
  const flags = r.u32();
  if (flags > 7) r.fail(`unknown element segment flags ${flags}`, start);
  const mode = flags & 1 ? (flags & 2 ? 'declarative' : 'passive') : 'active';
  const exprs = (flags & 4) !== 0;
  let table = 0;
  let offset: ElementSegment['offset'];
  if (mode === 'active') {
    if (flags & 2) table = r.u32();
    offset = { start: r.pos, end: 0 };
    skipConstExpr(r);
    offset.end = r.pos;
  }
  let elemType: ElementSegment['elemType'];
  let top: RefTop = 'func';
  if (flags & 3) {
    const at = r.pos;
    if (exprs) {
      const t = refTop(ctx, readValType(r));
      if (!t) r.fail('element segment of a numeric type', at);
      top = t;
    } else if (r.u8() !== 0x00) {
      r.fail('unknown element kind', at);
    }
    elemType = { start: at, end: r.pos };
  }
  const items = r.pos;
  const count = r.count();
  for (let n = count; n > 0; n--) {
    if (exprs) skipConstExpr(r);
    else r.u32();
  }
  return { flags, mode, table, offset, elemType, top, exprs, count, items, start, end: r.pos };
}

function readTag(r: BinaryReader): number {
  const at = r.pos;
  if (r.u8() !== 0x00) r.fail('invalid tag attribute', at);
  return r.u32();
}

function readGlobalType(r: BinaryReader): GlobalType {
  const type = readValType(r);
  return { type, mutable: readMutability(r) };
}

function readImport(ctx: ModuleContext, r: BinaryReader): Import {
  const module = r.name();
  const name = r.name();
  const at = r.pos;
  const kindByte = r.u8();
  const kind = EXTERN_KINDS[kindByte];
  switch (kind) {
    case 'func':
      ctx.importedFunctions++;
      return { module, name, kind, typeIndex: r.u32() };
    case 'table':
      ctx.importedTables++;
      return { module, name, kind, table: readTable(ctx, r, ctx.importedTables - 1) };
    case 'memory':
      ctx.importedMemories++;
      return { module, name, kind, memory: readMemoryType(r) };
    case 'global':
      ctx.importedGlobals++;
      return { module, name, kind, global: readGlobalType(r) };
    case 'tag':
      ctx.importedTags++;
      return { module, name, kind, typeIndex: readTag(r) };
    default:
      return r.fail(`unknown import kind 0x${kindByte.toString(16)}`, at);
  }
}

function readGlobal(ctx: ModuleContext, r: BinaryReader): DefinedGlobal {
  const start = r.pos;
  const type = readGlobalType(r);
  const initStart = r.pos;
  skipConstExpr(r);
  return { ...type, index: ctx.importedGlobals + ctx.globals.length, start, initStart, end: r.pos };
}

function readExport(r: BinaryReader): Export {
  const name = r.name();
  const at = r.pos;
  const kindByte = r.u8();
  const kind = EXTERN_KINDS[kindByte];
  if (!kind) r.fail(`unknown export kind 0x${kindByte.toString(16)}`, at);
  return { name, kind, index: r.u32() };
}

function readDataSegment(r: BinaryReader): DataSegment {
  const start = r.pos;
  const flag = r.u32();
  if (flag > 2) return r.fail(`unknown data segment flags ${flag}`, start);
  const memory = flag === 2 ? r.u32() : 0;
  if (flag !== 1) skipConstExpr(r);
  const length = r.u32();
  r.skip(length);
  // One object literal (a module may have thousands of segments, read by cold code).
  return { mode: flag === 1 ? 'passive' : 'active', memory, start, end: r.pos, length };
}

/**
 * Skips a constant expression up to and including its `end`, accepting the opcodes valid there; `onRefFunc`
 * receives the function index of each `ref.func` in it.
 */
export function skipConstExpr(r: BinaryReader, onRefFunc?: (func: number) => void): void {
  for (;;) {
    const at = r.pos;
    const op = r.u8();
    switch (op) {
      case 0x0b: return; // end
      case 0x41: r.skipSigned(32); break; // i32.const
      case 0x42: r.skipSigned(64); break; // i64.const
      case 0x43: r.skip(4); break; // f32.const
      case 0x44: r.skip(8); break; // f64.const
      case 0x23: r.u32(); break; // global.get
      case 0xd0: readHeapType(r); break; // ref.null
      case 0xd2: { // ref.func
        const func = r.u32();
        onRefFunc?.(func);
        break;
      }
      case 0x6a: case 0x6b: case 0x6c: case 0x7c: case 0x7d: case 0x7e: break; // extended-const arithmetic
      case 0xfd: { // v128.const
        const sub = r.u32();
        if (sub !== 12) r.fail(`instruction 0xfd ${sub} is not allowed in a constant expression`, at);
        r.skip(16);
        break;
      }
      case 0xfb: { // GC constant instructions
        const sub = r.u32();
        if (sub === 0 || sub === 1 || sub === 6 || sub === 7) r.u32();
        else if (sub === 8) { r.u32(); r.u32(); }
        else if (sub !== 0x1a && sub !== 0x1b && sub !== 0x1c) {
          r.fail(`instruction 0xfb ${sub} is not allowed in a constant expression`, at);
        }
        break;
      }
      default:
        r.fail(`instruction 0x${op.toString(16)} is not allowed in a constant expression`, at);
    }
  }
}

/** The functions an element segment refers to (its items' function indices and `ref.func`s). */
export function segmentFunctions(ctx: ModuleContext, s: ElementSegment, into: Set<number>): void {
  const r = new BinaryReader(ctx.bytes, s.items, s.end);
  for (let n = r.u32(); n > 0; n--) {
    if (s.exprs) skipConstExpr(r, (f) => into.add(f));
    else into.add(r.u32());
  }
}

/** The function type of function `index`, if the index and its type are known. */
export function functionType(ctx: ModuleContext, index: number): TypeDef | undefined {
  let typeIndex: number | undefined;
  if (index < ctx.importedFunctions) {
    typeIndex = ctx.imports.filter((i) => i.kind === 'func')[index]?.typeIndex;
  } else {
    typeIndex = ctx.functionTypes[index - ctx.importedFunctions];
  }
  return typeIndex === undefined ? undefined : ctx.types[typeIndex];
}

/** The section with this id, if any (non-custom sections occur at most once). */
export function findSection(ctx: ModuleContext, id: number): Section | undefined {
  return ctx.sections.find((s) => s.id === id);
}

/** A vector section's entries, after its count, as one view of the input. */
export function entriesAfterCount(ctx: ModuleContext, contentStart: number, end: number): Uint8Array {
  const r = new BinaryReader(ctx.bytes, contentStart, end);
  r.u32();
  return ctx.bytes.subarray(r.pos, end);
}
