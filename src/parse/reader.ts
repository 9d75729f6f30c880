import { WizError } from '../errors.ts';

// ignoreBOM: a leading U+FEFF is part of a name, not a byte-order mark to drop.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Reads the WebAssembly binary encoding from a byte range, bounds-checked with a clear error. */
export class BinaryReader {
  pos: number;
  readonly bytes: Uint8Array;
  readonly end: number;

  constructor(bytes: Uint8Array, pos = 0, end = bytes.length) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  /** True when every byte of the range has been read. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Throws a `malformed` error that says where the problem is. */
  fail(what: string, at = this.pos): never {
    throw new WizError('malformed', `malformed module: ${what} at offset ${at}`);
  }

  /** One byte. */
  u8(): number {
    if (this.pos >= this.end) this.fail('unexpected end');
    return this.bytes[this.pos++]!;
  }

  /** Unsigned LEB128 that fits in 32 bits. */
  u32(): number {
    const start = this.pos;
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.u8();
      if (shift === 28 && b & 0x80) this.fail('integer representation too long', start);
      if (shift === 28 && b > 0x0f) this.fail('integer too large', start);
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    return this.fail('integer representation too long', start);
  }

  /** Unsigned LEB128 up to 64 bits, as a number (exact up to 2^53, enough for memory64 limits). */
  u64(): number {
    const start = this.pos;
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.u8();
      if (shift === 63n && b & 0x80) this.fail('integer representation too long', start);
      if (shift === 63n && b > 0x01) this.fail('integer too large', start);
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        if (result > BigInt(Number.MAX_SAFE_INTEGER)) this.fail('integer too large for wiz', start);
        return Number(result);
      }
    }
    return this.fail('integer representation too long', start);
  }

  /** Signed LEB128 of at most `bits` bits (32, 33 or 64), skipped: only its end matters here. */
  skipSigned(bits: number): void {
    const start = this.pos;
    const maxBytes = Math.ceil(bits / 7);
    for (let i = 0; i < maxBytes; i++) {
      if ((this.u8() & 0x80) === 0) return;
    }
    this.fail('integer representation too long', start);
  }

  /** Signed LEB128 of at most 33 bits (block and heap types), as a number. */
  s33(): number {
    const start = this.pos;
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      if (shift >= 35) this.fail('integer representation too long', start);
      b = this.u8();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    if (b & 0x40) result -= 2 ** shift;
    return result;
  }

  /** A view of the next `n` bytes (no copy). */
  bytesView(n: number): Uint8Array {
    if (n > this.end - this.pos) this.fail(`length ${n} runs past the end`);
    const view = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return view;
  }

  /** Skips `n` bytes. */
  skip(n: number): void {
    if (n > this.end - this.pos) this.fail(`length ${n} runs past the end`);
    this.pos += n;
  }

  /** A length-prefixed UTF-8 name. */
  name(): string {
    const start = this.pos;
    const view = this.bytesView(this.u32());
    try {
      return utf8.decode(view);
    } catch {
      return this.fail('name is not valid UTF-8', start);
    }
  }

  /** A vector count, refused when it cannot fit in the remaining bytes (each item takes at least one). */
  count(): number {
    const start = this.pos;
    const n = this.u32();
    if (n > this.end - this.pos) this.fail(`count ${n} exceeds the remaining bytes`, start);
    return n;
  }
}
