// What init saw of the host's files: every path it opened, looked at or listed through the directories it was
// given (--dir, --mapdir), so that a cached output is served only while those paths are as they were. A cache
// cannot stand in for init that changed files or read stdin: that is noted as the reason not to store it.
import { normalize, resolve } from 'node:path';

/** Where wasi-libc's and Node's WASI put the first preopened directory; the others follow, in the order given. */
const FIRST_PREOPEN = 3;

/** WASI oflags: create, exclusive, truncate (each changes or may change the file system). */
const O_CREAT = 1;
const O_TRUNC = 8;

/** Calls that change the file system, whatever their result. */
const CHANGES = [
  'path_create_directory', 'path_remove_directory', 'path_unlink_file', 'path_rename', 'path_symlink', 'path_link',
  'path_filestat_set_times', 'fd_filestat_set_times', 'fd_filestat_set_size', 'fd_allocate', 'fd_pwrite',
];

export interface FileTrace {
  /** The absolute host paths init opened, looked at or listed, in the order first seen. */
  paths: string[];
  /** Why the result of this init must not be cached (init changed files, read stdin, ...), or undefined. */
  uncacheable?: string;
}

/**
 * Wraps WASI's file functions to record the host paths init reaches. `preopens` are the guest names and host
 * directories, in the order the WASI implementation numbers them; `memory` gives the guest's memory once bound.
 */
export function traceFiles(
  wasi: WebAssembly.ModuleImports,
  preopens: readonly (readonly [string, string])[],
  memory: () => WebAssembly.Memory | undefined,
): { imports: WebAssembly.ModuleImports; trace(): FileTrace } {
  /** Host paths of the descriptors init holds: preopens, and directories and files it opened. */
  const fds = new Map<number, string>(preopens.map(([, host], i) => [FIRST_PREOPEN + i, resolve(host)]));
  const paths = new Set<string>();
  let uncacheable: string | undefined;
  const refuse = (why: string) => {
    uncacheable ??= why;
  };
  const text = (ptr: number, len: number): string | undefined => {
    const mem = memory();
    if (!mem || (ptr >>> 0) + (len >>> 0) > mem.buffer.byteLength) return undefined;
    return new TextDecoder().decode(new Uint8Array(mem.buffer, ptr >>> 0, len >>> 0));
  };
  /** The host path a (directory descriptor, guest path) pair names, recorded; undefined when it cannot be told. */
  const reach = (dirfd: number, ptr: number, len: number): string | undefined => {
    const base = fds.get(dirfd);
    const rel = text(ptr, len);
    if (base === undefined || rel === undefined) {
      refuse('init reached a file through a descriptor wiz did not follow');
      return undefined;
    }
    const path = normalize(resolve(base, rel));
    paths.add(path);
    return path;
  };
  const call = (name: string, args: unknown[]) => (wasi[name] as (...a: unknown[]) => number)(...args);
  const wrapped: WebAssembly.ModuleImports = { ...wasi };
  const wrap = (name: string, f: (args: unknown[]) => number) => {
    if (typeof wasi[name] === 'function') wrapped[name] = (...args: unknown[]) => f(args);
  };

  // path_open(dirfd, dirflags, path, path_len, oflags, rights_base, rights_inheriting, fdflags, fd_out)
  wrap('path_open', (args) => {
    const [dirfd, , ptr, len, oflags] = args as number[];
    const path = reach(dirfd!, ptr!, len!);
    if ((oflags! & (O_CREAT | O_TRUNC)) !== 0) refuse('init created or truncated a file');
    const errno = call('path_open', args);
    if (errno === 0 && path !== undefined) {
      const mem = memory();
      if (mem) fds.set(new DataView(mem.buffer).getUint32((args[8] as number) >>> 0, true), path);
    }
    return errno;
  });
  // path_filestat_get(fd, flags, path, path_len, buf) and path_readlink(fd, path, path_len, buf, buf_len, used)
  wrap('path_filestat_get', (args) => {
    reach(args[0] as number, args[2] as number, args[3] as number);
    return call('path_filestat_get', args);
  });
  wrap('path_readlink', (args) => {
    reach(args[0] as number, args[1] as number, args[2] as number);
    return call('path_readlink', args);
  });
  wrap('fd_readdir', (args) => {
    const path = fds.get(args[0] as number);
    if (path === undefined) refuse('init listed a directory through a descriptor wiz did not follow');
    else paths.add(path);
    return call('fd_readdir', args);
  });
  wrap('fd_close', (args) => {
    const fd = args[0] as number;
    const errno = call('fd_close', args);
    if (errno === 0 && fd >= FIRST_PREOPEN + preopens.length) fds.delete(fd);
    return errno;
  });
  wrap('fd_renumber', (args) => {
    const [from, to] = args as number[];
    const errno = call('fd_renumber', args);
    if (errno === 0) {
      const path = fds.get(from!);
      fds.delete(from!);
      if (path === undefined) fds.delete(to!);
      else fds.set(to!, path);
    }
    return errno;
  });
  wrap('fd_read', (args) => {
    if (args[0] === 0) refuse('init read stdin');
    return call('fd_read', args);
  });
  wrap('fd_write', (args) => {
    if ((args[0] as number) > 2) refuse('init wrote to a file');
    return call('fd_write', args);
  });
  for (const name of CHANGES) {
    wrap(name, (args) => {
      refuse(`init changed the file system (${name})`);
      return call(name, args);
    });
  }
  return { imports: wrapped, trace: () => ({ paths: [...paths], uncacheable }) };
}
