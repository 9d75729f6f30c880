// The binary reader and writer: LEB128 at its limits, bounds, and chunked writing.
import { describe, expect, it } from 'vitest';
import { parseModule } from '../src/parse/module.ts';
import { BinaryReader } from '../src/parse/reader.ts';
import { BinaryWriter } from '../src/parse/writer.ts';
import { WizError } from '../src/errors.ts';

const bytes = (...b: number[]) => new Uint8Array(b);

describe('BinaryWriter', () => {
  it('writes minimal LEB128 at the edges', () => {
    expect([...new BinaryWriter().u32(0).finish()]).toEqual([0]);
    expect([...new BinaryWriter().u32(127).u32(128).finish()]).toEqual([0x7f, 0x80, 0x01]);
    expect([...new BinaryWriter().u32(0xffffffff).finish()]).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
    expect([...new BinaryWriter().s32(-1).s32(63).s32(64).s32(-64).s32(-65).finish()]).toEqual([0x7f, 0x3f, 0xc0, 0x00, 0x40, 0xbf, 0x7f]);
    expect([...new BinaryWriter().s32(-2147483648).finish()]).toEqual([0x80, 0x80, 0x80, 0x80, 0x78]);
    expect([...new BinaryWriter().s64(-(2n ** 63n)).finish()]).toEqual([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]);
    expect([...new BinaryWriter().s64(2n ** 53n + 1n).finish()]).toEqual([0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
  });

  it('appends views without copying and joins sized parts', () => {
    const input = bytes(1, 2, 3, 4);
    const part = new BinaryWriter().raw(input.subarray(1, 3)).byte(9);
    const w = new BinaryWriter().byte(0xaa).sized(part);
    expect(w.length).toBe(5);
    expect([...w.finish()]).toEqual([0xaa, 3, 2, 3, 9]);
    const single = new BinaryWriter().raw(input).finish();
    expect(single.buffer).toBe(input.buffer); // one chunk: the view itself
  });

  it('round-trips through the reader', () => {
    const values = [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 32 - 1];
    const w = new BinaryWriter();
    for (const v of values) w.u32(v);
    const r = new BinaryReader(w.finish());
    expect(values.map(() => r.u32())).toEqual(values);
    expect(r.done).toBe(true);
  });
});

describe('BinaryReader', () => {
  const fails = (f: () => unknown, message: RegExp) => {
    expect(f).toThrow(WizError);
    expect(f).toThrow(message);
  };
  it('refuses LEB128 that is too long or too large', () => {
    fails(() => new BinaryReader(bytes(0x80, 0x80, 0x80, 0x80, 0x80, 0x00)).u32(), /integer representation too long at offset 0/);
    fails(() => new BinaryReader(bytes(0xff, 0xff, 0xff, 0xff, 0x1f)).u32(), /integer too large at offset 0/);
    fails(() => new BinaryReader(bytes(0x80)).u32(), /unexpected end at offset 1/);
  });
  it('refuses counts and lengths past the end', () => {
    fails(() => new BinaryReader(bytes(0xff, 0x01, 0)).count(), /count 255 exceeds the remaining bytes/);
    fails(() => new BinaryReader(bytes(5, 1, 2)).bytesView(5), /length 5 runs past the end/);
    fails(() => new BinaryReader(bytes(2, 0xc3, 0x28)).name(), /name is not valid UTF-8/);
  });
});

describe('parseModule on broken modules', () => {
  const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const cases: [string, number[], RegExp][] = [
    ['a section past the end', [...header, 1, 10, 0], /type section of 10 bytes runs past the end of the file \(1 bytes left\)/],
    ['a duplicate section', [...header, 5, 1, 0, 5, 1, 0], /memory section is duplicated or out of order at offset 11/],
    ['sections out of order', [...header, 5, 1, 0, 1, 1, 0], /type section is duplicated or out of order/],
    ['an unknown section id', [...header, 42, 0], /unknown section id 42/],
    ['trailing bytes in a section', [...header, 5, 3, 0, 0, 0], /memory section has 2 unread bytes at its end/],
    ['a huge count with a tiny body', [...header, 6, 5, 0xff, 0xff, 0xff, 0xff, 0x0f], /count 4294967295 exceeds the remaining bytes/],
    ['an overlong section size', [...header, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], /integer representation too long/],
    ['a bad data segment flag', [...header, 11, 2, 1, 7], /unknown data segment flags 7/],
    ['a version 2 module', [0x00, 0x61, 0x73, 0x6d, 0x02, 0x00, 0x00, 0x00], /unsupported WebAssembly binary version 2/],
  ];
  for (const [name, input, message] of cases) {
    it(name, () => {
      expect(() => parseModule(new Uint8Array(input))).toThrow(message);
    });
  }
});
