// `wiz diff a.wasm b.wasm`: what differs between the states two modules start with. Like `git diff --exit-code`:
// exit 0 when the states are the same, 1 when they differ; an error (bad input) is one line and exit 1 too.
import type { Command } from 'commander';
import { diffImages, diffModules, type GlobalDiff, type GlobalValue, type StateDiff, type TableRef } from '../src/diff/diff.ts';
import { isWizError, WizError } from '../src/errors.ts';
import { parseModule } from '../src/parse/module.ts';
import type { ModuleContext } from '../src/parse/types.ts';
import { readInput } from './io.ts';

const hex = (n: number) => `0x${n.toString(16)}`;

/** Slot values shown per table line; `--json` has them all. */
const MAX_SLOTS_SHOWN = 8;

function valueText(v: GlobalValue | undefined): string {
  if (!v) return '(not defined)';
  if (v.bits === undefined || v.bits === v.value) return v.bits ?? v.value;
  return `${v.bits} (${v.value})`;
}

const names = (list: string[]) => (list.length ? list.map((n) => JSON.stringify(n)).join(', ') : 'nothing');

function globalLine(g: GlobalDiff): string {
  const exported = g.exportedAs.length ? ` ${g.exportedAs.map((n) => JSON.stringify(n)).join(', ')}` : '';
  const type = g.old && g.new && g.old.type !== g.new.type ? `${g.old.type} -> ${g.new.type}` : (g.new ?? g.old)!.type;
  const parts: string[] = [];
  const oldText = valueText(g.old);
  const newText = valueText(g.new);
  if (oldText !== newText || g.old?.type !== g.new?.type) parts.push(`${oldText} -> ${newText}`);
  if (g.oldExportedAs) parts.push(`exported as ${names(g.oldExportedAs)} -> ${names(g.exportedAs)}`);
  return `global ${g.index}${exported} ${type}: ${parts.join('; ')}`;
}

function slotsText(refs: TableRef[]): string {
  const shown = refs.slice(0, MAX_SLOTS_SHOWN).map((r) => (r === null ? 'null' : typeof r === 'number' ? `func ${r}` : r));
  return `${shown.join(', ')}${refs.length > MAX_SLOTS_SHOWN ? `, … (${refs.length - MAX_SLOTS_SHOWN} more)` : ''}`;
}

const size = (n: number | undefined, unit: string) => (n === undefined ? '(not defined)' : `${n} ${unit}${n === 1 ? '' : 's'}`);

/** One line per difference: globals, sizes, memory ranges, table slots, other notes. */
export function formatDiff(d: StateDiff): string[] {
  return [
    ...d.globals.map(globalLine),
    ...d.sizes.map((s) => `${s.kind} ${s.index}: ${size(s.old, s.kind === 'memory' ? 'page' : 'slot')} -> ${size(s.new, s.kind === 'memory' ? 'page' : 'slot')}`),
    ...d.memories.map((m) => `memory ${m.memory} [${hex(m.start)}, ${hex(m.end)}): ${m.bytes} ${m.bytes === 1 ? 'byte differs' : 'bytes differ'}`),
    ...d.tables.map((t) => `table ${t.table} [${t.start}, ${t.end}): ${slotsText(t.old)} -> ${slotsText(t.new)}`),
    ...d.notes,
  ];
}

/** Reads and parses a module; an error names the file it is about. */
function readModule(path: string): ModuleContext {
  const bytes = readInput(path);
  try {
    return parseModule(bytes);
  } catch (e) {
    if (isWizError(e)) throw new WizError(e.code, `${path === '-' ? 'stdin' : path}: ${e.message}`);
    throw e;
  }
}

/** Compares two state images of a store, each named `ID` or `ID@GENERATION`. */
async function diffStored(dir: string, a: string, b: string): Promise<StateDiff> {
  const { openStore } = await import('./stores/open.ts');
  const store = await openStore(dir, 'sqlite', { create: false });
  try {
    const load = async (ref: string) => {
      const at = ref.lastIndexOf('@');
      const id = at < 0 ? ref : ref.slice(0, at);
      const generation = at < 0 ? undefined : Number(ref.slice(at + 1));
      if (generation !== undefined && !(Number.isSafeInteger(generation) && generation >= 0)) throw new WizError('usage', `"${ref}" is not of the form ID[@GENERATION]`);
      const saved = await store.load(id, generation);
      if (!saved) throw new WizError('usage', `no worker "${id}"${generation === undefined ? '' : ` generation ${generation}`} in ${dir}`);
      return saved;
    };
    const [x, y] = [await load(a), await load(b)];
    return diffImages(x.image, y.image, x.chunks, y.chunks);
  } finally {
    await store.close();
  }
}

export function addDiffCommand(cli: Command): void {
  cli.command('diff')
    .description('compare the state two modules start with (globals, memories, tables, as instantiation makes them); exit 0 when the same, 1 when they differ or on an error')
    .argument('<a>', 'the first module (.wasm file, or - for stdin); with --store, a worker ID[@GENERATION]')
    .argument('<b>', 'the second module (.wasm file, or - for stdin); with --store, a worker ID[@GENERATION]')
    .option('--json', 'print the whole comparison as JSON')
    .option('--store <dir>', 'compare state images of a store\'s workers (latest generation unless @N is given)')
    .action(async (a: string, b: string, opts: { json?: boolean; store?: string }) => {
      if (a === '-' && b === '-') throw new WizError('usage', 'wiz diff reads at most one of its two modules from stdin');
      const diff = opts.store === undefined ? diffModules(readModule(a), readModule(b)) : await diffStored(opts.store, a, b);
      if (opts.json) process.stdout.write(`${JSON.stringify(diff, null, 2)}\n`);
      else if (!diff.same) process.stdout.write(`${formatDiff(diff).join('\n')}\n`);
      if (!diff.same) process.exitCode = 1;
    });
}
