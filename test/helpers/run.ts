import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
export const WIZ_BIN = join(root, 'bin', 'wiz.js');
export const WIZER_BIN = join(root, 'node_modules', '@bytecodealliance', 'wizer-linux-x64', 'wizer');
export const hasNativeWizer = existsSync(WIZER_BIN);

export interface ToolResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
  /** The output file's bytes, if the tool wrote one. */
  output?: Uint8Array;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wiz-test-'));
}

export interface RunOptions {
  /** The whole environment of the tool (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

function run(command: string, args: string[], input?: Uint8Array, options: RunOptions = {}): Omit<ToolResult, 'output'> {
  const r = spawnSync(command, args, { input, maxBuffer: 1 << 30, env: options.env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Runs a tool that takes `input.wasm -o out.wasm` style arguments on `wasm`, in a fresh directory. */
function runOnModule(command: string, pre: string[], wasm: Uint8Array, args: string[], options: RunOptions = {}): ToolResult {
  const dir = tempDir();
  const input = join(dir, 'input.wasm');
  const out = join(dir, 'out.wasm');
  writeFileSync(input, wasm);
  const r = run(command, [...pre, input, '-o', out, ...args], undefined, options);
  return { ...r, output: existsSync(out) ? new Uint8Array(readFileSync(out)) : undefined };
}

/** `wiz init` through the real CLI (same Node as the tests). */
export function wizInit(wasm: Uint8Array, args: string[] = [], options?: RunOptions): ToolResult {
  return runOnModule(process.execPath, [WIZ_BIN, 'init'], wasm, args, options);
}

/** `wiz snapshot` through the real CLI. */
export function wizSnapshot(wasm: Uint8Array, args: string[] = []): ToolResult {
  return runOnModule(process.execPath, [WIZ_BIN, 'snapshot'], wasm, args);
}

/** The native reference binary. */
export function nativeWizer(wasm: Uint8Array, args: string[] = [], options?: RunOptions): ToolResult {
  // The reference prints a backtrace after its error line when RUST_BACKTRACE is set.
  return runOnModule(WIZER_BIN, [], wasm, args, { ...options, env: { ...(options?.env ?? process.env), RUST_BACKTRACE: '0' } });
}

/** The wiz CLI with raw arguments. */
export function wiz(args: string[], options: { input?: Uint8Array; node?: string } = {}): Omit<ToolResult, 'output'> {
  return run(options.node ?? process.execPath, [WIZ_BIN, ...args], options.input);
}
