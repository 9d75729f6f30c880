// Builds fixtures/c/*.c into .fixtures/*.wasm (wasm32-wasi reactors) with Debian's clang, lld and wasi-libc.
// `node scripts/build-c-fixtures.ts` prints what it built; the tests call buildCFixtures() themselves.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const sources = join(root, 'fixtures', 'c');
export const C_FIXTURES_DIR = join(root, '.fixtures');
export const C_TOOLCHAIN_HINT = 'apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32';

/** Whether clang can target wasm32-wasi here. */
export function hasCToolchain(): boolean {
  const r = spawnSync('clang', ['--target=wasm32-wasi', '-print-resource-dir'], { encoding: 'utf8' });
  return r.status === 0 && existsSync('/usr/lib/wasm32-wasi/libc.a');
}

/** Compiles each C fixture whose .wasm is missing or older than its source; returns name → path. */
export function buildCFixtures(): Record<string, string> {
  mkdirSync(C_FIXTURES_DIR, { recursive: true });
  const built: Record<string, string> = {};
  for (const file of readdirSync(sources).filter((f) => f.endsWith('.c')).sort()) {
    const name = file.slice(0, -2);
    const source = join(sources, file);
    const out = join(C_FIXTURES_DIR, `${name}.wasm`);
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(source).mtimeMs) {
      execFileSync('clang', ['--target=wasm32-wasi', '-O2', '-mexec-model=reactor', '-Wl,--strip-debug', '-o', out, source], { stdio: 'inherit' });
    }
    built[name] = out;
  }
  return built;
}

if (import.meta.main) {
  if (!hasCToolchain()) {
    console.error(`no clang for wasm32-wasi here: ${C_TOOLCHAIN_HINT}`);
    process.exit(1);
  }
  for (const [name, path] of Object.entries(buildCFixtures())) console.log(`${name}: ${path} (${statSync(path).size} bytes)`);
}
