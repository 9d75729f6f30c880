// What `import … from 'wiz'` gives in Node: the library, and as the default export the absolute path of a
// `wizer` executable, as the @bytecodealliance/wizer package exports its binary, so that an npm alias or override
// of that package to wiz is the whole change for a build that spawns it.
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export * from '../src/index.ts';

/** This file runs from `cli/` (sources) or `dist/cli/` (the build). */
const binDir = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../bin/' : '../../bin/', import.meta.url));

/** The package's own `wizer` script: found through PATH by its `#!/usr/bin/env node` line (a .cmd on Windows). */
const script = join(binDir, process.platform === 'win32' ? 'wizer.cmd' : 'wizer.js');

/**
 * Build tools spawn the Wizer path with an environment of their own (ComponentizeJS and js-compute pass no PATH):
 * a script that asks PATH for `node` then finds none, or the system's older one. So the path exported is a
 * launcher pinned to the runtime that imported wiz (which runs wiz too), written once beside the package (or in
 * the temporary directory when the package folder is read-only). The plain script where that cannot be made.
 */
function pinnedLauncher(): string {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const versions = process.versions as Record<string, string | undefined>;
  // A Node too old to run wiz: the script, whose launcher says what is needed.
  if (!versions.bun && !versions.deno && (major < 22 || (major === 22 && minor < 18) || (major === 23 && minor < 6))) return script;
  const runtime = [process.execPath, ...(versions.deno ? ['run', '-A'] : [])];
  const windows = process.platform === 'win32';
  const wizerJs = join(binDir, 'wizer.js');
  const text = windows
    ? `@ECHO off\r\n${[...runtime, wizerJs].map((a) => `"${a}"`).join(' ')} %*\r\n`
    : `#!/bin/sh\nexec ${[...runtime, wizerJs].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')} "$@"\n`;
  let hash = 0x811c9dc5; // FNV-1a of the text: a launcher per runtime and package location
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  const name = `.wizer-${hash.toString(16).padStart(8, '0')}${windows ? '.cmd' : ''}`;
  for (const dir of [binDir, tmpdir()]) {
    const path = join(dir, name);
    try {
      if (existsSync(path) && readFileSync(path, 'utf8') === text) return path;
      const temp = `${path}.${process.pid}.tmp`;
      writeFileSync(temp, text, { mode: 0o755 });
      chmodSync(temp, 0o755);
      renameSync(temp, path);
      return path;
    } catch {
      rmSync(`${path}.${process.pid}.tmp`, { force: true });
    }
  }
  return script;
}

/** The `wizer` executable: spawn it with the reference's arguments, with or without a shell or PATH. */
const wizer: string = pinnedLauncher();

export default wizer;
