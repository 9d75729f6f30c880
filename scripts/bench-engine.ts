// The SpiderMonkey-based engine that @bytecodealliance/componentize-js pre-initializes, run by that package
// itself, once with the native Wizer and once with wiz as its `wizerBin`: the same module, flags, environment
// and stdin, timed by a wrapper around each tool. The package is installed at bench time into .bench/engine
// (it is not a dependency: its own Wizer dependency has platform packages this registry lacks).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface EngineRun { ms: number; rssMB: number | undefined; size: number; ok: boolean }

/** The native Wizer 10.0.0 that componentize-js pins (it keeps Wasmtime's code cache in ~/.cache/wasmtime). */
export function wizer10(root: string): string | undefined {
  const path = join(root, 'node_modules', '@bytecodealliance', 'wizer', 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer');
  return existsSync(path) ? path : undefined;
}

const PACKAGE = '@bytecodealliance/componentize-js@0.23.0';
const PREVIEW2_SHIM = '@bytecodealliance/preview2-shim@0.17.9';

/** Runs componentize() `pairs` times with each tool (A B A B after a warm-up); undefined when it cannot. */
export async function benchEngine(root: string, pairs: number, log: (line: string) => void): Promise<{ wiz: EngineRun[]; native: EngineRun[]; native10: EngineRun[]; inputSize: number } | undefined> {
  const dir = join(root, '.bench', 'engine');
  mkdirSync(dir, { recursive: true });
  // Its own install: componentize-js imports preview2-shim without declaring it and needs the 0.17 line, older
  // than the one wiz's component support pins.
  const pkg = join(dir, 'node_modules', '@bytecodealliance', 'componentize-js');
  if (!existsSync(pkg)) {
    const r = spawnSync('npm', ['install', '--prefix', dir, '--no-save', '--no-audit', '--no-fund', PACKAGE, PREVIEW2_SHIM], { encoding: 'utf8' });
    if (r.status !== 0) {
      log(`skipping the componentize-js engine: npm could not install ${PACKAGE}`);
      return undefined;
    }
  }
  writeFileSync(join(dir, 'hello.js'), 'export function hello() { return "hi"; }\n');
  writeFileSync(join(dir, 'hello.wit'), 'package local:hello;\n\nworld hello {\n  export hello: func() -> string;\n}\n');
  const time = existsSync('/usr/bin/time') ? ['/usr/bin/time', '-f', '%M', '-o', join(dir, 'rss.txt')] : [];
  const native10 = wizer10(root);
  const wrappers: Record<string, string[]> = {
    native: [join(root, 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer')],
    wiz: [process.execPath, join(root, 'bin', 'wiz.js'), 'init'],
    ...(native10 && { native10: [native10] }),
  };
  for (const [name, command] of Object.entries(wrappers)) {
    // componentize-js runs `wizerBin ARGS… < stdin`; the wrapper times the tool alone and keeps what it made.
    const script = join(dir, `${name}.sh`);
    writeFileSync(script, `#!/bin/bash
start=$(date +%s%N)
RUST_BACKTRACE=0 ${[...time, ...command].map((a) => `'${a}'`).join(' ')} "$@"
rc=$?
echo $(( ($(date +%s%N) - start) / 1000000 )) > '${join(dir, 'ms.txt')}'
for a in "$@"; do last="$a"; case "$a" in -o=*) out="\${a#-o=}";; esac; done
cp "$last" '${join(dir, 'input.wasm')}'; [ -n "$out" ] && stat -c %s "$out" > '${join(dir, 'size.txt')}'
exit $rc
`);
    chmodSync(script, 0o755);
  }
  const { componentize } = (await import(join(pkg, 'src', 'componentize.js'))) as {
    componentize: (o: Record<string, unknown>) => Promise<{ component: Uint8Array }>;
  };
  const once = async (tool: 'native' | 'wiz' | 'native10'): Promise<EngineRun> => {
    for (const f of ['ms.txt', 'rss.txt', 'size.txt']) rmSync(join(dir, f), { force: true });
    let ok = true;
    try {
      await componentize({ sourcePath: join(dir, 'hello.js'), witPath: join(dir, 'hello.wit'), worldName: 'hello', wizerBin: join(dir, `${tool}.sh`) });
    } catch (e) {
      ok = false;
      log(`componentize-js with ${tool} failed: ${String((e as Error).message).split('\n')[0]}`);
    }
    const read = (f: string) => (existsSync(join(dir, f)) ? Number(readFileSync(join(dir, f), 'utf8').trim()) : NaN);
    const rss = read('rss.txt');
    return { ms: read('ms.txt'), rssMB: Number.isFinite(rss) ? rss / 1024 : undefined, size: read('size.txt'), ok };
  };
  // The warm-up also fills wiz's and Wizer 10's code caches: every build after a project's first has them.
  await once('wiz');
  await once('native');
  if (native10) await once('native10');
  const runs = { wiz: [] as EngineRun[], native: [] as EngineRun[], native10: [] as EngineRun[] };
  for (let i = 0; i < pairs; i++) {
    runs.wiz.push(await once('wiz'));
    runs.native.push(await once('native'));
    if (native10) runs.native10.push(await once('native10'));
  }
  return { ...runs, inputSize: existsSync(join(dir, 'input.wasm')) ? readFileSync(join(dir, 'input.wasm')).length : 0 };
}

// `node scripts/bench-engine.ts` runs it alone.
if (import.meta.main) {
  const result = await benchEngine(join(import.meta.dirname, '..'), 3, console.error);
  console.log(JSON.stringify(result, null, 2));
}
