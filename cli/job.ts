// One run of wiz init or wiz snapshot, from plain data, so that it can also run in a child process.
import { writeText } from './io.ts';
import { parseInstrumented } from '../src/instrument/reparse.ts';
import { preinitializeParts, snapshotParts } from '../src/preinitialize.ts';
import { instantiate } from '../src/run/initialize.ts';
import { formatInvocation, parseInvocation } from '../src/run/invoke.ts';
import { parseRenames } from '../src/snapshot/rewrite.ts';
import { tableBaseline } from '../src/snapshot/state.ts';
import { tuneEngineFor, tuningPays, untuneAfterInstantiation } from './engine.ts';
import { createHost, type HostOptions, type HostTrace } from './host.ts';
import type { WizWarningCode } from '../src/errors.ts';
import { isComponent } from '../src/component/binary.ts';

interface CommonJob {
  input: Uint8Array;
  /** Call results go to stderr: the module goes to stdout. */
  printToStderr: boolean;
  renames: string[];
  keepInstrumentation?: boolean;
  host: HostOptions;
  /** `-q`: errors only, no warnings. */
  quiet?: boolean;
}

export interface InitJob extends CommonJob {
  kind: 'init';
  initFunc?: string;
  keepInitFunc?: boolean;
  /**
   * This process runs wiz's command line and nothing else: after validating the input whole, V8 may compile it
   * without validating function bodies ahead of time, and tier as suits one run (see `tuneEngineFor`).
   */
  ownProcess?: boolean;
}

export interface SnapshotJob extends CommonJob {
  kind: 'snapshot';
  invoke: string[];
}

export type Job = InitJob | SnapshotJob;

export interface JobOutput {
  /** One-line warnings, for stderr, with their stable codes. */
  warn(line: string, code: WizWarningCode): void;
  /** Results of `--invoke` calls. */
  print(line: string): void;
}

/**
 * Writes straight to the file descriptors, as the guest's WASI output does, so the lines keep their order
 * with the guest's, also from a child process.
 */
export function directOutput(job: Job): JobOutput {
  return {
    warn: (line) => {
      if (!job.quiet) writeText(2, `wiz: warning: ${line}\n`);
    },
    print: (line) => writeText(job.printToStderr ? 2 : 1, `${line}\n`),
  };
}

/**
 * Runs a job and returns the output module, as chunks to write in order (views, not copies). With
 * `job.host.trace`, `onTrace` receives what init saw of the host once it has run.
 */
export async function runJob(job: Job, out: JobOutput, onTrace?: (trace: HostTrace) => void): Promise<Uint8Array[]> {
  // A component goes to wiz's component support, loaded only then (with jco's transpiler and WASI 0.2 shim).
  if (isComponent(job.input)) return (await import('./component.ts')).runComponentJob(job, out, onTrace);
  if (job.kind === 'snapshot') parseRenames(job.renames); // refuse bad renames before running anything
  const instrumented = job.kind === 'snapshot' ? await parseInstrumented(job.input) : undefined;
  const calls = instrumented && job.kind === 'snapshot' ? job.invoke.map((spec) => parseInvocation(instrumented.context, spec)) : [];
  const host = await createHost(job.host, out.warn);
  try {
    if (job.kind === 'init') {
      // The engine validates the input in its background threads while wiz instruments it; then V8 is tuned for
      // the one run (after the preloads compiled, fully validated).
      const validated = job.ownProcess && tuningPays(job.input) ? WebAssembly.compile(job.input as Uint8Array<ArrayBuffer>).then(() => tuneEngineFor(job.input)) : undefined;
      return await preinitializeParts(job.input, {
        validated,
        initFunc: job.initFunc,
        keepInitFunc: job.keepInitFunc,
        renames: job.renames,
        keepInstrumentation: job.keepInstrumentation,
        imports: host.imports,
        onInstantiated: (instance) => {
          untuneAfterInstantiation();
          host.bind(instance);
        },
        onWarning: out.warn,
      });
    }
    const live = await instantiate(instrumented!.context, instrumented!.module, {
      imports: host.imports,
      onInstantiated: (instance) => host.bind(instance),
    });
    const baseline = tableBaseline(instrumented!, live.instance);
    for (const call of calls) out.print(formatInvocation(call, live.call(call.name, call.args)));
    return await snapshotParts(instrumented!, live.instance, {
      baseline,
      keepInstrumentation: job.keepInstrumentation,
      renames: job.renames,
      onWarning: out.warn,
    });
  } finally {
    onTrace?.(host.trace());
    host.close();
  }
}
