// A durable worker with the library: the guest awaits a reply (a Promise of the host), is saved as a state image
// while it waits, and finishes in a fresh instance restored from the image, as another process or machine would.
// Run it with `npx node examples/durable.ts` in this checkout (needs binaryen, a dev dependency here).
import wabtInit from 'wabt';
import { asyncify, captureImage, DurableWorker, loadDurable, restoreWorker } from '../src/index.ts';

const wabt = await wabtInit();
const app = wabt.parseWat('app.wat', `(module
  (import "rpc" "price" (func $price (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "total") (param $items i32) (result i32) (local $i i32) (local $sum i32)
    (loop $each
      (local.set $sum (i32.add (local.get $sum) (call $price (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $i) (local.get $items))))
    (local.get $sum)))`, {}).toBinary({}).buffer;

// Build time: make `rpc.price` a place where the program may wait.
const durable = await loadDurable(await asyncify(app, { suspendOn: ['rpc.price'] }));

// The host answers each call later (a network round trip, say).
const imports = { rpc: { price: (item: number) => new Promise<number>((resolve) => setTimeout(() => resolve(10 * (item + 1)), 10)) } };
const worker = await DurableWorker.start(durable, { imports });
let outcome = worker.invoke('total', [3]);
console.log(outcome.line);

// Save the program while its first call is pending: JSON plus content-addressed chunks, for any store.
const { image, chunks } = await captureImage(worker);
const answer = await (outcome as { promise: Promise<unknown> }).promise;
console.log(`saved: ${JSON.stringify(image).length} bytes of JSON, ${chunks.size} chunk(s); the reply came: ${answer}`);

// Elsewhere, later: a fresh instance of the same module, the state written into it (nothing compiled).
const resumed = await restoreWorker(durable, image, chunks, { imports });
outcome = resumed.resume(answer);
while (outcome.status === 'suspended') {
  console.log(outcome.line);
  outcome = resumed.resume(await outcome.promise);
}
console.log(outcome.line); // total(3) = 60
