// A store of state images: one small key → bytes interface with a driver per back-end (memory, IndexedDB, a
// directory, SQLite), and, written once on top of it, the image store: each save of a worker is a new generation
// that writes only the chunks the store does not hold yet, and its chunk lists as a delta of the previous one.
//
// Keys (worker ids are checked, so keys are ASCII without empty segments):
//   c/<2 hex>/<64 hex>  a chunk: its bytes raw, or zero-run packed when smaller (raw exactly when the stored length
//                       is the chunk's length, which every reference knows)
//   m/<64 hex>          a module's bytes
//   g/<worker>/<n>      generation n of a worker: a record, below
//   h/<worker>          the worker's latest generation, decimal; written with its record in one atomic batch
//
// A record: "wizg", version 1 (or 2: all that follows the version, but the checksum, deflated), varint flags (1: delta, 2: image same as the parent's), [varint parent generation
// if delta], [varint length + JSON of the image without chunk lists, unless same], then per memory a byte
// (log2 of its page size) and varint-headed runs (count × 8 + kind) until its chunks are covered: 0 copy the
// parent's, 1 zero chunks, 2 a new digest (32 bytes), 3 a digest this record gave before (varint index),
// 4 an inline chunk (varint length + packed bytes, for chunks of at most 128 packed bytes); last, the SHA-256 of all
// that. A delta is of the previous generation; when that would make a chain of `fullEvery` records, it is of the
// full record the chain starts from (what changed since); a full record is written when the delta is not smaller.
import { WizError } from '../errors.ts';
import { IMAGE_FORMAT, sha256Hex, type ImageChunks, type StateImage } from './image.ts';
import { BinaryWriter } from '../parse/writer.ts';

/** Key → bytes, the one thing a back-end provides. Keys are ASCII, `/`-separated, never empty segments. */
export interface StoreDriver {
  get(key: string): Promise<Uint8Array | undefined>;
  set(key: string, value: Uint8Array): Promise<void>;
  has(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** The keys that start with `prefix`, in any order. */
  keys(prefix: string): Promise<string[]>;
  /** All of it or none of it, also across a crash at any moment. */
  batch(writes: readonly (readonly [string, Uint8Array])[], deletes: readonly string[]): Promise<void>;
  /** The stored length of a value, where the back-end knows it without reading it. */
  size?(key: string): Promise<number | undefined>;
  close(): Promise<void>;
}

export interface ImageStoreOptions {
  /** Check every loaded chunk against its digest (default true). */
  verify?: boolean;
  /** At most this many records are read to load a generation: a full record at least every so many (default 16). */
  fullEvery?: number;
}

export interface SavedGeneration {
  generation: number;
  /** Keys and values handed to the driver. */
  bytesWritten: number;
  /** Chunks written as values of their own (chunks of at most 128 packed bytes go inside the record). */
  chunksWritten: number;
}

export interface LoadedGeneration {
  generation: number;
  image: StateImage;
  chunks: Map<string, Uint8Array>;
}

export interface ImageStore {
  /** Stores a module once; returns its digest `sha256:<hex>`. */
  putModule(bytes: Uint8Array): Promise<string>;
  getModule(digest: string): Promise<Uint8Array | undefined>;
  /** Saves `image` as the worker's next generation (0 for a new worker). */
  save(worker: string, image: StateImage, chunks: ImageChunks): Promise<SavedGeneration>;
  /** The latest generation, or `generation`; undefined when there is none. */
  load(worker: string, generation?: number): Promise<LoadedGeneration | undefined>;
  generations(worker: string): Promise<number[]>;
  workers(): Promise<string[]>;
  /** Drops all but the newest `keep` generations of the worker. */
  prune(worker: string, keep: number): Promise<void>;
  /** Drops every generation of the worker. */
  remove(worker: string): Promise<void>;
  /**
   * Deletes the chunks and modules no generation refers to; counts chunks, and bytes of both. Not while another
   * process saves into the same store: the chunks of its save in flight are referred to by nothing yet.
   */
  collect(): Promise<{ chunks: number; bytes: number }>;
  close(): Promise<void>;
}

const MAGIC = [0x77, 0x69, 0x7a, 0x67]; // "wizg"
const VERSION = 1;
/** A record whose content (all between the version and the checksum) is deflated (deflate-raw). */
const VERSION_DEFLATED = 2;
const DELTA = 1;
const SAME_IMAGE = 2;
const COPY = 0;
const ZERO = 1;
const NEW = 2;
const REF = 3;
const INLINE = 4;
const CHECKSUM = 32;
/**
 * A packed chunk this small costs less in the record than a value of its own: its key (69 bytes), its digest in the
 * record (32) and the back-end's per-value overhead (measured: a sparse memory's chunks cost half as much inline).
 */
const INLINE_MAX = 128;
const FULL_EVERY = 16;
/** What a reader accepts, whatever wrote the records. */
const MAX_CHAIN = 256;
const MAX_CHUNKS = 1 << 24;
/** Keys and values per driver batch while writing chunks. */
const BATCH_ENTRIES = 512;
const BATCH_BYTES = 8 << 20;

const WORKER_ID = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^[0-9a-f]{64}$/;
const MODULE_DIGEST = /^sha256:[0-9a-f]{64}$/;
const GENERATION = /^(0|[1-9][0-9]{0,14})$/;

const chunkKey = (hex: string): string => `c/${hex.slice(0, 2)}/${hex}`;
const moduleKey = (hex: string): string => `m/${hex}`;
const recordKey = (worker: string, generation: number): string => `g/${worker}/${generation}`;
const headKey = (worker: string): string => `h/${worker}`;

type Fail = (why: string) => never;

/** A generation as the store knows it once its chain of records is read. */
interface Generation {
  generation: number;
  /** Hex of the record's checksum: tells a cached generation from a rewritten record. */
  checksum: string;
  /** Delta records between this one and the full record it starts from. */
  depth: number;
  /** That full record's generation (this one when it is full). */
  base: Generation;
  /** JSON of the image with the memories' chunk lists left out. */
  rest: string;
  meta: StateImage;
  lists: (string | null)[][];
  pageLog2: number[];
  /** Packed forms of the chunks kept inside records. */
  inline: Map<string, Uint8Array>;
}

/** Reads what BinaryWriter writes, within `end`; anything out of bounds goes to `fail`. */
class ByteReader {
  pos: number;
  readonly bytes: Uint8Array;
  readonly end: number;
  readonly fail: Fail;

  constructor(bytes: Uint8Array, pos: number, end: number, fail: Fail) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
    this.fail = fail;
  }

  byte(): number {
    if (this.pos >= this.end) this.fail('is truncated');
    return this.bytes[this.pos++]!;
  }

  varint(): number {
    let n = 0;
    for (let scale = 1, i = 0; ; scale *= 0x80, i++) {
      if (i === 8) this.fail('has a number out of range');
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) break;
    }
    if (!Number.isSafeInteger(n)) this.fail('has a number out of range');
    return n;
  }

  take(n: number): Uint8Array {
    if (n > this.end - this.pos) this.fail('is truncated');
    const v = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
}

/** Zero runs shorter than this stay in a literal: splitting costs two varints. */
const MIN_ZEROS = 4;

/**
 * A chunk as stored: pairs (varint zeros, varint literal length, literal) when that is smaller than the chunk
 * (sparse memory), else the chunk itself.
 */
function packChunk(bytes: Uint8Array): Uint8Array {
  const n = bytes.length;
  const w = new BinaryWriter();
  let i = 0;
  while (i < n) {
    let z = i;
    while (z < n && bytes[z] === 0) z++;
    let j = z;
    for (let run = 0; j < n; j++) {
      if (bytes[j] !== 0) run = 0;
      else if (++run === MIN_ZEROS) {
        j -= MIN_ZEROS - 1;
        break;
      }
    }
    w.u32(z - i);
    w.u32(j - z);
    w.raw(bytes.subarray(z, j));
    if (w.length >= n) return bytes;
    i = j;
  }
  return w.length < n ? w.finish() : bytes;
}

/** The chunk of `size` bytes that `stored` holds, or undefined if it holds none. */
function unpackChunk(stored: Uint8Array, size: number): Uint8Array | undefined {
  if (stored.length === size) return stored;
  if (stored.length > size) return undefined;
  const out = new Uint8Array(size);
  let pos = 0;
  // A varint no larger than `size`, or -1.
  const varint = (): number => {
    let n = 0;
    for (let scale = 1; pos < stored.length && scale <= size; scale *= 0x80) {
      const b = stored[pos++]!;
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n <= size ? n : -1;
    }
    return -1;
  };
  let at = 0;
  while (pos < stored.length) {
    const zeros = varint();
    const literal = varint();
    if (zeros < 0 || literal < 0 || at + zeros + literal > size || pos + literal > stored.length) return undefined;
    at += zeros;
    out.set(stored.subarray(pos, pos + literal), at);
    pos += literal;
    at += literal;
  }
  return at === size ? out : undefined;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

function toHex(bytes: Uint8Array): string {
  let hex = '';
  for (const b of bytes) hex += HEX[b];
  return hex;
}

/** Bytes of lowercase hex (digests are checked to be that before they get here). */
function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  const nibble = (c: number): number => (c <= 0x39 ? c - 0x30 : c - 0x57);
  for (let i = 0; i < out.length; i++) out[i] = nibble(hex.charCodeAt(2 * i)) * 16 + nibble(hex.charCodeAt(2 * i + 1));
  return out;
}

const utf8 = new TextEncoder();

function checkWorker(worker: unknown): asserts worker is string {
  if (typeof worker === 'string' && WORKER_ID.test(worker)) return;
  const shown = typeof worker === 'string' ? JSON.stringify(worker.length > 40 ? `${worker.slice(0, 40)}…` : worker) : String(worker);
  throw new WizError('usage', `worker id ${shown} is not valid: use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'`);
}

/** Checks what the store relies on in an image other than its chunk lists (the module checks the rest on restore). */
function checkImage(image: unknown, fail: Fail): asserts image is StateImage {
  if (typeof image !== 'object' || image === null || Array.isArray(image)) fail('is not an object');
  const i = image as Partial<StateImage>;
  if (i.format !== IMAGE_FORMAT) fail(`is not of format ${IMAGE_FORMAT}`);
  if (typeof i.module !== 'string' || !MODULE_DIGEST.test(i.module)) fail('names no module as sha256:<64 hex digits>');
  const cs = i.chunkSize;
  if (typeof cs !== 'number' || !Number.isInteger(Math.log2(cs)) || cs < 4096 || cs > 1 << 24) {
    fail(`has chunk size ${String(cs)}, not a power of two from 4 KiB to 16 MiB`);
  }
  if (!Array.isArray(i.memories)) fail('has no list of memories');
  for (const m of i.memories) {
    if (typeof m !== 'object' || m === null) fail('has a memory that is not an object');
    if (!Number.isSafeInteger(m.index) || m.index < 0) fail(`has a memory with index ${String(m.index)}`);
    if (!Number.isSafeInteger(m.pages) || m.pages < 0) fail(`gives memory ${m.index} ${String(m.pages)} pages`);
  }
  if (!Array.isArray(i.globals) || !Array.isArray(i.tables)) fail('has no lists of globals and tables');
  if (typeof i.dropped !== 'object' || !Array.isArray(i.dropped?.data) || !Array.isArray(i.dropped?.elem)) fail('has no lists of dropped segments');
  if (i.suspended !== undefined && (typeof i.suspended !== 'object' || i.suspended === null)) fail('has a suspended call that is not an object');
}

/** Chunks of a memory of `pages` pages of 2^log2 bytes, or Infinity when beyond what the store takes. */
function chunkCount(pages: number, log2: number, chunkSize: number): number {
  const size = pages * 2 ** log2;
  const count = Math.ceil(size / chunkSize);
  return Number.isSafeInteger(size) && count <= MAX_CHUNKS ? count : Infinity;
}

/** Length of chunk `k` of a memory of `size` bytes. */
const chunkLength = (size: number, k: number, chunkSize: number): number => Math.min(chunkSize, size - k * chunkSize);

/** The image without chunk lists, as JSON: what a record keeps beside them. */
function restOf(image: StateImage): string {
  return JSON.stringify({ ...image, memories: image.memories.map(({ chunks: _, ...m }) => m) });
}

/** Digest → chunk length over a generation's lists; a digest used for two lengths is a contradiction. */
function chunkLengths(lists: readonly (readonly (string | null)[])[], meta: StateImage, pageLog2: readonly number[], fail: Fail): Map<string, number> {
  const lengths = new Map<string, number>();
  lists.forEach((list, ordinal) => {
    const size = meta.memories[ordinal]!.pages * 2 ** pageLog2[ordinal]!;
    list.forEach((d, k) => {
      if (d === null) return;
      const length = chunkLength(size, k, meta.chunkSize);
      const before = lengths.get(d);
      if (before !== undefined && before !== length) fail(`uses chunk ${d} for chunks of ${before} and ${length} bytes`);
      lengths.set(d, length);
    });
  });
  return lengths;
}

async function sha256Bytes(bytes: Uint8Array): Promise<Uint8Array> {
  return fromHex(await sha256Hex(bytes));
}

/** A record for `lists`, as a delta of `parent` when given. */
async function encodeRecord(
  lists: readonly (readonly (string | null)[])[],
  pageLog2: readonly number[],
  rest: string,
  inlineForms: ReadonlyMap<string, Uint8Array>,
  parent: Generation | undefined,
): Promise<Uint8Array> {
  const w = new BinaryWriter();
  w.raw(new Uint8Array(MAGIC));
  w.byte(VERSION);
  const sameImage = parent !== undefined && parent.rest === rest;
  w.u32((parent ? DELTA : 0) | (sameImage ? SAME_IMAGE : 0));
  if (parent) w.u32(parent.generation);
  if (!sameImage) {
    const json = utf8.encode(rest);
    w.u32(json.length);
    w.raw(json);
  }
  const table = new Map<string, number>();
  lists.forEach((list, ordinal) => {
    w.byte(pageLog2[ordinal]!);
    const before = parent?.lists[ordinal] ?? [];
    const copies = (k: number): boolean => k < before.length && before[k] === list[k];
    for (let k = 0; k < list.length;) {
      let n = 1;
      if (parent && copies(k)) {
        while (k + n < list.length && copies(k + n)) n++;
        w.u32(n * 8 + COPY);
      } else {
        const d = list[k]!;
        while (k + n < list.length && list[k + n] === d && !(parent && copies(k + n))) n++;
        const seen = d === null ? undefined : table.get(d);
        const form = d === null ? undefined : inlineForms.get(d);
        if (d === null) w.u32(n * 8 + ZERO);
        else if (seen !== undefined) {
          w.u32(n * 8 + REF);
          w.u32(seen);
        } else if (form) {
          w.u32(n * 8 + INLINE);
          w.u32(form.length);
          w.raw(form);
          table.set(d, table.size);
        } else {
          w.u32(n * 8 + NEW);
          w.raw(fromHex(d));
          table.set(d, table.size);
        }
      }
      k += n;
    }
  });
  let framed = w.finish();
  // Sparse chunks inline and repeated runs compress well: deflate the content when it gains (a sparse memory of
  // random bytes takes a third less).
  const content = framed.subarray(MAGIC.length + 1);
  if (content.length >= DEFLATE_FROM && typeof CompressionStream === 'function') {
    const deflated = await deflate(content);
    if (deflated.length < content.length) {
      framed = new Uint8Array(MAGIC.length + 1 + deflated.length);
      framed.set(MAGIC);
      framed[MAGIC.length] = VERSION_DEFLATED;
      framed.set(deflated, MAGIC.length + 1);
    }
  }
  const out = new Uint8Array(framed.length + CHECKSUM);
  out.set(framed);
  out.set(await sha256Bytes(framed), framed.length);
  return out;
}

/** Records at least this long are tried deflated. */
const DEFLATE_FROM = 512;
/** The most a deflated record may inflate to (a record of the most chunks a reader accepts fits). */
const MAX_INFLATED = 1 << 30;

async function deflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Inflates a record's content, refusing one that inflates past `MAX_INFLATED` or is not deflate data. */
async function inflate(bytes: Uint8Array, fail: Fail): Promise<Uint8Array> {
  if (typeof DecompressionStream !== 'function') fail('is deflated, and this host has no DecompressionStream');
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    const reader = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_INFLATED) {
        await reader.cancel();
        fail('inflates past 1 GiB');
      }
      parts.push(value);
    }
  } catch (e) {
    if (e instanceof WizError) throw e;
    fail('is deflated, but not validly');
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

interface RecordHeader {
  checksum: string;
  parent: number | undefined;
  /** The image JSON, or undefined when it is the parent's. */
  rest: string | undefined;
  body: ByteReader;
}

/** Checks a record's frame and checksum, and reads its header. */
async function openRecord(bytes: Uint8Array, fail: Fail): Promise<RecordHeader> {
  if (bytes.length < MAGIC.length + 1 + CHECKSUM) fail('is truncated');
  if (MAGIC.some((b, i) => bytes[i] !== b)) fail('is not a generation record');
  const version = bytes[MAGIC.length];
  if (version !== VERSION && version !== VERSION_DEFLATED) fail(`has record version ${version}, this wiz reads versions ${VERSION} and ${VERSION_DEFLATED}`);
  const end = bytes.length - CHECKSUM;
  const checksum = toHex(bytes.subarray(end));
  if (toHex(await sha256Bytes(bytes.subarray(0, end))) !== checksum) fail('is corrupt (its checksum does not match)');
  const content = version === VERSION_DEFLATED ? await inflate(bytes.subarray(MAGIC.length + 1, end), fail) : bytes;
  const r = version === VERSION_DEFLATED ? new ByteReader(content, 0, content.length, fail) : new ByteReader(bytes, MAGIC.length + 1, end, fail);
  const flags = r.varint();
  if (flags > (DELTA | SAME_IMAGE) || flags === SAME_IMAGE) fail(`has flags ${flags}`);
  const parent = flags & DELTA ? r.varint() : undefined;
  let rest: string | undefined;
  if (!(flags & SAME_IMAGE)) {
    try {
      rest = new TextDecoder('utf-8', { fatal: true }).decode(r.take(r.varint()));
    } catch (e) {
      if (e instanceof WizError) throw e;
      fail('has an image that is not UTF-8');
    }
  }
  return { checksum, parent, rest, body: r };
}

/** Reads the chunk lists of a record whose header is read, given its parent generation when it is a delta. */
async function decodeRecord(generation: number, header: RecordHeader, parent: Generation | undefined, fail: Fail): Promise<Generation> {
  const rest = header.rest ?? parent!.rest;
  let meta: unknown;
  try {
    meta = JSON.parse(rest);
  } catch {
    fail('has an image that is not JSON');
  }
  checkImage(meta, (why) => fail(`has an image that ${why}`));
  const r = header.body;
  const table: string[] = [];
  const recordInline = new Map<string, Uint8Array>();
  const pageLog2: number[] = [];
  const lists: (string | null)[][] = [];
  for (const [ordinal, memory] of meta.memories.entries()) {
    const log2 = r.byte();
    if (log2 !== 0 && log2 !== 16) fail(`gives memory ${memory.index} pages of 2^${log2} bytes`);
    pageLog2.push(log2);
    const count = chunkCount(memory.pages, log2, meta.chunkSize);
    if (count === Infinity) fail(`gives memory ${memory.index} more than ${MAX_CHUNKS} chunks`);
    const size = memory.pages * 2 ** log2;
    const before = parent?.lists[ordinal];
    const list = new Array<string | null>(count);
    for (let k = 0; k < count;) {
      if (r.pos === r.end) fail(`has chunk runs of memory ${memory.index} that do not add up to its ${count} chunks`);
      const head = r.varint();
      const kind = head % 8;
      const n = Math.floor(head / 8);
      if (n === 0 || n > count - k) fail(`has chunk runs of memory ${memory.index} that do not add up to its ${count} chunks`);
      let d: string | null = null;
      if (kind === COPY) {
        if (!before || k + n > before.length) fail(`copies chunks of memory ${memory.index} that its parent does not have`);
        for (let i = 0; i < n; i++) list[k + i] = before[k + i]!;
        k += n;
        continue;
      } else if (kind === NEW) {
        d = toHex(r.take(32));
        table.push(d);
      } else if (kind === REF) {
        const index = r.varint();
        if (index >= table.length) fail(`refers to digest ${index} of ${table.length}`);
        d = table[index]!;
      } else if (kind === INLINE) {
        const form = r.take(r.varint());
        const bytes = unpackChunk(form, chunkLength(size, k, meta.chunkSize));
        if (!bytes || form.length > INLINE_MAX) fail(`has an inline chunk of memory ${memory.index} that does not unpack`);
        d = await sha256Hex(bytes);
        recordInline.set(d, form.slice());
        table.push(d);
      } else if (kind !== ZERO) {
        fail(`has chunk run kind ${kind}`);
      }
      list.fill(d, k, k + n);
      k += n;
    }
    lists.push(list);
  }
  if (r.pos !== r.end) fail('has bytes after its chunk lists');
  const inline = new Map<string, Uint8Array>();
  for (const list of lists) {
    for (const d of list) {
      const form = d === null ? undefined : recordInline.get(d) ?? parent?.inline.get(d);
      if (form) inline.set(d!, form);
    }
  }
  const decoded: Generation = {
    generation, checksum: header.checksum, depth: parent ? parent.depth + 1 : 0, rest, meta, lists, pageLog2, inline,
    base: parent?.base as Generation,
  };
  decoded.base ??= decoded;
  return decoded;
}

/** Runs `fn` on every item, at most `limit` at a time. */
export async function eachLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** The image store over `driver`: see the top of this file for what it writes. */
export function createImageStore(driver: StoreDriver, options: ImageStoreOptions = {}): ImageStore {
  const verify = options.verify ?? true;
  const fullEvery = options.fullEvery ?? FULL_EVERY;
  if (!Number.isSafeInteger(fullEvery) || fullEvery < 1 || fullEvery > MAX_CHAIN) {
    throw new WizError('usage', `fullEvery must be a whole number from 1 to ${MAX_CHAIN}, not ${fullEvery}`);
  }
  /** The last generation read or written, per worker: the next save's parent, without reading its chain. */
  const latest = new Map<string, Generation>();
  // One operation at a time: a save's generation number and parent, or a collect's view, stay true while it runs.
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;

  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(() => {
      if (closed) throw new WizError('usage', 'the image store is closed');
      return fn();
    });
    queue = run.catch(() => undefined);
    return run;
  }

  const failAt = (worker: string, generation: number): Fail => (why) => {
    throw new WizError('malformed', `worker "${worker}" generation ${generation} ${why}`);
  };

  async function readHead(worker: string): Promise<number | undefined> {
    const bytes = await driver.get(headKey(worker));
    if (!bytes) return undefined;
    const text = new TextDecoder().decode(bytes);
    if (!GENERATION.test(text)) throw new WizError('malformed', `worker "${worker}" has a head that names no generation`);
    return Number(text);
  }

  async function listGenerations(worker: string): Promise<number[]> {
    const prefix = `g/${worker}/`;
    const found = (await driver.keys(prefix)).map((key) => {
      const name = key.slice(prefix.length);
      if (!GENERATION.test(name)) throw new WizError('malformed', `worker "${worker}" has a record named "${key}"`);
      return Number(name);
    });
    return found.sort((a, b) => a - b);
  }

  /** Generation `g` of a worker from its chain of records, or undefined when its record is absent. */
  async function generationAt(worker: string, g: number, memo?: Map<number, Generation>): Promise<Generation | undefined> {
    const chain: { generation: number; header: RecordHeader }[] = [];
    let base: Generation | undefined;
    for (let at = g; ;) {
      const bytes = await driver.get(recordKey(worker, at));
      const child = chain.at(-1);
      if (!bytes) {
        if (!child) return undefined;
        return failAt(worker, child.generation)(`starts from generation ${at}, which is missing`);
      }
      const checksum = bytes.length >= CHECKSUM ? toHex(bytes.subarray(bytes.length - CHECKSUM)) : '';
      const known = memo?.get(at) ?? latest.get(worker);
      if (known && known.generation === at && known.checksum === checksum) {
        base = known;
        break;
      }
      const header = await openRecord(bytes, failAt(worker, at));
      chain.push({ generation: at, header });
      if (header.parent === undefined) break;
      if (header.parent >= at) failAt(worker, at)(`starts from generation ${header.parent}, which is not older`);
      if (chain.length >= MAX_CHAIN) failAt(worker, g)(`needs more than ${MAX_CHAIN} records`);
      at = header.parent;
    }
    let generation = base;
    for (let i = chain.length - 1; i >= 0; i--) {
      const { generation: at, header } = chain[i]!;
      generation = await decodeRecord(at, header, generation, failAt(worker, at));
      memo?.set(at, generation);
    }
    return generation;
  }

  /** Whether the store holds generation `g`'s record as `g` was read or written. */
  async function holds(worker: string, g: Generation): Promise<boolean> {
    const bytes = await driver.get(recordKey(worker, g.generation));
    return bytes !== undefined && bytes.length >= CHECKSUM && toHex(bytes.subarray(bytes.length - CHECKSUM)) === g.checksum;
  }

  /** log2 of a memory's page size, from its chunk count: 16, or 0 for the custom page size of one byte. */
  function pageLog2Of(image: StateImage, ordinal: number, chunks: ImageChunks, parent: Generation | undefined, fail: Fail): number {
    const m = image.memories[ordinal]!;
    if (!Array.isArray(m.chunks)) fail(`has no chunk list for memory ${m.index}`);
    const normal = chunkCount(m.pages, 16, image.chunkSize);
    const bytePages = chunkCount(m.pages, 0, image.chunkSize);
    if (m.chunks.length === normal && normal !== bytePages) return 16;
    if (m.chunks.length === bytePages && normal !== bytePages) return 0;
    if (m.chunks.length !== normal) fail(`lists ${m.chunks.length} chunks for memory ${m.index} of ${m.pages} pages, not ${normal}`);
    // One chunk either way: its length tells, or else what the parent said.
    const last = m.chunks.at(-1);
    const bytes = last ? chunks.get(last) : undefined;
    if (bytes) return bytes.length === m.pages ? 0 : 16;
    return parent?.pageLog2[ordinal] ?? 16;
  }

  async function save(worker: string, image: StateImage, chunks: ImageChunks): Promise<SavedGeneration> {
    const fail: Fail = (why) => {
      throw new WizError('malformed', `cannot save worker "${worker}": the state image ${why}`);
    };
    checkImage(image, fail);
    const head = await readHead(worker);
    if (head === undefined && (await listGenerations(worker)).length > 0) {
      throw new WizError('malformed', `worker "${worker}" has generations but no head`);
    }
    const parent = head === undefined ? undefined : await generationAt(worker, head);
    if (head !== undefined && !parent) throw new WizError('malformed', `worker "${worker}" generation ${head}, its latest, is missing`);
    const generation = head === undefined ? 0 : head + 1;

    const pageLog2 = image.memories.map((_, ordinal) => pageLog2Of(image, ordinal, chunks, parent, fail));
    const lists = image.memories.map((m) => m.chunks);
    for (const [ordinal, list] of lists.entries()) {
      for (const d of list) if (d !== null && (typeof d !== 'string' || !DIGEST.test(d))) fail(`lists a chunk of memory ${image.memories[ordinal]!.index} that is not a lowercase hex SHA-256`);
    }
    const lengths = chunkLengths(lists, image, pageLog2, fail);

    // Chunks the parent holds are in the store (its record was written after them); the rest are looked at.
    const parentStored = new Set<string>();
    for (const list of parent?.lists ?? []) for (const d of list) if (d !== null && !parent!.inline.has(d)) parentStored.add(d);
    const inline = new Map<string, Uint8Array>();
    const forms = new Map<string, Uint8Array>();
    const given: string[] = [];
    const notGiven: string[] = [];
    const check: [string, Uint8Array][] = [];
    for (const [d, length] of lengths) {
      if (parentStored.has(d)) continue;
      const parentForm = parent?.inline.get(d);
      if (parentForm) {
        inline.set(d, parentForm);
        continue;
      }
      const bytes = chunks.get(d);
      if (!bytes) {
        notGiven.push(d);
        continue;
      }
      if (bytes.length !== length) fail(`has chunk ${d} of ${bytes.length} bytes where ${length} are expected`);
      const form = packChunk(bytes);
      check.push([d, bytes]);
      if (form.length <= INLINE_MAX) inline.set(d, form === bytes ? bytes.slice() : form);
      else {
        forms.set(d, form);
        given.push(d);
      }
    }
    const present = await eachLimit([...given, ...notGiven], 64, (d) => driver.has(chunkKey(d)));
    const missing = notGiven.find((_, i) => !present[given.length + i]);
    if (missing) fail(`refers to chunk ${missing}, which is neither given nor in the store`);
    const toWrite = new Set(given.filter((_, i) => !present[i]));
    await eachLimit(check.filter(([d]) => toWrite.has(d) || inline.has(d)), 16, async ([d, bytes]) => {
      if ((await sha256Hex(bytes)) !== d) fail(`has chunk ${d} whose bytes hash to something else`);
    });

    let bytesWritten = 0;
    let batch: [string, Uint8Array][] = [];
    let batchBytes = 0;
    const flush = async (): Promise<void> => {
      if (batch.length > 0) await driver.batch(batch, []);
      batch = [];
      batchBytes = 0;
    };
    for (const d of toWrite) {
      const key = chunkKey(d);
      const form = forms.get(d)!;
      batch.push([key, form]);
      batchBytes += form.length;
      bytesWritten += key.length + form.length;
      if (batch.length >= BATCH_ENTRIES || batchBytes >= BATCH_BYTES) await flush();
    }
    await flush();

    const rest = restOf(image);
    let record: Uint8Array | undefined;
    let depth = 0;
    let base: Generation | undefined;
    // Changes since the chain's full record, rather than a new full record, when the chain is long: the same
    // bound on what a load reads, and for a worker that keeps changing the same chunks, a small record still.
    let from = parent && parent.depth + 1 >= fullEvery ? parent.base : parent;
    // A base known from memory may have been pruned since (by another process, too): only its record tells.
    if (from && from !== parent && !(await holds(worker, from))) from = undefined;
    if (from && from.depth + 1 < fullEvery && from.meta.chunkSize === image.chunkSize) {
      const delta = await encodeRecord(lists, pageLog2, rest, inline, from);
      // A full record lists each stored digest once at least: often enough to know the delta wins.
      const fullAtLeast = rest.length + 33 * (lengths.size - inline.size);
      const full = delta.length < fullAtLeast ? undefined : await encodeRecord(lists, pageLog2, rest, inline, undefined);
      if (!full || delta.length < full.length) {
        record = delta;
        depth = from.depth + 1;
        base = from.base;
      } else record = full;
    }
    record ??= await encodeRecord(lists, pageLog2, rest, inline, undefined);
    const headBytes = utf8.encode(String(generation));
    const writes: [string, Uint8Array][] = [[recordKey(worker, generation), record], [headKey(worker), headBytes]];
    await driver.batch(writes, []);
    for (const [key, value] of writes) bytesWritten += key.length + value.length;

    const saved: Generation = {
      generation, checksum: toHex(record.subarray(record.length - CHECKSUM)), depth, rest, meta: JSON.parse(rest) as StateImage,
      lists: lists.map((l) => [...l]), pageLog2, inline, base: base as Generation,
    };
    saved.base ??= saved;
    latest.set(worker, saved);
    return { generation, bytesWritten, chunksWritten: toWrite.size };
  }

  async function load(worker: string, which: number | undefined): Promise<LoadedGeneration | undefined> {
    const g = which ?? await readHead(worker);
    if (g === undefined) return undefined;
    const generation = await generationAt(worker, g);
    if (!generation) {
      if (which === undefined) throw new WizError('malformed', `worker "${worker}" generation ${g}, its latest, is missing`);
      return undefined;
    }
    const fail: Fail = failAt(worker, g);
    latest.set(worker, generation);
    const lengths = chunkLengths(generation.lists, generation.meta, generation.pageLog2, fail);
    const chunks = new Map<string, Uint8Array>();
    const stored: [string, number][] = [];
    for (const [d, length] of lengths) {
      const form = generation.inline.get(d);
      if (!form) stored.push([d, length]);
      else chunks.set(d, unpackChunk(form, length) ?? fail(`has inline chunk ${d}, which does not unpack to ${length} bytes`));
    }
    await eachLimit(stored, 64, async ([d, length]) => {
      const value = await driver.get(chunkKey(d));
      if (!value) fail(`needs chunk ${d}, which is missing from the store`);
      const bytes = unpackChunk(value, length);
      if (!bytes) fail(`needs chunk ${d}, which is corrupt (it does not unpack to ${length} bytes)`);
      if (verify && (await sha256Hex(bytes)) !== d) fail(`needs chunk ${d}, which is corrupt (its bytes hash to something else)`);
      chunks.set(d, bytes);
    });
    const image = JSON.parse(generation.rest) as StateImage;
    image.memories.forEach((m, ordinal) => { m.chunks = [...generation.lists[ordinal]!]; });
    return { generation: g, image, chunks };
  }

  async function prune(worker: string, keep: number): Promise<void> {
    const all = await listGenerations(worker);
    if (all.length <= keep) return;
    const drop = all.slice(0, all.length - keep);
    const kept = new Set(all.slice(all.length - keep));
    const writes: [string, Uint8Array][] = [];
    // A kept delta whose parent goes becomes a full record, in the same batch as the deletions.
    for (const g of kept) {
      const bytes = await driver.get(recordKey(worker, g));
      if (!bytes) throw new WizError('malformed', `worker "${worker}" generation ${g} vanished while pruning`);
      const header = await openRecord(bytes, failAt(worker, g));
      if (header.parent === undefined || kept.has(header.parent)) continue;
      const generation = (await generationAt(worker, g))!;
      writes.push([recordKey(worker, g), await encodeRecord(generation.lists, generation.pageLog2, generation.rest, generation.inline, undefined)]);
    }
    // The chain remembered for the next save may start from a record that goes.
    latest.delete(worker);
    await driver.batch(writes, drop.map((g) => recordKey(worker, g)));
  }

  async function collect(): Promise<{ chunks: number; bytes: number }> {
    const byWorker = new Map<string, number[]>();
    for (const key of await driver.keys('g/')) {
      const [, worker, name] = key.split('/');
      if (worker === undefined || name === undefined || !WORKER_ID.test(worker) || !GENERATION.test(name) || key.split('/').length !== 3) {
        throw new WizError('malformed', `the store holds a record named "${key}"`);
      }
      byWorker.set(worker, [...byWorker.get(worker) ?? [], Number(name)]);
    }
    const chunks = new Set<string>();
    const modules = new Set<string>();
    for (const [worker, generations] of byWorker) {
      const memo = new Map<number, Generation>();
      for (const g of generations.sort((a, b) => a - b)) {
        const generation = (await generationAt(worker, g, memo))!;
        // Later deltas start from the generation before them: the memo needs nothing older.
        for (const at of memo.keys()) if (at !== g) memo.delete(at);
        modules.add(generation.meta.module.slice('sha256:'.length));
        for (const list of generation.lists) for (const d of list) if (d !== null && !generation.inline.has(d)) chunks.add(d);
      }
    }
    const garbage = [
      ...(await driver.keys('c/')).filter((key) => !chunks.has(key.slice(key.lastIndexOf('/') + 1))),
      ...(await driver.keys('m/')).filter((key) => !modules.has(key.slice(2))),
    ];
    const sizes = await eachLimit(garbage, 64, async (key) => (driver.size ? await driver.size(key) : (await driver.get(key))?.length) ?? 0);
    for (let i = 0; i < garbage.length; i += BATCH_ENTRIES) await driver.batch([], garbage.slice(i, i + BATCH_ENTRIES));
    return { chunks: garbage.filter((key) => key.startsWith('c/')).length, bytes: sizes.reduce((a, b) => a + b, 0) };
  }

  function moduleHex(digest: string): string {
    if (typeof digest !== 'string' || !MODULE_DIGEST.test(digest)) {
      throw new WizError('usage', `module digest ${JSON.stringify(String(digest).slice(0, 80))} is not of the form sha256:<64 hex digits>`);
    }
    return digest.slice('sha256:'.length);
  }

  return {
    putModule: (bytes) => serial(async () => {
      const hex = await sha256Hex(bytes);
      if (!(await driver.has(moduleKey(hex)))) await driver.set(moduleKey(hex), bytes);
      return `sha256:${hex}`;
    }),
    getModule: async (digest) => {
      const hex = moduleHex(digest);
      return serial(async () => {
        const bytes = await driver.get(moduleKey(hex));
        if (bytes && verify && (await sha256Hex(bytes)) !== hex) throw new WizError('malformed', `module ${digest} in the store is corrupt (its bytes hash to something else)`);
        return bytes;
      });
    },
    save: async (worker, image, chunks) => {
      checkWorker(worker);
      return serial(() => save(worker, image, chunks));
    },
    load: async (worker, generation) => {
      checkWorker(worker);
      if (generation !== undefined && (!Number.isSafeInteger(generation) || generation < 0)) {
        throw new WizError('usage', `generation ${String(generation)} is not a whole number`);
      }
      return serial(() => load(worker, generation));
    },
    generations: async (worker) => {
      checkWorker(worker);
      return serial(() => listGenerations(worker));
    },
    workers: () => serial(async () => (await driver.keys('h/')).map((key) => key.slice(2)).filter((w) => WORKER_ID.test(w)).sort()),
    prune: async (worker, keep) => {
      checkWorker(worker);
      if (!Number.isSafeInteger(keep) || keep < 1) throw new WizError('usage', `prune keeps at least 1 generation, not ${String(keep)}`);
      return serial(() => prune(worker, keep));
    },
    remove: async (worker) => {
      checkWorker(worker);
      return serial(async () => {
        latest.delete(worker);
        const records = (await listGenerations(worker)).map((g) => recordKey(worker, g));
        await driver.batch([], [...records, headKey(worker)]);
      });
    },
    collect: () => serial(collect),
    close: () => serial(async () => {
      closed = true;
      await driver.close();
    }),
  };
}
