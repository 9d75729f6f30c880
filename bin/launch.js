// Starts a command of the CLI. Kept to syntax any Node can parse, so that an old Node gets one clear line
// instead of a syntax error. Node's modules are reached through `process.getBuiltinModule` (Node 20.16+, and
// Deno and Bun), not `import`: an ES import of node:fs enumerates, and so loads, all of it (its streams too),
// which costs every run milliseconds.

function builtin(name) {
  return process.getBuiltinModule(name);
}

// The newest modification time of the TypeScript sources below a folder.
function newest(dir) {
  var fs = builtin('node:fs');
  var path = builtin('node:path');
  var latest = 0;
  for (var entry of fs.readdirSync(dir, { withFileTypes: true })) {
    var file = path.join(dir, entry.name);
    if (entry.isDirectory()) latest = Math.max(latest, newest(file));
    else if (entry.name.endsWith('.ts')) latest = Math.max(latest, fs.statSync(file).mtimeMs);
  }
  return latest;
}

/**
 * Which module to load: an installed package (below a node_modules folder, or anything but a git checkout) always
 * runs its compiled build, whatever the file times its unpacking left (Node does not strip types below
 * node_modules). A checkout runs the build only when it is at least as new as the sources (`npm ci` and
 * `npm test` build it; it starts about 100 ms sooner), so an edit is never shadowed by a stale build. The build
 * is the command line's bundle (scripts/build-cli.ts), one CommonJS file that Node loads fastest.
 */
export function entryPoint() {
  var fs = builtin('node:fs');
  var path = builtin('node:path');
  var root = path.join(path.dirname(builtin('node:url').fileURLToPath(import.meta.url)), '..');
  var built = path.join(root, 'dist', 'cli', 'wiz.cjs');
  var installed = root.split(path.sep).indexOf('node_modules') >= 0 || !fs.existsSync(path.join(root, '.git'));
  if (installed) return fs.existsSync(built) ? built : undefined;
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= Math.max(newest(path.join(root, 'src')), newest(path.join(root, 'cli')))) return built;
  return path.join(root, 'cli', 'main.ts');
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
    process.stderr.write('wiz: this installed package has no compiled build (dist/cli/wiz.cjs); reinstall it\n');
    process.exit(70);
  }
  var fail = function (e) {
    process.stderr.write('wiz: cannot load: ' + (e && e.message ? e.message.split('\n')[0] : e) + '\n');
    process.exit(70);
  };
  if (entry.endsWith('.ts')) {
    finishes(import(builtin('node:url').pathToFileURL(entry).href).then(function (m) { return m[command](process.argv.slice(2)); }, fail));
    return;
  }
  // Node keeps the compiled bundle in its code cache (in the temporary directory) for the next run; other
  // runtimes lack the call.
  var nodeModule = builtin('node:module');
  if (typeof nodeModule.enableCompileCache === 'function') nodeModule.enableCompileCache();
  var m;
  try {
    m = nodeModule.createRequire(import.meta.url)(entry);
  } catch (e) {
    fail(e);
  }
  finishes(m[command](process.argv.slice(2)));
}

/**
 * Node ends a process whose event loop has drained even while a promise is pending (an engine task it does not
 * count, such as an eager WebAssembly compile): that would be exit code 0 with nothing done. Say so instead.
 */
function finishes(promise) {
  var done = false;
  var mark = function () { done = true; };
  Promise.resolve(promise).then(mark, mark);
  process.on('exit', function (code) {
    if (done || code !== 0) return;
    process.stderr.write('wiz: internal error: the process ended before the command finished (please report this)\n');
    process.exitCode = 70;
  });
}
