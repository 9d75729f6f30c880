/**
 * Writes the WebAssembly binary encoding as a list of chunks: views of the input are appended without
 * copying, small values go to an arena (a buffer whose written runs become chunks as views, never copied or
 * reused), and `finish()` concatenates once. A snapshot writes thousands of small headers between views of
 * memory: one arena for them all, not an array and a copy per header.
 */
const EMPTY = new Uint8Array(0);

export class BinaryWriter {
  private chunks: Uint8Array[] = [];
  private arena: Uint8Array = EMPTY;
  /** The arena's bytes not yet in `chunks`: [start, used). */
  private start = 0;
  private used = 0;
  private size = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.size;
  }

  private flush(): void {
    if (this.used > this.start) {
      this.chunks.push(this.arena.subarray(this.start, this.used));
      this.start = this.used;
    }
  }

  /** A new arena, twice as big as the last (from 64 bytes to 64 KiB) and room for `needed`, with the bytes not yet flushed moved in. */
  private grow(needed = 1): void {
    const pending = this.arena.subarray(this.start, this.used);
    const next = new Uint8Array(Math.max(Math.min(this.arena.length * 2, 1 << 16), 64, pending.length * 2, pending.length + needed));
    next.set(pending);
    this.arena = next;
    this.start = 0;
    this.used = pending.length;
  }

  /** Room for `n` more bytes in the arena. */
  private reserve(n: number): void {
    if (this.used + n > this.arena.length) this.grow(n);
  }

  /** The arena holds bytes up to `at`. */
  private advance(at: number): this {
    this.size += at - this.used;
    this.used = at;
    return this;
  }

  /** One byte. */
  byte(b: number): this {
    if (this.used === this.arena.length) this.grow();
    this.arena[this.used++] = b;
    this.size++;
    return this;
  }

  /** Unsigned LEB128 (up to 2^53). */
  u32(v: number): this {
    this.reserve(8);
    return this.advance(putU32(this.arena, this.used, v));
  }

  /** Signed LEB128 of a 32-bit integer. */
  s32(v: number): this {
    this.reserve(5);
    return this.advance(putS32(this.arena, this.used, v));
  }

  /** Signed LEB128 of a 64-bit integer. */
  s64(v: bigint): this {
    this.reserve(10);
    return this.advance(putS64(this.arena, this.used, v));
  }

  /** Appends a view without copying it. */
  raw(chunk: Uint8Array): this {
    if (chunk.length === 0) return this;
    this.flush();
    this.chunks.push(chunk);
    this.size += chunk.length;
    return this;
  }

  /** A length-prefixed UTF-8 name. */
  name(s: string): this {
    const bytes = new TextEncoder().encode(s);
    return this.u32(bytes.length).raw(bytes);
  }

  /** Appends everything another writer holds, prefixed by its length (a sized part such as a section body). */
  sized(part: BinaryWriter): this {
    this.u32(part.length);
    return this.append(part);
  }

  /** Appends everything another writer holds (which may go on writing: its arena's written runs are never reused). */
  append(part: BinaryWriter): this {
    part.flush();
    this.flush();
    for (const c of part.chunks) this.chunks.push(c);
    this.size += part.size;
    return this;
  }

  /** A section: id, size, body. */
  section(id: number, body: BinaryWriter): this {
    return this.byte(id).sized(body);
  }

  /** The bytes as the chunks written (views of the inputs, not copies), in order. */
  parts(): Uint8Array[] {
    this.flush();
    return this.chunks.slice();
  }

  /** The bytes, concatenated once. */
  finish(): Uint8Array {
    return concat(this.parts());
  }
}

/** Writes `v` as unsigned LEB128 (up to 2^53) into `b` at `at`; returns where it ends. */
export function putU32(b: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    b[at++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  b[at++] = v;
  return at;
}

/** Writes `v` (a 32-bit integer) as signed LEB128 into `b` at `at`; returns where it ends. */
export function putS32(b: Uint8Array, at: number, v: number): number {
  v |= 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      b[at++] = byte;
      return at;
    }
    b[at++] = byte | 0x80;
  }
}

/** Writes `v` (a 64-bit integer) as signed LEB128 into `b` at `at`; returns where it ends. */
export function putS64(b: Uint8Array, at: number, v: bigint): number {
  v = BigInt.asIntN(64, v);
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0)) {
      b[at++] = byte;
      return at;
    }
    b[at++] = byte | 0x80;
  }
}

/** `pattern` `count` times over, in one array (filled by doubling copies). */
export function repeated(pattern: readonly number[], count: number): Uint8Array {
  const out = new Uint8Array(pattern.length * count);
  if (count === 0) return out;
  out.set(pattern);
  for (let filled = pattern.length; filled < out.length; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, out.length - filled));
  return out;
}

/** Concatenates byte chunks into one array (the chunk itself when there is only one). */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
