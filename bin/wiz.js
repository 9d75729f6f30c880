#!/usr/bin/env node
// Kept to syntax any Node can parse, so that an old Node gets one clear line instead of a syntax error.
var parts = process.versions.node.split('.').map(Number);
if (parts[0] < 22 || (parts[0] === 22 && parts[1] < 18)) {
  process.stderr.write('wiz: needs Node.js 22.18 or newer (this is ' + process.version + '); in a checkout, `npm ci` brings Node 24 for `npx wiz` and npm scripts\n');
  process.exit(1);
}
import('../cli/main.ts').then(function (m) { return m.main(process.argv.slice(2)); });
