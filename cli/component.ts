// wiz init and wiz snapshot on a component: WASI 0.2 during init from the same flags as WASI preview1
// (preview2-shim, loaded only here), then the library's component entry points.
import { resolve } from 'node:path';
import { WizError } from '../src/errors.ts';
import { preinitializeComponentParts, snapshotComponent } from '../src/component/preinitialize.ts';
import type { HostOptions, HostTrace } from './host.ts';
import type { Job, JobOutput } from './job.ts';

// Variable specifiers: the shim is loaded only when a component is given.
const SHIM = '@bytecodealliance/preview2-shim';
const SHIM_INSTANTIATION = '@bytecodealliance/preview2-shim/instantiation';

type Namespace = Record<string, Record<string, unknown>>;
interface ShimModule {
  WASIShim: new (config: Record<string, unknown>) => { getImportObject(): Record<string, unknown> };
}

/** Runs `wiz init` or `wiz snapshot` on a component. */
export async function runComponentJob(job: Job, out: JobOutput, onTrace?: (trace: HostTrace) => void): Promise<Uint8Array[]> {
  if (job.renames.length > 0) throw new WizError('usage', '-r/--rename-func renames core module exports; a component\'s exports are its WIT interface, which wiz does not rename');
  if (job.host.preloads.length > 0) throw new WizError('usage', '--preload provides core module imports; a component\'s imports are WIT interfaces (give WASI with --allow-wasi)');
  const imports = job.host.allowWasi ? await wasiImports(job.host, out) : undefined;
  if (!job.host.allowWasi && (job.host.dirs.length + job.host.mapdirs.length > 0 || job.host.deterministic)) {
    throw new WizError('usage', '--dir, --mapdir and --deterministic need --allow-wasi');
  }
  // preview2-shim's file access is not traced: a cache must not keep a result that read files.
  onTrace?.({ paths: [], nondeterministic: [], ...(job.host.allowWasi && { uncacheable: 'a component\'s WASI file access is not traced' }) });
  if (job.kind === 'init') {
    return preinitializeComponentParts(job.input, {
      initFunc: job.initFunc,
      keepInitFunc: job.keepInitFunc,
      keepInstrumentation: job.keepInstrumentation,
      imports,
      onWarning: out.warn,
    });
  }
  return snapshotComponent(job.input, {
    invoke: job.invoke,
    keepInstrumentation: job.keepInstrumentation,
    imports,
    onWarning: out.warn,
    onResult: (line) => out.print(line),
  });
}

/**
 * WASI 0.2 for init, from wiz's flags: preopens from --dir/--mapdir, the environment with --inherit-env (sorted,
 * as for modules), stdio inherited or silenced (stdout goes to stderr when the component goes to stdout), a
 * fixed clock and random stream with --deterministic (warnings when init reads them otherwise), no network,
 * and `exit` an error instead of ending wiz.
 */
async function wasiImports(host: HostOptions, out: JobOutput): Promise<Record<string, unknown>> {
  const [shim, { WASIShim }] = await Promise.all([
    import(/* @vite-ignore */ SHIM) as Promise<Record<string, Namespace>>,
    import(/* @vite-ignore */ SHIM_INSTANTIATION) as Promise<ShimModule>,
  ]);
  const preopens: Record<string, string> = {};
  for (const dir of host.dirs) preopens[dir] = resolve(dir);
  for (const spec of host.mapdirs) {
    const sep = spec.indexOf('::');
    if (sep <= 0) throw new WizError('usage', `--mapdir "${spec}" is not of the form GUEST::HOST`);
    preopens[spec.slice(0, sep)] = resolve(spec.slice(sep + 2));
  }
  const env = host.inheritEnv
    ? Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : {};

  const read = new Set<string>();
  const once = (key: 'clock' | 'random', what: string) => {
    if (host.deterministic || read.has(key)) return;
    read.add(key);
    out.warn(key === 'clock'
      ? `the component read a clock (${what}) during init: the time it read is baked into the snapshot (pass --deterministic for reproducible builds)`
      : `the component read random bytes (${what}) during init: every instance of the snapshot starts with the same ones (pass --deterministic for reproducible builds, and reseed at run time)`,
    key === 'clock' ? 'clock-read' : 'random-read');
  };
  let state = 0x2545f491; // xorshift32: the same stream on every run
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const bytes = (n: bigint | number) => Uint8Array.from({ length: Number(n) }, () => next() & 0xff);
  const u64 = () => (BigInt(next()) << 32n) | BigInt(next());
  let ns = 0n;
  const tick = () => (ns += 1_000_000n);
  // --check-determinism's second run reads clocks a day later.
  const shift = host.clockOffsetNs ?? 0n;

  const { clocks, random, cli } = shim as { clocks: Namespace; random: Namespace; cli: Namespace };
  const wall = clocks.wallClock!;
  const mono = clocks.monotonicClock!;
  const config: Record<string, unknown> = {
    sandbox: { preopens, env, args: [], enableNetwork: false },
    clocks: {
      wallClock: {
        ...wall,
        now: () => {
          once('clock', 'wasi:clocks/wall-clock now');
          const real = () => {
            const now = (wall.now as () => { seconds: bigint; nanoseconds: number })();
            return BigInt(now.seconds) * 1_000_000_000n + BigInt(now.nanoseconds) + shift;
          };
          const t = host.deterministic ? tick() : real();
          return { seconds: t / 1_000_000_000n, nanoseconds: Number(t % 1_000_000_000n) };
        },
      },
      monotonicClock: {
        ...mono,
        now: () => {
          once('clock', 'wasi:clocks/monotonic-clock now');
          return host.deterministic ? tick() : (mono.now as () => bigint)() + shift;
        },
      },
    },
    random: {
      random: {
        getRandomBytes: (n: bigint) => (once('random', 'wasi:random/random get-random-bytes'), host.deterministic ? bytes(n) : (random.random!.getRandomBytes as (n: bigint) => Uint8Array)(n)),
        getRandomU64: () => (once('random', 'wasi:random/random get-random-u64'), host.deterministic ? u64() : (random.random!.getRandomU64 as () => bigint)()),
      },
      insecure: {
        getInsecureRandomBytes: (n: bigint) => (once('random', 'wasi:random/insecure get-insecure-random-bytes'), host.deterministic ? bytes(n) : (random.insecure!.getInsecureRandomBytes as (n: bigint) => Uint8Array)(n)),
        getInsecureRandomU64: () => (once('random', 'wasi:random/insecure get-insecure-random-u64'), host.deterministic ? u64() : (random.insecure!.getInsecureRandomU64 as () => bigint)()),
      },
      insecureSeed: {
        insecureSeed: () => (once('random', 'wasi:random/insecure-seed insecure-seed'), host.deterministic ? [u64(), u64()] : (random.insecureSeed!.insecureSeed as () => [bigint, bigint])()),
      },
    },
  };
  steadyReads((shim.io as Namespace).streams!.InputStream as unknown as { prototype: Record<string, unknown> });
  const imports = new WASIShim(config).getImportObject();
  const stderrStream = (cli.stderr!.getStderr as () => unknown)();
  if (!host.inheritStdio) {
    const sink = silentStream((shim.io as Namespace).streams!.OutputStream as unknown as { prototype: object });
    imports['wasi:cli/stdout'] = { getStdout: () => sink };
    imports['wasi:cli/stderr'] = { getStderr: () => sink };
  } else if (host.stdoutTaken) {
    imports['wasi:cli/stdout'] = { getStdout: () => stderrStream };
  }
  imports['wasi:cli/exit'] = {
    exit: (status: { tag: string }) => {
      throw new WizError('trap', `the component called exit (${status?.tag ?? 'status'}) during initialization instead of returning`);
    },
    exitWithCode: (code: number) => {
      throw new WizError('trap', `the component called exit with code ${code} during initialization instead of returning`);
    },
  };
  return imports;
}

/**
 * preview2-shim's file streams sometimes answer a blocking read with 0 bytes before the end (a race with its
 * I/O worker): allowed, but the guest's buffers then differ from run to run, and so would the snapshot.
 * Reading again until data or the end makes init see the same reads every time.
 */
function steadyReads(InputStream: { prototype: Record<string, unknown> }): void {
  const proto = InputStream.prototype;
  const read = proto.blockingRead as ((len: bigint) => Uint8Array) & { steady?: true };
  if (typeof read !== 'function' || read.steady) return;
  const steady = Object.assign(function (this: unknown, len: bigint) {
    let bytes = read.call(this, len);
    for (let tries = 0; bytes.length === 0 && len > 0n && tries < 1000; tries++) bytes = read.call(this, len);
    return bytes;
  }, { steady: true as const });
  proto.blockingRead = steady;
}

/** An output stream that takes everything and writes nothing (--inherit-stdio=false). */
function silentStream(OutputStream: { prototype: object }): object {
  const ready = { subscribe: () => ready, ready: () => true, block: () => {} };
  return Object.assign(Object.create(OutputStream.prototype) as object, {
    checkWrite: () => 1n << 20n,
    write: () => {},
    blockingWriteAndFlush: () => {},
    flush: () => {},
    blockingFlush: () => {},
    writeZeroes: () => {},
    blockingWriteZeroesAndFlush: () => {},
    subscribe: () => ready,
  });
}

/** The screen `wiz inspect` prints for a component: its exports, then each core module as `wiz inspect` shows one. */
export async function formatComponentInspection(name: string, bytes: Uint8Array, json: boolean): Promise<string> {
  const { inspectComponent } = await import('../src/component/inspect.ts');
  const { formatInspection } = await import('./inspect.ts');
  const c = inspectComponent(bytes);
  if (json) return `${JSON.stringify(c, null, 2)}\n`;
  const out = [
    `${name}: a component, ${c.size.toLocaleString('en-US')} bytes, ${c.modules.length} core module${c.modules.length === 1 ? '' : 's'}${c.nestedComponents ? `, ${c.nestedComponents} nested component${c.nestedComponents === 1 ? '' : 's'}` : ''}`,
    `exports       ${c.exports.length ? c.exports.map((e) => `${e.name} (${e.sort})`).join(', ') : 'none'}`,
  ];
  for (const m of c.modules) {
    const what = m.role === 'adapter' ? 'the WASI preview1 adapter: kept as built by wiz init' : 'state snapshotted by wiz init';
    out.push('', `core module ${m.ordinal}${m.depth ? ` (nested, depth ${m.depth})` : ''}: ${what}`);
    out.push(formatInspection(`module ${m.ordinal}`, m.inspection).trimEnd().split('\n').map((l) => `  ${l}`).join('\n'));
  }
  return `${out.join('\n')}\n`;
}
