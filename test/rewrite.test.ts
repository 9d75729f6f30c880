// The rewrite at the byte level: what is copied, what changes, and where wiz does better than the reference.
import { describe, expect, it } from 'vitest';
import { preinitialize } from '../src/preinitialize.ts';
import { parseModule, SectionId } from '../src/parse/module.ts';
import { BinaryWriter } from '../src/parse/writer.ts';
import { observe } from './helpers/observe.ts';
import { hasNativeWizer, nativeWizer } from './helpers/run.ts';
import { sectionBytes, sectionOrder } from './helpers/sections.ts';
import { wat } from './helpers/wat.ts';

const app = `(module
  (type $t (func (param i32) (result i32)))
  (import "env" "f" (func $f (param i32)))
  (table 4 funcref)
  (elem (i32.const 0) func $double $double)
  (memory 1)
  (global $counter (mut i32) (i32.const 0))
  (data $d (i32.const 0) "seed")
  (data $p "passive")
  (func $double (type $t) (i32.mul (local.get 0) (i32.const 2)))
  (func (export "wizer-initialize") (global.set $counter (call_indirect (type $t) (i32.const 21) (i32.const 1))))
  (func (export "use") (result i32) (memory.init $p (i32.const 100) (i32.const 0) (i32.const 7)) (global.get $counter)))`;

describe('rewrite', () => {
  it('copies the type, import, function, table, element and code sections byte for byte', async () => {
    const input = await wat(app);
    const output = await preinitialize(input);
    for (const id of [SectionId.type, SectionId.import, SectionId.function, SectionId.table, SectionId.element, SectionId.code]) {
      expect(sectionBytes(input, id), `section ${id}`).toBeDefined();
      expect(Buffer.from(sectionBytes(output, id)!).equals(Buffer.from(sectionBytes(input, id)!)), `section ${id}`).toBe(true);
    }
  });

  it('is deterministic', async () => {
    const input = await wat(app);
    const a = await preinitialize(input);
    const b = await preinitialize(input);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it('writes DataCount = original segments + new segments, active ones emptied, passive kept', async () => {
    const input = await wat(app);
    const output = await preinitialize(input);
    const before = parseModule(input);
    const after = parseModule(output);
    expect(before.dataCount).toBe(2);
    // "seed" at 0 is one run of non-zero bytes: one new segment.
    expect(after.dataCount).toBe(3);
    expect(after.dataSegments.map((s) => s.mode)).toEqual(['passive', 'passive', 'active']);
    const [emptied, passive] = after.dataSegments;
    expect([...output.subarray(emptied!.start, emptied!.end)]).toEqual([0x01, 0x00]);
    const original = before.dataSegments[1]!;
    expect(Buffer.from(output.subarray(passive!.start, passive!.end)).equals(Buffer.from(input.subarray(original.start, original.end)))).toBe(true);
  });

  it('drops the start section', async () => {
    const input = await wat(`(module (global $g (mut i32) (i32.const 0)) (func $s (global.set $g (i32.const 3))) (start $s) (func (export "wizer-initialize")))`);
    expect(sectionOrder(input)).toContain(SectionId.start);
    expect(sectionOrder(await preinitialize(input))).not.toContain(SectionId.start);
  });

  it('keeps a name section placed before the code section valid (the reference writes an invalid module)', async () => {
    const input = await wat(`(module (memory 1) (global $g (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set $g (i32.const 1)) (i32.store (i32.const 0) (i32.const 5))))`);
    // Move a name section in front of the code section by hand.
    const ctx = parseModule(input);
    const code = ctx.sections.find((s) => s.id === SectionId.code)!;
    const names = new BinaryWriter().name('name').byte(0x01).u32(2).u32(1).u32(0).u32(0).raw(new TextEncoder().encode('init'));
    const w = new BinaryWriter().raw(input.subarray(0, code.start)).section(0, new BinaryWriter().append(names));
    const moved = w.raw(input.subarray(code.start)).finish();
    expect(sectionOrder(moved)).toEqual([1, 3, 5, 6, 7, 'name', 10]);
    const output = await preinitialize(moved);
    expect(WebAssembly.validate(output as BufferSource)).toBe(true);
    expect(sectionOrder(output)).toEqual([1, 3, 5, 6, 7, 'name', 10, 11]);
  });

  it('inserts a missing data section where the reference does: before a trailing name section, else at the end', async () => {
    const input = await wat(`(module (memory 1) (func (export "wizer-initialize") (i32.store (i32.const 0) (i32.const 5))))`, { names: true });
    expect(sectionOrder(input)).toEqual([1, 3, 5, 7, 10, 'name']);
    expect(sectionOrder(await preinitialize(input))).toEqual([1, 3, 5, 7, 10, 11, 'name']);
    const producers = new BinaryWriter().section(0, new BinaryWriter().name('producers').u32(0)).finish();
    const withProducers = new Uint8Array([...input, ...producers]);
    expect(sectionOrder(await preinitialize(withProducers))).toEqual([1, 3, 5, 7, 10, 11, 'name', 'producers']);
    const noName = await wat(`(module (memory 1) (func (export "wizer-initialize") (i32.store (i32.const 0) (i32.const 5))))`);
    const output = await preinitialize(new Uint8Array([...noName, ...producers]));
    expect(sectionOrder(output)).toEqual([1, 3, 5, 7, 10, 'producers', 11]);
    if (hasNativeWizer) expect(Buffer.from(nativeWizer(new Uint8Array([...noName, ...producers])).output!).equals(Buffer.from(output))).toBe(true);
  });

  it('writes an empty data section and an empty export section like the reference', async () => {
    const input = await wat(`(module (func (export "wizer-initialize")))`);
    const output = await preinitialize(input);
    expect([...sectionBytes(output, SectionId.data)!]).toEqual([0]);
    expect([...sectionBytes(output, SectionId.export)!]).toEqual([0]);
  });

  it('copies immutable globals byte for byte, including forms the reference re-encodes', async () => {
    // i32.const 5 written with a redundant LEB byte (0x85 0x00); V8 accepts `global.get` of an earlier
    // immutable global, which the reference's engine refuses.
    const input = await wat(`(module (global $a i32 (i32.const 5)) (global $b i32 (global.get $a)) (global $m (mut i32) (i32.const 0))
      (func (export "wizer-initialize") (global.set $m (global.get $b))) (func (export "m") (result i32) (global.get $m)))`);
    const ctx = parseModule(input);
    const first = ctx.globals[0]!;
    const padded = new BinaryWriter()
      .raw(input.subarray(0, first.initStart)).raw(new Uint8Array([0x41, 0x85, 0x00, 0x0b]))
      .raw(input.subarray(first.end)).finish();
    // Fix the global section's size: one byte longer.
    const sec = ctx.sections.find((s) => s.id === SectionId.global)!;
    padded[sec.start + 1]!++;
    const output = await preinitialize(padded);
    const out = parseModule(output);
    expect([...output.subarray(out.globals[0]!.initStart, out.globals[0]!.end)]).toEqual([0x41, 0x85, 0x00, 0x0b]);
    expect([...output.subarray(out.globals[2]!.initStart, out.globals[2]!.end)]).toEqual([0x41, 0x05, 0x0b]);
  });

  it('writes memory64 segments with i64.const offsets and keeps the flags', async () => {
    const input = await wat(`(module (memory (export "m") i64 1 5)
      (func (export "wizer-initialize") (drop (memory.grow (i64.const 1))) (i64.store (i64.const 70000) (i64.const -1))))`);
    const output = await preinitialize(input);
    const ctx = parseModule(output);
    expect(ctx.memories[0]).toMatchObject({ memory64: true, min: 2, max: 5 });
    const seg = ctx.dataSegments[0]!;
    // flag 0, i64.const 70000, end, length 8
    expect([...output.subarray(seg.start, seg.start + 6)]).toEqual([0x00, 0x42, 0xf0, 0xa2, 0x04, 0x0b]);
    expect(await observe(output)).toEqual(await observe(input, { init: 'wizer-initialize' }));
  });

  it('writes offsets at or above 2 GiB as negative i32.const, as the encoding requires', async () => {
    const input = await wat(`(module (memory (export "m") 32769)
      (func (export "wizer-initialize") (i32.store8 (i32.const 0x80000001) (i32.const 1))))`);
    const output = await preinitialize(input);
    const seg = parseModule(output).dataSegments[0]!;
    expect([...output.subarray(seg.start, seg.start + 8)]).toEqual([0x00, 0x41, 0x81, 0x80, 0x80, 0x80, 0x78, 0x0b]);
  });
});

describe('the output skeleton used for validation', () => {
  it('is the output with each new segment emptied and at offset 0 (validation reads neither): same sections, same segment count', async () => {
    const { rewrite } = await import('../src/snapshot/rewrite.ts');
    const input = await wat(`(module (memory 1) (data (i32.const 0) "abc") (data "passive"))`);
    const ctx = parseModule(input);
    const memory = new Uint8Array(65536);
    memory.set([1, 2, 3], 10);
    memory.set([4], 100);
    const state = { globals: new Map(), refGlobals: new Map(), memories: [{ index: 0, pages: 1, bytes: memory }], tables: [], dropped: { data: new Set<number>(), elem: new Set<number>() } };
    const full = parseModule(rewrite(ctx, state, {}));
    const skeletonBytes = rewrite(ctx, state, { skeleton: true });
    const skeleton = parseModule(skeletonBytes);
    expect(skeleton.dataSegments.map((s) => s.mode)).toEqual(full.dataSegments.map((s) => s.mode));
    expect(skeleton.dataCount).toBe(full.dataCount);
    // The last segment: flag 0, i32.const 0, end, length 0; in the output: i32.const 100, length 1, the byte.
    const last = skeleton.dataSegments.at(-1)!;
    expect([...skeletonBytes.subarray(last.start, last.end)]).toEqual([0x00, 0x41, 0x00, 0x0b, 0x00]);
    const output = rewrite(ctx, state, {});
    const written = full.dataSegments.at(-1)!;
    expect([...output.subarray(written.start, written.end)]).toEqual([0x00, 0x41, 0xe4, 0x00, 0x0b, 0x01, 0x04]);
    expect(skeleton.sections.map((x) => x.id)).toEqual(full.sections.map((x) => x.id));
    expect(WebAssembly.validate(skeletonBytes as BufferSource)).toBe(true);
  });

  it('writes the scanner-encoded segments of a second memory as their bytes, and the skeleton as as many empty entries', async () => {
    const { rewrite } = await import('../src/snapshot/rewrite.ts');
    const { snapshotData, scriptSegments } = await import('../src/snapshot/segments.ts');
    const input = await wat(`(module (memory 1) (memory 2) (data (i32.const 0) "abc"))`);
    const ctx = parseModule(input);
    const first = new Uint8Array(65536);
    first.set([9], 5);
    const second = new WebAssembly.Memory({ initial: 2 });
    const bytes = new Uint8Array(second.buffer);
    for (let i = 0; i < 300; i++) bytes[i * 400 + 7] = 1 + (i % 200);
    const memories = [{ index: 0, pages: 1, bytes: first }, { index: 1, pages: 2, bytes, memory: second }];
    const data = snapshotData(memories);
    expect(data.pieces.some((p) => 'encoded' in p && p.memory === 1 && p.count === 300)).toBe(true);
    const state = { globals: new Map(), refGlobals: new Map(), memories, tables: [], dropped: { data: new Set<number>(), elem: new Set<number>() } };
    const full = rewrite(ctx, state, { segments: data });
    const written = parseModule(full).dataSegments.slice(1);
    const expected = scriptSegments(memories);
    expect(written.map((s) => [s.memory, full.subarray(s.end - s.length, s.end)])).toEqual(expected.map((s) => [s.memory, s.bytes]));
    expect(full).toEqual(rewrite(ctx, state, { segments: expected }));
    const skeleton = rewrite(ctx, state, { segments: data, skeleton: true });
    const entries = parseModule(skeleton).dataSegments.slice(1);
    expect(entries.map((s) => [s.memory, s.length])).toEqual(expected.map((s) => [s.memory, 0]));
    expect(WebAssembly.validate(skeleton as BufferSource)).toBe(true);
  });
});
