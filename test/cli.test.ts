// The command line: bad inputs give one line on stderr, a non-zero exit and no output file.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir, wiz, wizInit } from './helpers/run.ts';
import { wat } from './helpers/wat.ts';

const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const init = (body: string) => `(func (export "wizer-initialize") ${body})`;

/** A custom section named `name` with `size` bytes of content after its name. */
function customSection(name: string, size: number): number[] {
  const leb = (n: number) => {
    const out: number[] = [];
    do {
      out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
      n >>>= 7;
    } while (n > 0);
    return out;
  };
  const content = [...leb(name.length), ...new TextEncoder().encode(name), ...new Uint8Array(size)];
  return [0, ...leb(content.length), ...content];
}

interface BadCase {
  name: string;
  input: () => Promise<Uint8Array> | Uint8Array;
  args?: string[];
  message: RegExp;
}

const bad: BadCase[] = [
  { name: 'not a wasm file', input: () => new TextEncoder().encode('hello, world'), message: /not a WebAssembly module: the file does not start with the `\\0asm` magic bytes/ },
  { name: 'an empty file', input: () => new Uint8Array(0), message: /not a complete WebAssembly module/ },
  {
    name: 'a truncated module',
    input: async () => (await wat(`(module (memory 1) ${init('')})`)).subarray(0, 20),
    message: /malformed module: .* runs past the end of the file/,
  },
  {
    name: 'an invalid module (says what the engine says)',
    input: () => new Uint8Array([...header, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 10, 5, 1, 3, 0, 0x6a, 0x0b]),
    message: /invalid module: Compiling function #0 failed: .*i32\.add/,
  },
  // Init never calls the invalid function: the command line's engine settings (cli/engine.ts: modules of at most
  // 8 KB, and of 1 MB or more, where bodies are validated lazily) must still refuse it before anything runs.
  ...[0, 1_200_000].map((padding): BadCase => ({
    name: `an invalid function that init never calls, in a module of ${padding ? '1.2 MB' : 'a few bytes'}`,
    input: () => new Uint8Array([...header, 1, 4, 1, 0x60, 0, 0, 3, 3, 2, 0, 0, 7, 20, 1, 16,
      ...new TextEncoder().encode('wizer-initialize'), 0, 0, 10, 9, 2, 2, 0, 0x0b, 4, 0, 0x6a, 0x1a, 0x0b,
      ...(padding ? customSection('pad', padding) : [])]),
    message: /invalid module: Compiling function #1 failed: .*i32\.add/,
  })),
  {
    name: 'a component without the init function (components are pre-initialized: test/component.test.ts)',
    input: () => new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]),
    message: /the component does not export the init function "wizer-initialize" \(it exports no functions or interfaces\)/,
  },
  {
    name: 'an export already named __wizer_*',
    input: () => wat(`(module (memory (export "__wizer_memory_0") 1) ${init('')})`),
    message: /already exports "__wizer_memory_0": names starting with __wizer_ are reserved/,
  },
  {
    name: 'an import already named __wizer_*',
    input: () => wat(`(module (import "env" "__wizer_x" (func)) ${init('')})`),
    message: /already imports "env" "__wizer_x"/,
  },
  {
    name: 'an imported memory',
    input: () => wat(`(module (import "env" "memory" (memory 1)) ${init('')})`),
    message: /imports memory "env" "memory": wiz cannot snapshot state that lives outside the module/,
  },
  {
    name: 'an imported global',
    input: () => wat(`(module (import "env" "g" (global i32)) ${init('')})`),
    message: /imports global "env" "g"/,
  },
  {
    name: 'an imported table',
    input: () => wat(`(module (import "env" "t" (table 1 funcref)) ${init('')})`),
    message: /imports table "env" "t"/,
  },
  {
    name: 'a missing init function (lists the exported functions)',
    input: () => wat(`(module (func (export "main")))`),
    message: /does not export the init function "wizer-initialize" \(its exported functions: "main"\); name one with -f\/--init-func/,
  },
  {
    name: 'an init function named with -f that is not exported',
    input: () => wat(`(module ${init('')})`),
    args: ['-f', 'setup'],
    message: /does not export the init function "setup"/,
  },
  {
    name: 'an init function that is not a function',
    input: () => wat(`(module (global (export "wizer-initialize") i32 (i32.const 0)))`),
    message: /the init function "wizer-initialize" is exported as a global, not a function/,
  },
  {
    name: 'an init function of the wrong type',
    input: () => wat(`(module (func (export "wizer-initialize") (param i32) (result i64) (i64.const 0)))`),
    message: /must take no parameters and return nothing, but its type is \[i32\] -> \[i64\]/,
  },
  {
    name: 'a trap in the start function',
    input: () => wat(`(module (func $s unreachable) (start $s) ${init('')})`),
    message: /the start function trapped: unreachable/,
  },
  {
    name: 'a trap in the init function',
    input: () => wat(`(module (memory 1) ${init('(drop (i32.load (i32.const 70000)))')})`),
    message: /the init function "wizer-initialize" trapped: memory access out of bounds/,
  },
  {
    name: 'a stack overflow in the init function',
    input: () => wat(`(module (func $r (call $r)) ${init('(call $r)')})`),
    message: /the init function "wizer-initialize" trapped: call stack exhausted/,
  },
  {
    name: 'an uncaught WebAssembly exception',
    input: () => wat(`(module (tag $e) ${init('(throw $e)')})`),
    message: /threw a WebAssembly exception that nothing caught/,
  },
  {
    name: 'a call to an import during init (named)',
    input: () => wat(`(module (import "env" "now" (func $now (result i64))) ${init('(drop (call $now))')})`),
    message: /called the import "env" "now" during initialization, which wiz does not provide/,
  },
  {
    name: 'a call to an import that the module itself catches',
    input: () => wat(`(module (import "env" "f" (func $f)) ${init('(block $h (try_table (catch_all $h) (call $f)))')})`),
    message: /called the import "env" "f" during initialization/,
  },
  {
    name: 'a feature the engine does not support (names the feature)',
    input: () => new Uint8Array([...header, 5, 4, 1, 0x08, 1, 0]),
    message: /uses the WebAssembly custom-page-sizes feature, which Node [\d.]+ does not enable/,
  },
  {
    // (module (global (mut externref) (ref.null extern))
    //   (func (export "wizer-initialize") (global.set 0 (extern.convert_any (ref.i31 (i32.const 1))))))
    name: 'a global that holds a reference no module can write (a non-null externref)',
    input: () => new Uint8Array(Buffer.from('0061736d01000000010401600000030201000606016f01d06f0b07140110' +
      Buffer.from('wizer-initialize').toString('hex') + '00000a0c010a004101fb1cfb1b24000b', 'hex')),
    message: /^wiz: global 0 \(mutable externref\) holds a non-null externref: a module cannot hold it as a constant, so wiz cannot write it into a snapshot\n$/,
  },
  { name: 'duplicate rename sources', input: () => wat(`(module ${init('')})`), args: ['-r', 'a=x', '-r', 'b=x'], message: /export "x" is renamed more than once/ },
  { name: 'duplicate rename destinations', input: () => wat(`(module ${init('')})`), args: ['-r', 'a=x', '-r', 'a=y'], message: /more than one export is renamed to "a"/ },
  { name: 'a malformed rename', input: () => wat(`(module ${init('')})`), args: ['-r', 'nodest'], message: /rename "nodest" is not of the form dst=src/ },
  { name: 'a header cut short', input: () => new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00]), message: /not a complete WebAssembly module: the file ends inside its 8-byte header/ },
  {
    name: 'a failing instantiation without a start function',
    input: () => wat(`(module (memory 1) (data (i32.const 65535) "ab") ${init('')})`),
    message: /^wiz: cannot instantiate the module: data segment 0 is out of bounds/,
  },
  {
    name: 'a name with a line break stays on one line',
    input: () => wat(`(module (func (export "two\\nlines")))`),
    message: /its exported functions: "two\\nlines"/,
  },
  {
    name: 'a code section whose function count is absurd (no hang: the engine\'s verdict)',
    input: () => new Uint8Array([...header, 10, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
    message: /^wiz: invalid module: /,
  },
  { name: 'a rename of a reserved name', input: () => wat(`(module ${init('')} (memory 1))`), args: ['-r', 'mem=__wizer_memory_0'], message: /rename "mem=__wizer_memory_0": names starting with __wizer_ are reserved/ },
  { name: 'a rename to a reserved name', input: () => wat(`(module ${init('')} (func (export "f")))`), args: ['-r', '__wizer_memory_0=f'], message: /rename "__wizer_memory_0=f": names starting with __wizer_ are reserved/ },
  { name: 'a bad boolean value', input: () => wat(`(module ${init('')})`), args: ['--keep-init-func=yes'], message: /--keep-init-func takes true or false, not "yes"/ },
];

describe('wiz init rejects bad input with one line, a non-zero exit and no output', () => {
  for (const c of bad) {
    it(c.name, async () => {
      const r = wizInit(await c.input(), c.args);
      expect(r.stderr).toMatch(c.message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^wiz: /);
      expect(r.status).not.toBe(0);
      expect(r.output).toBeUndefined();
    });
  }

  it('a missing input file', () => {
    const r = wiz(['init', '/nonexistent/in.wasm', '-o', join(tempDir(), 'o.wasm')]);
    expect(r.stderr).toBe('wiz: cannot read "/nonexistent/in.wasm": no such file\n');
    expect(r.status).toBe(1);
  });

  it('an output directory that does not exist leaves nothing behind', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in.wasm'), await wat(`(module ${init('')})`));
    const r = wiz(['init', join(dir, 'in.wasm'), '-o', join(dir, 'missing', 'o.wasm')]);
    expect(r.stderr).toMatch(/^wiz: cannot write ".*o\.wasm": ENOENT\n$/);
    expect(r.status).toBe(1);
    expect(readdirSync(dir)).toEqual(['in.wasm']);
  });

  it('a failure leaves an existing output file as it was, and no temporary file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in.wasm'), await wat(`(module (func (export "wizer-initialize") unreachable))`));
    writeFileSync(join(dir, 'o.wasm'), 'previous');
    const r = wiz(['init', join(dir, 'in.wasm'), '-o', join(dir, 'o.wasm')]);
    expect(r.status).toBe(1);
    expect(readFileSync(join(dir, 'o.wasm'), 'utf8')).toBe('previous');
    expect(readdirSync(dir).sort()).toEqual(['in.wasm', 'o.wasm']);
  });

  it('an unknown option', () => {
    const r = wiz(['init', 'x.wasm', '--frobnicate']);
    expect(r.stderr).toMatch(/unknown option '--frobnicate'/);
    expect(r.status).not.toBe(0);
  });
});

describe('wiz init input and output', () => {
  it('keeps a name that starts with U+FEFF as it is', async () => {
    const input = await wat(`(module (func (export "\\ef\\bb\\bfget") (result i32) (i32.const 1)) (func (export "get") (result i32) (i32.const 2)) ${init('')})`);
    const r = wizInit(input);
    expect(r.status).toBe(0);
    const { instance } = await WebAssembly.instantiate(r.output! as BufferSource);
    expect(Object.keys(instance.exports)).toEqual(['\u{feff}get', 'get']);
  });

  const counter = `(module (global $n (export "n") (mut i32) (i32.const 0)) ${init('(global.set $n (i32.const 41))')})`;

  it('reads stdin and writes stdout with -', async () => {
    const input = await wat(counter);
    const viaFiles = wizInit(input);
    const r = wiz(['init', '-', '-o', '-'], { input });
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, Buffer.from(viaFiles.output!))).toBe(0);
  });

  it('writes stdout when -o is not given and stdout is not a terminal', async () => {
    const input = await wat(counter);
    const r = wiz(['init', '-'], { input });
    expect(r.status).toBe(0);
    expect(WebAssembly.validate(r.stdout as BufferSource)).toBe(true);
  });

  it('-o may name the input file itself', async () => {
    const dir = tempDir();
    const path = join(dir, 'app.wasm');
    const input = await wat(counter);
    writeFileSync(path, input);
    const expected = wizInit(input).output!;
    const r = wiz(['init', path, '-o', path]);
    expect(r.status).toBe(0);
    expect(Buffer.compare(readFileSync(path), Buffer.from(expected))).toBe(0);
    expect(readdirSync(dir)).toEqual(['app.wasm']);
  });

  it('runs the legacy wizer.initialize when wizer-initialize is absent, and says so', async () => {
    const input = await wat(`(module (global $n (export "n") (mut i32) (i32.const 0)) (func (export "wizer.initialize") (global.set $n (i32.const 9))))`);
    const r = wizInit(input);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('wiz: warning: the module exports no "wizer-initialize"; running its "wizer.initialize" as the init function\n');
    const { instance } = await WebAssembly.instantiate(r.output! as BufferSource);
    expect((instance.exports.n as WebAssembly.Global).value).toBe(9);
    expect(instance.exports['wizer.initialize']).toBeUndefined();
  });

  it('accepts --keep-init-func=true and --keep-init-func=false', async () => {
    const input = await wat(counter);
    const exportsOf = async (bytes: Uint8Array) => WebAssembly.Module.exports(await WebAssembly.compile(bytes as BufferSource)).map((e) => e.name);
    expect(await exportsOf(wizInit(input, ['--keep-init-func=true']).output!)).toContain('wizer-initialize');
    expect(await exportsOf(wizInit(input, ['--keep-init-func=false']).output!)).not.toContain('wizer-initialize');
  });

  it('takes the reference\'s -o=FILE, -f=NAME and --dir=DIR forms', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in.wasm'), await wat(`(module (func (export "setup")))`));
    const r = wiz(['init', join(dir, 'in.wasm'), `-o=${join(dir, 'o.wasm')}`, '-f=setup', `--dir=${dir}`, '--allow-wasi']);
    expect(r.stderr).toBe('');
    expect(existsSync(join(dir, 'o.wasm'))).toBe(true);
  });

  it('a boolean flag does not swallow the input path', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'in.wasm'), await wat(counter));
    const r = wiz(['init', '--keep-init-func', join(dir, 'in.wasm'), '-o', join(dir, 'o.wasm')]);
    expect(r.stderr).toBe('');
    expect(existsSync(join(dir, 'o.wasm'))).toBe(true);
  });
});

/** A Node older than 22.18 on this machine, if there is one (CI machines ship Node 20). */
function olderNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(candidate)) continue;
    const [major, minor] = execFileSync(candidate, ['-p', 'process.versions.node']).toString().trim().split('.').map(Number);
    if (major! < 22 || (major === 22 && minor! < 18)) return candidate;
  }
  return undefined;
}

describe('an old Node', () => {
  const node = olderNode();
  it.skipIf(!node)('gets one line saying which version wiz needs', () => {
    const r = wiz(['init', 'x.wasm'], { node });
    expect(r.stderr).toMatch(/^wiz: needs Node\.js 22\.18 or newer \(this is v\d+\.\d+\.\d+\)/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.status).toBe(1);
  });
});

describe('the launcher', () => {
  /** A copy of the package whose build prints a marker instead of running wiz; a git checkout unless `installed`. */
  function copyWithMarkedBuild(dir = tempDir(), installed = false): string {
    mkdirSync(dir, { recursive: true });
    if (!installed) mkdirSync(join(dir, '.git'));
    cpSync(join(import.meta.dirname, '..', 'bin'), join(dir, 'bin'), { recursive: true });
    cpSync(join(import.meta.dirname, '..', 'src'), join(dir, 'src'), { recursive: true });
    cpSync(join(import.meta.dirname, '..', 'cli'), join(dir, 'cli'), { recursive: true });
    cpSync(join(import.meta.dirname, '..', 'package.json'), join(dir, 'package.json'));
    symlinkSync(join(import.meta.dirname, '..', 'node_modules'), join(dir, 'node_modules'));
    mkdirSync(join(dir, 'dist', 'cli'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'cli', 'wiz.cjs'), 'exports.main = () => { process.stdout.write("from the build\\n"); };\n');
    return dir;
  }

  it('runs the build when it is at least as new as the sources, and the sources otherwise', () => {
    const dir = copyWithMarkedBuild();
    const launch = () => execFileSync(process.execPath, [join(dir, 'bin', 'wiz.js'), '--version']).toString();
    utimesSync(join(dir, 'dist', 'cli', 'wiz.cjs'), new Date(), new Date(Date.now() + 60_000));
    expect(launch()).toBe('from the build\n');
    utimesSync(join(dir, 'dist', 'cli', 'wiz.cjs'), new Date(0), new Date(0)); // stale: an edit came later
    expect(launch()).toBe(`${JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version}\n`);
  });

  it('a command whose work never settles ends with one line and exit code 70, not a silent 0', () => {
    const dir = copyWithMarkedBuild(undefined, true);
    // Node leaves when nothing keeps its event loop running, even with the command's promise pending.
    writeFileSync(join(dir, 'dist', 'cli', 'wiz.cjs'), 'exports.main = () => new Promise(() => {});\n');
    const r = spawnSync(process.execPath, [join(dir, 'bin', 'wiz.js'), 'init', 'x.wasm'], { encoding: 'utf8' });
    expect([r.status, r.stdout, r.stderr]).toEqual([70, '', 'wiz: internal error: the process ended before the command finished (please report this)\n']);
  });

  it('an installed package runs its build whatever the file times (not a checkout, or below node_modules)', () => {
    const base = tempDir();
    for (const [dir, installed] of [[join(base, 'unpacked'), true], [join(base, 'node_modules', 'wiz'), false]] as const) {
      copyWithMarkedBuild(dir, installed);
      utimesSync(join(dir, 'dist', 'cli', 'wiz.cjs'), new Date(0), new Date(0)); // as old as an unpacked tarball may leave it
      expect(execFileSync(process.execPath, [join(dir, 'bin', 'wiz.js'), '--version']).toString()).toBe('from the build\n');
    }
  });
});
