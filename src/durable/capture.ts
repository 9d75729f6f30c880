// State images of durable workers: capture (read the state through wiz's runtime), restore (write it into a fresh
// instance of the same module) and materialize (write it as the `.wasm` the worker's `snapshot` gives). Nothing
// here compiles a module: it runs where the platform forbids compiling at run time.
import { WizError } from '../errors.ts';
import { writeSnapshot, type SnapshotOptions } from '../preinitialize.ts';
import { concat } from '../parse/writer.ts';
import { takeSnapshot, type GlobalBits, type Ref, type StateReader } from '../snapshot/state.ts';
import { DEFAULT_CHUNK_SIZE, IMAGE_FORMAT, sha256Hex, type ImageChunks, type ImageGlobal, type ImageTable, type JournalState, type StateImage } from './image.ts';
import { RUNTIME } from './layout.ts';
import { checkSuspended, DurableWorker, GLOBAL_SIZE, JOURNAL_START, stateSections, type DurableModule, type WorkerOptions } from './worker.ts';

export interface CaptureOptions {
  /** Chunk size in bytes, a power of two from 4 KiB to 16 MiB (default 64 KiB). */
  chunkSize?: number;
  /**
   * The digests of the chunks of the worker's previous image, memory by memory (e.g. the image it was restored
   * from): a chunk whose bytes equal what `previous` chunks hold is not hashed again. Optional: a speed-up.
   */
  previous?: { image: StateImage; chunks: ImageChunks };
}

/** The state of a worker as an image: JSON-able data and the contents of its non-zero chunks, by digest. */
export async function captureImage(worker: DurableWorker, options: CaptureOptions = {}): Promise<{ image: StateImage; chunks: Map<string, Uint8Array> }> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(Math.log2(chunkSize)) || chunkSize < 4096 || chunkSize > 1 << 24) {
    throw new WizError('usage', `the chunk size must be a power of two from 4 KiB to 16 MiB, not ${chunkSize}`);
  }
  const { instrumented } = worker.durable;
  const reader = await worker.stateReader();
  // One synchronous run reads the whole state; memories are copied chunk by chunk below, before anything awaits.
  const state = takeSnapshot(instrumented, reader);
  const chunks = new Map<string, Uint8Array>();
  const pending: { chunk: Uint8Array; list: (string | null)[]; at: number }[] = [];
  const memories = state.memories.map((m, ordinal) => {
    const list: (string | null)[] = [];
    const previous = options.previous?.image.chunkSize === chunkSize ? options.previous.image.memories[ordinal]?.chunks : undefined;
    for (let at = 0, k = 0; at < m.bytes.length; at += chunkSize, k++) {
      const view = m.bytes.subarray(at, at + chunkSize);
      if (isZero(view)) {
        list.push(null);
        continue;
      }
      const before = previous?.[k];
      const old = before ? options.previous!.chunks.get(before) : undefined;
      if (before && old && equalBytes(old, view)) {
        list.push(before);
        chunks.set(before, old);
        continue;
      }
      list.push(null);
      pending.push({ chunk: view.slice(), list, at: k });
    }
    return { index: m.index, pages: m.pages, chunks: list };
  });
  const globals: ImageGlobal[] = instrumented.globals.map((g) => g.top
    ? { index: g.index, type: g.type, ref: state.refGlobals.get(g.index) ?? null }
    : { index: g.index, type: g.type, bits: hex(state.globals.get(g.index)!) });
  const tables: ImageTable[] = state.tables.map((t) => ({ index: t.index, size: t.entries.length, runs: tableRuns(t.entries, t.index) }));
  const dropped = { data: [...state.dropped.data].sort((a, b) => a - b), elem: [...state.dropped.elem].sort((a, b) => a - b) };
  const suspended = worker.suspended;
  await Promise.all(pending.map(async (p) => {
    const digest = await sha256Hex(p.chunk);
    p.list[p.at] = digest;
    chunks.set(digest, p.chunk);
  }));
  const image: StateImage = {
    format: IMAGE_FORMAT, module: worker.durable.digest, chunkSize, memories, globals, tables, dropped,
    ...(suspended && { suspended: structuredClone(suspended) }),
    ...(worker.host && { host: structuredClone(worker.host) }),
    ...(worker.journalState && { journal: worker.journalState }),
  };
  return { image, chunks };
}

/** Restores `image` into a fresh instance of `durable`, without compiling anything. Every claim is checked first. */
export async function restoreWorker(durable: DurableModule, image: StateImage, chunks: ImageChunks, options: WorkerOptions = {}): Promise<DurableWorker> {
  checkImage(durable, image, chunks);
  const worker = await DurableWorker.start({ ...durable, suspended: undefined, host: undefined }, { ...options, [JOURNAL_START]: image.journal?.position ?? 0 });
  const exports = worker.instance.exports as Record<string, unknown>;
  const { instrumented, layout } = durable;
  image.memories.forEach((m, ordinal) => {
    const info = instrumented.memories[ordinal]!;
    const memory = exports[info.exportName] as WebAssembly.Memory;
    const pageSize = 2 ** info.pageSizeLog2;
    const current = memory.buffer.byteLength / pageSize;
    if (m.pages > current) memory.grow(m.pages - current);
    else if (m.pages < current) throw new WizError('malformed', `the image's memory ${m.index} has ${m.pages} pages, fewer than a fresh instance's ${current}`);
    // A fresh instance's memory is zero but where its data segments wrote: only chunks there may need clearing.
    const bytes = new Uint8Array(memory.buffer);
    const fresh = current * pageSize;
    const written = writtenByInstantiation(durable, m.index);
    const mayHoldData = (at: number, end: number) => at < fresh && (written === 'all' || written.some(([s, e]) => s < end && e > at));
    m.chunks.forEach((digest, k) => {
      const at = k * image.chunkSize;
      if (digest !== null) bytes.set(chunks.get(digest)!, at);
      else if (mayHoldData(at, at + image.chunkSize)) {
        const view = bytes.subarray(at, Math.min(at + image.chunkSize, fresh));
        if (!isZero(view)) view.fill(0);
      }
    });
  });
  const functions = exports[RUNTIME.functions] as WebAssembly.Table | undefined;
  const fn = (index: Ref) => {
    if (index === null) return null;
    if (!functions) throw new WizError('unsupported', 'the durable module has no function table, so wiz cannot restore function references');
    return functions.get(index);
  };
  const ordinal = instrumented.memories.findIndex((m) => m.index === layout.memory);
  const wizBytes = new Uint8Array((exports[instrumented.memories[ordinal]!.exportName] as WebAssembly.Memory).buffer);
  for (const g of image.globals) {
    if ('bits' in g) {
      const saved = layout.globals.find((s) => s.index === g.index)!;
      wizBytes.set(unhex(g.bits), saved.offset);
    } else {
      const exportName = instrumented.globals.find((x) => x.index === g.index)!.exportName;
      (exports[exportName] as WebAssembly.Global).value = fn(g.ref);
    }
  }
  (exports[RUNTIME.loadGlobals] as () => void)();
  wizBytes.fill(0, 0, layout.buffer.start);
  image.tables.forEach((t, ordinalT) => {
    const info = instrumented.tables[ordinalT]!;
    const table = exports[info.exportName] as WebAssembly.Table;
    const grow = table.grow.bind(table) as (delta: number | bigint, value?: unknown) => unknown;
    const set = table.set.bind(table) as (index: number | bigint, value?: unknown) => void;
    const length = Number(table.length);
    if (t.size > length) grow(info.table64 ? BigInt(t.size - length) : t.size - length, null);
    const slots = new Int32Array(t.size).fill(-1);
    for (const [slot, first, count, step] of t.runs) for (let i = 0; i < count; i++) slots[slot + i] = first + i * step;
    slots.forEach((f, slot) => set(info.table64 ? BigInt(slot) : slot, f < 0 ? null : fn(f)));
  });
  const drop = exports[RUNTIME.drop] as (k: number) => void;
  layout.droppable.forEach((d, k) => {
    if (image.dropped[d.kind].includes(d.index)) drop(k);
  });
  if (image.host !== undefined && (image.host === null || typeof image.host !== 'object' || Array.isArray(image.host))) {
    throw new WizError('malformed', 'the state image\'s host record is not an object');
  }
  DurableWorker.attach(worker, image.suspended, image.host, image.journal);
  return worker;
}

/**
 * The `.wasm` of a state image: the bytes a worker of `durable` in that state writes with `snapshot()`, so a state
 * kept as an image can leave the store as a file any engine runs.
 */
export async function materialize(durable: DurableModule, image: StateImage, chunks: ImageChunks, options: Pick<SnapshotOptions, 'provenance' | 'onWarning'> = {}): Promise<Uint8Array> {
  checkImage(durable, image, chunks);
  const reader = imageReader(durable, image, chunks);
  return concat(await writeSnapshot(durable.instrumented, async () => reader, {
    ...options,
    keepInstrumentation: true,
    ...stateSections(image.suspended, image.host),
  }, false));
}

/** A `StateReader` over an image. */
function imageReader(durable: DurableModule, image: StateImage, chunks: ImageChunks): StateReader {
  const { instrumented } = durable;
  const byIndex = new Map(image.globals.map((g) => [g.index, g]));
  return {
    readGlobal: (index) => unhex((byIndex.get(index) as { bits: string }).bits) as GlobalBits,
    readRefGlobal: (index) => (byIndex.get(index) as { ref: Ref }).ref,
    readMemory(ordinal) {
      const m = image.memories[ordinal]!;
      const bytes = new Uint8Array(m.pages * 2 ** instrumented.memories[ordinal]!.pageSizeLog2);
      m.chunks.forEach((d, k) => { if (d !== null) bytes.set(chunks.get(d)!, k * image.chunkSize); });
      return bytes;
    },
    readTable(ordinal) {
      const t = image.tables[ordinal]!;
      const entries = new Int32Array(t.size).fill(-1);
      for (const [slot, first, count, step] of t.runs) for (let i = 0; i < count; i++) entries[slot + i] = first + i * step;
      return entries;
    },
    isDropped(k) {
      const d = instrumented.probe.droppable[k]!;
      return image.dropped[d.kind].includes(d.index);
    },
  };
}

/** Checks an untrusted image against the module it claims to belong to, one line per problem. */
export function checkImage(durable: DurableModule, image: StateImage, chunks: ImageChunks): void {
  const bad = (why: string): never => {
    throw new WizError('malformed', `the state image ${why}`);
  };
  const { instrumented, layout } = durable;
  const context = instrumented.context;
  if (!image || image.format !== IMAGE_FORMAT) bad(`is not of format ${IMAGE_FORMAT}`);
  if (image.module !== durable.digest) bad(`belongs to module ${String(image.module).slice(0, 19)}…, not to this one (${durable.digest.slice(0, 19)}…)`);
  const chunkSize = image.chunkSize;
  if (!Number.isInteger(Math.log2(chunkSize)) || chunkSize < 4096 || chunkSize > 1 << 24) bad(`has chunk size ${String(chunkSize)}`);
  if (!Array.isArray(image.memories) || image.memories.length !== instrumented.memories.length) bad(`has ${image.memories?.length} memories, the module defines ${instrumented.memories.length}`);
  image.memories.forEach((m, ordinal) => {
    const def = context.memories[ordinal]!;
    if (m.index !== def.index) bad(`lists memory ${m.index} where the module's memory ${def.index} is`);
    const pageSize = 2 ** def.pageSizeLog2;
    const limit = def.max ?? (def.memory64 ? 2 ** 48 / pageSize : 65536);
    if (!Number.isSafeInteger(m.pages) || m.pages < def.min || m.pages > limit) bad(`gives memory ${m.index} ${m.pages} pages (limits ${def.min}..${limit})`);
    const size = m.pages * pageSize;
    if (!Array.isArray(m.chunks) || m.chunks.length !== Math.ceil(size / chunkSize)) bad(`lists ${m.chunks?.length} chunks for memory ${m.index} of ${size} bytes`);
    m.chunks.forEach((d, k) => {
      if (d === null) return;
      const chunk = typeof d === 'string' ? chunks.get(d) : undefined;
      if (!chunk) bad(`lacks chunk ${k} of memory ${m.index} (${String(d).slice(0, 12)}…)`);
      if (chunk!.length !== Math.min(chunkSize, size - k * chunkSize)) bad(`has chunk ${k} of memory ${m.index} of ${chunk!.length} bytes`);
    });
  });
  const expected = new Map(instrumented.globals.map((g) => [g.index, g]));
  if (!Array.isArray(image.globals) || image.globals.length !== expected.size) bad(`lists ${image.globals?.length} globals, the module has ${expected.size} mutable ones`);
  const functionCount = context.importedFunctions + context.functionTypes.length;
  const seen = new Set<number>();
  for (const g of image.globals) {
    const def = expected.get(g.index);
    if (!def || seen.has(g.index) || g.type !== def.type) bad(`lists global ${g.index} (${g.type}), not a mutable global of the module of that type`);
    seen.add(g.index);
    if (def!.top) {
      const ref = (g as { ref?: unknown }).ref;
      if (!('ref' in g) || (ref !== null && !(Number.isSafeInteger(ref) && (ref as number) >= 0 && (ref as number) < functionCount))) bad(`gives global ${g.index} a reference to no function of the module`);
    } else if (!('bits' in g) || typeof g.bits !== 'string' || !/^[0-9a-f]*$/.test(g.bits) || g.bits.length !== 2 * GLOBAL_SIZE[g.type]!) bad(`gives global ${g.index} (${g.type}) bits of the wrong size`);
  }
  if (!Array.isArray(image.tables) || image.tables.length !== instrumented.tables.length) bad(`lists ${image.tables?.length} tables, the module defines ${instrumented.tables.length}`);
  image.tables.forEach((t, ordinal) => {
    const def = context.tables[ordinal]!;
    if (t.index !== def.index || !Number.isSafeInteger(t.size) || t.size < def.min || (def.max !== undefined && t.size > def.max) || t.size > 10_000_000) bad(`gives table ${t.index} size ${t.size}`);
    if (def.top !== 'func' && t.runs.length > 0) bad(`holds references in table ${t.index} (${def.type}), which wiz can restore only for function tables`);
    for (const run of t.runs) {
      const [slot, first, count, step] = run;
      const ok = run.length === 4 && [slot, first, count].every((v) => Number.isSafeInteger(v) && v >= 0) && (step === 0 || step === 1)
        && slot + count <= t.size && first + (count - 1) * step < functionCount;
      if (!ok) bad(`has a run of table ${t.index} outside the table or the module's functions`);
    }
  });
  for (const kind of ['data', 'elem'] as const) {
    const list = image.dropped?.[kind];
    if (!Array.isArray(list) || list.some((i) => !layout.droppable.some((d) => d.kind === kind && d.index === i))) bad(`names dropped ${kind} segments the module cannot drop`);
  }
  if (image.suspended !== undefined) checkSuspended(context, layout, image.suspended);
  if (image.journal !== undefined) {
    const j = image.journal as Partial<JournalState> | null;
    if (!j || typeof j !== 'object' || !Number.isSafeInteger(j.position) || j.position! < 0) bad('has a journal record without a position');
    if (j!.returned !== undefined && typeof j!.returned !== 'string') bad('has a journal record whose returned line is not text');
    const next = j!.next as Partial<NonNullable<JournalState['next']>> | undefined;
    if (next !== undefined) {
      const entry = next?.entry;
      if (!next || typeof next.initialize !== 'boolean' || !entry || typeof entry.name !== 'string' || !Array.isArray(entry.args)) bad('plans a run that is not an export call');
      if (image.suspended) bad('plans a run while suspended');
      const type = context.exports.find((e) => e.name === entry!.name && e.kind === 'func');
      if (!type) bad(`plans a run of "${String(entry!.name)}", which the module does not export as a function`);
    }
  }
}

/** Runs of non-null table slots: consecutive function indices (step 1) or one repeated index (step 0). */
function tableRuns(entries: Int32Array, index: number): [number, number, number, number][] {
  const runs: [number, number, number, number][] = [];
  for (let slot = 0; slot < entries.length;) {
    const f = entries[slot]!;
    if (f === -1) { slot++; continue; }
    if (f < -1) throw new WizError('unsupported', `table ${index} holds objects a state image cannot hold`);
    let count = 1;
    const step = entries[slot + 1] === f ? 0 : 1;
    while (slot + count < entries.length && entries[slot + count] === f + count * step) count++;
    runs.push([slot, f, count, step]);
    slot += count;
  }
  return runs;
}

/** 32-bit words over a view, when it is aligned (chunks of memory always are). */
const words = (view: Uint8Array) => (view.byteOffset % 4 === 0 && view.length % 4 === 0 ? new Uint32Array(view.buffer, view.byteOffset, view.length / 4) : undefined);

function isZero(view: Uint8Array): boolean {
  const w = words(view);
  if (w) {
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < view.length; i++) if (view[i] !== 0) return false;
  return true;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const x = words(a);
  const y = words(b);
  if (x && y) {
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The byte ranges of memory `index` that a fresh instance may hold non-zero: what its active data segments with
 * constant offsets write; everything, when a start function ran or an offset is not a constant.
 */
function writtenByInstantiation(durable: DurableModule, index: number): [number, number][] | 'all' {
  const context = durable.instrumented.context;
  if (context.start !== undefined) return 'all';
  const ranges: [number, number][] = [];
  for (const s of context.dataSegments) {
    if (s.mode !== 'active' || s.memory !== index || s.length === 0) continue;
    const offset = constOffset(context.bytes, s.start, s.memory);
    if (offset === undefined) return 'all';
    ranges.push([offset, offset + s.length]);
  }
  return ranges;
}

/** The constant offset of an active data segment entry (`i32.const` / `i64.const`), or undefined. */
function constOffset(bytes: Uint8Array, start: number, memory: number): number | undefined {
  let at = start;
  const flags = bytes[at++]!;
  if (flags === 2) while (bytes[at++]! & 0x80); // the memory index
  else if (flags !== 0 || memory !== 0) return undefined;
  const op = bytes[at++];
  if (op !== 0x41 && op !== 0x42) return undefined;
  let value = 0;
  let scale = 1;
  let byte: number;
  do {
    byte = bytes[at++]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
  } while (byte & 0x80 && scale < 2 ** 70);
  if (byte & 0x40) value -= scale; // negative: an offset past 2^31 read as i32
  if (bytes[at] !== 0x0b) return undefined;
  return value < 0 ? value + 2 ** 32 : value;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const unhex = (text: string) => Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
