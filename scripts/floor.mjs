// The floor for one module: what Node itself needs, as a whole process, with nothing of wiz loaded (plain
// JavaScript, so no TypeScript is stripped). `compile` reads and compiles the module; `init` also instantiates
// it (node:wasi when --allow-wasi, with --dir/--mapdir) and runs `_initialize` and the init function.
// Usage: node scripts/floor.mjs compile|init module.wasm [-f NAME] [--allow-wasi] [--mapdir G::H] [--dir D]
import { readFileSync } from 'node:fs';

const [mode, path, ...args] = process.argv.slice(2);
const module = await WebAssembly.compile(readFileSync(path));
if (mode === 'init') {
  const flag = (name) => args.includes(name);
  const values = (name) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));
  const initFunc = values('-f')[0] ?? values('--init-func')[0] ?? 'wizer-initialize';
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    (imports[imp.module] ??= {})[imp.name] = () => { throw new Error(`import ${imp.module}.${imp.name} called`); };
  }
  let wasi;
  if (flag('--allow-wasi')) {
    process.emitWarning = () => {};
    const { WASI } = await import('node:wasi');
    const preopens = Object.fromEntries([
      ...values('--dir').map((d) => [d, d]),
      ...values('--mapdir').map((m) => m.split('::')),
    ]);
    wasi = new WASI({ version: 'preview1', preopens, returnOnExit: true });
    Object.assign(imports.wasi_snapshot_preview1 ??= {}, wasi.getImportObject().wasi_snapshot_preview1);
  }
  const instance = await WebAssembly.instantiate(module, imports);
  wasi?.finalizeBindings(instance);
  if (initFunc !== '_initialize' && instance.exports._initialize) instance.exports._initialize();
  instance.exports[initFunc]();
}
