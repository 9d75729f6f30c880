// Broken and hostile inputs made by mutating valid modules. Each must be refused with a one-line WizError (or, if
// the mutant happens to be valid, give a valid output): never a crash, a hang or an output file.
import { prng } from './generate.ts';
import { concat } from '../../src/parse/writer.ts';

interface RawSection {
  id: number;
  /** Offset of the id byte, of the size LEB, of the content, and the end. */
  start: number;
  sizeAt: number;
  contentStart: number;
  end: number;
}

function readU32(bytes: Uint8Array, pos: number): [number, number] {
  let result = 0;
  for (let shift = 0; ; shift += 7) {
    const b = bytes[pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0 || shift > 28) return [result, pos];
  }
}

/** The sections of a valid module. */
export function rawSections(wasm: Uint8Array): RawSection[] {
  const sections: RawSection[] = [];
  for (let pos = 8; pos < wasm.length; ) {
    const start = pos;
    const id = wasm[pos++]!;
    const [size, contentStart] = readU32(wasm, pos);
    sections.push({ id, start, sizeAt: pos, contentStart, end: contentStart + size });
    pos = contentStart + size;
  }
  return sections;
}

function leb(n: number, minBytes = 1): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0 || out.length + 1 < minBytes) b |= 0x80;
    out.push(b);
  } while (n > 0 || out.length < minBytes);
  return out;
}

/** A new array of the parts one after another (always a copy: mutants must not share the input's bytes). */
const join = (...parts: (Uint8Array | number[])[]) => concat([new Uint8Array(0), ...parts.map((p) => Uint8Array.from(p))]);

/** Re-encodes section `s` with a new size field (the content unchanged). */
function withSizeField(wasm: Uint8Array, s: RawSection, field: number[]): Uint8Array {
  return join(wasm.subarray(0, s.sizeAt), field, wasm.subarray(s.contentStart));
}

/** Replaces the first LEB of a section's content (a vector's count) with `field`. */
function withCount(wasm: Uint8Array, s: RawSection, field: number[]): Uint8Array {
  const [, after] = readU32(wasm, s.contentStart);
  const content = join(field, wasm.subarray(after, s.end));
  return join(wasm.subarray(0, s.sizeAt), leb(content.length), content, wasm.subarray(s.end));
}

export type MutationKind =
  | 'bit-flip' | 'truncate' | 'byte-insert' | 'byte-delete' | 'leb-overlong' | 'leb-overflow' | 'size-past-end'
  | 'size-short' | 'duplicate-section' | 'swap-sections' | 'huge-count' | 'unknown-section' | 'bad-header';

export const MUTATIONS: MutationKind[] = [
  'bit-flip', 'truncate', 'byte-insert', 'byte-delete', 'leb-overlong', 'leb-overflow', 'size-past-end',
  'size-short', 'duplicate-section', 'swap-sections', 'huge-count', 'unknown-section', 'bad-header',
];

/** One mutant of `wasm`: the kind and random choices come from `seed`. */
export function mutate(wasm: Uint8Array, kind: MutationKind, seed: number): Uint8Array {
  const rand = prng(seed);
  const pick = <T>(xs: T[]): T => xs[rand() % xs.length]!;
  const sections = rawSections(wasm);
  const known = sections.filter((s) => s.id !== 0);
  const s = pick(sections);
  switch (kind) {
    case 'bit-flip': {
      const out = wasm.slice();
      for (let n = 1 + (rand() % 4); n > 0; n--) {
        const at = 8 + (rand() % (out.length - 8));
        out[at]! ^= 1 << (rand() % 8);
      }
      return out;
    }
    case 'truncate':
      return wasm.slice(0, rand() % wasm.length);
    case 'byte-insert': {
      const at = 8 + (rand() % (wasm.length - 7));
      return join(wasm.subarray(0, at), [rand() & 0xff], wasm.subarray(at));
    }
    case 'byte-delete': {
      const at = 8 + (rand() % (wasm.length - 8));
      return join(wasm.subarray(0, at), wasm.subarray(at + 1));
    }
    case 'leb-overlong': // the same size, in 6 to 10 bytes (at most 5 are allowed for a u32)
      return withSizeField(wasm, s, leb(s.end - s.contentStart, 6 + (rand() % 5)));
    case 'leb-overflow': // a size above 2^32
      return withSizeField(wasm, s, pick([[0xff, 0xff, 0xff, 0xff, 0x7f], [0x80, 0x80, 0x80, 0x80, 0x10], [0xff, 0xff, 0xff, 0xff, 0xff, 0x01]]));
    case 'size-past-end':
      return withSizeField(wasm, s, leb(s.end - s.contentStart + 1 + (rand() % 1000)));
    case 'size-short': {
      const size = s.end - s.contentStart;
      return withSizeField(wasm, s, leb(size === 0 ? 0 : rand() % size));
    }
    case 'duplicate-section': {
      const d = pick(known.length > 0 ? known : sections);
      return join(wasm.subarray(0, d.end), wasm.subarray(d.start, d.end), wasm.subarray(d.end));
    }
    case 'swap-sections': {
      if (known.length < 2) return wasm.slice(0, wasm.length - 1);
      const i = rand() % (known.length - 1);
      const [a, b] = [known[i]!, known[i + 1]!];
      return join(wasm.subarray(0, a.start), wasm.subarray(b.start, b.end), wasm.subarray(a.end, b.start), wasm.subarray(a.start, a.end), wasm.subarray(b.end));
    }
    case 'huge-count': {
      const vectors = known.filter((x) => x.id !== 8 && x.id !== 12 && x.end > x.contentStart);
      if (vectors.length === 0) return wasm.slice(0, 9);
      return withCount(wasm, pick(vectors), pick([[0xff, 0xff, 0xff, 0xff, 0x0f], leb(1_000_000), leb(0x7fffffff)]));
    }
    case 'unknown-section':
      return join(wasm, [14 + (rand() % 200), 1, 0]);
    case 'bad-header': {
      const out = wasm.slice(0, 8);
      out[rand() % 8]! ^= 1 + (rand() % 255);
      return join(out, wasm.subarray(8));
    }
  }
}

/** Valid modules that wiz pre-initializes, mutated into hostile inputs (WebAssembly text). */
export const BASE_MODULES: Record<string, string> = {
  'memory-data-globals': `(module
    (type $t (func (param i32) (result i32)))
    (import "env" "f" (func $imp (param i32)))
    (memory (export "memory") 1 4)
    (global $g (mut i32) (i32.const 1))
    (global $h (mut i64) (i64.const 2))
    (global $c f32 (f32.const 1.5))
    (table 2 funcref)
    (elem (i32.const 0) $double $double)
    (data (i32.const 16) "hello, world")
    (data $p "passive")
    (func $double (type $t) (i32.mul (local.get 0) (i32.const 2)))
    (func $start (global.set $h (i64.const 3)))
    (start $start)
    (func (export "wizer-initialize")
      (global.set $g (call_indirect (type $t) (i32.const 21) (i32.const 1)))
      (i32.store (i32.const 64) (global.get $g))
      (drop (memory.grow (i32.const 1))))
    (func (export "get") (result i32) (global.get $g)))`,
  'two-memories-and-data': `(module
    (memory $a 1)
    (memory $b 2 2)
    (data (memory $a) (i32.const 0) "aaaa")
    (data (memory $b) (i32.const 70000) "bbbb")
    (func (export "wizer-initialize") (i32.store $b (i32.const 100) (i32.const 7)))
    (func (export "b") (result i32) (i32.load $b (i32.const 100))))`,
  'simd-and-floats': `(module
    (global $v (mut v128) (v128.const i64x2 0 0))
    (global $f (mut f64) (f64.const 0))
    (memory 1)
    (func (export "wizer-initialize")
      (global.set $v (v128.const i32x4 1 2 3 4))
      (global.set $f (f64.const -nan:0x1234))
      (v128.store (i32.const 32) (global.get $v))))`,
};

/** A module whose memory and data segment are set by the hostile cases that need valid structure. */
export function limitsModule(pages: number, max?: number, dataOffset = 0, dataLength = 4): string {
  return `(module (memory ${pages}${max === undefined ? '' : ` ${max}`}) (data (i32.const ${dataOffset}) "${'x'.repeat(dataLength)}")
    (func (export "wizer-initialize") (i32.store8 (i32.const 0) (i32.const 1))))`;
}
