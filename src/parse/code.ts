import { WizError } from '../errors.ts';
import { findSection } from './module.ts';
import type { ModuleContext } from './types.ts';

/** Instructions that change state wiz cannot write into a snapshot yet: tables, dropped segments, GC objects. */
const MISC_CHANGES: Record<number, string> = {
  9: 'data.drop', 12: 'table.init', 13: 'elem.drop', 14: 'table.copy', 15: 'table.grow', 17: 'table.fill',
};
const GC_CHANGES: Record<number, string> = {
  5: 'struct.set', 14: 'array.set', 16: 'array.fill', 17: 'array.copy', 18: 'array.init_data', 19: 'array.init_elem',
};

/** How many LEB128 immediates each other GC instruction has (type, field, segment and heap-type indices). */
const GC_IMMEDIATES: Record<number, number> = {
  0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 6: 1, 7: 1, 8: 2, 9: 2, 10: 2, 11: 1, 12: 1, 13: 1, 15: 0,
  20: 1, 21: 1, 22: 1, 23: 1, 26: 0, 27: 0, 28: 0, 29: 0, 30: 0,
};

/** Where an instruction was found: the function index and the instruction's name. */
export interface Finding {
  func: number;
  instruction: string;
}

// Immediates of one-byte opcodes: the common cases get a kind of their own so the scan loop stays tight.
const NONE = 0, ONE_LEB = 1, TWO_LEBS = 2, BLOCK = 3, MEMARG = 4, BYTES4 = 5, BYTES8 = 6, SPECIAL = 7, UNKNOWN = 8;
const KIND = new Uint8Array(256).fill(UNKNOWN);
for (const op of [0x00, 0x01, 0x05, 0x0a, 0x0b, 0x0f, 0x19, 0x1a, 0x1b, 0xd1, 0xd3, 0xd4]) KIND[op] = NONE;
for (let op = 0x45; op <= 0xc4; op++) KIND[op] = NONE; // numeric instructions
for (const op of [0x07, 0x08, 0x09, 0x0c, 0x0d, 0x10, 0x12, 0x14, 0x15, 0x18, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x3f, 0x40, 0x41, 0x42, 0xd0, 0xd2, 0xd5, 0xd6]) KIND[op] = ONE_LEB;
for (const op of [0x11, 0x13]) KIND[op] = TWO_LEBS; // call_indirect: type, table
for (const op of [0x02, 0x03, 0x04, 0x06]) KIND[op] = BLOCK;
for (let op = 0x28; op <= 0x3e; op++) KIND[op] = MEMARG;
KIND[0x43] = BYTES4;
KIND[0x44] = BYTES8;
for (const op of [0x0e, 0x1c, 0x1f, 0x26, 0xfb, 0xfc, 0xfd, 0xfe]) KIND[op] = SPECIAL;

/**
 * Finds the first instruction in the code section that changes a table, drops a segment or writes a GC object,
 * as the reference refuses them wherever they appear. It runs while the engine validates the module, so it does
 * not trust the bytes: every loop is bounded by the section's end, and on a malformed module it stops (the
 * engine's verdict is the one reported).
 */
export function findStateChange(ctx: ModuleContext): Finding | undefined {
  const section = findSection(ctx, 10);
  if (!section) return undefined;
  const b = ctx.bytes;
  let pos = section.contentStart;
  const u32 = () => {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = b[pos++]!;
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return result;
  };

  const sectionEnd = section.end;
  const count = u32();
  for (let f = 0; f < count && pos < sectionEnd; f++) {
    const size = u32();
    const end = Math.min(pos + size, sectionEnd);
    const func = ctx.importedFunctions + f;
    for (let groups = u32(); groups > 0 && pos < end; groups--) {
      while (b[pos++]! & 0x80); // count
      const t = b[pos++]!;
      if (t === 0x63 || t === 0x64) while (b[pos++]! & 0x80); // (ref null? ht)
    }
    while (pos < end) {
      const op = b[pos++]!;
      switch (KIND[op]) {
        case NONE:
          continue;
        case ONE_LEB:
          while (b[pos++]! & 0x80);
          continue;
        case TWO_LEBS:
          while (b[pos++]! & 0x80);
          while (b[pos++]! & 0x80);
          continue;
        case BLOCK:
          if (b[pos] === 0x63 || b[pos] === 0x64) pos++;
          while (b[pos++]! & 0x80);
          continue;
        case MEMARG: {
          const align = b[pos]!;
          while (b[pos++]! & 0x80);
          if (align & 0x40) while (b[pos++]! & 0x80); // memory index
          while (b[pos++]! & 0x80); // offset
          continue;
        }
        case BYTES4:
          pos += 4;
          continue;
        case BYTES8:
          pos += 8;
          continue;
        case SPECIAL: {
          const found = special(op);
          if (found) return { func, instruction: found };
          continue;
        }
        default:
          throw unknown(func, `0x${op.toString(16)}`);
      }
    }
    pos = end;

    // The rare instructions, out of the hot loop. Returns the name of a state-changing instruction.
    function special(op: number): string | undefined {
      switch (op) {
        case 0x26: return 'table.set';
        case 0x0e: for (let n = u32() + 1; n > 0 && pos < end; n--) u32(); return undefined; // br_table: labels and the default
        case 0x1c: // select t*
          for (let n = u32(); n > 0 && pos < end; n--) {
            const t = b[pos++]!;
            if (t === 0x63 || t === 0x64) u32();
          }
          return undefined;
        case 0x1f: // try_table: block type, catch clauses
          if (b[pos] === 0x63 || b[pos] === 0x64) pos++;
          u32();
          for (let n = u32(); n > 0 && pos < end; n--) {
            if (b[pos++]! <= 1) u32(); // catch / catch_ref: a tag
            u32();
          }
          return undefined;
        case 0xfb: {
          const sub = u32();
          if (GC_CHANGES[sub]) return GC_CHANGES[sub];
          if (sub === 24 || sub === 25) { // br_on_cast(_fail): flags, label, two heap types
            pos++;
            u32(); u32(); u32();
            return undefined;
          }
          const immediates = GC_IMMEDIATES[sub];
          if (immediates === undefined) throw unknown(func, `0xfb ${sub}`);
          for (let n = immediates; n > 0; n--) u32();
          return undefined;
        }
        case 0xfc: {
          const sub = u32();
          if (MISC_CHANGES[sub]) return MISC_CHANGES[sub];
          if (sub <= 7 || (sub >= 19 && sub <= 22)) return undefined; // saturating truncations, wide arithmetic
          if (sub === 8 || sub === 10) { u32(); u32(); } // memory.init, memory.copy
          else if (sub === 11 || sub === 16 || sub === 18) u32(); // memory.fill, table.size, memory.discard
          else throw unknown(func, `0xfc ${sub}`);
          return undefined;
        }
        case 0xfd: {
          const sub = u32();
          if (sub <= 11 || sub === 92 || sub === 93) memarg();
          else if (sub === 12 || sub === 13) pos += 16; // v128.const, i8x16.shuffle
          else if (sub >= 21 && sub <= 34) pos += 1; // extract/replace lane
          else if (sub >= 84 && sub <= 91) { memarg(); pos += 1; } // load/store lane
          else if (sub > 0x113) throw unknown(func, `0xfd ${sub}`);
          return undefined;
        }
        default: { // 0xfe: atomics
          const sub = u32();
          if (sub === 3) pos += 1; // atomic.fence
          else if (sub <= 0x4e) memarg();
          else throw unknown(func, `0xfe ${sub}`);
          return undefined;
        }
      }
    }
    function memarg(): void {
      if (u32() & 0x40) u32();
      u32();
    }
  }
  return undefined;
}

function unknown(func: number, what: string): WizError {
  return new WizError('unsupported', `function ${func} uses ${what}, an instruction wiz does not know`);
}

/** Refuses, as the reference does, a module whose code can change state that wiz cannot snapshot. */
export function checkCode(ctx: ModuleContext): void {
  const found = findStateChange(ctx);
  if (found) {
    throw new WizError('unsupported', `function ${found.func} uses ${found.instruction}: wiz cannot snapshot the state it changes (tables, dropped segments, GC objects) yet, so it refuses such code wherever it appears, as the reference does`);
  }
}

/**
 * Compiles (which validates) while the code is scanned: the engine compiles on background threads, so the
 * scan costs little extra time. The engine's verdict on an invalid module comes first.
 */
export async function compileAndCheckCode(ctx: ModuleContext, compiling: Promise<WebAssembly.Module>): Promise<WebAssembly.Module> {
  let refused: unknown;
  try {
    checkCode(ctx);
  } catch (e) {
    refused = e;
  }
  const module = await compiling;
  if (refused) throw refused;
  return module;
}
