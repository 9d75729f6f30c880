// `wiz inspect`: the module on one screen, or as JSON.
import type { ConstValue, GlobalInfo, ModuleInspection } from '../src/inspect/inspect.ts';

/** Lists longer than this are cut, with a line saying what was left out (`--json` has everything). */
const MAX_LINES = 10;

export const bytes = (n: number) => n.toLocaleString('en-US');

function value(v: ConstValue): string {
  switch (v.op) {
    case 'const': return v.type === 'v128' ? v.bits : `${v.bits}  ${v.value}`;
    case 'ref.null': return `ref.null ${v.heapType}`;
    case 'ref.func': return `ref.func ${v.func}`;
    case 'global.get': return `global.get ${v.global}`;
    case 'expr': return `expr ${v.bytes.length > 40 ? `${v.bytes.slice(0, 40)}…` : v.bytes}`;
  }
}

function counts(byKind: Record<string, number | undefined>): string {
  return Object.entries(byKind).map(([k, n]) => `${n} ${k}`).join(', ');
}

function limited<T>(items: readonly T[], line: (item: T) => string, rest: (left: T[]) => string, max = MAX_LINES): string[] {
  if (items.length <= max) return items.map(line);
  return [...items.slice(0, max - 1).map(line), rest(items.slice(max - 1))];
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

const exportedAs = (names: string[]) => (names.length ? `  exported as ${names.map((n) => JSON.stringify(n)).join(', ')}` : '');

/** The screen `wiz inspect` prints. */
export function formatInspection(name: string, m: ModuleInspection): string {
  const out: string[] = [];
  const pct = (n: number) => `${((100 * n) / m.size).toFixed(1).padStart(5)}%`;
  out.push(`${name}: ${bytes(m.size)} bytes`);

  out.push('sections');
  const nameWidth = Math.min(24, Math.max(...m.sections.map((s) => s.name.length), 4));
  const row = (label: string, size: number) => `  ${label.padEnd(nameWidth)} ${bytes(size).padStart(12)} ${pct(size)}`;
  // At most 13 standard sections: only modules with many custom sections are cut.
  out.push(...limited(m.sections, (s) => row(s.name, s.size), (left) => row(`… ${left.length} more`, left.reduce((a, s) => a + s.size, 0)), 16));

  out.push(`functions     ${m.functions.defined} defined, ${m.functions.imported} imported; ${m.types} types; start function: ${m.start ?? 'none'}`);

  if (m.memories.length === 0) out.push('memories      none');
  else {
    out.push(`memories      ${m.memories.length}  (non-zero bytes: those the active data segments place, before any code runs)`);
    out.push(...limited(m.memories, (mem) => {
      const flags = [mem.imported && 'imported', mem.shared && 'shared', mem.memory64 && 'memory64', mem.pageSize !== 65536 && `${mem.pageSize}-byte pages`].filter(Boolean).join(', ');
      return `  ${mem.index}: ${plural(mem.min, 'page')} (${mem.max === undefined ? 'no max' : `max ${mem.max}`}${flags ? `, ${flags}` : ''}), ${bytes(mem.nonZeroBytes)} non-zero bytes${exportedAs(mem.exportedAs)}`;
    }, (left) => `  … ${left.length} more memories`));
  }

  const mutable = m.globals.defined.filter((g) => g.mutable);
  out.push(`globals       ${m.globals.defined.length} defined (${mutable.length} mutable), ${m.globals.imported} imported`);
  const globalLine = (g: GlobalInfo) => `  ${String(g.index).padStart(4)} mut ${g.type.padEnd(4)} ${value(g.init)}${exportedAs(g.exportedAs)}`;
  out.push(...limited(mutable, globalLine, (left) => `  … ${left.length} more mutable globals (--json lists them all)`));

  const d = m.data;
  const kinds = [`${d.active} active`, `${d.passive} passive${d.emptyPassive ? `, ${d.emptyPassive} of them empty` : ''}`];
  out.push(`data          ${plural(d.segments, 'segment')} (${kinds.join(', ')}), ${bytes(d.bytes)} bytes${d.unplaced ? `; ${d.unplaced} at offsets not known statically` : ''}`);

  if (m.tables.length === 0) out.push('tables        none');
  else {
    out.push(`tables        ${m.tables.length}, ${plural(m.elementSegments, 'element segment')}`);
    out.push(...limited(m.tables, (t) => `  ${t.index}: ${t.type} min ${t.min} max ${t.max ?? 'none'}${t.imported ? ' (imported)' : ''}`, (left) => `  … ${left.length} more tables`));
  }

  out.push(`exports       ${m.exports.total}${m.exports.total ? `: ${counts(m.exports.byKind)}` : ''}`);
  const modules = m.imports.modules.length > 3 ? `${m.imports.modules.slice(0, 3).join(', ')}, …` : m.imports.modules.join(', ');
  out.push(`imports       ${m.imports.total}${m.imports.total ? `: ${counts(m.imports.byKind)} (from ${modules})` : ''}`);

  const inst = m.instrumentation;
  out.push(`instrumented  ${inst ? `yes: __wizer_ exports for ${plural(inst.globals, 'global')}, ${inst.memories} ${inst.memories === 1 ? 'memory' : 'memories'}, ${plural(inst.tables, 'table')} (wiz snapshot can snapshot it)` : 'no'}`);
  out.push(`provenance    ${m.provenance ? `generation ${m.provenance.generation}, parent ${m.provenance.parent}` : 'none recorded'}`);
  out.push(`init function ${m.initFunctions.length ? `exported: ${m.initFunctions.join(', ')}` : 'none exported'}`);
  return `${out.join('\n')}\n`;
}
