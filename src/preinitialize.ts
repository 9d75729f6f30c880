import { instrument, type InstrumentedModule } from './instrument/instrument.ts';
import { compileModule, initialize, resolveInitFunc, type InitializeOptions } from './run/initialize.ts';
import { rewrite, type RewriteOptions } from './snapshot/rewrite.ts';
import { instanceReader, takeSnapshot } from './snapshot/state.ts';

export interface PreinitializeOptions extends InitializeOptions {
  /** Keep the init function exported in the output (the reference's `--keep-init-func`). */
  keepInitFunc?: boolean;
  /** Export renames `dst=src` (the reference's `-r`/`--rename-func`). */
  renames?: readonly string[];
}

export interface SnapshotOptions extends Omit<RewriteOptions, 'initFunc'> {
  /** The export that ran as the init function: it is removed from the output unless `keepInitFunc`. */
  initFunc?: string;
}

/**
 * The whole job: instrument `wasm`, instantiate it in this host's engine, run its init function, and return a
 * module whose state is the state after init.
 */
export async function preinitialize(wasm: Uint8Array, options: PreinitializeOptions = {}): Promise<Uint8Array> {
  const instrumented = instrument(wasm);
  const module = await compileModule(instrumented.bytes, wasm);
  const initFunc = resolveInitFunc(instrumented.context, options);
  const instance = await initialize(instrumented, module, initFunc, options);
  return snapshot(instrumented, instance, { ...options, initFunc });
}

/**
 * Writes a module whose state is the state of `instance`, a live instance of `instrumented.bytes` that the
 * host instantiated and ran as it liked.
 */
export async function snapshot(
  instrumented: InstrumentedModule,
  instance: WebAssembly.Instance,
  options: SnapshotOptions = {},
): Promise<Uint8Array> {
  const state = takeSnapshot(instrumented, await instanceReader(instrumented, instance));
  return rewrite(instrumented.context, state, { ...options, initFunc: options.initFunc ?? '' });
}
