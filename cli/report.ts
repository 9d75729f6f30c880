// The size report of `wiz init` / `wiz snapshot` (`--report`, `-v`), for stderr.
import type { SizeReport } from '../src/inspect/report.ts';
import { bytes } from './inspect.ts';
import type { Optimized } from './optimize.ts';

const segments = (n: number) => `${bytes(n)} segment${n === 1 ? '' : 's'}`;
const signed = (n: number) => `${n >= 0 ? '+' : '-'}${bytes(Math.abs(n))}`;
/** A change as a percentage, or as a factor when the size grew more than tenfold (a small module, a big memory). */
const percent = (part: number, whole: number) => {
  if (whole === 0) return '';
  if (part > 9 * whole) return ` (×${Math.round((whole + part) / whole).toLocaleString('en-US')})`;
  return ` (${part >= 0 ? '+' : ''}${((100 * part) / whole).toFixed(1)}%)`;
};

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
    `data       ${segments(r.dataBefore.segments)}, ${bytes(r.dataBefore.bytes)} bytes -> ${segments(r.dataAfter.segments)}, ${bytes(r.dataAfter.bytes)} bytes: ${signed(r.dataAfter.bytes - r.dataBefore.bytes)} bytes of data (data section ${bytes(r.dataBefore.sectionSize)} -> ${bytes(r.dataAfter.sectionSize)})`,
    `snapshot   ${s.segments} active ${s.segments === 1 ? 'segment' : 'segments'}, ${bytes(s.bytes)} bytes: ${bytes(s.nonZeroBytes)} non-zero bytes in ${bytes(s.runs)} runs, ${bytes(s.bytes - s.nonZeroBytes)} zero bytes between merged runs`,
    `merging    ${bytes(s.runs)} runs -> ${segments(s.segments)}: ${bytes(s.entryBytes)} bytes of segment entries instead of ${bytes(s.entryBytesOnePerRun)} with one segment per run (${saved >= 0 ? `saved ${bytes(saved)}` : `cost ${bytes(-saved)}`})`,
  ];
  if (optimized) {
    const after = optimized.bytes.length;
    lines.push(`optimize   ${bytes(optimized.before)} -> ${bytes(after)} bytes  ${signed(after - optimized.before)}${percent(after - optimized.before, optimized.before)} in ${(optimized.ms / 1000).toFixed(2)} s (Binaryen -Os; features: ${optimized.features.join(', ') || 'none beyond MVP'}; names ${optimized.keptNames ? 'kept' : 'none'})`);
  }
  return `${lines.map((l) => `wiz: ${l}`).join('\n')}\n`;
}
