// The store driver of one SQLite database, DIR/wiz.db (Node's built-in node:sqlite), in WAL mode: a batch is one
// transaction, which SQLite makes whole or absent across a crash; several processes may share the file.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { WizError } from '../../src/errors.ts';
import type { StoreDriver } from '../../src/durable/store.ts';
import { quietExperimentalWarning } from '../host.ts';

export const SQLITE_FILE = 'wiz.db';

type Database = InstanceType<typeof import('node:sqlite').DatabaseSync>;

/**
 * Opens DIR/wiz.db as every user of it does: WAL (several processes share it), a long wait for another writer, each
 * commit on disk when it returns (FULL; NORMAL keeps it across a crash of the process, not of the machine), and
 * the tables `schema` creates. A failure is one line naming the file and `what` it was opened for.
 */
export async function openDatabase(dir: string, what: string, schema: readonly string[], sync: 'full' | 'normal' = 'full'): Promise<{ db: Database; file: string }> {
  const file = join(dir, SQLITE_FILE);
  quietExperimentalWarning('SQLite');
  let sqlite: typeof import('node:sqlite');
  try {
    sqlite = await import('node:sqlite');
  } catch {
    throw new WizError('unsupported', `this Node (${process.version}) has no node:sqlite (Node 22.13 or newer has): use the fs store`);
  }
  try {
    await mkdir(dir, { recursive: true });
    const db = new sqlite.DatabaseSync(file);
    // Another process writing waits rather than failing at once.
    db.exec('PRAGMA busy_timeout = 60000');
    db.exec('PRAGMA journal_mode = WAL');
    // Reads through a memory map rather than a read() per page: chunks of 64 KiB span many pages.
    db.exec('PRAGMA mmap_size = 1073741824');
    db.exec(`PRAGMA synchronous = ${sync === 'normal' ? 'NORMAL' : 'FULL'}`);
    for (const table of schema) db.exec(table);
    return { db, file };
  } catch (e) {
    throw new WizError('usage', `cannot use ${file} as ${what}: ${String((e as Error).message ?? e).split('\n')[0]}`);
  }
}

/** Runs `fn` in one write transaction: all of it or none of it, also across a crash. */
export function inTransaction<T>(db: Database, file: string, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const out = fn();
    db.exec('COMMIT');
    return out;
  } catch (e) {
    if (db.isTransaction) db.exec('ROLLBACK');
    if (!(e instanceof WizError) && /database is locked/.test(String((e as Error).message))) {
      throw new WizError('usage', `${file} stayed locked by another process (one stopped inside a write?) past the 60 s wait`);
    }
    throw e;
  }
}


/** A driver over DIR/wiz.db (both created if absent). */
export async function sqliteDriver(dir: string): Promise<StoreDriver> {
  const { db, file } = await openDatabase(dir, 'a store', ['CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)']);
  const select = db.prepare('SELECT value FROM kv WHERE key = ?');
  const length = db.prepare('SELECT length(value) AS n FROM kv WHERE key = ?');
  const upsert = db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  const remove = db.prepare('DELETE FROM kv WHERE key = ?');
  const all = db.prepare('SELECT key FROM kv');
  const range = db.prepare('SELECT key FROM kv WHERE key >= ? AND key < ?');

  const asBytes = (value: unknown): Uint8Array => {
    if (value instanceof Uint8Array) return value;
    throw new WizError('malformed', `${file} holds a value that is not bytes`);
  };

  return {
    get: async (key) => {
      const row = select.get(key) as { value: unknown } | undefined;
      return row ? asBytes(row.value) : undefined;
    },
    set: async (key, value) => {
      upsert.run(key, value);
    },
    has: async (key) => length.get(key) !== undefined,
    size: async (key) => (length.get(key) as { n: number } | undefined)?.n,
    delete: async (key) => {
      remove.run(key);
    },
    keys: async (prefix) => {
      // Keys are ASCII: those with the prefix sort from it up to the prefix with its last character raised by one.
      const rows = prefix === ''
        ? all.all()
        : range.all(prefix, prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1));
      return rows.map((row) => String(row.key)).filter((key) => key.startsWith(prefix));
    },
    batch: async (writes, deletes) => {
      if (writes.length + deletes.length === 0) return;
      inTransaction(db, file, () => {
        for (const [key, value] of writes) upsert.run(key, value);
        for (const key of deletes) remove.run(key);
      });
    },
    close: async () => {
      if (db.isOpen) db.close();
    },
  };
}
