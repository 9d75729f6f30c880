// The journal of a worker in a store: its host calls, one row per call in the store's SQLite database, each
// committed (and synced) before the guest sees the call's result; and the worker's lease, which makes sure one
// process at a time makes its host calls (an append checks it, so a process that lost its lease cannot write).
import { hostname } from 'node:os';
import { WizError } from '../../src/errors.ts';
import type { JournalLog } from '../../src/journal/journal.ts';
import { inTransaction, openDatabase } from './sqlite.ts';

/** How long a lease lasts unless renewed: appends renew it; a process that dies leaves it to expire. */
export { DEFAULT_LEASE_MS } from './lease.ts';
import { DEFAULT_LEASE_MS } from './lease.ts';

export interface LeaseHolder {
  holder: string;
  expires: number;
}

export interface StoreJournal extends JournalLog {
  /** Entries from `from` on, in order, up to the first missing position. */
  read(from: number): Uint8Array[];
  /** The entry at `position`, if stored. */
  entry(position: number): Uint8Array | undefined;
  /** The first stored position (entries below were truncated), or undefined when there are none. */
  first(): number | undefined;
  /** Deletes the entries below `position` (a save covers them). */
  truncate(position: number): void;
  /** Deletes every entry (a worker that never saved its first state). */
  clear(): void;
  /** Takes the lease when it is free, expired, ours, or held by a process of this machine that is gone. */
  acquire(): boolean;
  /** Who holds the lease, if anyone. */
  lease(): LeaseHolder | undefined;
  /** Whether the lease is free to take now (none, expired, or its holder is gone). */
  leaseFree(): boolean;
  release(): void;
  readonly holder: string;
  close(): void;
}

/** The journal of worker `worker` in the store in `dir` (SQLite), appending as `holder` (default: this process). */
export async function openJournal(dir: string, worker: string, options: { leaseMs?: number; sync?: 'full' | 'normal' } = {}): Promise<StoreJournal> {
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const holder = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`;
  // Commits are not synced (NORMAL: they survive a crash of the process); with `sync: 'full'` (the default) a durable
  // append or a `sync` commits with FULL, which puts it and every commit before it on disk.
  const full = options.sync !== 'normal';
  const { db, file } = await openDatabase(dir, 'a journal', [
    'CREATE TABLE IF NOT EXISTS journal (worker TEXT NOT NULL, position INTEGER NOT NULL, entry BLOB NOT NULL, PRIMARY KEY (worker, position)) WITHOUT ROWID',
    'CREATE TABLE IF NOT EXISTS lease (worker TEXT PRIMARY KEY NOT NULL, holder TEXT NOT NULL, expires INTEGER NOT NULL)',
  ], 'normal');
  // One statement, one commit: the entry goes in only while this process holds the lease.
  const insert = db.prepare('INSERT INTO journal (worker, position, entry) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM lease WHERE worker = ? AND holder = ?)');
  const renew = db.prepare('UPDATE lease SET expires = ? WHERE worker = ? AND holder = ?');
  const selectFrom = db.prepare('SELECT position, entry FROM journal WHERE worker = ? AND position >= ? ORDER BY position');
  const selectOne = db.prepare('SELECT entry FROM journal WHERE worker = ? AND position = ?');
  const selectFirst = db.prepare('SELECT min(position) AS p FROM journal WHERE worker = ?');
  const deleteBelow = db.prepare('DELETE FROM journal WHERE worker = ? AND position < ?');
  const deleteAll = db.prepare('DELETE FROM journal WHERE worker = ?');
  const selectLease = db.prepare('SELECT holder, expires FROM lease WHERE worker = ?');
  const upsertLease = db.prepare('INSERT INTO lease (worker, holder, expires) VALUES (?, ?, ?) ON CONFLICT (worker) DO UPDATE SET holder = excluded.holder, expires = excluded.expires');
  const deleteLease = db.prepare('DELETE FROM lease WHERE worker = ? AND holder = ?');
  let expires = 0;
  /** Entries committed since the last synced commit. */
  let volatile = false;
  /** Runs `fn` with commits synced (FULL). */
  const synced = <T>(fn: () => T): T => {
    db.exec('PRAGMA synchronous = FULL');
    try {
      return fn();
    } finally {
      db.exec('PRAGMA synchronous = NORMAL');
    }
  };
  const lost = (position?: number): WizError => {
    const lease = current();
    const where = position === undefined ? 'its next call' : `its call at journal position ${position}`;
    return new WizError('journal', `worker "${worker}" is now run by another process (${lease ? lease.holder : 'its lease was released'}): this one stops before ${where}`);
  };

  const transaction = <T>(fn: () => T): T => inTransaction(db, file, fn);
  const current = (): LeaseHolder | undefined => {
    const row = selectLease.get(worker) as { holder: string; expires: number } | undefined;
    return row && { holder: String(row.holder), expires: Number(row.expires) };
  };
  const free = (lease: LeaseHolder | undefined): boolean => !lease || lease.holder === holder || lease.expires < Date.now() || gone(lease.holder);
  const bytes = (value: unknown): Uint8Array => {
    if (value instanceof Uint8Array) return value;
    throw new WizError('malformed', `${file} holds a journal entry that is not bytes`);
  };

  return {
    holder,
    append(entry, position, durable) {
      const write = () => {
        const now = Date.now();
        if (expires - now < leaseMs / 2) {
          expires = now + leaseMs;
          if (renew.run(expires, worker, holder).changes === 0) throw lost(position);
        }
        let changes: number | bigint;
        try {
          changes = insert.run(worker, position, entry, worker, holder).changes;
        } catch (e) {
          throw new WizError('journal', `journal position ${position} of worker "${worker}" is taken: another process wrote it (${String((e as Error).message).split('\n')[0]})`);
        }
        if (Number(changes) === 0) throw lost(position);
      };
      // A renewal and the entry are one commit; most appends are the insert alone.
      const commit = () => (expires - Date.now() < leaseMs / 2 ? transaction(write) : write());
      if (full && durable) {
        synced(commit);
        volatile = false;
      } else {
        commit();
        volatile = true;
      }
    },
    sync() {
      if (!full || !volatile) return;
      // A synced commit of the lease (renewed on the way) puts every entry before it on disk.
      synced(() => {
        expires = Date.now() + leaseMs;
        if (renew.run(expires, worker, holder).changes === 0) throw lost();
      });
      volatile = false;
    },
    read(from) {
      const out: Uint8Array[] = [];
      for (const row of selectFrom.all(worker, from) as { position: number; entry: unknown }[]) {
        if (Number(row.position) !== from + out.length) break;
        out.push(bytes(row.entry));
      }
      return out;
    },
    entry(position) {
      const row = selectOne.get(worker, position) as { entry: unknown } | undefined;
      return row ? bytes(row.entry) : undefined;
    },
    first() {
      const row = selectFirst.get(worker) as { p: number | null } | undefined;
      return row?.p === null || row?.p === undefined ? undefined : Number(row.p);
    },
    truncate(position) {
      deleteBelow.run(worker, position);
    },
    clear() {
      deleteAll.run(worker);
    },
    acquire() {
      return transaction(() => {
        if (!free(current())) return false;
        expires = Date.now() + leaseMs;
        upsertLease.run(worker, holder, expires);
        return true;
      });
    },
    lease: current,
    leaseFree: () => free(current()),
    release() {
      if (db.isOpen) deleteLease.run(worker, holder);
    },
    close() {
      if (db.isOpen) db.close();
    },
  };
}

/** Whether a lease holder of this machine (`host:pid:…`) is a process that no longer exists. */
function gone(holder: string): boolean {
  const [host, pid] = holder.split(':');
  if (host !== hostname() || !/^[0-9]+$/.test(pid ?? '')) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
