import { parseModule } from '../../src/parse/module.ts';

/** The content bytes of the (first) section with this id, or of the custom section with this name. */
export function sectionBytes(wasm: Uint8Array, id: number | string): Uint8Array | undefined {
  const ctx = parseModule(wasm);
  const s = ctx.sections.find((s) => (typeof id === 'string' ? s.id === 0 && s.name === id : s.id === id));
  return s && wasm.subarray(s.contentStart, s.end);
}

/** The section ids in order, custom sections shown by name. */
export function sectionOrder(wasm: Uint8Array): (number | string)[] {
  return parseModule(wasm).sections.map((s) => (s.id === 0 ? s.name! : s.id));
}

