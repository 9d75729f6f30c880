#!/usr/bin/env node
// Kept to syntax any Node can parse, so that an old Node gets one clear line instead of a syntax error.
// Node runs TypeScript by stripping types from 22.18 (22.x) and 23.6 on.
var parts = process.versions.node.split('.').map(Number);
if (parts[0] < 22 || (parts[0] === 22 && parts[1] < 18) || (parts[0] === 23 && parts[1] < 6)) {
  process.stderr.write('wiz: needs Node.js 22.18 or newer (this is ' + process.version + '); in a checkout, `npm ci` brings Node 24 for `npx wiz` and npm scripts\n');
  process.exit(1);
}
import('../cli/main.ts').then(function (m) { return m.main(process.argv.slice(2)); }, function (e) {
  process.stderr.write('wiz: cannot load: ' + (e && e.message ? e.message.split('\n')[0] : e) + '\n');
  process.exit(70);
});
