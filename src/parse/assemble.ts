import { sectionRank, SectionId } from './module.ts';
import type { ModuleContext, Section } from './types.ts';
import { BinaryWriter } from './writer.ts';

/**
 * Where a missing data section goes (after the section at the returned index). As the reference places it, so
 * that outputs stay byte-identical: right before the `name` section, or at the very end without one. Data is
 * the last section in order, so the end is always valid; before `name` only when `name` follows every other
 * section (with `name` before the code, the reference writes an invalid module; wiz writes data at the end).
 */
function dataAnchor(sections: readonly Section[], anchor: number): number {
  let lastKnown = -1;
  sections.forEach((s, i) => {
    if (s.id !== SectionId.custom) lastKnown = i;
  });
  const name = sections.findIndex((s, i) => i > lastKnown && s.id === SectionId.custom && s.name === 'name');
  return name >= 0 ? name - 1 : Math.max(anchor, sections.length - 1);
}

/** New content for a section: a body to write, or `null` to drop the section. */
export type SectionEdits = Map<number, BinaryWriter | null>;

/**
 * Writes a module from the input's sections in their order, copying each as a byte range unless `edits`
 * replaces or drops it. A section that `edits` gives but the input lacks is inserted right after the last
 * section that must precede it (so custom sections that followed that one, such as `name`, stay after it).
 * Custom sections named in `dropCustom` are left out.
 */
export function assemble(ctx: ModuleContext, edits: SectionEdits, dropCustom: ReadonlySet<string> = new Set()): BinaryWriter {
  const { bytes, sections } = ctx;
  const present = new Set(sections.map((s) => s.id));
  // For each missing section, the index of the section it follows (-1: before everything).
  const inserts = new Map<number, number[]>();
  for (const [id, body] of edits) {
    if (body === null || present.has(id) || id === SectionId.custom) continue;
    let anchor = -1;
    sections.forEach((s, i) => {
      if (s.id !== SectionId.custom && sectionRank(s.id) < sectionRank(id)) anchor = i;
    });
    if (id === SectionId.data) anchor = dataAnchor(sections, anchor);
    inserts.set(anchor, [...(inserts.get(anchor) ?? []), id].sort((a, b) => sectionRank(a) - sectionRank(b)));
  }

  const out = new BinaryWriter().raw(bytes.subarray(0, 8));
  const emitInserted = (anchor: number) => {
    for (const id of inserts.get(anchor) ?? []) out.section(id, edits.get(id)!);
  };
  emitInserted(-1);
  sections.forEach((s, i) => {
    const edit = s.id === SectionId.custom ? (dropCustom.has(s.name!) ? null : undefined) : edits.get(s.id);
    if (edit === undefined) out.raw(bytes.subarray(s.start, s.end));
    else if (edit !== null) out.section(s.id, edit);
    emitInserted(i);
  });
  return out;
}
