// The shape of a component, for jco's transpiler: the same component with every core module reduced to what
// the component model sees of it (types, imports, exports, tables, memories, globals), its code replaced by
// stubs and its data segments emptied. The transpiler needs no more to write the glue, and it validates and
// copies megabytes of code and data otherwise (on the SpiderMonkey engine, 1.5–4.5 s of a 6 s run). Each stub
// carries its section's ordinal in a custom section, so that the module the glue asks for is found exactly.
// The modules themselves are validated by the engine: those wiz runs as it compiles them, the others on their own.
import { assemble } from '../parse/assemble.ts';
import { findSection, parseModule, SectionId } from '../parse/module.ts';
import { BinaryReader } from '../parse/reader.ts';
import { BinaryWriter, concat } from '../parse/writer.ts';
import { stubCodeSection } from '../snapshot/code-context.ts';
import type { ComponentContext } from './binary.ts';
import { writeComponentRemoving } from './write.ts';

/** The custom section of a stub that names its module section's ordinal. */
const ORDINAL_SECTION = 'wiz-module-ordinal';

/**
 * A module with the same types, imports, exports, tables, memories, globals, elements and start as `bytes`, every
 * function body `unreachable` and every data segment empty, and custom sections left out. A module wiz cannot
 * read is kept whole (the transpiler then reads it as it is).
 */
function stubModule(bytes: Uint8Array): Uint8Array {
  let ctx;
  try {
    ctx = parseModule(bytes);
  } catch {
    return bytes;
  }
  const edits = new Map<number, BinaryWriter | null>();
  if (findSection(ctx, SectionId.code)) edits.set(SectionId.code, stubCodeSection(ctx));
  if (findSection(ctx, SectionId.data)) {
    const data = new BinaryWriter().u32(ctx.dataSegments.length);
    // Each entry without its bytes: the header (mode, memory, offset) and a length of 0. The header ends where the
    // length's LEB128 starts: back from the bytes, past its last byte and every byte before it with the high bit.
    for (const s of ctx.dataSegments) {
      let header = s.end - s.length - 1;
      while (bytes[header - 1]! & 0x80) header--;
      data.raw(bytes.subarray(s.start, header)).u32(0);
    }
    edits.set(SectionId.data, data);
  }
  const custom = new Set(ctx.sections.filter((s) => s.id === SectionId.custom).map((s) => s.name!));
  return assemble(ctx, edits, custom).finish();
}

/** `bytes`, stubbed, with its ordinal. */
function shapeModule(bytes: Uint8Array, ordinal: number): Uint8Array {
  return concat([stubModule(bytes), new BinaryWriter().section(SectionId.custom, new BinaryWriter().name(ORDINAL_SECTION).u32(ordinal)).finish()]);
}

/** The ordinal a stub carries, or undefined for a module the glue made itself. */
export function shapeOrdinal(bytes: Uint8Array): number | undefined {
  let ctx;
  try {
    ctx = parseModule(bytes);
  } catch {
    return undefined;
  }
  const s = ctx.sections.findLast((x) => x.id === SectionId.custom && x.name === ORDINAL_SECTION);
  if (!s) return undefined;
  const r = new BinaryReader(bytes, s.contentStart, s.end);
  r.name();
  return r.u32();
}

/**
 * The shape of `ctx` with some modules replaced (by ordinal, as `writeComponentRemoving` takes them: the modules
 * themselves, or any module with their types, imports and exports, such as a snapshot's stub skeleton) and an
 * export removed: what to transpile to run the component, or to validate a snapshot before it is written.
 */
export function componentShape(ctx: ComponentContext, replaced: ReadonlyMap<number, Uint8Array[]> = new Map(), removeExport?: string): Uint8Array {
  const stubs = new Map<number, Uint8Array[]>();
  for (const m of ctx.modules) {
    const parts = replaced.get(m.ordinal);
    stubs.set(m.ordinal, [shapeModule(parts ? concat(parts) : m.bytes, m.ordinal)]);
  }
  return concat(writeComponentRemoving(ctx, stubs, removeExport).parts);
}
