// Loaded first into a build tool's Node process (imported, or `--import` through NODE_OPTIONS): appends each
// spawnSync the tool makes (command, arguments, time, status) as a JSON line to $WIZ_E2E_SPAWN_LOG. So `npm run e2e`
// times the Wizer step and sees which executable the tool really ran, without wrapping that executable.
import childProcess from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const log = process.env.WIZ_E2E_SPAWN_LOG;
if (log) {
  const spawnSync = childProcess.spawnSync;
  childProcess.spawnSync = function timedSpawnSync(command, args, options) {
    const start = performance.now();
    const result = spawnSync.call(this, command, args, options);
    const entry = { command, args: Array.isArray(args) ? args : [], ms: performance.now() - start, status: result.status, signal: result.signal };
    appendFileSync(log, `${JSON.stringify(entry)}\n`);
    return result;
  };
  // `import { spawnSync } from 'node:child_process'` in the tool's modules sees the timed one too.
  syncBuiltinESMExports();
}
