import wabtInit from 'wabt';

type Wabt = Awaited<ReturnType<typeof wabtInit>>;
let wabt: Promise<Wabt> | undefined;

/** Every post-MVP feature wabt knows, so fixtures can use what the engine supports. */
const FEATURES = {
  exceptions: true, mutable_globals: true, sat_float_to_int: true, sign_extension: true, simd: true,
  threads: true, function_references: true, multi_value: true, tail_call: true, bulk_memory: true,
  reference_types: true, gc: true, memory64: true, extended_const: true, relaxed_simd: true, multi_memory: true, annotations: true,
};

/** Assembles WebAssembly text into a binary module (fixtures are built from source at test time). */
export async function wat(text: string, options: { names?: boolean } = {}): Promise<Uint8Array> {
  const w = await (wabt ??= wabtInit());
  const module = w.parseWat('fixture.wat', text, FEATURES as Parameters<Wabt['parseWat']>[2]);
  try {
    if (options.names) module.generateNames?.();
    return module.toBinary({ write_debug_names: options.names ?? false }).buffer;
  } finally {
    module.destroy();
  }
}

/**
 * Assembles text that uses typed function references or GC types, which wabt does not parse, with Binaryen
 * (it may renumber types and drop unused ones; the module's behaviour is what tests look at).
 */
export async function gcWat(text: string): Promise<Uint8Array> {
  const { default: binaryen } = await import('binaryen');
  const module = binaryen.parseText(text);
  try {
    module.setFeatures(binaryen.Features.ReferenceTypes | binaryen.Features.GC | binaryen.Features.BulkMemory | binaryen.Features.MutableGlobals | binaryen.Features.Memory64);
    if (!module.validate()) throw new Error('Binaryen rejects the fixture');
    return module.emitBinary();
  } finally {
    module.dispose();
  }
}
