// The store driver of a Map: for tests, and for browsers or workers that keep state only while they live.
import type { StoreDriver } from '../store.ts';

/** A driver holding everything in memory; values are copied in and out, so callers cannot change them. */
export function memoryDriver(): StoreDriver {
  const map = new Map<string, Uint8Array>();
  return {
    get: async (key) => map.get(key)?.slice(),
    set: async (key, value) => {
      map.set(key, value.slice());
    },
    has: async (key) => map.has(key),
    delete: async (key) => {
      map.delete(key);
    },
    keys: async (prefix) => [...map.keys()].filter((key) => key.startsWith(prefix)),
    // Nothing awaits between the first change and the last, so a batch is whole.
    batch: async (writes, deletes) => {
      const copies = writes.map(([key, value]) => [key, value.slice()] as const);
      for (const [key, value] of copies) map.set(key, value);
      for (const key of deletes) map.delete(key);
    },
    size: async (key) => map.get(key)?.length,
    close: async () => undefined,
  };
}
