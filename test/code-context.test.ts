// When the snapshot's code need not be validated again: everything it refers to is as in the input.
import { describe, expect, it } from 'vitest';
import { parseModule } from '../src/parse/module.ts';
import { preinitialize } from '../src/preinitialize.ts';
import { bodiesToValidate, codeContextKept, declaredFunctions } from '../src/snapshot/code-context.ts';
import { wat } from './helpers/wat.ts';

describe('codeContextKept', () => {
  it('holds for a snapshot of a module with a table, globals, memory and data: only values changed', async () => {
    const input = await wat(`(module
      (type $t (func (result i32)))
      (table 2 funcref) (elem (i32.const 0) $a $b)
      (memory 1) (global $g (mut i32) (i32.const 0))
      (func $a (result i32) (i32.const 1)) (func $b (result i32) (call_indirect (type $t) (i32.const 0)))
      (func (export "wizer-initialize") (global.set $g (i32.const 5)) (i32.store (i32.const 8) (i32.const 9)))
      (func (export "get") (result i32) (global.get $g)))`);
    const output = await preinitialize(input);
    expect(codeContextKept(parseModule(input), parseModule(output))).toBe(true);
  });

  it('fails when a function the code takes a reference to is no longer declared (its only declaration was the removed init export)', async () => {
    const input = await wat(`(module
      (func $init (export "wizer-initialize"))
      (func (export "ref") (result funcref) (ref.func $init)))`);
    const ctx = parseModule(input);
    expect(declaredFunctions(ctx)).toEqual(new Set([0, 1]));
    const without = await wat(`(module
      (func $init)
      (func (export "ref") (result funcref) (ref.null func)))`);
    expect(codeContextKept(ctx, parseModule(without))).toBe(false);
    // wiz writes nothing invalid for it: the full validation says why.
    await expect(preinitialize(input)).rejects.toThrow(/the snapshot came out invalid/);
  });

  it('keeps a removed export declared when an element segment declares it too (or a global, in the output), and only then', async () => {
    const input = await wat(`(module
      (table 2 funcref) (elem (i32.const 0) $other $init)
      (func $init (export "wizer-initialize"))
      (func $other)
      (func (export "ref") (result funcref) (ref.func $init)))`);
    const output = await preinitialize(input);
    expect(bodiesToValidate(parseModule(input), parseModule(output))).toEqual(new Set());
    const ctx = parseModule(input);
    expect(declaredFunctions(ctx, false)).toEqual(new Set([0, 2]));
    expect(declaredFunctions(ctx)).toEqual(new Set([0, 1, 2]));
    // The same elements in a module that no longer exports it, with a global that does declare it: still declared.
    const viaGlobal = await wat(`(module
      (table 2 funcref) (elem (i32.const 0) $other $other)
      (global funcref (ref.func $init))
      (func $init) (func $other)
      (func (export "ref") (result funcref) (ref.func $init)))`);
    const noGlobal = await wat(`(module
      (table 2 funcref) (elem (i32.const 0) $other $other)
      (global funcref (ref.null func))
      (func $init) (func $other)
      (func (export "ref") (result funcref) (ref.func $init)))`);
    expect(bodiesToValidate(parseModule(viaGlobal), parseModule(viaGlobal))).toEqual(new Set());
    // Declared by the global alone, then by nothing: the body that refers to it is named.
    expect(bodiesToValidate(parseModule(viaGlobal), parseModule(noGlobal))).toEqual(new Set([2]));
  });

  it('fails when a global, table or memory changes type, or the data count shrinks', async () => {
    const base = await wat(`(module (memory 1) (table 1 funcref) (global (mut i32) (i32.const 0)) (data "x") (func (data.drop 0)))`);
    for (const other of [
      `(module (memory 1) (table 1 funcref) (global (mut i64) (i64.const 0)) (data "x") (func (data.drop 0)))`,
      `(module (memory 1) (table 1 externref) (global (mut i32) (i32.const 0)) (data "x") (func (data.drop 0)))`,
      `(module (memory i64 1) (table 1 funcref) (global (mut i32) (i32.const 0)) (data "x") (func (data.drop 0)))`,
      `(module (memory 1) (table 1 funcref) (global (mut i32) (i32.const 0)) (func))`,
    ]) {
      expect(codeContextKept(parseModule(base), parseModule(await wat(other)))).toBe(false);
    }
    expect(codeContextKept(parseModule(base), parseModule(base))).toBe(true);
  });

  it('names only the bodies that hold the bytes of ref.func to a function no longer declared: a constant that looks like one is validated among stubs, and passes', async () => {
    // `i32.const 82` is 0x41 0xd2 0x00: the bytes of `ref.func 0` after its opcode, and function 0 is the init function.
    const input = await wat(`(module
      (global $g (mut i32) (i32.const 0))
      (func $init (export "wizer-initialize") (global.set $g (i32.const 1)))
      (func (export "looks") (result i32) (i32.const 82))
      (func (export "plain") (result i32) (global.get $g)))`);
    const output = await preinitialize(input);
    expect(WebAssembly.validate(output as Uint8Array<ArrayBuffer>)).toBe(true);
    expect(bodiesToValidate(parseModule(input), parseModule(output))).toEqual(new Set([1]));
    expect(codeContextKept(parseModule(input), parseModule(output))).toBe(false);
    // The real reference is among the bodies named, and wiz refuses it.
    const refers = await wat(`(module
      (func $init (export "wizer-initialize"))
      (func (export "plain") (result i32) (i32.const 7))
      (func (export "ref") (result funcref) (ref.func $init)))`);
    const without = await wat(`(module (func $init) (func (export "plain") (result i32) (i32.const 7)) (func (export "ref") (result funcref) (ref.null func)))`);
    expect(bodiesToValidate(parseModule(refers), parseModule(without))).toEqual(new Set([2]));
    await expect(preinitialize(refers)).rejects.toThrow(/the snapshot came out invalid/);
    // A changed type section: the whole code again.
    expect(bodiesToValidate(parseModule(refers), parseModule(await wat('(module (func (param i32)))')))).toBe('all');
  });
});
