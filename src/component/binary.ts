import { WizError } from '../errors.ts';
import { BinaryReader } from '../parse/reader.ts';

/** `\0asm`, version 0x0d, layer 1: the preamble of a component binary. */
export const COMPONENT_PREAMBLE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);

/** Component section ids (the component model's binary format). */
export const ComponentSectionId = {
  custom: 0, coreModule: 1, coreInstance: 2, coreType: 3, component: 4, instance: 5, alias: 6, type: 7,
  canon: 8, start: 9, import: 10, export: 11, value: 12,
} as const;

/** Whether `bytes` starts like a component (the layer field of the preamble is 1). */
export function isComponent(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && [0, 1, 2, 3, 6, 7].every((i) => bytes[i] === COMPONENT_PREAMBLE[i]);
}

/** A section of a component, as a byte range of the whole binary. */
export interface ComponentSection {
  id: number;
  start: number;
  contentStart: number;
  end: number;
  /** Custom sections only. */
  name?: string;
  /** A nested component (section 4). */
  component?: ComponentContext;
  /** A core module (section 1): its ordinal among all the binary's modules, in binary order. */
  module?: number;
}

/** A core module section anywhere in the binary (nested components included). */
export interface CoreModuleSection {
  /** Ordinal among all core module sections of the binary, in binary order. */
  ordinal: number;
  /** The module's bytes (a view of the binary). */
  bytes: Uint8Array;
  /** How deep it is: 0 for the outermost component. */
  depth: number;
}

/** A top-level export of a component, as far as wiz needs it. */
export interface ComponentExport {
  name: string;
  /** The sort: 'func', 'instance', 'component', 'type', 'module' (core), …. */
  sort: string;
  /** The index it exports in its sort's index space. */
  index: number;
  /** For a function export, the index the export itself defines in the function index space. */
  definesFunc?: number;
  /** Entry position: section (index into `sections`) and entry ordinal within it. */
  section: number;
  entry: number;
}

/** A component as wiz sees it: its sections (nested components parsed too) and every core module in it. */
export interface ComponentContext {
  bytes: Uint8Array;
  start: number;
  end: number;
  sections: ComponentSection[];
  /** Every core module section of this component and the components nested in it, in binary order. */
  modules: CoreModuleSection[];
  /** Top-level only: the exports and the size of the function index space. */
  exports: ComponentExport[];
  funcCount: number;
}

const SORTS: Record<number, string> = { 0x01: 'func', 0x02: 'value', 0x03: 'type', 0x04: 'component', 0x05: 'instance' };
const CORE_SORTS: Record<number, string> = { 0x00: 'core func', 0x01: 'core table', 0x02: 'core memory', 0x03: 'core global', 0x04: 'core tag', 0x10: 'core type', 0x11: 'core module', 0x12: 'core instance' };

/**
 * Parses a component binary: its sections, nested components and core modules. Refuses, with one line each,
 * what a snapshot cannot represent: a component start function, values, and imports of core modules or
 * components (their code and state would live outside the output).
 */
export function parseComponent(bytes: Uint8Array): ComponentContext {
  if (!isComponent(bytes)) throw new WizError('malformed', 'not a WebAssembly component (bad preamble)');
  try {
    return parseLevel(bytes, 0, bytes.length, 0, []);
  } catch (e) {
    if (e instanceof WizError && e.code === 'malformed') throw new WizError('malformed', e.message.replace(/^malformed module: /, 'malformed component: '));
    throw e;
  }
}

function parseLevel(bytes: Uint8Array, start: number, end: number, depth: number, modules: CoreModuleSection[]): ComponentContext {
  const r = new BinaryReader(bytes, start, end);
  for (let i = 0; i < 8; i++) {
    if (r.u8() !== COMPONENT_PREAMBLE[i]) r.fail(depth === 0 ? 'bad preamble' : 'a nested component with a bad preamble', r.pos - 1);
  }
  const ctx: ComponentContext = { bytes, start, end, sections: [], modules, exports: [], funcCount: 0 };
  while (!r.done) {
    const sectionStart = r.pos;
    const id = r.u8();
    const size = r.u32();
    const contentStart = r.pos;
    const sectionEnd = contentStart + size;
    if (sectionEnd > end) r.fail('section extends past the end', sectionStart);
    const section: ComponentSection = { id, start: sectionStart, contentStart, end: sectionEnd };
    const where = depth === 0 ? 'the component' : 'a nested component';
    switch (id) {
      case ComponentSectionId.custom:
        section.name = new BinaryReader(bytes, contentStart, sectionEnd).name();
        break;
      case ComponentSectionId.coreModule:
        section.module = modules.length;
        modules.push({ ordinal: modules.length, bytes: bytes.subarray(contentStart, sectionEnd), depth });
        break;
      case ComponentSectionId.component:
        section.component = parseLevel(bytes, contentStart, sectionEnd, depth + 1, modules);
        break;
      case ComponentSectionId.start:
        throw new WizError('unsupported', `${where} has a start function: it runs at every instantiation and a snapshot would run it again on the state it already made, so wiz refuses components with one`);
      case ComponentSectionId.value:
        throw new WizError('unsupported', `${where} defines values (a value section): the component model's values are not supported by wiz (nor by component runtimes)`);
      case ComponentSectionId.import:
        if (depth === 0) checkImports(bytes, contentStart, sectionEnd);
        break;
    }
    if (depth === 0) countFuncs(ctx, section, ctx.sections.length);
    ctx.sections.push(section);
    r.pos = sectionEnd;
  }
  return ctx;
}

/** Refuses top-level imports whose code or state would live outside the snapshot: core modules, components, values. */
function checkImports(bytes: Uint8Array, start: number, end: number): void {
  const r = new BinaryReader(bytes, start, end);
  for (let n = r.u32(); n > 0; n--) {
    const name = externName(r);
    const kind = r.u8();
    const what = kind === 0x00 ? 'a core module' : kind === 0x04 ? 'a component' : kind === 0x02 ? 'a value' : undefined;
    if (what) {
      throw new WizError('unsupported', `the component imports ${what} ("${name}"): its ${kind === 0x02 ? 'value' : 'code and state'} would come from outside the snapshot, so wiz cannot pre-initialize it`);
    }
    skipExternDescBody(r, kind);
  }
}

/** An import or export name: a tag byte (0x00, or 0x01 in older encodings) then the name. */
function externName(r: BinaryReader): string {
  const tag = r.u8();
  if (tag !== 0x00 && tag !== 0x01) r.fail(`unknown import/export name encoding 0x${tag.toString(16)}`, r.pos - 1);
  return r.name();
}

/** Skips an externdesc after its kind byte. */
function skipExternDescBody(r: BinaryReader, kind: number): void {
  switch (kind) {
    case 0x00: r.u8(); r.u32(); break; // core module: 0x11 typeidx
    case 0x01: case 0x04: case 0x05: r.u32(); break;
    case 0x03: if (r.u8() === 0x00) r.u32(); break; // type bound: eq i | sub resource
    default: r.fail(`unknown extern kind 0x${kind.toString(16)}`, r.pos - 1);
  }
}

/** Reads a sort: its name, and the bytes it takes (1 for component sorts, 2 for core sorts). */
export function readSort(r: BinaryReader): string {
  const b = r.u8();
  if (b === 0x00) {
    const core = r.u8();
    return CORE_SORTS[core] ?? r.fail(`unknown core sort 0x${core.toString(16)}`, r.pos - 1);
  }
  return SORTS[b] ?? r.fail(`unknown sort 0x${b.toString(16)}`, r.pos - 1);
}

/**
 * Counts the definitions of the (component) function index space, in order, and records the top-level
 * exports: an export defines a new index in its sort's space, so removing one renumbers what follows.
 */
function countFuncs(ctx: ComponentContext, section: ComponentSection, sectionIndex: number): void {
  const r = new BinaryReader(ctx.bytes, section.contentStart, section.end);
  switch (section.id) {
    case ComponentSectionId.import:
      for (let n = r.u32(); n > 0; n--) {
        externName(r);
        const kind = r.u8();
        if (kind === 0x01) ctx.funcCount++;
        skipExternDescBody(r, kind);
      }
      break;
    case ComponentSectionId.alias:
      for (let n = r.u32(); n > 0; n--) {
        if (readSort(r) === 'func') ctx.funcCount++;
        const target = r.u8();
        if (target === 0x00 || target === 0x01) { r.u32(); r.name(); } else if (target === 0x02) { r.u32(); r.u32(); } else r.fail('unknown alias target', r.pos - 1);
      }
      break;
    case ComponentSectionId.canon:
      for (let n = r.u32(); n > 0; n--) {
        const op = readCanon(r);
        if (op.lift) ctx.funcCount++;
      }
      break;
    case ComponentSectionId.export: {
      let entry = 0;
      for (let n = r.u32(); n > 0; n--, entry++) {
        const name = externName(r);
        const sort = readSort(r);
        const index = r.u32();
        if (sort === 'value') throw new WizError('unsupported', `the component exports a value ("${name}"): the component model's values are not supported by wiz`);
        if (r.u8() === 0x01) skipExternDescBody(r, r.u8());
        const exp: ComponentExport = { name, sort, index, section: sectionIndex, entry };
        if (sort === 'func') exp.definesFunc = ctx.funcCount++;
        ctx.exports.push(exp);
      }
      break;
    }
  }
}

/** A canonical function entry, read: whether it lifts (defines a component function), and where its operands are. */
export interface CanonEntry {
  lift: boolean;
  /** Byte offset of the component function index a `lower` takes, and that index. */
  lowered?: { at: number; index: number };
}

/**
 * Reads one canon section entry. Only `lift` defines a component function and only `lower` refers to one; the
 * other built-ins (resources, async, threads) take types, memories and core functions, so they are skipped by
 * their known shapes, and an unknown one fails (the caller then leaves function indices alone).
 */
export function readCanon(r: BinaryReader): CanonEntry {
  const op = r.u8();
  const options = () => {
    for (let n = r.u32(); n > 0; n--) {
      const o = r.u8();
      if (o === 0x03 || o === 0x04 || o === 0x05 || o === 0x07) r.u32();
      else if (o > 0x07) r.fail(`unknown canonical option 0x${o.toString(16)}`, r.pos - 1);
    }
  };
  switch (op) {
    case 0x00: // lift: 0x00 core-func options type
      if (r.u8() !== 0x00) r.fail('bad canon lift', r.pos - 1);
      r.u32(); options(); r.u32();
      return { lift: true };
    case 0x01: { // lower: 0x00 func options
      if (r.u8() !== 0x00) r.fail('bad canon lower', r.pos - 1);
      const at = r.pos;
      const index = r.u32();
      options();
      return { lift: false, lowered: { at, index } };
    }
    case 0x02: case 0x03: case 0x04: case 0x07: // resource.new/drop/rep, resource.drop async
      r.u32();
      return { lift: false };
    default:
      return r.fail(`canonical function 0x${op.toString(16)} that wiz does not know`, r.pos - 1);
  }
}
