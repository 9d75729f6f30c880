// Durable execution: a program suspended inside an import, saved, and resumed in a fresh instance (from a
// `.wasm` or a state image) behaves bit for bit like the same program run uninterrupted.
import { describe, expect, test } from 'vitest';
import { asyncify } from '../src/durable/asyncify.ts';
import { captureImage, materialize, restoreWorker } from '../src/durable/capture.ts';
import { LAYOUT_SECTION, SUSPENDED_SECTION } from '../src/durable/layout.ts';
import { DurableWorker, loadDurable, type Outcome } from '../src/durable/worker.ts';
import type { StateImage } from '../src/durable/image.ts';
import { parseModule } from '../src/parse/module.ts';
import { assemble } from '../src/parse/assemble.ts';
import { BinaryWriter } from '../src/parse/writer.ts';
import { wat } from './helpers/wat.ts';
import { mutate, MUTATIONS } from '../scripts/fuzz/hostile.ts';
import { preinitialize } from '../src/preinitialize.ts';
import { WizError } from '../src/errors.ts';
import { answer, APP, durableApp, reference, SUSPEND_ON } from './helpers/durable-app.ts';

const syncImports = {
  rpc: {
    fetch: (x: number) => answer('rpc.fetch', [String(x)]),
    wait: () => undefined,
    big: (x: bigint) => answer('rpc.big', [String(x)]),
  },
};

function observed(worker: DurableWorker) {
  return {
    memory: new Uint8Array((worker.instance.exports.memory as WebAssembly.Memory).buffer).slice(),
    count: (worker.instance.exports.count as WebAssembly.Global).value as number,
  };
}

const prepared = durableApp;

/** Replaces (or adds) a custom section: a forged file. */
function withCustom(bytes: Uint8Array, name: string, body: unknown): Uint8Array {
  const out = assemble(parseModule(bytes), new Map(), new Set([name]));
  out.section(0, new BinaryWriter().name(name).raw(new TextEncoder().encode(JSON.stringify(body))));
  return out.finish();
}

describe('suspend anywhere, resume anywhere', () => {
  test('a chain of .wasm files, one per suspension, equals the uninterrupted run, and so do its final bytes', async () => {
    const n = 7;
    const ref = await reference(n);
    let durable = await loadDurable(await prepared());
    let worker = await DurableWorker.start(durable);
    let outcome: Outcome = worker.invoke('main', [n]);
    const seen: string[] = [];
    while (outcome.status === 'suspended') {
      seen.push(outcome.line);
      const file = await worker.snapshot();
      // Each generation starts in a fresh instance of the saved file: nothing survives but the bytes.
      durable = await loadDurable(file);
      expect(durable.suspended?.pending).toEqual(outcome.pending);
      worker = await DurableWorker.start(durable);
      outcome = worker.resume(answer(outcome.pending.name, outcome.pending.args));
    }
    expect(seen[0]).toBe('suspended: rpc.fetch(0)');
    expect(seen).toContain('suspended: rpc.wait()');
    expect(seen.length).toBe(2 * n + 2); // a fetch and a big per round, a wait in rounds 1 and 4
    expect(outcome).toMatchObject({ status: 'returned', result: ref.result });
    expect(outcome.line).toBe(`main(${n}) = ${ref.result}`);
    expect(observed(worker)).toEqual({ memory: ref.memory, count: ref.count });

    // The same program answered at once, never suspended: the saved states are identical, byte for byte.
    const direct = await DurableWorker.start(await loadDurable(await prepared()), { imports: syncImports });
    expect(direct.invoke('main', [n]).status).toBe('returned');
    expect(await worker.snapshot({ provenance: false })).toEqual(await direct.snapshot({ provenance: false }));
  });

  test('state images: restored without compiling, materialized byte for byte as the worker writes itself', async () => {
    const n = 5;
    const ref = await reference(n);
    const durable = await loadDurable(await prepared());
    let worker = await DurableWorker.start(durable);
    let outcome = worker.invoke('main', [n]);
    let generations = 0;
    while (outcome.status === 'suspended') {
      const { image, chunks } = await captureImage(worker, { chunkSize: 4096 });
      expect(await materialize(durable, image, chunks)).toEqual(await worker.snapshot());
      // Through JSON, as a store keeps it; into a fresh instance of the same compiled module.
      const stored = JSON.parse(JSON.stringify(image)) as StateImage;
      worker = await restoreWorker(durable, stored, new Map(chunks));
      outcome = worker.resume(answer(outcome.pending.name, outcome.pending.args));
      generations++;
    }
    expect(generations).toBe(2 * n + 2);
    expect(outcome).toMatchObject({ status: 'returned', result: ref.result });
    expect(observed(worker)).toEqual({ memory: ref.memory, count: ref.count });
  });

  test('host imports that return Promises: run to the end, or save while one is pending and resume elsewhere with its value', async () => {
    const n = 4;
    const ref = await reference(n);
    const later = <T>(v: T) => new Promise<T>((resolve) => setTimeout(() => resolve(v), 1));
    const asyncImports = {
      rpc: {
        fetch: (x: number) => later(answer('rpc.fetch', [String(x)])),
        wait: () => later(undefined),
        big: (x: bigint) => answer('rpc.big', [String(x)]), // a plain value: no suspension
      },
    };
    const durable = await loadDurable(await prepared());
    const live = await DurableWorker.start(durable, { imports: asyncImports });
    expect(await live.run('main', [n])).toBe(ref.result);
    expect(observed(live)).toEqual({ memory: ref.memory, count: ref.count });

    const first = await DurableWorker.start(durable, { imports: asyncImports });
    const outcome = first.invoke('main', [n]);
    expect(outcome.status === 'suspended' && outcome.promise).toBeInstanceOf(Promise);
    const saved = await captureImage(first);
    const value = await (outcome as { promise: Promise<unknown> }).promise;
    // Elsewhere: a new instance from the image, the same host, the settled value.
    const second = await restoreWorker(durable, saved.image, saved.chunks, { imports: asyncImports });
    let next = second.resume(value);
    while (next.status === 'suspended') next = second.resume(await next.promise);
    expect(next).toMatchObject({ status: 'returned', result: ref.result });
    expect(observed(second)).toEqual({ memory: ref.memory, count: ref.count });
  });

  test('asyncify keeps the program\'s own memory as it was, and costs what the README says', async () => {
    const plain = await wat(APP);
    const bytes = await prepared();
    const context = parseModule(bytes);
    expect(context.memories.length).toBe(2); // the program's, and wiz's own for the unwound stack
    expect(context.memories[0]!.min).toBe(parseModule(plain).memories[0]!.min);
    expect(context.sections.some((s) => s.name === LAYOUT_SECTION)).toBe(true);
    await expect(asyncify(bytes, { suspendOn: SUSPEND_ON })).rejects.toThrow(/already prepared/);
    await expect(asyncify(plain, { suspendOn: ['rpc.nope'] })).rejects.toThrow(/imports no function "rpc.nope" \(its function imports: rpc.fetch, rpc.wait, rpc.big\)/);
  });
});

test('a suspension through call_indirect is rewound too (Asyncify instruments indirect calls that can reach the import)', async () => {
  const text = `(module
    (import "rpc" "fetch" (func $fetch (param i32) (result i32)))
    (type $t (func (param i32) (result i32)))
    (table 2 funcref) (elem (i32.const 0) $double $ask)
    (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
    (func $ask (param i32) (result i32) (i32.add (call $fetch (local.get 0)) (i32.const 1000)))
    (func (export "main") (param $x i32) (result i32)
      (i32.add (call_indirect (type $t) (local.get $x) (i32.const 0)) (call_indirect (type $t) (local.get $x) (i32.const 1)))))`;
  const durable = await loadDurable(await asyncify(await wat(text), { suspendOn: ['rpc.fetch'] }));
  const first = await DurableWorker.start(durable);
  expect(first.invoke('main', [5]).line).toBe('suspended: rpc.fetch(5)');
  const second = await DurableWorker.start(await loadDurable(await first.snapshot()));
  expect(second.resume(36).line).toBe('main(5) = 1046'); // 10 + 36 + 1000
});

test('restore clears what instantiation wrote and the program erased', async () => {
  const text = `(module
    (import "rpc" "fetch" (func $fetch (param i32) (result i32)))
    (memory (export "memory") 2)
    (data (i32.const 70000) "written by instantiation")
    (func (export "main") (result i32)
      (memory.fill (i32.const 70000) (i32.const 0) (i32.const 24))
      (call $fetch (i32.const 1))))`;
  const durable = await loadDurable(await asyncify(await wat(text), { suspendOn: ['rpc.fetch'] }));
  const worker = await DurableWorker.start(durable);
  worker.invoke('main');
  const { image, chunks } = await captureImage(worker);
  expect(image.memories[0]!.chunks.every((d) => d === null)).toBe(true);
  const restored = await restoreWorker(durable, image, chunks);
  const memory = new Uint8Array((restored.instance.exports.memory as WebAssembly.Memory).buffer);
  expect(memory.subarray(70000, 70024).every((b) => b === 0)).toBe(true);
  expect(restored.resume(9).line).toBe('main() = 9');
});

test('a module pre-initialized with --keep-instrumentation is asyncified and resumed as well', async () => {
  const text = `(module
    (import "rpc" "fetch" (func $fetch (param i32) (result i32)))
    (memory (export "memory") 1)
    (global $base (mut i32) (i32.const 0))
    (func (export "wizer-initialize") (global.set $base (i32.const 500)) (i32.store (i32.const 8) (i32.const 77)))
    (func (export "main") (param $x i32) (result i32)
      (i32.add (i32.add (global.get $base) (i32.load (i32.const 8))) (call $fetch (local.get $x)))))`;
  const initialized = await preinitialize(await wat(text), { keepInstrumentation: true });
  const durable = await loadDurable(await asyncify(initialized, { suspendOn: ['rpc.fetch'] }));
  const worker = await DurableWorker.start(durable);
  expect(worker.invoke('main', [3]).line).toBe('suspended: rpc.fetch(3)');
  const resumed = await DurableWorker.start(await loadDurable(await worker.snapshot()));
  expect(resumed.resume(1000).line).toBe('main(3) = 1577'); // init ran once, at build time: 500 + 77 + 1000
});

test('mutated state files are refused with one line or resume correctly: never a crash', async () => {
  const worker = await DurableWorker.start(await loadDurable(await prepared()));
  worker.invoke('main', [3]);
  const file = await worker.snapshot();
  const outcomes = { refused: 0, resumed: 0 };
  for (let seed = 1; seed <= 120; seed++) {
    const kind = MUTATIONS[seed % MUTATIONS.length]!;
    const mutant = mutate(file, kind, seed);
    try {
      const durable = await loadDurable(mutant);
      const resumed = await DurableWorker.start(durable);
      resumed.resume(answer(durable.suspended?.pending.name ?? '', durable.suspended?.pending.args ?? []));
      outcomes.resumed++;
    } catch (e) {
      // A WizError is one line naming the problem; anything else is a bug.
      if (!(e instanceof WizError)) throw new Error(`seed ${seed} (${kind}): ${String(e)}`);
      expect(e.message).not.toMatch(/\n/);
      outcomes.refused++;
    }
  }
  expect(outcomes.refused).toBeGreaterThan(60);
});

test('a fork hook that would suspend is stopped with one line; a module without one is told so', async () => {
  const text = `(module
    (import "rpc" "wait" (func $wait))
    (func (export "wiz-fork") (param i32) (call $wait))
    (func (export "main") (call $wait)))`;
  const worker = await DurableWorker.start(await loadDurable(await asyncify(await wat(text), { suspendOn: ['rpc.wait'] })));
  worker.invoke('main');
  expect(() => worker.fork(1)).toThrow(/^the fork hook "wiz-fork" called rpc.wait, which may suspend: a hook must run to its end$/);
  expect(worker.suspended?.pending.name).toBe('rpc.wait'); // still waiting where it was
  expect(worker.resume().line).toBe('main()');
  const plain = await DurableWorker.start(await loadDurable(await prepared()));
  expect(plain.fork(0)).toBe(false);
});

test('a stack deeper than wiz\'s unwind buffer is named as such, with the flag that gives more room', async () => {
  const text = `(module
    (import "rpc" "wait" (func $wait))
    (func $down (param $n i32) (local $a i64) (local $b i64) (local $c i64)
      (if (local.get $n) (then (call $down (i32.sub (local.get $n) (i32.const 1)))) (else (call $wait))))
    (func (export "main") (param $n i32) (call $down (local.get $n))))`;
  const small = await loadDurable(await asyncify(await wat(text), { suspendOn: ['rpc.wait'], stackSize: 1024 }));
  const worker = await DurableWorker.start(small);
  expect(() => worker.invoke('main', [10_000])).toThrow(/^the program's stack did not fit in wiz's unwind buffer \(\d+ bytes\) when it suspended in rpc.wait: run wiz asyncify with a larger --stack-size$/);
  const ok = await DurableWorker.start(small);
  expect(ok.invoke('main', [10]).line).toBe('suspended: rpc.wait()'); // shallow enough
});

describe('an untrusted state is checked before it runs', () => {
  test('a suspended call that names no suspending import, or another buffer, is refused in one line', async () => {
    const durable = await loadDurable(await prepared());
    const worker = await DurableWorker.start(durable);
    worker.invoke('main', [3]);
    const file = await worker.snapshot();
    const record = JSON.parse(JSON.stringify(worker.suspended));
    await expect(loadDurable(withCustom(file, SUSPENDED_SECTION, { ...record, pending: { name: 'rpc.nope', args: [] } })))
      .rejects.toThrow(/^the suspended call waits in "rpc.nope", which is not an import that may suspend/);
    await expect(loadDurable(withCustom(file, SUSPENDED_SECTION, { ...record, buffer: 8 }))).rejects.toThrow(/names unwind buffer 8/);
    await expect(loadDurable(withCustom(file, SUSPENDED_SECTION, { ...record, entry: { name: 'main', args: [] } }))).rejects.toThrow(/passes 0 arguments to "main", which takes 1/);
  });

  test('a forged layout is refused; a state that names another pending import diverges and is stopped, never silently run', async () => {
    const bytes = await prepared();
    const layout = JSON.parse(new TextDecoder().decode(parseModule(bytes).sections.filter((s) => s.name === LAYOUT_SECTION).map((s) => bytes.subarray(s.contentStart + 1 + LAYOUT_SECTION.length, s.end))[0]));
    const moved = { ...layout, globals: layout.globals.map((g: { offset: number }) => ({ ...g, offset: g.offset + 4 })) };
    await expect(loadDurable(withCustom(bytes, LAYOUT_SECTION, moved))).rejects.toThrow(/does not list the module's mutable globals where wiz saves them/);
    await expect(loadDurable(withCustom(bytes, LAYOUT_SECTION, { ...layout, suspendOn: ['rpc.nope'] }))).rejects.toThrow(/names "rpc.nope" as a suspending import/);

    const worker = await DurableWorker.start(await loadDurable(bytes));
    expect(worker.invoke('main', [3]).line).toBe('suspended: rpc.fetch(0)');
    const file = await worker.snapshot();
    const forged = withCustom(file, SUSPENDED_SECTION, { ...JSON.parse(JSON.stringify(worker.suspended)), pending: { name: 'rpc.big', args: ['0'] } });
    const resumed = await DurableWorker.start(await loadDurable(forged));
    expect(() => resumed.resume(5n)).toThrow(/^the resumed program called rpc.fetch where it was suspended in rpc.big/);
  });

  test('an image of another module, or with a chunk missing, is refused', async () => {
    const durable = await loadDurable(await prepared());
    const worker = await DurableWorker.start(durable);
    worker.invoke('main', [3]);
    const { image, chunks } = await captureImage(worker);
    await expect(restoreWorker(durable, { ...image, module: `sha256:${'0'.repeat(64)}` }, chunks)).rejects.toThrow(/belongs to module sha256:000/);
    // At the first suspension only wiz's memory (the unwound stack) holds anything.
    expect(image.memories[0]!.chunks.every((d) => d === null)).toBe(true);
    const missing = new Map(chunks);
    missing.delete(image.memories[1]!.chunks[0]!);
    await expect(restoreWorker(durable, image, missing)).rejects.toThrow(/lacks chunk 0 of memory 1/);
    await expect(restoreWorker(durable, { ...image, globals: image.globals.slice(1) }, chunks)).rejects.toThrow(/lists \d+ globals/);
  });
});
