import { WizError } from '../errors.ts';

/**
 * One journal entry: a host call as the guest saw it.
 *
 * Layout (varints are LEB128; every part is self-delimiting, so equal call prefixes mean equal calls):
 *   import     varint, an index into the journal's table of import names
 *   argc       varint, then argc tagged values
 *   result     byte: 0 nothing, 1 a tagged value, 2 varint n + n tagged values, 3 threw: varint n + n UTF-8 bytes
 *   writes     varint n, then n × (varint address, varint length, length bytes)
 * A tagged value is a tag byte and its payload: 0 an int32 (zigzag varint), 1 an f32-exact number (4 bytes of
 * its f32 bits), 2 any other number (8 bytes of its f64 bits, NaN payloads kept), 3 a BigInt (i64, zigzag varint),
 * 4 false, 5 true, 6 null. Signaling NaNs are not carried: V8 may quiet one whenever it moves it, before the
 * journal sees it, so the bits recorded are those the JS API delivered.
 */
export interface JournalEntry {
  import: number;
  args: JournalValue[];
  result: JournalResult;
  writes: MemoryWrite[];
}

/** A value as the JS API passes it: numbers for i32/f32/f64, BigInts for i64 (booleans and null as hosts return them). */
export type JournalValue = number | bigint | boolean | null;

export type JournalResult =
  | { kind: 'none' }
  | { kind: 'value'; value: JournalValue }
  | { kind: 'values'; values: JournalValue[] }
  | { kind: 'threw'; message: string };

/** Bytes the host left in guest memory for a call. */
export interface MemoryWrite {
  address: number;
  bytes: Uint8Array;
}

const TAG_INT = 0, TAG_F32 = 1, TAG_F64 = 2, TAG_I64 = 3, TAG_FALSE = 4, TAG_TRUE = 5, TAG_NULL = 6;
const RESULT_NONE = 0, RESULT_VALUE = 1, RESULT_VALUES = 2, RESULT_THREW = 3;
/** A wasm function has at most 1000 parameters and results (the JS API's limits). */
const MAX_VALUES = 1000;

const scratch = new DataView(new ArrayBuffer(8));
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

/** True when `value` can be journaled as a call's argument or result value. */
export function isJournalValue(value: unknown): value is JournalValue {
  return typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value === null;
}

/** Collects an entry's bytes in one growing buffer, reused across entries. */
export class EntryWriter {
  private buf = new Uint8Array(256);
  private pos = 0;

  reset(): void {
    this.pos = 0;
  }

  get length(): number {
    return this.pos;
  }

  /** The bytes written so far, as a copy (the writer's buffer is reused). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /** The bytes written so far, without copying (valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }

  /** An unsigned integer up to 2^53 − 1. */
  varint(n: number): void {
    this.room(8);
    while (n >= 0x80) {
      this.buf[this.pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.pos++] = n;
  }

  raw(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  value(v: JournalValue): void {
    if (typeof v === 'number') {
      if ((v | 0) === v && !Object.is(v, -0)) {
        this.byte(TAG_INT);
        this.varint(((v << 1) ^ (v >> 31)) >>> 0);
      } else if (Math.fround(v) === v) {
        // Exact as an f32 (±Infinity, -0 included; NaN never compares equal so it keeps its 8 bytes).
        scratch.setFloat32(0, v, true);
        this.byte(TAG_F32);
        this.room(4);
        for (let i = 0; i < 4; i++) this.buf[this.pos++] = scratch.getUint8(i);
      } else {
        scratch.setFloat64(0, v, true);
        this.byte(TAG_F64);
        this.room(8);
        for (let i = 0; i < 8; i++) this.buf[this.pos++] = scratch.getUint8(i);
      }
    } else if (typeof v === 'bigint') {
      const i = BigInt.asIntN(64, v);
      let u = BigInt.asUintN(64, (i << 1n) ^ (i >> 63n));
      this.byte(TAG_I64);
      this.room(10);
      while (u >= 0x80n) {
        this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
        u >>= 7n;
      }
      this.buf[this.pos++] = Number(u);
    } else if (v === null) {
      this.byte(TAG_NULL);
    } else {
      this.byte(v ? TAG_TRUE : TAG_FALSE);
    }
  }

  /** The call part of an entry: import index and arguments (equal calls give equal bytes). */
  call(index: number, args: readonly JournalValue[]): void {
    this.varint(index);
    this.varint(args.length);
    for (const a of args) this.value(a);
  }

  result(result: JournalResult): void {
    switch (result.kind) {
      case 'none':
        this.byte(RESULT_NONE);
        break;
      case 'value':
        this.byte(RESULT_VALUE);
        this.value(result.value);
        break;
      case 'values':
        this.byte(RESULT_VALUES);
        this.varint(result.values.length);
        for (const v of result.values) this.value(v);
        break;
      case 'threw': {
        const bytes = utf8.encode(result.message);
        this.byte(RESULT_THREW);
        this.varint(bytes.length);
        this.raw(bytes);
        break;
      }
    }
  }

  writes(writes: readonly MemoryWrite[]): void {
    this.varint(writes.length);
    for (const w of writes) {
      this.varint(w.address);
      this.varint(w.bytes.length);
      this.raw(w.bytes);
    }
  }
}

/** Encodes one entry. */
export function encodeEntry(entry: JournalEntry): Uint8Array {
  const w = new EntryWriter();
  w.call(entry.import, entry.args);
  w.result(entry.result);
  w.writes(entry.writes);
  return w.finish();
}

/** Reads one entry from untrusted bytes; `position` (the entry's place in the journal) names it in errors. */
export function decodeEntry(bytes: Uint8Array, position = 0): JournalEntry {
  return new EntryReader(bytes, position).entry();
}

class EntryReader {
  private readonly bytes: Uint8Array;
  private readonly position: number;
  private pos = 0;

  constructor(bytes: Uint8Array, position: number) {
    this.bytes = bytes;
    this.position = position;
  }

  private fail(what: string): never {
    throw new WizError('malformed', `journal entry ${this.position} is malformed: ${what} at byte ${this.pos}`);
  }

  private byte(): number {
    if (this.pos >= this.bytes.length) this.fail('truncated');
    return this.bytes[this.pos++]!;
  }

  /** An unsigned varint no larger than `max` (at most 2^53 − 1). */
  private varint(max: number, what: string): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (n > max) this.fail(`${what} out of range`);
      if (!(b & 0x80)) return n;
      if (i >= 7) this.fail(`${what} too long`);
      scale *= 0x80;
    }
  }

  private fixed(n: number): Uint8Array {
    if (this.bytes.length - this.pos < n) this.fail('truncated');
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private value(): JournalValue {
    const tag = this.byte();
    switch (tag) {
      case TAG_INT: {
        const u = this.varint(0xffffffff, 'int32');
        return (u >>> 1) ^ -(u & 1);
      }
      case TAG_F32: {
        const b = this.fixed(4);
        for (let i = 0; i < 4; i++) scratch.setUint8(i, b[i]!);
        return scratch.getFloat32(0, true);
      }
      case TAG_F64: {
        const b = this.fixed(8);
        for (let i = 0; i < 8; i++) scratch.setUint8(i, b[i]!);
        return scratch.getFloat64(0, true);
      }
      case TAG_I64: {
        let u = 0n;
        for (let i = 0n; ; i += 7n) {
          const b = this.byte();
          u |= BigInt(b & 0x7f) << i;
          if (!(b & 0x80)) break;
          if (i >= 63n) this.fail('i64 too long');
        }
        if (u > 0xffffffffffffffffn) this.fail('i64 out of range');
        return BigInt.asIntN(64, (u >> 1n) ^ -(u & 1n));
      }
      case TAG_FALSE:
        return false;
      case TAG_TRUE:
        return true;
      case TAG_NULL:
        return null;
      default:
        this.pos--;
        return this.fail(`unknown value tag ${tag}`);
    }
  }

  private values(): JournalValue[] {
    const n = this.varint(MAX_VALUES, 'value count');
    const out: JournalValue[] = [];
    for (let i = 0; i < n; i++) out.push(this.value());
    return out;
  }

  private result(): JournalResult {
    const kind = this.byte();
    switch (kind) {
      case RESULT_NONE:
        return { kind: 'none' };
      case RESULT_VALUE:
        return { kind: 'value', value: this.value() };
      case RESULT_VALUES:
        return { kind: 'values', values: this.values() };
      case RESULT_THREW: {
        const n = this.varint(this.bytes.length, 'message length');
        const at = this.pos;
        try {
          return { kind: 'threw', message: fromUtf8.decode(this.fixed(n)) };
        } catch (e) {
          if (e instanceof WizError) throw e;
          this.pos = at;
          return this.fail('message is not UTF-8');
        }
      }
      default:
        this.pos--;
        return this.fail(`unknown result kind ${kind}`);
    }
  }

  entry(): JournalEntry {
    const index = this.varint(0xffffffff, 'import index');
    const args = this.values();
    const result = this.result();
    // Every write takes at least two bytes, so the count is bounded by what is left.
    const n = this.varint(this.bytes.length, 'write count');
    const writes: MemoryWrite[] = [];
    for (let i = 0; i < n; i++) {
      const address = this.varint(Number.MAX_SAFE_INTEGER, 'address');
      const length = this.varint(this.bytes.length, 'write length');
      if (address + length > Number.MAX_SAFE_INTEGER) this.fail('write out of range');
      writes.push({ address, bytes: this.fixed(length).slice() });
    }
    if (this.pos !== this.bytes.length) this.fail('trailing bytes');
    return { import: index, args, result, writes };
  }
}
