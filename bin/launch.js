// Starts a command of the CLI. Kept to syntax any Node can parse, so that an old Node gets one clear line
// instead of a syntax error.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

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

/**
 * Which module to load: an installed package (below a node_modules folder, or anything but a git checkout) always
 * runs its compiled build, whatever the file times its unpacking left (Node does not strip types below
 * node_modules). A checkout runs the build only when it is at least as new as the sources (`npm ci` and
 * `npm test` build it; it starts about 100 ms sooner), so an edit is never shadowed by a stale build.
 */
export function entryPoint() {
  var built = join(root, 'dist', 'cli', 'main.js');
  var installed = root.split(sep).indexOf('node_modules') >= 0 || !existsSync(join(root, '.git'));
  if (installed) return existsSync(built) ? built : undefined;
  if (existsSync(built) && statSync(built).mtimeMs >= Math.max(newest(join(root, 'src')), newest(join(root, 'cli')))) return built;
  return join(root, 'cli', 'main.ts');
}

/** Runs `command` ('main' for wiz, 'wizer' for the reference's command line) with this process's arguments. */
export function launch(command) {
  // Node runs TypeScript by stripping types from 22.18 (22.x) and 23.6 on.
  var parts = process.versions.node.split('.').map(Number);
  if (parts[0] < 22 || (parts[0] === 22 && parts[1] < 18) || (parts[0] === 23 && parts[1] < 6)) {
    process.stderr.write('wiz: needs Node.js 22.18 or newer (this is ' + process.version + '); in a checkout, `npm ci` brings Node 24 for `npx wiz` and npm scripts\n');
    process.exit(1);
  }
  var entry = entryPoint();
  if (entry === undefined) {
    process.stderr.write('wiz: this installed package has no compiled build (dist/cli/main.js); reinstall it\n');
    process.exit(70);
  }
  import(pathToFileURL(entry).href).then(function (m) { return m[command](process.argv.slice(2)); }, function (e) {
    process.stderr.write('wiz: cannot load: ' + (e && e.message ? e.message.split('\n')[0] : e) + '\n');
    process.exit(70);
  });
}
