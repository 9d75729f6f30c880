// The store driver of one SQLite database, DIR/wiz.db (Node's built-in node:sqlite), in WAL mode: a batch is one
// transaction, which SQLite makes whole or absent across a crash; several processes may share the file.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { WizError } from '../../src/errors.ts';
import type { StoreDriver } from '../../src/durable/store.ts';
import { quietExperimentalWarning } from '../host.ts';

export const SQLITE_FILE = 'wiz.db';


/** A driver over DIR/wiz.db (both created if absent). */
export async function sqliteDriver(dir: string): Promise<StoreDriver> {
  const file = join(dir, SQLITE_FILE);
  quietExperimentalWarning('SQLite');
  let sqlite: typeof import('node:sqlite');
  try {
    sqlite = await import('node:sqlite');
  } catch {
    throw new WizError('unsupported', `this Node (${process.version}) has no node:sqlite (Node 22.13 or newer has): use the fs store`);
  }
  let db: InstanceType<typeof sqlite.DatabaseSync>;
  try {
    await mkdir(dir, { recursive: true });
    db = new sqlite.DatabaseSync(file);
    // Another process writing waits rather than failing at once.
    db.exec('PRAGMA busy_timeout = 60000');
    db.exec('PRAGMA journal_mode = WAL');
    // Reads through a memory map rather than a read() per page: chunks of 64 KiB span many pages.
    db.exec('PRAGMA mmap_size = 1073741824');
    // Each commit is on disk when it returns (NORMAL would keep the store consistent, but could lose the last saves).
    db.exec('PRAGMA synchronous = FULL');
    db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)');
  } catch (e) {
    throw new WizError('usage', `cannot use ${file} as a store: ${String((e as Error).message ?? e).split('\n')[0]}`);
  }
  const select = db.prepare('SELECT value FROM kv WHERE key = ?');
  const length = db.prepare('SELECT length(value) AS n FROM kv WHERE key = ?');
  const upsert = db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  const remove = db.prepare('DELETE FROM kv WHERE key = ?');
  const all = db.prepare('SELECT key FROM kv');
  const range = db.prepare('SELECT key FROM kv WHERE key >= ? AND key < ?');

  const inTransaction = (fn: () => void): void => {
    db.exec('BEGIN IMMEDIATE');
    try {
      fn();
      db.exec('COMMIT');
    } catch (e) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw e;
    }
  };
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
      inTransaction(() => {
        for (const [key, value] of writes) upsert.run(key, value);
        for (const key of deletes) remove.run(key);
      });
    },
    close: async () => {
      if (db.isOpen) db.close();
    },
  };
}
