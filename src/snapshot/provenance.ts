import { WizError } from '../errors.ts';
import { BinaryReader } from '../parse/reader.ts';
import type { ModuleContext } from '../parse/types.ts';

/** The custom section in which a snapshot records where it came from. Informational: never trusted. */
export const PROVENANCE_SECTION = 'wiz.provenance';

export interface Provenance {
  /** 0 for the output of `wiz init`, the parent's generation + 1 for each later snapshot. */
  generation: number;
  /** `sha256:<hex>` of the module this one was snapshotted from. */
  parent: string;
}

/** The provenance a module claims, if it carries a well-formed one. */
export function readProvenance(ctx: ModuleContext): Provenance | undefined {
  const section = ctx.sections.find((s) => s.id === 0 && s.name === PROVENANCE_SECTION);
  if (!section) return undefined;
  // The content follows the section's name.
  const r = new BinaryReader(ctx.bytes, section.contentStart, section.end);
  r.name();
  const body = ctx.bytes.subarray(r.pos, section.end);
  try {
    const value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as Partial<Provenance>;
    if (Number.isSafeInteger(value.generation) && value.generation! >= 0 && typeof value.parent === 'string' && /^sha256:[0-9a-f]{64}$/.test(value.parent)) {
      return { generation: value.generation!, parent: value.parent };
    }
  } catch {
    // Malformed provenance is ignored, as if absent.
  }
  return undefined;
}

/** The provenance of a snapshot of `parent`: its digest, and the generation after the parent's. */
export async function provenanceOf(parent: ModuleContext, reparsed: boolean): Promise<Provenance> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new WizError('unsupported', 'recording provenance needs WebCrypto (crypto.subtle), which this context lacks; pass provenance: false');
  const digest = new Uint8Array(await subtle.digest('SHA-256', parent.bytes as Uint8Array<ArrayBuffer>));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  const generation = reparsed ? (readProvenance(parent)?.generation ?? 0) + 1 : 0;
  return { generation, parent: `sha256:${hex}` };
}

export function encodeProvenance(p: Provenance): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ generation: p.generation, parent: p.parent }));
}
