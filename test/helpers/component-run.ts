// Runs a component in a fresh host (jco's glue and preview2-shim, as a user of the output would) and prints
// what each call returned: `node test/helpers/component-run.ts component.wasm '{"calls": [...], ...}'`. The
// guest's own output goes to stdout before the last line, `RESULTS <json>`.
import { readFileSync } from 'node:fs';
import { loadGlue, transpile, jsName } from '../../src/component/transpile.ts';

interface RunConfig {
  /** Called first, as a live component is right after init (`name` or `name(JSON args)`). */
  init?: string;
  calls: string[];
  preopens?: Record<string, string>;
  env?: Record<string, string>;
}

const [path, json] = process.argv.slice(2);
const config = JSON.parse(json ?? '{"calls": []}') as RunConfig;
const { WASIShim } = (await import('@bytecodealliance/preview2-shim/instantiation')) as unknown as {
  WASIShim: new (c: Record<string, unknown>) => { getImportObject(): Record<string, unknown> };
};
const t = await transpile(new Uint8Array(readFileSync(path!)));
const { instantiate } = await loadGlue(t.js);
const shim = new WASIShim({ sandbox: { preopens: config.preopens ?? {}, env: config.env ?? {}, args: [] } });
const exports = await instantiate((n) => WebAssembly.compile(t.files.get(n)! as Uint8Array<ArrayBuffer>), shim.getImportObject(), (m, i) => WebAssembly.instantiate(m, i ?? {}));
// A call is `name` or `name(JSON args)`; results are keyed by the call as written.
const call = (spec: string) => {
  const open = spec.indexOf('(');
  const name = open > 0 ? spec.slice(0, open) : spec;
  const args = open > 0 ? JSON.parse(`[${spec.slice(open + 1, -1)}]`) as unknown[] : [];
  const fn = exports[jsName(name)] as ((...a: unknown[]) => unknown) | undefined;
  if (typeof fn !== 'function') return { missing: true };
  try {
    const v = fn(...args);
    return { value: typeof v === 'bigint' ? `${v}n` : v };
  } catch (e) {
    return { error: String((e as Error)?.message ?? e) };
  }
};
if (config.init) call(config.init);
const results = Object.fromEntries(config.calls.map((name) => [name, call(name)]));
process.stdout.write(`RESULTS ${JSON.stringify({ exports: t.exports.map(([n]) => n).sort(), results })}\n`);
