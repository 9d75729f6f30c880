// State images: the state of a live instance of a durable module as plain data (JSON-able) plus content-addressed
// memory chunks, so that it can be stored, diffed, restored into a fresh instance of the same module without
// compiling anything, or materialized into a `.wasm`.
import type { ValType } from '../parse/types.ts';

export const IMAGE_FORMAT = 'wiz.image/1';

/** Default size of a memory chunk: one 64 KiB page (measured: see the README's durable-execution section). */
export const DEFAULT_CHUNK_SIZE = 1 << 16;

/** A call in a run: an export or an import, with its arguments as the JS API passes them. */
export interface CallRecord {
  /** `module.name` for an import, the export's name for an export. */
  name: string;
  /** As `--invoke` prints and reads them (decimal integers, `NaN`, `-0`, `Infinity`): JSON has no BigInt or NaN. */
  args: string[];
}

/** A program stopped inside a suspending import: what the resumed run must call and answer. */
export interface SuspendedCall {
  /** The export the run entered, with its arguments; a resume calls it again to rewind. */
  entry: CallRecord;
  /** The suspending import the program waits in, with the arguments it passed. */
  pending: CallRecord;
  /** Address of the unwound stack's header in wiz's memory (Asyncify's data structure). */
  buffer: number;
  /** Stopped for a save, not waiting: resuming makes the pending call (no answer is given). */
  checkpoint?: boolean;
}

/** Where a journaled worker's state stands in its journal of host calls. */
export interface JournalState {
  /** The journal entries before this position are in the state; replay starts here. */
  position: number;
  /** A run planned and not begun: on recovery, `_initialize` (when `initialize`) and then `entry` are called. */
  next?: { initialize: boolean; entry: CallRecord };
  /** The line of the run that returned last (`main(3) = 7`): a host that died before it said it can say it. */
  returned?: string;
}

export interface ImageMemory {
  /** Index in the memory index space. */
  index: number;
  pages: number;
  /** One entry per chunk of `chunkSize` bytes: the chunk's digest (lowercase hex SHA-256), or null for all zero. */
  chunks: (string | null)[];
}

export type ImageGlobal =
  /** A numeric or vector global: its little-endian bits as lowercase hex (8, 16 or 32 digits). */
  | { index: number; type: ValType; bits: string }
  /** A reference-typed global: a function index of the module, or null. */
  | { index: number; type: ValType; ref: number | null };

export interface ImageTable {
  index: number;
  size: number;
  /**
   * Non-null slots as runs `[slot, first, length, step]`: slots slot … slot+length-1 hold function indices first,
   * first+step, … (step 0 or 1). Slots in no run are null.
   */
  runs: [number, number, number, number][];
}

/** The state of an instance, as data. Chunks are kept apart, by digest (see `ImageChunks`). */
export interface StateImage {
  format: typeof IMAGE_FORMAT;
  /** `sha256:<hex>` of the bytes of the module this state belongs to. */
  module: string;
  chunkSize: number;
  memories: ImageMemory[];
  globals: ImageGlobal[];
  tables: ImageTable[];
  dropped: { data: number[]; elem: number[] };
  /** Present when the program is suspended inside a call. */
  suspended?: SuspendedCall;
  /** What the host keeps for the program beside its state (the CLI: `--deterministic`'s streams); the host checks it. */
  host?: Record<string, unknown>;
  /** Present for a journaled worker: the journal position the state covers, and a planned run. */
  journal?: JournalState;
}

/** Chunk contents by digest (lowercase hex SHA-256 of the bytes). */
export type ImageChunks = ReadonlyMap<string, Uint8Array>;

/**
 * Node's one-shot hash where the host has it (Node 21.7+, reached without importing a Node module, so the core
 * stays isomorphic): synchronous, and about three times as fast on 64 KiB chunks as WebCrypto's per-call job.
 */
type NodeHash = (algorithm: string, data: Uint8Array, encoding: string) => string;
let nodeHashFound: NodeHash | undefined | null = null;
/** Looked up on first use: loading node:crypto costs a run that never hashes milliseconds of start-up. */
const nodeHash = (): NodeHash | undefined => {
  if (nodeHashFound !== null) return nodeHashFound;
  const process = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const crypto = process?.getBuiltinModule?.('node:crypto') as { hash?: NodeHash } | undefined;
  return (nodeHashFound = typeof crypto?.hash === 'function' ? crypto.hash : undefined);
};

/** Lowercase hex SHA-256 of `bytes` (Node's hash, else WebCrypto: browsers' secure contexts, workers). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const hash = nodeHash();
  if (hash) return hash('sha256', bytes, 'hex');
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error('WebCrypto (crypto.subtle) is not available in this context');
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}
