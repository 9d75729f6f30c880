// A savestate loop with the library: run a program, snapshot the live instance, resume from the bytes.
// Run it with `node examples/savestate.ts` (Node 22.18+, or via `npx node` in this checkout).
import wabtInit from 'wabt';
import { parseInstrumented, preinitialize, snapshot } from '../src/index.ts';

const wabt = await wabtInit();
const source = wabt.parseWat('counter.wat', `(module
  (global $total (mut i64) (i64.const 0))
  (func (export "wizer-initialize") (global.set $total (i64.const 1000)))
  (func (export "onEvent") (param i64) (global.set $total (i64.add (global.get $total) (local.get 0))))
  (func (export "total") (result i64) (global.get $total)))`, {});
const app = source.toBinary({}).buffer;

// Build time: pre-initialize, keeping the instrumentation so the result can be snapshotted again.
let saved = await preinitialize(app, { keepInstrumentation: true });

for (const events of [[1n, 2n], [30n], [400n, 500n]]) {
  // Resume from the saved bytes (validated and verified: they may come from anywhere).
  const instrumented = await parseInstrumented(saved);
  const instance = await WebAssembly.instantiate(instrumented.module);
  const { onEvent, total } = instance.exports as { onEvent: (n: bigint) => void; total: () => bigint };
  for (const e of events) onEvent(e);
  // Save the live instance.
  saved = await snapshot(instrumented, instance, { keepInstrumentation: true });
  console.log(`after ${events.join(', ')}: total ${total()}, saved ${saved.length} bytes`);
}
