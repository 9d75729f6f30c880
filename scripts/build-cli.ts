// Builds the command line's bundle: dist/cli/wiz.cjs (with the commands used less often in chunks beside it,
// dist/cli/wiz-*.cjs, loaded when one runs). Node loads one CommonJS file in a fraction of the time it takes to
// resolve, load and link fifty ES modules, and CommonJS `require` of a built-in skips the ES facade that
// enumerates (and so loads) every lazy part of it. `npm run build` runs it after tsc; the launcher (bin/launch.js)
// prefers the bundle. The library stays the unbundled ES modules in dist/src and dist/cli.
import { rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'rolldown';

const root = join(import.meta.dirname, '..');
export const CLI_DIR = join(root, 'dist', 'cli');

/**
 * commander imports node:child_process for subcommands that are separate executables, which wiz has none of;
 * loading it brings node:net, streams and more into every run. It gets a stand-in that loads it when touched.
 */
const lazyChildProcess: Plugin = {
  name: 'wiz-lazy-child-process',
  resolveId(id, importer) {
    if (id === 'node:child_process' && importer?.includes(`${join('node_modules', 'commander')}`)) return '\0lazy-child-process';
    return undefined;
  },
  load(id) {
    if (id !== '\0lazy-child-process') return undefined;
    return `export default new Proxy({}, { get: (_, key) => process.getBuiltinModule('node:child_process')[key] });`;
  },
};

export async function buildCli(outDir = CLI_DIR): Promise<void> {
  for (const name of readdirSync(outDir).filter((n) => /^wiz(-.*)?\.cjs$/.test(n))) rmSync(join(outDir, name));
  await build({
    input: { wiz: join(root, 'cli', 'main.ts') },
    platform: 'node',
    logLevel: 'warn',
    plugins: [lazyChildProcess],
    output: {
      dir: outDir,
      format: 'cjs',
      entryFileNames: '[name].cjs',
      chunkFileNames: 'wiz-[name].cjs',
    },
  });
}

if (import.meta.main) await buildCli();
