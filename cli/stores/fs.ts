// The store driver of a directory: one file per key (`c/ab/…` is the file DIR/c/ab/…). A value is written to a
// staging file, fsynced, and renamed into place. A batch stages all its files, then commits by renaming one small
// journal (what to rename, what to delete) to DIR/.journal, applies it, and removes it; opening the directory
// finishes a committed journal and throws away anything staged but not committed.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { WizError } from '../../src/errors.ts';
import { eachLimit, type StoreDriver } from '../../src/durable/store.ts';

const STAGING = '.staging';
const JOURNAL = '.journal';
const LOCK = '.lock';
/** Marks a directory as an fs store (openStore tells the kinds apart by it). */
export const FS_MARKER = '.wiz-fs-store';

interface Journal {
  /** Staged file → final file, both relative to the store's directory. */
  renames: [string, string][];
  deletes: string[];
}

const isCode = (e: unknown, ...codes: string[]): boolean => codes.includes((e as NodeJS.ErrnoException)?.code ?? '');

/** One path segment per key segment: letters other than lowercase, and a leading dot, are %-escaped (case-blind file systems). */
function escapeSegment(segment: string): string {
  const escaped = segment.replace(/[^a-z0-9_.-]/g, (c) => [...new TextEncoder().encode(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
  return escaped.startsWith('.') ? `%2E${escaped.slice(1)}` : escaped;
}

/** fsyncs a directory, so that the names just made in it last; a no-op where directories cannot be opened (Windows). */
async function syncDir(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
    await handle.sync();
  } catch (e) {
    if (!isCode(e, 'EISDIR', 'EPERM', 'EINVAL', 'EACCES', 'ENOENT')) throw e;
  } finally {
    await handle?.close();
  }
}

async function writeSynced(path: string, bytes: Uint8Array, flag = 'wx'): Promise<void> {
  const handle = await open(path, flag);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Whether a process with this id runs (on this machine). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isCode(e, 'EPERM');
  }
}

/** A driver over directory `dir` (created if absent); one process at a time uses it (a lock file says which). */
export async function fsDriver(dir: string): Promise<StoreDriver> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new WizError('usage', `cannot use ${dir} as a store: ${(e as Error).message}`);
  }
  const lock = join(dir, LOCK);
  await takeLock(dir, lock);
  try {
    await recover(dir);
    await writeFile(join(dir, FS_MARKER), 'wiz image store: one file per key\n', { flag: 'wx' }).catch((e: unknown) => {
      if (!isCode(e, 'EEXIST')) throw e;
    });
  } catch (e) {
    await rm(lock, { force: true });
    throw e;
  }
  const staging = join(dir, STAGING);

  const pathOf = (key: string): string => {
    const segments = key.split('/');
    if (segments.some((s) => s === '')) throw new WizError('usage', `store key "${key}" has an empty segment`);
    return join(dir, ...segments.map(escapeSegment));
  };
  const keyOf = (path: string): string => relative(dir, path).split(sep).map((s) => decodeURIComponent(s)).join('/');

  /** Writes `bytes` to a new staging file, synced; returns its path. */
  const stage = async (bytes: Uint8Array): Promise<string> => {
    const path = join(staging, randomBytes(12).toString('hex'));
    await writeSynced(path, bytes);
    return path;
  };

  // One change at a time: a batch's journal is the only one.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn);
    queue = run.catch(() => undefined);
    return run;
  };

  const set = (key: string, value: Uint8Array): Promise<void> => serial(async () => {
    const target = pathOf(key);
    const staged = await stage(value);
    const dirty = new Set<string>();
    await ensureDir(dirname(target), dirty);
    await rename(staged, target);
    dirty.add(dirname(target));
    await Promise.all([...dirty].map(syncDir));
  });

  const readValue = async (key: string): Promise<Uint8Array | undefined> => {
    try {
      const buffer = await readFile(pathOf(key));
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (e) {
      if (isCode(e, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
      throw e;
    }
  };

  const fileSize = async (key: string): Promise<number | undefined> => {
    try {
      const s = await stat(pathOf(key));
      return s.isFile() ? s.size : undefined;
    } catch (e) {
      if (isCode(e, 'ENOENT', 'ENOTDIR')) return undefined;
      throw e;
    }
  };

  return {
    get: readValue,
    set,
    has: async (key) => (await fileSize(key)) !== undefined,
    size: fileSize,
    delete: (key) => serial(async () => {
      const path = pathOf(key);
      await rm(path, { force: true });
      await syncDir(dirname(path));
    }),
    keys: async (prefix) => {
      // Walk the deepest directory the prefix names whole.
      const cut = prefix.lastIndexOf('/');
      const start = cut < 0 ? dir : pathOf(prefix.slice(0, cut));
      const found: string[] = [];
      const walk = async (path: string): Promise<void> => {
        let entries;
        try {
          entries = await readdir(path, { withFileTypes: true });
        } catch (e) {
          if (isCode(e, 'ENOENT', 'ENOTDIR')) return;
          throw e;
        }
        for (const entry of entries) {
          if (entry.name.startsWith('.')) continue; // staging, journal, lock, marker: never a key's
          const child = join(path, entry.name);
          if (entry.isDirectory()) await walk(child);
          else if (entry.isFile()) {
            const key = keyOf(child);
            if (key.startsWith(prefix)) found.push(key);
          }
        }
      };
      await walk(start);
      return found;
    },
    batch: (writes, deletes) => {
      if (writes.length === 1 && deletes.length === 0) return set(writes[0]![0], writes[0]![1]);
      return serial(async () => {
        if (writes.length + deletes.length === 0) return;
        const journal: Journal = { renames: [], deletes: deletes.map((key) => relative(dir, pathOf(key))) };
        const staged = await eachLimit(writes, 16, ([, value]) => stage(value));
        writes.forEach(([key], i) => journal.renames.push([relative(dir, staged[i]!), relative(dir, pathOf(key))]));
        // The commit: the journal appears whole under its name, or not at all.
        const pending = await stage(new TextEncoder().encode(JSON.stringify(journal)));
        await rename(pending, join(dir, JOURNAL));
        await syncDir(dir);
        await applyJournal(dir, journal);
        await unlink(join(dir, JOURNAL));
      });
    },
    close: () => serial(async () => {
      await rm(lock, { force: true });
    }),
  };
}

/** Makes directory `path` and its parents; adds to `dirty` the directories whose entries that changed. */
async function ensureDir(path: string, dirty: Set<string>): Promise<void> {
  const first = await mkdir(path, { recursive: true });
  for (let d = path; first !== undefined && d.length >= first.length; d = dirname(d)) dirty.add(dirname(d));
}

/** Renames and deletes a committed batch's files, then syncs their directories; safe to run again. */
async function applyJournal(root: string, journal: Journal): Promise<void> {
  const dirty = new Set<string>();
  for (const [from, to] of journal.renames) {
    const target = join(root, to);
    await ensureDir(dirname(target), dirty);
    try {
      await rename(join(root, from), target);
    } catch (e) {
      if (!isCode(e, 'ENOENT')) throw e; // renamed before a crash
    }
    dirty.add(dirname(target));
  }
  for (const path of journal.deletes) {
    await rm(join(root, path), { force: true });
    dirty.add(dirname(join(root, path)));
  }
  await Promise.all([...dirty].map(syncDir));
}

/** Finishes a committed batch, and drops the staged files of batches that never committed. */
async function recover(root: string): Promise<void> {
  let text: string | undefined;
  try {
    text = await readFile(join(root, JOURNAL), 'utf8');
  } catch (e) {
    if (!isCode(e, 'ENOENT')) throw e;
  }
  if (text !== undefined) {
    let journal: Journal;
    try {
      journal = JSON.parse(text) as Journal;
      const paths = [...journal.renames.flat(), ...journal.deletes];
      if (!paths.every((p) => typeof p === 'string' && !isAbsolute(p) && !p.split(/[\\/]/).includes('..'))) throw new Error('paths');
    } catch {
      throw new WizError('malformed', `the store in ${root} has an unreadable journal (${join(root, JOURNAL)})`);
    }
    await applyJournal(root, journal);
    await unlink(join(root, JOURNAL));
  }
  await rm(join(root, STAGING), { recursive: true, force: true });
  await mkdir(join(root, STAGING), { recursive: true });
}

/** Takes the directory's lock file, or fails when a live process holds it. */
async function takeLock(dir: string, lock: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
      return;
    } catch (e) {
      if (!isCode(e, 'EEXIST')) throw new WizError('usage', `cannot use ${dir} as a store: ${(e as Error).message}`);
    }
    const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
      throw new WizError('usage', `the store in ${dir} is in use by process ${holder}`);
    }
    // Left by a process that is gone (or by this one, opening the store again): take it over.
    await rm(lock, { force: true });
  }
  throw new WizError('usage', `cannot take the lock of the store in ${dir}`);
}
