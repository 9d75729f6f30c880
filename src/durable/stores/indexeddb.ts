// The store driver of a browser's IndexedDB: one database with one object store of key → bytes; a batch is one
// readwrite transaction, which IndexedDB applies whole or not at all.
import { WizError } from '../../errors.ts';
import type { StoreDriver } from '../store.ts';

export interface IndexedDBDriverOptions {
  /** The database's name (default `wiz`). */
  name?: string;
  /** The object store's name in it (default `images`). */
  storeName?: string;
  /** Another factory than `globalThis.indexedDB` (a worker's, or a test's). */
  indexedDB?: IDBFactory;
}

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** Opens (creating if needed) the database and returns a driver over it. */
export async function indexedDBDriver(options: IndexedDBDriverOptions = {}): Promise<StoreDriver> {
  const factory = options.indexedDB ?? globalThis.indexedDB;
  if (!factory) throw new WizError('unsupported', 'IndexedDB is not available in this context');
  const name = options.name ?? 'wiz';
  const storeName = options.storeName ?? 'images';
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const open = factory.open(name);
    open.onupgradeneeded = () => {
      if (!open.result.objectStoreNames.contains(storeName)) open.result.createObjectStore(storeName);
    };
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
    open.onblocked = () => reject(new WizError('usage', `IndexedDB database "${name}" is held open by another page at an older version`));
  });
  if (!db.objectStoreNames.contains(storeName)) {
    db.close();
    throw new WizError('usage', `IndexedDB database "${name}" has no object store "${storeName}"`);
  }
  // Another page upgrading the database closes this connection rather than waiting for it.
  db.onversionchange = () => db.close();

  const read = <T>(fn: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> => request(fn(db.transaction(storeName, 'readonly').objectStore(storeName)));
  /** Runs `fn` in one readwrite transaction, resolved when it is committed (durably, where the browser lets us ask). */
  const write = (fn: (store: IDBObjectStore) => void): Promise<void> => new Promise((resolve, reject) => {
    const tx = db.transaction(storeName, 'readwrite', { durability: 'strict' });
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new WizError('unsupported', 'an IndexedDB transaction was aborted'));
    fn(tx.objectStore(storeName));
  });
  // Structured cloning copies a view's whole buffer: store exact copies of views into larger buffers.
  const own = (value: Uint8Array): Uint8Array => value.byteOffset === 0 && value.byteLength === value.buffer.byteLength ? value : value.slice();
  const asBytes = (value: unknown): Uint8Array | undefined => {
    if (value === undefined) return undefined;
    if (value instanceof Uint8Array) return value;
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    throw new WizError('malformed', `IndexedDB database "${name}" holds a value that is not bytes`);
  };

  return {
    get: async (key) => asBytes(await read((s) => s.get(key))),
    set: (key, value) => write((s) => void s.put(own(value), key)),
    has: async (key) => (await read((s) => s.count(key))) > 0,
    delete: (key) => write((s) => void s.delete(key)),
    keys: async (prefix) => {
      const range = prefix === '' ? undefined : IDBKeyRange.bound(prefix, `${prefix}\uffff`);
      const keys = await read((s) => s.getAllKeys(range));
      return keys.filter((k): k is string => typeof k === 'string' && k.startsWith(prefix));
    },
    batch: async (writes, deletes) => {
      if (writes.length + deletes.length === 0) return;
      await write((s) => {
        for (const [key, value] of writes) s.put(own(value), key);
        for (const key of deletes) s.delete(key);
      });
    },
    size: async (key) => asBytes(await read((s) => s.get(key)))?.length,
    close: async () => db.close(),
  };
}
