// The size report of `wiz init` / `wiz snapshot` (`--report`, `-v`), for stderr.
import type { SizeReport } from '../src/inspect/report.ts';
import { bytes } from './inspect.ts';
import type { Optimized } from './optimize.ts';

const signed = (n: number) => `${n >= 0 ? '+' : '-'}${bytes(Math.abs(n))}`;
const percent = (part: number, whole: number) => (whole === 0 ? '' : ` (${part >= 0 ? '+' : ''}${((100 * part) / whole).toFixed(1)}%)`);

/**
 * `r` compares the input with the snapshot as wiz wrote it (before `--optimize`); `optimized`, when given, is
 * what Binaryen made of that snapshot.
 */
export function formatReport(r: SizeReport, optimized?: Optimized & { before: number; ms: number }): string {
  const s = r.snapshot;
  const saved = s.entryBytesOnePerRun - s.entryBytes;
  const lines = [
    `input      ${bytes(r.inputSize).padStart(12)} bytes`,
    `output     ${bytes(r.outputSize).padStart(12)} bytes  ${signed(r.outputSize - r.inputSize)}${percent(r.outputSize - r.inputSize, r.inputSize)}${optimized ? ' (before --optimize)' : ''}`,
    `data       ${r.dataBefore.segments} segments, ${bytes(r.dataBefore.bytes)} bytes -> ${r.dataAfter.segments} segments, ${bytes(r.dataAfter.bytes)} bytes: ${signed(r.dataAfter.bytes - r.dataBefore.bytes)} bytes of data (data section ${bytes(r.dataBefore.sectionSize)} -> ${bytes(r.dataAfter.sectionSize)})`,
    `snapshot   ${s.segments} active segments, ${bytes(s.bytes)} bytes: ${bytes(s.nonZeroBytes)} non-zero bytes in ${bytes(s.runs)} runs, ${bytes(s.bytes - s.nonZeroBytes)} zero bytes between merged runs`,
    `merging    ${bytes(s.runs)} runs -> ${s.segments} segments: ${bytes(s.entryBytes)} bytes of segment entries instead of ${bytes(s.entryBytesOnePerRun)} with one segment per run (${saved >= 0 ? `saved ${bytes(saved)}` : `cost ${bytes(-saved)}`})`,
  ];
  if (optimized) {
    const after = optimized.bytes.length;
    lines.push(`optimize   ${bytes(optimized.before)} -> ${bytes(after)} bytes  ${signed(after - optimized.before)}${percent(after - optimized.before, optimized.before)} in ${(optimized.ms / 1000).toFixed(2)} s (Binaryen -Os; features: ${optimized.features.join(', ') || 'none beyond MVP'}; names ${optimized.keptNames ? 'kept' : 'none'})`);
  }
  return `${lines.map((l) => `wiz: ${l}`).join('\n')}\n`;
}
