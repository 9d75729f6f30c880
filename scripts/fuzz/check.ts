// One module, each `[] -> []` export as the init function: wiz's snapshot must behave like the original after
// init (the property), and wiz must agree with the native reference (both succeed or both fail, and outputs that
// behave the same).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWizError } from '../../src/errors.ts';
import { functionType, parseModule } from '../../src/parse/module.ts';
import { preinitialize } from '../../src/preinitialize.ts';
import { firstDifference, fuzzHost, observeModule } from './observe.ts';
import { ROOT } from './generate.ts';

export const WIZER_BIN = join(ROOT, 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer');
const NATIVE_TIMEOUT_MS = 30_000;
/** The reference's feature switches, all on: the fairest comparison is against the most it can do. */
const NATIVE_FEATURES = ['multi-memory', 'multi-value', 'bulk-memory', 'simd', 'relaxed-simd', 'reference-types'].map((f) => `--wasm-${f}=true`);

/** How one init function came out. Failures are the classes in `FAILURES`. */
export type Agreement =
  | 'identical' // both succeeded with byte-identical outputs
  | 'equivalent' // both succeeded; outputs differ in bytes but behave the same
  | 'both-fail' // both refused or failed
  | 'wiz-accepts-more' // wiz succeeded, the reference refused (counted apart, property still checked)
  | 'native-timeout' // the reference did not finish in time (wiz did)
  | 'no-native' // the reference binary is not installed
  | 'DIFFERENT' // both succeeded, the outputs behave differently
  | 'NATIVE-ONLY'; // the reference succeeded, wiz refused

export type Property =
  | 'holds' // the snapshot behaves like the original after init
  | 'init-fails' // wiz refused or init failed (with the fuzz host): nothing to check
  | 'VIOLATED'; // the snapshot behaves differently

export interface InitOutcome {
  init: string;
  agreement: Agreement;
  property: Property;
  /** wiz's error code when it refused (without host imports, as the CLI runs). */
  wizError?: string;
  /** wiz's error with the fuzz host (the property run). */
  hostedError?: string;
  /** The reference's first error line when it refused. */
  nativeError?: string;
  /** Why a failure is one: the first difference, or the messages. */
  detail?: string;
  /** wiz threw something other than a WizError (a crash: always a failure). */
  crash?: string;
}

export const isFailure = (o: InitOutcome) =>
  o.agreement === 'DIFFERENT' || o.agreement === 'NATIVE-ONLY' || o.property === 'VIOLATED' || o.crash !== undefined;

type WizResult = { ok: true; bytes: Uint8Array } | { ok: false; code: string; message: string; crash?: string };

async function runWiz(wasm: Uint8Array, options: Parameters<typeof preinitialize>[1]): Promise<WizResult> {
  try {
    return { ok: true, bytes: await preinitialize(wasm, options) };
  } catch (e) {
    if (isWizError(e)) return { ok: false, code: e.code, message: e.message };
    return { ok: false, code: 'crash', message: String(e), crash: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}

type NativeResult = { ok: true; bytes: Uint8Array; timeout?: undefined } | { ok: false; message: string; timeout?: boolean };

function runNative(dir: string, init: string): NativeResult {
  const out = join(dir, 'native.wasm');
  rmSync(out, { force: true });
  const r = spawnSync(WIZER_BIN, [join(dir, 'input.wasm'), '-o', out, '-f', init, ...NATIVE_FEATURES], {
    timeout: NATIVE_TIMEOUT_MS,
    env: { ...process.env, RUST_BACKTRACE: '0' },
    maxBuffer: 1 << 26,
  });
  if (r.error || r.signal) return { ok: false, message: `did not finish: ${r.error?.message ?? r.signal}`, timeout: true };
  if (r.status === 0 && existsSync(out)) return { ok: true, bytes: new Uint8Array(readFileSync(out)) };
  const lines = r.stderr.toString().split('\n').map((l) => l.trim()).filter(Boolean);
  // "Error: <summary>" then "Caused by:" and the causes: the deepest cause says the most.
  const cause = lines.filter((l) => /^\d+:/.test(l) && !/wasm backtrace|0x[0-9a-f]+ - /.test(l)).at(-1);
  return { ok: false, message: [lines[0], cause].filter(Boolean).join(' / ') || `exit ${r.status}` };
}

/** The exports usable as init functions: exported functions of type `[] -> []`. */
export function initCandidates(wasm: Uint8Array): string[] {
  const ctx = parseModule(wasm);
  return ctx.exports
    .filter((e) => e.kind === 'func')
    .filter((e) => {
      const t = functionType(ctx, e.index);
      return t?.kind === 'func' && t.params.length === 0 && t.results.length === 0;
    })
    .map((e) => e.name);
}

export interface CheckOptions {
  /** Init functions to try (default: every candidate, at most `maxInits`). */
  inits?: string[];
  maxInits?: number;
  /** Compare with the reference binary (default: when it is installed). */
  native?: boolean;
}

/** Checks one module with each init function. */
export async function checkModule(wasm: Uint8Array, options: CheckOptions = {}): Promise<InitOutcome[]> {
  const useNative = (options.native ?? true) && existsSync(WIZER_BIN);
  const ctx = parseModule(wasm);
  const names = ctx.exports.map((e) => e.name);
  const inits = options.inits ?? initCandidates(wasm).slice(0, options.maxInits ?? 6);
  const dir = mkdtempSync(join(tmpdir(), 'wiz-fuzz-'));
  writeFileSync(join(dir, 'input.wasm'), wasm);
  const outcomes: InitOutcome[] = [];
  try {
    for (const init of inits) outcomes.push(await checkInit(wasm, ctx, names, init, useNative ? dir : undefined));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return outcomes;
}

async function checkInit(
  wasm: Uint8Array,
  ctx: ReturnType<typeof parseModule>,
  names: string[],
  init: string,
  nativeDir: string | undefined,
): Promise<InitOutcome> {
  const outcome: InitOutcome = { init, agreement: 'no-native', property: 'init-fails' };

  // 1. The property, with the fuzz host providing the imports; the init function stays exported, so that
  //    `call-export` indices mean the same functions in the original and in the snapshot.
  const host = fuzzHost(ctx, names);
  const hosted = await runWiz(wasm, { initFunc: init, keepInitFunc: true, imports: host.imports, onInstantiated: host.bind });
  if (!hosted.ok) {
    outcome.hostedError = hosted.code;
    if (hosted.crash) outcome.crash = hosted.crash;
  } else {
    const before = await observeModule(wasm, { init, exportNames: names });
    const after = await observeModule(hosted.bytes, { exportNames: names });
    const diff = firstDifference(before, after);
    outcome.property = diff ? 'VIOLATED' : 'holds';
    if (diff) outcome.detail = `property: ${diff}`;
  }

  // 2. Agreement: wiz as the CLI runs it (no host imports: calling one fails, as in the reference) against the
  //    reference binary.
  const plain = await runWiz(wasm, { initFunc: init });
  if (!plain.ok) {
    outcome.wizError = `${plain.code}: ${plain.message}`;
    if (plain.crash) outcome.crash ??= plain.crash;
  }
  if (!nativeDir) return outcome;
  const native = runNative(nativeDir, init);
  if (!native.ok) outcome.nativeError = native.message;
  if (plain.ok && native.ok) {
    if (equalBytes(plain.bytes, native.bytes)) {
      outcome.agreement = 'identical';
    } else {
      const outNames = parseModule(plain.bytes).exports.map((e) => e.name);
      const a = await observeModule(plain.bytes, { exportNames: outNames });
      const b = await observeModule(native.bytes, { exportNames: outNames });
      const diff = firstDifference(a, b);
      outcome.agreement = diff ? 'DIFFERENT' : 'equivalent';
      if (diff) outcome.detail = [outcome.detail, `wiz vs reference: ${diff}`].filter(Boolean).join('; ');
    }
  } else if (!plain.ok && !native.ok) {
    outcome.agreement = native.timeout ? 'native-timeout' : 'both-fail';
  } else if (plain.ok) {
    outcome.agreement = native.timeout ? 'native-timeout' : 'wiz-accepts-more';
  } else {
    outcome.agreement = 'NATIVE-ONLY';
    outcome.detail = [outcome.detail, `wiz refused (${outcome.wizError}), the reference succeeded`].filter(Boolean).join('; ');
  }
  return outcome;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
