import { WizError } from '../errors.ts';
import { parseModule } from '../parse/module.ts';
import { BinaryWriter } from '../parse/writer.ts';
import { compileModule } from '../run/initialize.ts';
import { checkState, instrumentationOf, withProbe, WIZER_PREFIX, type Instrumentation, type InstrumentedModule } from './instrument.ts';
import type { ModuleContext } from '../parse/types.ts';

/** An instrumented module read back, validated, with its instrumentation verified, and compiled. */
export interface VerifiedInstrumentedModule extends InstrumentedModule {
  module: WebAssembly.Module;
}

const CLAIM = /^__wizer_(global|memory|table)_(0|[1-9][0-9]{0,9})$/;

/**
 * Reads an instrumented module (a `--keep-instrumentation` output) from untrusted bytes. The whole module is
 * validated by the engine, and every `__wizer_` export is checked against what it claims: `__wizer_global_{i}`
 * exports defined mutable global `i`, `__wizer_memory_{k}` the k-th defined memory, `__wizer_table_{k}` the
 * k-th defined table, each exactly once, none missing, no other `__wizer_` name. State is then read only
 * through these exports, by a reader module and a probe that wiz writes itself: the module supplies no accessor
 * code that could misreport its state. The probe is appended to a copy of the module after the module itself
 * was validated, so the module's code cannot refer to it.
 */
export async function parseInstrumented(bytes: Uint8Array): Promise<VerifiedInstrumentedModule> {
  const context = parseModule(bytes);
  const validating = compileModule(bytes);
  const expected = instrumentationOf(context);
  let probed: ReturnType<typeof withProbe>;
  try {
    checkState(context);
    checkClaims(context, expected);
    probed = withProbe(context, expected, new BinaryWriter(), 0);
  } catch (e) {
    await validating; // the engine's verdict on an invalid module comes first
    throw e;
  }
  // The module itself is validated, then the copy with the probe is compiled (at the same time).
  const module = probed.bytes === bytes ? await validating : (await Promise.all([validating, compileModule(probed.bytes)]))[1];
  return { context, bytes: probed.bytes, ...expected, probe: probed.probe, reparsed: true, module };
}

/** Checks every `__wizer_` export against what it claims, and that none is missing. */
export function checkClaims(context: ModuleContext, expected: Instrumentation): void {
  const claims = context.exports.filter((e) => e.name.startsWith(WIZER_PREFIX));
  if (claims.length === 0 && (expected.globals.length > 0 || expected.memories.length > 0 || expected.tables.length > 0)) {
    throw new WizError('instrumentation', 'the module carries no instrumentation (no __wizer_ exports); pre-initialize it with wiz init --keep-instrumentation first');
  }
  for (const e of claims) {
    const match = CLAIM.exec(e.name);
    if (!match) throw new WizError('instrumentation', `unknown instrumentation export "${e.name}"`);
    const kind = match[1] as 'global' | 'memory' | 'table';
    const n = Number(match[2]);
    if (e.kind !== kind) {
      throw new WizError('instrumentation', `instrumentation export "${e.name}" is a ${e.kind} export, not a ${kind}`);
    }
    if (kind === 'global') {
      if (e.index !== n) throw new WizError('instrumentation', `instrumentation export "${e.name}" exports global ${e.index}, not global ${n}`);
      const g = context.globals[n - context.importedGlobals];
      if (!g) throw new WizError('instrumentation', `instrumentation export "${e.name}" names global ${n}, which the module does not define`);
      if (!g.mutable) throw new WizError('instrumentation', `instrumentation export "${e.name}" names global ${n}, which is immutable`);
    } else if (kind === 'table') {
      const t = context.tables[n];
      if (!t) throw new WizError('instrumentation', `instrumentation export "${e.name}" names defined table ${n}, but the module defines ${context.tables.length}`);
      if (e.index !== t.index) throw new WizError('instrumentation', `instrumentation export "${e.name}" exports table ${e.index}, not the module's defined table ${n} (table ${t.index})`);
    } else {
      const m = context.memories[n];
      if (!m) throw new WizError('instrumentation', `instrumentation export "${e.name}" names defined memory ${n}, but the module defines ${context.memories.length}`);
      if (e.index !== m.index) throw new WizError('instrumentation', `instrumentation export "${e.name}" exports memory ${e.index}, not the module's defined memory ${n} (memory ${m.index})`);
    }
  }
  // Export names are unique (the engine checks that before the result is used), so each claim above is
  // distinct; now none missing.
  const names = new Set(claims.map((e) => e.name));
  for (const item of [...expected.globals, ...expected.memories, ...expected.tables]) {
    if (!names.has(item.exportName)) {
      const what = !('ordinal' in item) ? `mutable global ${item.index}` : 'top' in item ? `defined table ${item.ordinal}` : `defined memory ${item.ordinal}`;
      throw new WizError('instrumentation', `the module's instrumentation lacks "${item.exportName}" for ${what}`);
    }
  }
}
