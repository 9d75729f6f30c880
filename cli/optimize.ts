// `--optimize`: Binaryen's optimizer on the output, with only the features the module already uses, so that it
// removes what only init needed without making the module need more of the engine.
import { createRequire } from 'node:module';
import { renameInstrumentation } from '../src/instrument/instrument.ts';
import { WizError } from '../src/errors.ts';
import { invalidity } from '../src/run/initialize.ts';
import { parseModule } from '../src/parse/module.ts';
import type { Section } from '../src/parse/types.ts';
import { concat } from '../src/parse/writer.ts';
import { binaryenFailure, featureNames, loadBinaryen, usedFeatures, type BinaryenModule } from '../src/binaryen/binaryen.ts';

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

/** Fails at once, before any init runs, when Binaryen is not installed. */
export function requireBinaryen(what = '--optimize'): void {
  try {
    createRequire(import.meta.url).resolve('binaryen');
  } catch {
    throw new WizError('usage', `${what} needs Binaryen: npm install binaryen (next to wiz)`);
  }
}

/** The installed Binaryen's version (part of a cache key: another optimizer writes other bytes). */
export function binaryenVersion(): string {
  const require = createRequire(import.meta.url);
  try {
    return (require('binaryen/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

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
    const why = binaryenFailure(e);
    throw new WizError('unsupported', `Binaryen failed on this module (${why}); write it without --optimize`);
  }
}

async function runBinaryen(wasm: Uint8Array, options: { keepNames?: boolean }): Promise<Optimized> {
  requireBinaryen();
  const loaded = await loadBinaryen('--optimize');
  const { binaryen } = loaded;
  const start = performance.now();
  const module = (binaryen.readBinary as (data: Uint8Array, features?: number) => BinaryenModule)(wasm, binaryen.Features.All);
  try {
    const features = usedFeatures(loaded, module, '--optimize');
    module.setFeatures(features);
    const keptNames = options.keepNames ?? hasNameSection(wasm);
    binaryen.setDebugInfo(keptNames);
    binaryen.setOptimizeLevel(2);
    binaryen.setShrinkLevel(1);
    module.optimize();
    // The optimizer may renumber globals: instrumentation kept for wiz snapshot is renamed after what it exports.
    const bytes = renameInstrumentation(keepTargetFeatures(wasm, module.emitBinary()));
    const why = await invalidity(bytes);
    if (why !== undefined) throw new WizError('invalid', `Binaryen's output does not compile here (${why}); write the module without --optimize`);
    return { bytes, features: featureNames(binaryen, features), keptNames, ms: performance.now() - start };
  } finally {
    module.dispose();
  }
}
