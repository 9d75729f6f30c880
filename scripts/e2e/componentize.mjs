// Runs in the temporary ComponentizeJS project: `node componentize.mjs OUT [--wizer-bin PATH] [--env NAME[=VALUE]]...`
// builds app/app.js for the world in app/app.wit with ComponentizeJS and the Wizer at PATH (none: the one it ships).
// ComponentizeJS spawns Wizer with an environment of its own; --env adds a variable to it (NAME alone: this one's).
// Prints JSON.
import './spawn-log.mjs';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { componentize } from '@bytecodealliance/componentize-js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'wizer-bin': { type: 'string' }, env: { type: 'string', multiple: true } } });
const env = Object.fromEntries((values.env ?? []).map((v) => (v.includes('=') ? [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)] : [v, process.env[v]])));
const startedAt = Date.now();
const start = performance.now();
const { component } = await componentize({
  sourcePath: 'app/app.js',
  witPath: 'app/app.wit',
  worldName: 'app',
  ...(values['wizer-bin'] ? { wizerBin: values['wizer-bin'] } : {}),
  ...(values.env ? { env } : {}),
});
writeFileSync(positionals[0], component);
process.stdout.write(JSON.stringify({ ms: performance.now() - start, startedAt, endedAt: Date.now(), bytes: component.length }));
