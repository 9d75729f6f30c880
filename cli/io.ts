import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync, writevSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { WizError } from '../src/errors.ts';

/** Reads the input module from a file, or from stdin when the path is `-`. */
export function readInput(path: string): Uint8Array {
  try {
    return readFileSync(path === '-' ? 0 : path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new WizError('usage', `cannot read ${path === '-' ? 'stdin' : `"${path}"`}: ${why}`);
  }
}

/**
 * A temporary name's suffix, unique to this process and call (the file is created exclusively, so a clash
 * would fail rather than overwrite). Not from node:crypto: loading it costs every run milliseconds.
 */
let temps = 0;
export const tempSuffix = () => `${process.pid.toString(36)}-${(temps++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/**
 * Writes the output atomically: to a temporary file beside the target, then renamed over it. A failure leaves
 * no partial file, and the output may be the input file itself. `-` writes to stdout. With `flush` (the
 * default: a worker's saved state) the file is on disk before the rename; a build output (`flush: false`) is
 * left to the kernel as compilers and bundlers leave theirs, which saves a disk round trip per megabyte.
 */
export function writeOutput(path: string, parts: readonly Uint8Array[], { flush = true }: { flush?: boolean } = {}): void {
  if (path === '-') {
    try {
      writeParts(1, parts);
    } catch (e) {
      throw new WizError('usage', `cannot write stdout: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return;
  }
  const temp = join(dirname(path), `.${basename(path)}.${tempSuffix()}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'wx', 0o644);
    writeParts(fd, parts);
    if (flush) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temp, { force: true });
    throw new WizError('usage', `cannot write "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Writes chunks in order, as they are (no copy): up to 1024 per system call (writev), the rest of a partly
 * written batch again. A snapshot is thousands of small chunks (segment headers) between views of memory.
 */
function writeParts(fd: number, parts: readonly Uint8Array[]): void {
  const BATCH = 1024; // IOV_MAX on Linux and macOS
  let i = 0;
  let skip = 0; // bytes of parts[i] already written
  while (i < parts.length) {
    const batch = parts.slice(i, i + BATCH);
    if (skip > 0) batch[0] = batch[0]!.subarray(skip);
    let written: number;
    try {
      written = writevSync(fd, batch as NodeJS.ArrayBufferView[]);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(nap, 0, 0, 1); // a full pipe (stdout): wait for its reader
      continue;
    }
    for (const part of batch) {
      if (written < part.length) {
        skip += written;
        break;
      }
      written -= part.length;
      skip = 0;
      i++;
    }
  }
}

const nap = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `bytes`, waiting out a full pipe: stdout may be a non-blocking pipe or socket another process drains. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length; ) {
    try {
      at += writeSync(fd, bytes, at, bytes.length - at);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(nap, 0, 0, 1);
    }
  }
}

/** A line of text to stdout or stderr, whole (see `writeAll`). */
export function writeText(fd: number, text: string): void {
  writeAll(fd, Buffer.from(text));
}
