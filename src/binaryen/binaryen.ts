// Binaryen's JS API, loaded only when a feature that needs it runs (`--optimize`, `wiz asyncify`): it is an optional
// peer dependency of 10+ MB. Isomorphic: bundlers leave the import alone, hosts that have it resolve it.
import { WizError } from '../errors.ts';

export type Binaryen = typeof import('binaryen').default;
export type BinaryenModule = ReturnType<Binaryen['readBinary']>;

/** Binaryen, and a switch that silences its validator's console output while wiz probes features. */
export interface LoadedBinaryen {
  binaryen: Binaryen;
  /** `on`: Binaryen's console output is dropped; `lines`: collected there instead (e.g. a pass's verbose report). */
  quiet: { on: boolean; lines?: string[] };
}

let loaded: Promise<LoadedBinaryen> | undefined;

/** Loads Binaryen once; `what` names the feature that needs it in the error when it is not installed. */
export function loadBinaryen(what: string): Promise<LoadedBinaryen> {
  loaded ??= (async () => {
    // Binaryen binds console.log and console.error when it loads: wrap them first, so its output can be switched off.
    const quiet: LoadedBinaryen['quiet'] = { on: false };
    const { log, error } = console;
    console.log = (...a: unknown[]) => {
      if (quiet.lines) quiet.lines.push(a.join(' '));
      else if (!quiet.on) log(...a);
    };
    console.error = (...a: unknown[]) => { if (!quiet.on) error(...a); };
    try {
      const specifier = 'binaryen'; // a variable: bundlers of the browser build must not pull it in
      const binaryen = ((await import(/* @vite-ignore */ specifier)) as { default: Binaryen }).default;
      return { binaryen, quiet };
    } finally {
      console.log = log;
      console.error = error;
    }
  })();
  return loaded.catch((e) => {
    loaded = undefined;
    if (e instanceof WizError) throw e;
    throw new WizError('usage', `${what} needs Binaryen: npm install binaryen (next to wiz)`);
  });
}

/** Binaryen's features, from the most to the least specific: the probe drops them in this order. */
export const FEATURES: [string, string][] = [
  // Newer than Binaryen's type declarations: looked up by name, absent ones are skipped.
  ['compact-imports', 'CompactImports'], ['acquire-release-atomics', 'AcquireReleaseAtomics'],
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
const IMPLIED_BY: Record<string, string> = {
  BulkMemoryOpt: 'BulkMemory',
  CallIndirectOverlong: 'ReferenceTypes',
};

/**
 * The features a module uses: all of Binaryen's, minus each one the module validates without (Binaryen's
 * validator knows which instruction and type needs which), so that a pass cannot introduce a feature the input
 * does not use. `what` names the feature of wiz in the error when Binaryen cannot validate the module.
 */
export function usedFeatures({ binaryen, quiet }: LoadedBinaryen, module: BinaryenModule, what: string): number {
  const flag = (key: string) => (binaryen.Features as unknown as Record<string, number | undefined>)[key] ?? 0;
  let features = binaryen.Features.All as number;
  quiet.on = true;
  try {
    if (!module.validate()) throw new WizError('invalid', `Binaryen cannot validate the module, so ${what} cannot run on it`);
    for (const [, key] of FEATURES) {
      const implying = IMPLIED_BY[key];
      const without = features & ~flag(key) & ~(implying ? flag(implying) : 0);
      if (without === features) continue;
      module.setFeatures(without);
      if (module.validate()) features = without;
    }
  } finally {
    quiet.on = false;
  }
  return features;
}

/** wasm-opt's names of the features in `features`, from the least to the most specific. */
export function featureNames(binaryen: Binaryen, features: number): string[] {
  const flags = binaryen.Features as unknown as Record<string, number | undefined>;
  return FEATURES.filter(([, key]) => features & (flags[key] ?? 0)).map(([name]) => name).reverse();
}

/** Binaryen aborts with an assertion message of several lines: its first, for a one-line error. */
export function binaryenFailure(e: unknown): string {
  return String((e as Error).message ?? e).split('\n')[0]!.replace(/\. Build with -sASSERTIONS.*$/, '');
}
