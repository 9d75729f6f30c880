// What `wiz asyncify` adds to a module for durable runs, recorded in its `wiz.durable` custom section: which
// imports may suspend, wiz's own memory (the unwound stack and a save area for globals), and the accessor
// functions that read and write the module's state without compiling anything at run time. The section is a
// claim made by whoever wrote the file: `readLayout` checks every part of it against the module.
import { WizError } from '../errors.ts';
import { instrumentationOf, type DroppableSegment } from '../instrument/instrument.ts';
import { BinaryReader } from '../parse/reader.ts';
import { findSection, functionType, SectionId } from '../parse/module.ts';
import type { ModuleContext, ValType } from '../parse/types.ts';
import { BinaryWriter } from '../parse/writer.ts';

export const LAYOUT_SECTION = 'wiz.durable';
export const LAYOUT_FORMAT = 'wiz.durable/1';
/** The custom section of a state `.wasm` that records the call it is suspended in. */
export const SUSPENDED_SECTION = 'wiz.suspended';
/** The custom section of a state `.wasm` that keeps what the host keeps for the program (JSON, the host's to check). */
export const HOST_SECTION = 'wiz.host';

/** Export names of wiz's runtime in a durable module. */
export const RUNTIME = {
  saveGlobals: '__wiz_save_globals',
  loadGlobals: '__wiz_load_globals',
  drop: '__wiz_drop',
  dropped: '__wiz_dropped',
  functions: '__wiz_functions',
} as const;

/** Asyncify's exports (Binaryen's names). */
export const ASYNCIFY = {
  startUnwind: 'asyncify_start_unwind',
  stopUnwind: 'asyncify_stop_unwind',
  startRewind: 'asyncify_start_rewind',
  stopRewind: 'asyncify_stop_rewind',
  getState: 'asyncify_get_state',
} as const;

/** A global saved by `__wiz_save_globals` at `offset` of wiz's memory. */
export interface SavedGlobal {
  index: number;
  type: ValType;
  offset: number;
}

export interface DurableLayout {
  format: typeof LAYOUT_FORMAT;
  /** The imports that may suspend, as `module.name`. */
  suspendOn: string[];
  /** wiz's memory (memory index space): the globals' save area at 0, then the unwind buffer. */
  memory: number;
  globals: SavedGlobal[];
  /** The unwind buffer [start, end) in wiz's memory. */
  buffer: { start: number; end: number };
  /** The passive segments `__wiz_dropped(k)` and `__wiz_drop(k)` test and drop, by position k. */
  droppable: DroppableSegment[];
  /** Asyncify's globals: its state, and the pointer to the buffer it unwinds into (reset when a call completes). */
  asyncify: { state: number; data: number };
}

const SIZE: Record<string, number> = { i32: 4, i64: 8, f32: 4, f64: 8, v128: 16 };
const STORE: Record<string, number[]> = { i32: [0x36], i64: [0x37], f32: [0x38], f64: [0x39], v128: [0xfd, 0x0b] };
const LOAD: Record<string, number[]> = { i32: [0x28], i64: [0x29], f32: [0x2a], f64: [0x2b], v128: [0xfd, 0x00] };

/** The save area for a module's defined mutable numeric globals: each at its offset, 16-byte aligned overall. */
export function savedGlobals(context: ModuleContext): { globals: SavedGlobal[]; size: number } {
  let size = 0;
  const globals: SavedGlobal[] = [];
  for (const g of instrumentationOf(context).globals) {
    if (g.top) continue;
    const bytes = SIZE[g.type];
    if (bytes === undefined) throw new WizError('unsupported', `global ${g.index} has type ${g.type}, which wiz cannot save`);
    size = Math.ceil(size / bytes) * bytes;
    globals.push({ index: g.index, type: g.type, offset: size });
    size += bytes;
  }
  return { globals, size: Math.ceil(size / 16) * 16 };
}

/** `(func)` storing (`save`) or loading each saved global at its offset of memory `memory`. */
export function globalsBody(globals: readonly SavedGlobal[], memory: number, save: boolean): BinaryWriter {
  const body = new BinaryWriter().u32(0);
  for (const g of globals) {
    const align = Math.log2(SIZE[g.type]!);
    const memarg = (w: BinaryWriter) => w.u32(align | 0x40).u32(memory).u32(0);
    body.byte(0x41).s32(g.offset);
    if (save) {
      body.byte(0x23).u32(g.index);
      for (const b of STORE[g.type]!) body.byte(b);
      memarg(body);
    } else {
      for (const b of LOAD[g.type]!) body.byte(b);
      memarg(body);
      body.byte(0x24).u32(g.index);
    }
  }
  return body.byte(0x0b);
}

/** `(func (param i32))` running, for k, `data.drop` / `elem.drop` of the k-th droppable segment. */
export function dropBody(droppable: readonly DroppableSegment[]): BinaryWriter {
  const k = droppable.length;
  const body = new BinaryWriter().u32(0);
  for (let i = 0; i <= k; i++) body.byte(0x02).byte(0x40);
  body.byte(0x20).u32(0).byte(0x0e).u32(k);
  for (let i = 0; i <= k; i++) body.u32(i);
  for (const d of droppable) {
    body.byte(0x0b).byte(0xfc).u32(d.kind === 'data' ? 9 : 13).u32(d.index).byte(0x0f);
  }
  return body.byte(0x0b).byte(0x0b);
}

export function encodeLayout(layout: DurableLayout): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(layout));
}

/** The body of custom section `name` (after its name), or undefined. */
export function customSection(context: ModuleContext, name: string): Uint8Array | undefined {
  const section = context.sections.find((s) => s.id === SectionId.custom && s.name === name);
  if (!section) return undefined;
  const r = new BinaryReader(context.bytes, section.contentStart, section.end);
  r.name();
  return context.bytes.subarray(r.pos, section.end);
}

/** Parses a JSON custom section, one line on failure. */
export function jsonSection(context: ModuleContext, name: string): unknown {
  const body = customSection(context, name);
  if (body === undefined) return undefined;
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new WizError('malformed', `the module's "${name}" section is not valid JSON`);
  }
}

const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * The layout of a durable module, checked against the module: the memory is a defined memory wiz's buffer and
 * save area fit in, the saved globals are exactly its defined mutable numeric globals at the offsets wiz gives
 * them, the runtime exports exist with their types and (for the accessors) the very code wiz writes, the
 * suspending imports are function imports. Undefined when the module has no `wiz.durable` section.
 */
export function readLayout(context: ModuleContext): DurableLayout | undefined {
  const raw = jsonSection(context, LAYOUT_SECTION) as Partial<DurableLayout> | undefined;
  if (raw === undefined) return undefined;
  const bad = (why: string): never => {
    throw new WizError('instrumentation', `the module's durable layout (${LAYOUT_SECTION}) ${why}`);
  };
  if (raw === null || typeof raw !== 'object' || raw.format !== LAYOUT_FORMAT) bad(`is not of format ${LAYOUT_FORMAT}`);
  if (!Array.isArray(raw.suspendOn) || raw.suspendOn.some((s) => typeof s !== 'string')) bad('lacks its list of suspending imports');
  for (const spec of raw.suspendOn!) {
    const imp = context.imports.find((i) => `${i.module}.${i.name}` === spec);
    if (!imp || imp.kind !== 'func') bad(`names "${spec}" as a suspending import, which the module does not import as a function`);
  }
  const memory = context.memories.find((m) => m.index === raw.memory);
  if (!isIndex(raw.memory) || !memory) bad(`names memory ${String(raw.memory)}, which the module does not define`);
  const { globals, size } = savedGlobals(context);
  if (JSON.stringify(raw.globals) !== JSON.stringify(globals)) bad('does not list the module\'s mutable globals where wiz saves them');
  const buffer = raw.buffer;
  const bytes = memory!.min * 2 ** memory!.pageSizeLog2;
  if (!buffer || !isIndex(buffer.start) || !isIndex(buffer.end) || buffer.start < size || buffer.start % 16 !== 0 || buffer.end <= buffer.start + 8 || buffer.end > bytes) {
    bad('gives an unwind buffer outside wiz\'s memory');
  }
  if (memory!.memory64 || memory!.max !== memory!.min) bad(`names memory ${raw.memory}, which is not a fixed-size 32-bit memory`);
  const droppable = raw.droppable;
  if (!Array.isArray(droppable) || droppable.some((d) => !d || (d.kind !== 'data' && d.kind !== 'elem') || !isIndex(d.index)
    || (d.kind === 'data' ? context.dataSegments[d.index]?.mode !== 'passive' : context.elementSegments[d.index]?.mode !== 'passive' && context.elementSegments[d.index]?.mode !== 'declarative'))) {
    bad('lists droppable segments the module does not have');
  }
  const asyncify = raw.asyncify;
  const saved = (i: unknown) => globals.some((g) => g.index === i && g.type === 'i32');
  if (!asyncify || !saved(asyncify.state) || !saved(asyncify.data) || asyncify.state === asyncify.data) bad('does not name Asyncify\'s globals among the module\'s mutable i32 globals');
  const layout: DurableLayout = {
    format: LAYOUT_FORMAT, suspendOn: raw.suspendOn!, memory: raw.memory!, globals, buffer: { start: buffer!.start, end: buffer!.end },
    droppable: droppable!.map((d) => ({ kind: d.kind, index: d.index })), asyncify: { state: asyncify!.state, data: asyncify!.data },
  };
  checkRuntime(context, layout);
  return layout;
}

/** Checks the runtime's exports: Asyncify's with their types, and wiz's accessors with exactly wiz's code. */
function checkRuntime(context: ModuleContext, layout: DurableLayout): void {
  const fn = (name: string, params: string[], results: string[]): number => {
    const e = context.exports.find((x) => x.name === name);
    const type = e?.kind === 'func' ? functionType(context, e.index) : undefined;
    if (!e || type?.kind !== 'func' || type.params.join() !== params.join() || type.results.join() !== results.join()) {
      throw new WizError('instrumentation', `the durable module lacks the export "${name}" of type [${params.join(' ')}] -> [${results.join(' ')}]`);
    }
    if (e.index < context.importedFunctions) throw new WizError('instrumentation', `the durable module's export "${name}" is an import`);
    return e.index;
  };
  fn(ASYNCIFY.startUnwind, ['i32'], []);
  fn(ASYNCIFY.stopUnwind, [], []);
  fn(ASYNCIFY.startRewind, ['i32'], []);
  fn(ASYNCIFY.stopRewind, [], []);
  fn(ASYNCIFY.getState, [], ['i32']);
  const expect = (name: string, params: string[], body: BinaryWriter) => {
    const actual = functionBody(context, fn(name, params, []));
    const wanted = body.finish();
    if (actual.length !== wanted.length || actual.some((b, i) => b !== wanted[i])) {
      throw new WizError('instrumentation', `the durable module's "${name}" is not the code wiz writes for its layout`);
    }
  };
  expect(RUNTIME.saveGlobals, [], globalsBody(layout.globals, layout.memory, true));
  expect(RUNTIME.loadGlobals, [], globalsBody(layout.globals, layout.memory, false));
  expect(RUNTIME.drop, ['i32'], dropBody(layout.droppable));
}

/** The body (locals and code) of defined function `index`, as bytes of the module. */
export function functionBody(context: ModuleContext, index: number): Uint8Array {
  const section = findSection(context, SectionId.code);
  const k = index - context.importedFunctions;
  if (!section || k < 0) throw new WizError('malformed', `function ${index} has no body`);
  const r = new BinaryReader(context.bytes, section.contentStart, section.end);
  const count = r.u32();
  if (k >= count) throw new WizError('malformed', `function ${index} has no body`);
  for (let i = 0; i < k; i++) {
    const size = r.u32();
    r.pos += size;
  }
  const size = r.u32();
  return context.bytes.subarray(r.pos, r.pos + size);
}
