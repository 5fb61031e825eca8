// The browser host's storage: IndexedDB (one object store of byte values by key), so a tab that is
// closed and opened again still has the stage states it kept; memory where IndexedDB is missing
// (a private window, a test page), which lasts as long as the tab.
import type { PeerStorage } from '../shared/peer/host.js';

const STORE = 'kv';

export function memoryStorage(): PeerStorage {
  const m = new Map<string, Uint8Array>();
  return {
    get: async (key) => m.get(key)?.slice(),
    put: async (key, bytes) => void m.set(key, bytes.slice()),
    delete: async (key) => void m.delete(key),
    list: async (prefix) => [...m.keys()].filter((k) => k.startsWith(prefix)),
  };
}

/** IndexedDB database `name`, or memory when the browser has none. */
export async function browserStorage(name = 'swarm-peer'): Promise<PeerStorage> {
  if (typeof indexedDB === 'undefined') return memoryStorage();
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const open = indexedDB.open(name, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(new Error(`cannot open IndexedDB ${name}: ${open.error?.message}`));
  });
  const run = <T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>) =>
    new Promise<T>((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = f(tx.objectStore(STORE));
      // A write counts once its transaction is durable, not when the request succeeds.
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(new Error(`IndexedDB: ${tx.error?.message}`));
    });
  return {
    get: async (key) => {
      const v = await run<unknown>('readonly', (s) => s.get(key));
      return v instanceof Uint8Array ? v : undefined;
    },
    put: async (key, bytes) => void (await run('readwrite', (s) => s.put(bytes.slice(), key))),
    delete: async (key) => void (await run('readwrite', (s) => s.delete(key))),
    list: async (prefix) => (await run<IDBValidKey[]>('readonly', (s) => s.getAllKeys())).map(String).filter((k) => k.startsWith(prefix)),
  };
}
