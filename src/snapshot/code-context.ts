// Whether a snapshot's code is valid without validating it again. The engine validated the input's code (in the
// instrumented module, and on its own when a probe was appended); the snapshot copies that code byte for byte.
// Code can only be invalid in the snapshot if something it refers to changed: a type, a function, table, memory,
// global or tag, an element segment's type, the data count, or a function it takes a reference to (`ref.func`
// needs the function declared outside code). When none changed, validating the snapshot with its code replaced by
// stubs checks everything else, at a fraction of the cost of validating megabytes of code a second time.
import { BinaryReader } from '../parse/reader.ts';
import { findSection, SectionId, skipConstExpr } from '../parse/module.ts';
import type { ModuleContext } from '../parse/types.ts';

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** A section's content bytes, or an empty array. */
function content(ctx: ModuleContext, id: number): Uint8Array {
  const s = findSection(ctx, id);
  return s ? ctx.bytes.subarray(s.contentStart, s.end) : new Uint8Array(0);
}

/** The functions a module declares outside its code: in element segments, global initializers and exports. */
export function declaredFunctions(ctx: ModuleContext): Set<number> {
  const refs = new Set<number>();
  const add = (f: number) => refs.add(f);
  for (const s of ctx.elementSegments) {
    const r = new BinaryReader(ctx.bytes, s.items, s.end);
    const count = r.u32();
    for (let i = 0; i < count; i++) {
      if (s.exprs) skipConstExpr(r, add);
      else add(r.u32());
    }
  }
  for (const g of ctx.globals) skipConstExpr(new BinaryReader(ctx.bytes, g.initStart, g.end), add);
  for (const e of ctx.exports) if (e.kind === 'func') add(e.index);
  return refs;
}

/**
 * True when everything the code of `input` may refer to is the same in `output` (see the top of this file), so
 * that `output`'s code, copied from `input`, is valid where `input`'s is.
 */
export function codeContextKept(input: ModuleContext, output: ModuleContext): boolean {
  for (const id of [SectionId.type, SectionId.import, SectionId.function, SectionId.tag]) {
    if (!sameBytes(content(input, id), content(output, id))) return false;
  }
  if (input.tables.length !== output.tables.length || input.memories.length !== output.memories.length) return false;
  if (input.globals.length !== output.globals.length || input.elementSegments.length !== output.elementSegments.length) return false;
  for (let i = 0; i < input.tables.length; i++) {
    const a = input.tables[i]!;
    const b = output.tables[i]!;
    // The table's reference type: the bytes before its limits.
    if (!sameBytes(input.bytes.subarray(a.refType.start, a.refType.end), output.bytes.subarray(b.refType.start, b.refType.end))) return false;
    if (a.table64 !== b.table64) return false;
  }
  for (let i = 0; i < input.memories.length; i++) {
    const a = input.memories[i]!;
    const b = output.memories[i]!;
    if (a.memory64 !== b.memory64 || a.shared !== b.shared || a.pageSizeLog2 !== b.pageSizeLog2) return false;
  }
  for (let i = 0; i < input.globals.length; i++) {
    const a = input.globals[i]!;
    const b = output.globals[i]!;
    if (a.mutable !== b.mutable || !sameBytes(input.bytes.subarray(a.start, a.initStart), output.bytes.subarray(b.start, b.initStart))) return false;
  }
  for (let i = 0; i < input.elementSegments.length; i++) {
    const a = input.elementSegments[i]!;
    const b = output.elementSegments[i]!;
    const typeOf = (ctx: ModuleContext, s: typeof a) => (s.elemType ? ctx.bytes.subarray(s.elemType.start, s.elemType.end) : new Uint8Array([0x70]));
    if (a.top !== b.top || !sameBytes(typeOf(input, a), typeOf(output, b))) return false;
  }
  if (input.dataCount !== undefined && (output.dataCount ?? -1) < input.dataCount) return false;
  // Functions declared in the input but not in the output (the init function, declared by its export alone):
  // fine unless the code may take a reference to one. `ref.func f` is the byte 0xd2 and f's LEB128; finding
  // those bytes elsewhere (an immediate, a constant) only costs the full validation.
  const declared = declaredFunctions(output);
  const undeclared = [...declaredFunctions(input)].filter((f) => !declared.has(f));
  return undeclared.length === 0 || !mayRefer(content(input, SectionId.code), undeclared);
}

/** Whether `code` holds the bytes of `ref.func f` for one of `functions`. */
function mayRefer(code: Uint8Array, functions: readonly number[]): boolean {
  const patterns = functions.map((f) => {
    const bytes = [0xd2];
    do {
      bytes.push((f & 0x7f) | (f >= 0x80 ? 0x80 : 0));
      f = Math.floor(f / 128);
    } while (f > 0);
    return bytes;
  });
  for (let at = code.indexOf(0xd2); at >= 0; at = code.indexOf(0xd2, at + 1)) {
    for (const p of patterns) {
      let k = 1;
      while (k < p.length && code[at + k] === p[k]) k++;
      if (k === p.length) return true;
    }
  }
  return false;
}
