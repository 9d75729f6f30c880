// `--optimize`: Binaryen's optimizer on the output, with only the features the module already uses, so that it
// removes what only init needed without making the module need more of the engine.
import { createRequire } from 'node:module';
import { renameInstrumentation } from '../src/instrument/instrument.ts';
import { WizError } from '../src/errors.ts';
import { parseModule } from '../src/parse/module.ts';
import type { Section } from '../src/parse/types.ts';
import { concat } from '../src/parse/writer.ts';

/** The optimization level, as wasm-opt's `-Os`: the default passes, also aiming at code size. */
export const OPTIMIZE_FLAGS = '-Os';

export interface Optimized {
  bytes: Uint8Array;
  /** Binaryen's feature flags the module was optimized with, as wasm-opt spells them. */
  features: string[];
  /** Whether the name section was kept (it is when the input has one). */
  keptNames: boolean;
  ms: number;
}

type Binaryen = typeof import('binaryen').default;

/** Binaryen's JS API; its validator prints to the console, which `quiet` silences while wiz probes features. */
let loaded: { binaryen: Binaryen; quiet: { on: boolean } } | undefined;

/** Fails at once, before any init runs, when Binaryen is not installed. */
export function requireBinaryen(): void {
  try {
    createRequire(import.meta.url).resolve('binaryen');
  } catch {
    throw new WizError('usage', '--optimize needs Binaryen: npm install binaryen (next to wiz)');
  }
}

async function loadBinaryen(): Promise<NonNullable<typeof loaded>> {
  if (loaded) return loaded;
  requireBinaryen();
  // Binaryen binds console.log and console.error when it loads: wrap them first, so its output can be switched off.
  const quiet = { on: false };
  const { log, error } = console;
  console.log = (...a: unknown[]) => { if (!quiet.on) log(...a); };
  console.error = (...a: unknown[]) => { if (!quiet.on) error(...a); };
  try {
    const binaryen = (await import('binaryen')).default;
    loaded = { binaryen, quiet };
  } finally {
    console.log = log;
    console.error = error;
  }
  return loaded;
}

/** Binaryen's features, from the most to the least specific: the probe drops them in this order. */
const FEATURES: [string, keyof Binaryen['Features']][] = [
  ['stack-switching', 'StackSwitching'], ['strings', 'Strings'], ['shared-everything', 'SharedEverything'],
  ['fp16', 'FP16'], ['wide-arithmetic', 'WideArithmetic'], ['multibyte', 'Multibyte'], ['relaxed-atomics', 'RelaxedAtomics'],
  ['custom-page-sizes', 'CustomPageSizes'], ['gc', 'GC'], ['exception-handling', 'ExceptionHandling'],
  ['tail-call', 'TailCall'], ['relaxed-simd', 'RelaxedSIMD'], ['simd', 'SIMD128'], ['memory64', 'Memory64'],
  ['multimemory', 'MultiMemory'], ['threads', 'Atomics'], ['extended-const', 'ExtendedConst'],
  ['multivalue', 'Multivalue'], ['reference-types', 'ReferenceTypes'], ['call-indirect-overlong', 'CallIndirectOverlong'],
  ['bulk-memory', 'BulkMemory'], ['bulk-memory-opt', 'BulkMemoryOpt'], ['nontrapping-float-to-int', 'NontrappingFPToInt'],
  ['sign-ext', 'SignExt'], ['mutable-globals', 'MutableGlobals'],
];

/** Features Binaryen requires together (it asserts on the combination otherwise): dropping one drops the other. */
const IMPLIED_BY: Partial<Record<keyof Binaryen['Features'], keyof Binaryen['Features']>> = {
  BulkMemoryOpt: 'BulkMemory',
  CallIndirectOverlong: 'ReferenceTypes',
};

/**
 * Binaryen writes a `target_features` section of its own when the input has one, listing features the module
 * does not use; tools that read it later (wasm-opt, wasm-ld) would enable them. The input's section is put back.
 */
function keepTargetFeatures(input: Uint8Array, output: Uint8Array): Uint8Array {
  const isFeatures = (s: Section) => s.id === 0 && s.name === 'target_features';
  const original = parseModule(input).sections.find(isFeatures);
  const out = parseModule(output);
  if (!out.sections.some(isFeatures)) return output;
  const kept = out.sections.filter((s) => !isFeatures(s)).map((s) => output.subarray(s.start, s.end));
  if (original) kept.push(input.subarray(original.start, original.end));
  return concat([output.subarray(0, 8), ...kept]);
}

/** True when the module has a `name` custom section. */
const hasNameSection = (bytes: Uint8Array) => parseModule(bytes).sections.some((s) => s.id === 0 && s.name === 'name');

/**
 * Optimizes `wasm` with Binaryen (`-Os`). The features: all of Binaryen's, minus each one the module validates
 * without (Binaryen's validator knows which instruction and type needs which), so the optimizer cannot introduce
 * a feature the input does not use. The result is compiled by this engine before it is returned.
 */
export async function optimize(wasm: Uint8Array, options: { keepNames?: boolean } = {}): Promise<Optimized> {
  try {
    return await runBinaryen(wasm, options);
  } catch (e) {
    if (e instanceof WizError) throw e;
    // Binaryen aborts with an assertion message of several lines.
    const why = String((e as Error).message ?? e).split('\n')[0]!.replace(/\. Build with -sASSERTIONS.*$/, '');
    throw new WizError('unsupported', `Binaryen failed on this module (${why}); write it without --optimize`);
  }
}

async function runBinaryen(wasm: Uint8Array, options: { keepNames?: boolean }): Promise<Optimized> {
  const { binaryen, quiet } = await loadBinaryen();
  const start = performance.now();
  const module = (binaryen.readBinary as (data: Uint8Array, features?: number) => ReturnType<Binaryen["readBinary"]>)(wasm, binaryen.Features.All);
  try {
    let features = binaryen.Features.All as number;
    quiet.on = true;
    try {
      if (!module.validate()) throw new WizError('invalid', 'Binaryen cannot validate the module, so --optimize cannot run on it');
      for (const [, key] of FEATURES) {
        const implying = IMPLIED_BY[key];
        const without = features & ~(binaryen.Features[key] as number) & ~(implying ? binaryen.Features[implying] as number : 0);
        if (without === features) continue;
        module.setFeatures(without);
        if (module.validate()) features = without;
      }
    } finally {
      quiet.on = false;
    }
    module.setFeatures(features);
    const keptNames = options.keepNames ?? hasNameSection(wasm);
    binaryen.setDebugInfo(keptNames);
    binaryen.setOptimizeLevel(2);
    binaryen.setShrinkLevel(1);
    module.optimize();
    // The optimizer may renumber globals: instrumentation kept for wiz snapshot is renamed after what it exports.
    const bytes = renameInstrumentation(keepTargetFeatures(wasm, module.emitBinary()));
    try {
      await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    } catch (e) {
      throw new WizError('invalid', `Binaryen's output does not compile here (${(e as Error).message}); write the module without --optimize`);
    }
    const names = FEATURES.filter(([, key]) => features & (binaryen.Features[key] as number)).map(([name]) => name).reverse();
    return { bytes, features: names, keptNames, ms: performance.now() - start };
  } finally {
    module.dispose();
  }
}
