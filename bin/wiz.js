#!/usr/bin/env node
// Kept to syntax any Node can parse, so that an old Node gets one clear line instead of a syntax error.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Node runs TypeScript by stripping types from 22.18 (22.x) and 23.6 on.
var parts = process.versions.node.split('.').map(Number);
if (parts[0] < 22 || (parts[0] === 22 && parts[1] < 18) || (parts[0] === 23 && parts[1] < 6)) {
  process.stderr.write('wiz: needs Node.js 22.18 or newer (this is ' + process.version + '); in a checkout, `npm ci` brings Node 24 for `npx wiz` and npm scripts\n');
  process.exit(1);
}

var root = join(dirname(fileURLToPath(import.meta.url)), '..');

// The newest modification time of the TypeScript sources below a folder.
function newest(dir) {
  var latest = 0;
  for (var entry of readdirSync(dir, { withFileTypes: true })) {
    var path = join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(path));
    else if (entry.name.endsWith('.ts')) latest = Math.max(latest, statSync(path).mtimeMs);
  }
  return latest;
}

// The compiled build starts about 100 ms sooner; it is used only when it is at least as new as the sources
// (`npm ci` and `npm test` build it), so an edit is never shadowed by a stale build.
var built = join(root, 'dist', 'cli', 'main.js');
var entry = '../cli/main.ts';
if (existsSync(built)) {
  var sources = existsSync(join(root, 'src')) ? Math.max(newest(join(root, 'src')), newest(join(root, 'cli'))) : 0;
  if (statSync(built).mtimeMs >= sources) entry = '../dist/cli/main.js';
}

import(entry).then(function (m) { return m.main(process.argv.slice(2)); }, function (e) {
  process.stderr.write('wiz: cannot load: ' + (e && e.message ? e.message.split('\n')[0] : e) + '\n');
  process.exit(70);
});
