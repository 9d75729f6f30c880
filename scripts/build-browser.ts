// Builds the browser bundle of the library: dist/browser/wiz.js (one self-contained ES module, for
// `<script type="module">` and bundlers), wiz.min.js (the same, minified) and wiz.d.ts (its types).
// `npm run build` runs it after tsc; `node scripts/build-browser.ts` prints the sizes.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'rolldown';

const root = join(import.meta.dirname, '..');
export const BROWSER_DIR = join(root, 'dist', 'browser');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

/** Why a bundle would not load in a browser, or `undefined`: a Node built-in or CommonJS left in it. */
export function browserProblem(code: string): string | undefined {
  const node = /\bfrom\s*["']node:[\w/]+["']|\bimport\s*\(\s*["']node:[\w/]+|\brequire\s*\(/.exec(code);
  return node ? `it refers to Node (${node[0]})` : undefined;
}

export async function buildBrowser(outDir = BROWSER_DIR): Promise<{ file: string; bytes: number; minified: number; gzipped: number }> {
  mkdirSync(outDir, { recursive: true });
  const banner = `/* wiz ${version}: WebAssembly pre-initializer, browser build (ES module). Apache-2.0. */`;
  for (const minify of [false, true]) {
    await build({
      input: join(root, 'src', 'index.ts'),
      platform: 'browser',
      logLevel: 'warn',
      output: {
        file: join(outDir, minify ? 'wiz.min.js' : 'wiz.js'),
        format: 'esm',
        minify,
        sourcemap: !minify,
        // The minifier drops comments, so it gets the banner after.
        postBanner: banner,
      },
    });
  }
  writeFileSync(join(outDir, 'wiz.d.ts'), "export * from '../src/index.js';\n");
  const code = readFileSync(join(outDir, 'wiz.js'), 'utf8');
  const min = readFileSync(join(outDir, 'wiz.min.js'));
  for (const [name, text] of [['wiz.js', code], ['wiz.min.js', min.toString('utf8')]] as const) {
    const problem = browserProblem(text);
    if (problem) throw new Error(`${join(outDir, name)} cannot run in a browser: ${problem}`);
  }
  return { file: join(outDir, 'wiz.js'), bytes: Buffer.byteLength(code), minified: min.length, gzipped: gzipSync(min).length };
}

if (import.meta.main) {
  const { bytes, minified, gzipped } = await buildBrowser();
  console.log(`dist/browser/wiz.js ${(bytes / 1024).toFixed(1)} KiB; wiz.min.js ${(minified / 1024).toFixed(1)} KiB (${(gzipped / 1024).toFixed(1)} KiB gzipped)`);
}
