import { BinaryReader } from '../parse/reader.ts';
import { BinaryWriter } from '../parse/writer.ts';
import { ComponentSectionId, readCanon, readSort, type ComponentContext } from './binary.ts';

/**
 * Writes the component again with new contents for some core module sections (by ordinal), and without the
 * top-level function export `removeFunc` (its index, in the function index space) when given. Nothing in a
 * component refers to byte offsets, so a new module means a new section size, and new sizes for the
 * components that enclose it. Returns chunks (views of the input and of the modules), in order.
 */
export function writeComponent(ctx: ComponentContext, modules: ReadonlyMap<number, Uint8Array[]>, removed?: RemovedExport): Uint8Array[] {
  return level(ctx, modules, removed).parts();
}

/** The top-level function export to remove: its section and entry, and the function index it defines. */
export interface RemovedExport {
  section: number;
  entry: number;
  func: number;
}

function level(ctx: ComponentContext, modules: ReadonlyMap<number, Uint8Array[]>, removed: RemovedExport | undefined): BinaryWriter {
  const out = new BinaryWriter().raw(ctx.bytes.subarray(ctx.start, ctx.start + 8));
  ctx.sections.forEach((s, i) => {
    if (s.module !== undefined && modules.has(s.module)) {
      const body = new BinaryWriter();
      for (const part of modules.get(s.module)!) body.raw(part);
      out.section(s.id, body);
    } else if (s.component && containsAny(s.component, modules)) {
      out.section(s.id, level(s.component, modules, undefined)); // preamble and sections: a section body
    } else if (removed && i >= removed.section && renumbered(s.id, s.name)) {
      out.section(s.id, renumber(ctx, i, removed));
    } else {
      out.raw(ctx.bytes.subarray(s.start, s.end));
    }
  });
  return out;
}

function containsAny(ctx: ComponentContext, modules: ReadonlyMap<number, Uint8Array[]>): boolean {
  return ctx.sections.some((s) => (s.module !== undefined && modules.has(s.module)) || (s.component && containsAny(s.component, modules)));
}

/** Sections that refer to component functions by index (or name them): these follow a removed export. */
function renumbered(id: number, name: string | undefined): boolean {
  return id === ComponentSectionId.instance || id === ComponentSectionId.canon || id === ComponentSectionId.export
    || (id === ComponentSectionId.custom && name === 'component-name');
}

/** A function index after removing `removed.func`; referring to the removed function itself is an error. */
function shift(index: number, removed: RemovedExport): number {
  if (index === removed.func) throw new KeepExport();
  return index > removed.func ? index - 1 : index;
}

/** Thrown when the export cannot be removed (something refers to it, or wiz cannot read a section): keep it. */
export class KeepExport extends Error {}

/** The body of section `i` with function indices above the removed one decremented. */
function renumber(ctx: ComponentContext, i: number, removed: RemovedExport): BinaryWriter {
  const s = ctx.sections[i]!;
  const r = new BinaryReader(ctx.bytes, s.contentStart, s.end);
  const w = new BinaryWriter();
  const copy = (from: number) => w.raw(ctx.bytes.subarray(from, r.pos));
  const sortIdx = () => {
    const at = r.pos;
    const sort = readSort(r);
    w.raw(ctx.bytes.subarray(at, r.pos));
    const index = r.u32();
    w.u32(sort === 'func' ? shift(index, removed) : index);
  };
  const name = () => {
    const at = r.pos;
    r.u8();
    r.name();
    copy(at);
  };
  try {
    switch (s.id) {
      case ComponentSectionId.export: {
        if (i === removed.section) return dropEntry(ctx, i, removed);
        const n = r.u32();
        w.u32(n);
        for (let entry = 0; entry < n; entry++) {
          name();
          sortIdx();
          const at = r.pos;
          if (r.u8() === 0x01) skipDesc(r);
          copy(at);
        }
        return w;
      }
      case ComponentSectionId.instance: {
        const n = r.u32();
        w.u32(n);
        for (let k = 0; k < n; k++) {
          const kind = r.u8();
          w.byte(kind);
          if (kind === 0x00) {
            w.u32(r.u32());
            const args = r.u32();
            w.u32(args);
            for (let a = 0; a < args; a++) {
              const at = r.pos;
              r.name();
              copy(at);
              sortIdx();
            }
          } else if (kind === 0x01) {
            const exports = r.u32();
            w.u32(exports);
            for (let a = 0; a < exports; a++) {
              name();
              sortIdx();
            }
          } else throw new KeepExport();
        }
        return w;
      }
      case ComponentSectionId.canon: {
        const n = r.u32();
        w.u32(n);
        for (let k = 0; k < n; k++) {
          const at = r.pos;
          const entry = readCanon(r);
          if (entry.lowered) {
            w.raw(ctx.bytes.subarray(at, entry.lowered.at)).u32(shift(entry.lowered.index, removed));
            const after = new BinaryReader(ctx.bytes, entry.lowered.at, s.end);
            after.u32();
            w.raw(ctx.bytes.subarray(after.pos, r.pos));
          } else copy(at);
        }
        return w;
      }
      default:
        return componentNames(ctx, i, removed);
    }
  } catch (e) {
    if (e instanceof KeepExport) throw e;
    throw new KeepExport((e as Error).message);
  }
}

function skipDesc(r: BinaryReader): void {
  const kind = r.u8();
  if (kind === 0x00) { r.u8(); r.u32(); } else if (kind === 0x03) { if (r.u8() === 0x00) r.u32(); } else r.u32();
}

/** The export section holding the removed export, without it (later function exports renumbered). */
function dropEntry(ctx: ComponentContext, i: number, removed: RemovedExport): BinaryWriter {
  const s = ctx.sections[i]!;
  const r = new BinaryReader(ctx.bytes, s.contentStart, s.end);
  const n = r.u32();
  const w = new BinaryWriter().u32(n - 1);
  for (let entry = 0; entry < n; entry++) {
    const at = r.pos;
    r.u8();
    r.name();
    const sort = readSort(r);
    const sortEnd = r.pos;
    const index = r.u32();
    const descAt = r.pos;
    if (r.u8() === 0x01) skipDesc(r);
    if (entry === removed.entry) continue;
    w.raw(ctx.bytes.subarray(at, sortEnd)).u32(sort === 'func' && entry > removed.entry ? shift(index, removed) : index).raw(ctx.bytes.subarray(descAt, r.pos));
  }
  return w;
}

/** The `component-name` section with the removed function's name dropped and later ones renumbered. */
function componentNames(ctx: ComponentContext, i: number, removed: RemovedExport): BinaryWriter {
  const s = ctx.sections[i]!;
  const r = new BinaryReader(ctx.bytes, s.contentStart, s.end);
  r.name();
  const w = new BinaryWriter().raw(ctx.bytes.subarray(s.contentStart, r.pos));
  while (!r.done) {
    const at = r.pos;
    const id = r.u8();
    const size = r.u32();
    const end = r.pos + size;
    if (id === 1 && ctx.bytes[r.pos] === 0x01) {
      r.u8();
      const body = new BinaryWriter().byte(0x01);
      const n = r.u32();
      const entries: [number, Uint8Array][] = [];
      for (let k = 0; k < n; k++) {
        const index = r.u32();
        const nameAt = r.pos;
        r.name();
        if (index !== removed.func) entries.push([index > removed.func ? index - 1 : index, ctx.bytes.subarray(nameAt, r.pos)]);
      }
      body.u32(entries.length);
      for (const [index, bytes] of entries) body.u32(index).raw(bytes);
      w.byte(id).sized(body);
      r.pos = end;
    } else {
      r.pos = end;
      w.raw(ctx.bytes.subarray(at, end));
    }
  }
  return w;
}

/** The removal of `name`'s export, or a reason it stays. */
export function findRemovable(ctx: ComponentContext, name: string): RemovedExport | string {
  const exp = ctx.exports.find((e) => e.name === name);
  if (!exp) return `the component exports no "${name}" at its top level`;
  if (exp.definesFunc === undefined) return `"${name}" is not a function export`;
  return { section: exp.section, entry: exp.entry, func: exp.definesFunc };
}

/** `writeComponent`, keeping the export (with the reason) when removing it is not possible. */
export function writeComponentRemoving(
  ctx: ComponentContext,
  modules: ReadonlyMap<number, Uint8Array[]>,
  remove: string | undefined,
): { parts: Uint8Array[]; kept?: string } {
  if (remove === undefined) return { parts: writeComponent(ctx, modules) };
  const removed = findRemovable(ctx, remove);
  if (typeof removed === 'string') return { parts: writeComponent(ctx, modules), kept: removed };
  try {
    return { parts: writeComponent(ctx, modules, removed) };
  } catch (e) {
    if (!(e instanceof KeepExport)) throw e;
    const why = e.message ? `wiz cannot renumber what follows it (${e.message})` : 'the component refers to it';
    return { parts: writeComponent(ctx, modules), kept: why };
  }
}

