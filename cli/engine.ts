// V8's settings for a process that runs one `wiz init` and nothing else. V8 reads them when it compiles a module,
// and they hold for the rest of the process: some cannot be turned back off (V8 aborts at the next compile of an
// unvalidated body), so a process that runs anything else (the bundler plugin's, a library user's) never sets them.

/** V8's default budget before a function tiers up from Liftoff to TurboFan (v8/src/flags: 1.8 M). */
const V8_TIERING_BUDGET = 1_800_000;

/**
 * Modules at most this large (code and data) compile each function with TurboFan at its first call: at ~0.5 MB/s,
 * that costs a few milliseconds.
 */
export const SMALL_MODULE_BYTES = 8 * 1024;

/**
 * Modules from this size on have enough code for validating it twice, and for tiering lukewarm functions, to cost
 * more than tuning does (loading node:v8, ~5 ms, and compiling the input on its own).
 */
const LARGE_MODULE_BYTES = 1 << 20;

/** Whether tuning V8 (`tuneEngineFor`) pays for `input`: small and large modules; the others run as they are. */
export function tuningPays(input: Uint8Array): boolean {
  return input.length <= SMALL_MODULE_BYTES || input.length >= LARGE_MODULE_BYTES;
}

/**
 * Tunes V8 for running `input` once, after the engine validated it whole (every module compiled afterwards must
 * be validated with `WebAssembly.validate`, never by compiling):
 * - `--wasm-lazy-validation`: function bodies are validated when first compiled rather than when the module is.
 *   The engine would otherwise validate the input twice (in the instrumented copy wiz runs, and on its own, to
 *   refuse code that refers to what instrumentation appended): 40–70 ms on 10 MB of code.
 * - a tiering budget 100 times V8's: an init runs once, and V8's default tiers up every function that runs for a
 *   moment. On the ComponentizeJS engine's init, TurboFan compiling those lukewarm functions cost 400 ms of CPU
 *   and 130 ms of wall time on 2 cores; a hot function still tiers up after running ~40 ms longer than it would.
 * - `--no-liftoff` for a module of at most `SMALL_MODULE_BYTES`: V8 cannot tier up a call that is running (no
 *   on-stack replacement for WebAssembly), so an init that is one long loop ran to its end in baseline code (the
 *   demo's sieve: 420 → 290 ms).
 * Where the flags cannot be set (another runtime), nothing changes.
 */
export function tuneEngineFor(input: Uint8Array): void {
  const flags = ['--wasm-lazy-validation', `--wasm-tiering-budget=${100 * V8_TIERING_BUDGET}`];
  if (input.length <= SMALL_MODULE_BYTES) flags.push('--no-liftoff');
  setFlags(flags);
}

/**
 * Gives the modules instantiated from now on V8's own tiering budget again: V8 reads it when it instantiates a
 * module, so the guest keeps the raised one, and wiz's scanner (whose loop is hot from its first call) tiers up
 * as soon as V8 would.
 */
export function untuneAfterInstantiation(): void {
  if (tuned) setFlags([`--wasm-tiering-budget=${V8_TIERING_BUDGET}`]);
}

let tuned = false;

function setFlags(flags: readonly string[]): void {
  try {
    const v8 = process.getBuiltinModule('node:v8') as typeof import('node:v8');
    for (const flag of flags) v8.setFlagsFromString(flag);
    tuned = true;
  } catch {
    // The engine validates again when compiling and tiers as it likes: slower, as valid.
  }
}
