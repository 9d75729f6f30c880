// Whether a snapshot's code is valid without validating it again. The engine validated the input's code (in the
// instrumented module, and on its own when a probe was appended); the snapshot copies that code byte for byte.
// Code can only be invalid in the snapshot if something it refers to changed: a type, a function, table, memory,
// global or tag, an element segment's type, the data count, or a function it takes a reference to (`ref.func`
// needs the function declared outside code). When none changed, validating the snapshot with its code replaced by
// stubs checks everything else, at a fraction of the cost of validating megabytes of code a second time.
import { BinaryReader } from '../parse/reader.ts';
import { findSection, SectionId, skipConstExpr } from '../parse/module.ts';
import type { ModuleContext } from '../parse/types.ts';
import { BinaryWriter, repeated } from '../parse/writer.ts';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A section's content bytes, or an empty array. */
function content(ctx: ModuleContext, id: number): Uint8Array {
  const s = findSection(ctx, id);
  return s ? ctx.bytes.subarray(s.contentStart, s.end) : new Uint8Array(0);
}

/**
 * The functions a module declares outside its code: in element segments, global initializers and exports
 * (`elements: false`: in the latter two only).
 */
export function declaredFunctions(ctx: ModuleContext, elements = true): Set<number> {
  const refs = new Set<number>();
  const add = (f: number) => refs.add(f);
  for (const s of elements ? ctx.elementSegments : []) {
    const r = new BinaryReader(ctx.bytes, s.items, s.end);
    const count = r.u32();
    if (s.exprs) {
      for (let i = 0; i < count; i++) skipConstExpr(r, add);
      continue;
    }
    // Function indices: thousands in an engine's table, read inline (this runs cold).
    const b = ctx.bytes;
    let at = r.pos;
    for (let i = 0; i < count && at < s.end; i++) {
      let f = 0;
      let scale = 1;
      let byte;
      do {
        byte = b[at++]!;
        f += (byte & 0x7f) * scale;
        scale *= 128;
      } while (byte & 0x80 && at < s.end);
      refs.add(f);
    }
  }
  for (const g of ctx.globals) skipConstExpr(new BinaryReader(ctx.bytes, g.initStart, g.end), add);
  for (const e of ctx.exports) if (e.kind === 'func') add(e.index);
  return refs;
}

/** The functions `input` declares and `output` does not. */
function undeclaredIn(input: ModuleContext, output: ModuleContext): number[] {
  const undeclared = (a: Set<number>, b: Set<number>) => [...a].filter((f) => !b.has(f));
  if (!sameBytes(content(input, SectionId.element), content(output, SectionId.element))) {
    return undeclared(declaredFunctions(input), declaredFunctions(output));
  }
  // The same element segments declare the same functions in both: only those the input's globals and exports
  // declare and the output's do not (the removed init function) may be undeclared, unless an element declares them.
  const candidates = undeclared(declaredFunctions(input, false), declaredFunctions(output, false));
  return candidates.length === 0 ? [] : undeclared(new Set(candidates), declaredFunctions(output));
}

const bodiesOf = new WeakMap<ModuleContext, { start: number; end: number }[]>();

/**
 * The body of each defined function: [start, end) in the module's bytes, after the body's size. Computed once per
 * context, with the sizes' LEB128 read inline: an engine has tens of thousands of bodies, and this runs cold.
 */
export function functionBodies(ctx: ModuleContext): { start: number; end: number }[] {
  const known = bodiesOf.get(ctx);
  if (known) return known;
  const section = findSection(ctx, SectionId.code);
  if (!section) return [];
  const b = ctx.bytes;
  let at = section.contentStart;
  const leb = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (at >= section.end) return new BinaryReader(b, at, section.end).fail('code section ends inside a body size');
      const byte = b[at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  const bodies: { start: number; end: number }[] = [];
  for (let n = leb(); n > 0; n--) {
    const size = leb();
    bodies.push({ start: at, end: at + size });
    at += size;
  }
  bodiesOf.set(ctx, bodies);
  return bodies;
}

/**
 * A code section for `ctx` whose bodies are stubs (no locals; `unreachable`), valid for any function type, but
 * those in `kept` (by index among defined functions), copied.
 */
export function stubCodeSection(ctx: ModuleContext, kept?: ReadonlySet<number>): BinaryWriter {
  const count = ctx.functionTypes.length;
  const code = new BinaryWriter().u32(count);
  // Every stub is the same 4 bytes (size 3, no locals, unreachable, end): runs of them are views of one array.
  const stubs = repeated(STUB_BODY, count);
  const bodies = kept?.size ? functionBodies(ctx) : [];
  let run = 0;
  for (const f of [...(kept ?? [])].sort((a, b) => a - b)) {
    const body = bodies[f];
    if (!body) continue;
    code.raw(stubs.subarray(4 * run, 4 * f)).u32(body.end - body.start).raw(ctx.bytes.subarray(body.start, body.end));
    run = f + 1;
  }
  return code.raw(stubs.subarray(4 * run));
}

const STUB_BODY = [0x03, 0x00, 0x00, 0x0b];

/**
 * The function bodies of `output` to validate again (by their index among defined functions), its code being
 * copied from `input`: none when everything the code may refer to is the same (see the top of this file);
 * 'all' when a type, import, table, memory, global, element segment or the data count changed; otherwise the
 * bodies that hold the bytes of `ref.func f` for a function `f` that only `input` declares (the init function,
 * declared by its export alone). Those bytes may be something else (an immediate, a constant): validating the
 * bodies that hold them, in a module whose other bodies are stubs, settles it.
 */
export function bodiesToValidate(input: ModuleContext, output: ModuleContext): Set<number> | 'all' {
  for (const id of [SectionId.type, SectionId.import, SectionId.function, SectionId.tag]) {
    if (!sameBytes(content(input, id), content(output, id))) return 'all';
  }
  if (input.tables.length !== output.tables.length || input.memories.length !== output.memories.length) return 'all';
  if (input.globals.length !== output.globals.length || input.elementSegments.length !== output.elementSegments.length) return 'all';
  for (let i = 0; i < input.tables.length; i++) {
    const a = input.tables[i]!;
    const b = output.tables[i]!;
    // The table's reference type: the bytes before its limits.
    if (!sameBytes(input.bytes.subarray(a.refType.start, a.refType.end), output.bytes.subarray(b.refType.start, b.refType.end))) return 'all';
    if (a.table64 !== b.table64) return 'all';
  }
  for (let i = 0; i < input.memories.length; i++) {
    const a = input.memories[i]!;
    const b = output.memories[i]!;
    if (a.memory64 !== b.memory64 || a.shared !== b.shared || a.pageSizeLog2 !== b.pageSizeLog2) return 'all';
  }
  for (let i = 0; i < input.globals.length; i++) {
    const a = input.globals[i]!;
    const b = output.globals[i]!;
    if (a.mutable !== b.mutable || !sameBytes(input.bytes.subarray(a.start, a.initStart), output.bytes.subarray(b.start, b.initStart))) return 'all';
  }
  for (let i = 0; i < input.elementSegments.length; i++) {
    const a = input.elementSegments[i]!;
    const b = output.elementSegments[i]!;
    const typeOf = (ctx: ModuleContext, s: typeof a) => (s.elemType ? ctx.bytes.subarray(s.elemType.start, s.elemType.end) : new Uint8Array([0x70]));
    if (a.top !== b.top || !sameBytes(typeOf(input, a), typeOf(output, b))) return 'all';
  }
  if (input.dataCount !== undefined && (output.dataCount ?? -1) < input.dataCount) return 'all';
  const undeclared = undeclaredIn(input, output);
  return undeclared.length === 0 ? new Set() : bodiesReferring(input, undeclared);
}

/** True when the snapshot's code is valid as it is, with no body to validate again (see `bodiesToValidate`). */
export function codeContextKept(input: ModuleContext, output: ModuleContext): boolean {
  const bodies = bodiesToValidate(input, output);
  return bodies !== 'all' && bodies.size === 0;
}

/** The bodies of `ctx` that hold the bytes of `ref.func f` (0xd2, f's LEB128) for one of `functions`. */
function bodiesReferring(ctx: ModuleContext, functions: readonly number[]): Set<number> {
  const found = new Set<number>();
  const section = findSection(ctx, SectionId.code);
  if (!section) return found;
  const code = ctx.bytes.subarray(0, section.end);
  const patterns = functions.map((f) => {
    const bytes = [0xd2];
    do {
      bytes.push((f & 0x7f) | (f >= 0x80 ? 0x80 : 0));
      f = Math.floor(f / 128);
    } while (f > 0);
    return bytes;
  });
  let bodies: { start: number; end: number }[] | undefined;
  let body = 0;
  for (let at = code.indexOf(0xd2, section.contentStart); at >= 0; at = code.indexOf(0xd2, at + 1)) {
    let match = false;
    for (const p of patterns) {
      let k = 1;
      while (k < p.length && code[at + k] === p[k]) k++;
      if ((match = k === p.length)) break;
    }
    if (!match) continue;
    bodies ??= functionBodies(ctx);
    while (body < bodies.length && bodies[body]!.end <= at) body++;
    // Bytes in a body's size or locals are not code, but validating that body too costs little.
    if (body < bodies.length) found.add(body);
  }
  return found;
}
