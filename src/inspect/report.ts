// The size report of a snapshot: measured on the input and output modules alone, so it reports what the
// segment builder did, not what it was meant to do.
import { isComponent, parseComponent } from '../component/binary.ts';
import { parseModule, skipConstExpr } from '../parse/module.ts';
import { BinaryReader } from '../parse/reader.ts';
import type { ModuleContext } from '../parse/types.ts';
import { scanRuns } from '../snapshot/segments.ts';

export interface DataSummary {
  segments: number;
  /** Payload bytes of all data segments. */
  bytes: number;
  /** Bytes of the data section, header included (0 when there is none). */
  sectionSize: number;
}

export interface SizeReport {
  inputSize: number;
  outputSize: number;
  dataBefore: DataSummary;
  dataAfter: DataSummary;
  /** The output's active segments: the snapshot of memory. */
  snapshot: {
    segments: number;
    /** Payload bytes, of which `nonZeroBytes` are non-zero: the rest are the zero gaps merging wrote. */
    bytes: number;
    nonZeroBytes: number;
    /** Maximal runs of non-zero bytes: the segments there would be without merging. */
    runs: number;
    /** Bytes of the segment entries (flags, offset expression, length, payload). */
    entryBytes: number;
    /** What the entries would take with one segment per run. */
    entryBytesOnePerRun: number;
  };
}

const ulebSize = (n: number) => {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
};

const slebSize = (n: bigint) => {
  let size = 1;
  while (n >= 64n || n < -64n) {
    n >>= 7n;
    size++;
  }
  return size;
};

function summarize(ctx: ModuleContext): DataSummary {
  const section = ctx.sections.find((s) => s.id === 11);
  let bytes = 0;
  for (const s of ctx.dataSegments) bytes += payloadOf(ctx, s.start, s.end).payload.length;
  return { segments: ctx.dataSegments.length, bytes, sectionSize: section ? section.end - section.start : 0 };
}

/** An active or passive segment's flags, memory, offset (constant offsets only) and payload. */
function payloadOf(ctx: ModuleContext, start: number, end: number): { flag: number; memory: number; offset: bigint | undefined; wide: boolean; payload: Uint8Array } {
  const r = new BinaryReader(ctx.bytes, start, end);
  const flag = r.u32();
  const memory = flag === 2 ? r.u32() : 0;
  let offset: bigint | undefined;
  let wide = false;
  if (flag !== 1) {
    const exprStart = r.pos;
    skipConstExpr(r);
    const expr = new BinaryReader(ctx.bytes, exprStart, r.pos);
    const op = expr.u8();
    wide = op === 0x42;
    if (op === 0x41 || op === 0x42) {
      offset = readSleb(expr);
      if (expr.u8() !== 0x0b) offset = undefined; // extended-const arithmetic follows
    }
  }
  const payload = r.bytesView(r.u32());
  return { flag, memory, offset, wide, payload };
}

function readSleb(r: BinaryReader): bigint {
  let result = 0n;
  let shift = 0n;
  let b: number;
  do {
    b = r.u8();
    result |= BigInt(b & 0x7f) << shift;
    shift += 7n;
  } while (b & 0x80);
  return b & 0x40 ? result - (1n << shift) : result;
}

/**
 * Compares the input and output of `wiz init` or `wiz snapshot`. The runs are counted inside the output's
 * active segments: runs never straddle two segments (a gap of at least one zero separates them), so these are
 * exactly the runs the segment builder found in memory.
 */
export function sizeReport(input: Uint8Array, output: Uint8Array): SizeReport {
  const snapshot = { segments: 0, bytes: 0, nonZeroBytes: 0, runs: 0, entryBytes: 0, entryBytesOnePerRun: 0 };
  // A component: the sums over its core modules.
  const befores = modulesOf(input);
  const afters = modulesOf(output);
  for (const after of afters) countSnapshot(after, snapshot);
  return { inputSize: input.length, outputSize: output.length, dataBefore: sum(befores.map(summarize)), dataAfter: sum(afters.map(summarize)), snapshot };
}

function modulesOf(bytes: Uint8Array): ModuleContext[] {
  return isComponent(bytes) ? parseComponent(bytes).modules.map((m) => parseModule(m.bytes)) : [parseModule(bytes)];
}

function sum(summaries: DataSummary[]): DataSummary {
  return summaries.reduce((a, b) => ({ segments: a.segments + b.segments, bytes: a.bytes + b.bytes, sectionSize: a.sectionSize + b.sectionSize }), { segments: 0, bytes: 0, sectionSize: 0 });
}

function countSnapshot(after: ModuleContext, snapshot: SizeReport['snapshot']): void {
  for (const s of after.dataSegments) {
    if (s.mode !== 'active') continue;
    const seg = payloadOf(after, s.start, s.end);
    snapshot.segments++;
    snapshot.bytes += seg.payload.length;
    snapshot.entryBytes += s.end - s.start;
    const header = ulebSize(seg.flag) + (seg.flag === 2 ? ulebSize(seg.memory) : 0);
    const base = seg.offset ?? 0n;
    scanRuns(seg.payload, (start, end) => {
      snapshot.runs++;
      snapshot.nonZeroBytes += end - start;
      const offset = seg.wide ? BigInt.asIntN(64, base + BigInt(start)) : BigInt.asIntN(32, base + BigInt(start));
      snapshot.entryBytesOnePerRun += header + 1 + slebSize(offset) + 1 + ulebSize(end - start) + (end - start);
    });
  }
}
