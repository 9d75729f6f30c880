// The demo page's script: pre-initialize lazily in the browser with wiz's ES module build.
// First visit: fetch counter.wasm, instrument it, run init and further calls, snapshot, store in IndexedDB.
// Next visit: instantiate the stored snapshot directly (no init), then snapshot it once more.
// What happened goes to <pre id="result"> as JSON (the browser test reads it) and to two tables.
import { instrument, parseInstrumented, parseModule, readProvenance, snapshot } from 'wiz';

const DB = 'wiz-demo';
const STORE = 'snapshots';
const KEY = 'counter';

/** One IndexedDB request on the snapshot store, as a promise. */
async function withStore(mode, use) {
  const db = await new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = use(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}
const load = () => withStore('readonly', (s) => s.get(KEY));
const save = (value) => withStore('readwrite', (s) => s.put(value, KEY));
const forget = () => withStore('readwrite', (s) => s.delete(KEY));

const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');

/** What the module's exports report, and a digest of its memory. */
async function stateOf(instance) {
  const e = instance.exports;
  const memory = new Uint8Array(e.memory.buffer);
  return {
    inits: e.inits(),
    primes: e.primes(),
    prime1000: e.nth(1000),
    total: String(e.total()),
    adds: e.adds(),
    mean: e.mean(),
    memoryPages: memory.length / 65536,
    memorySha256: hex(await crypto.subtle.digest('SHA-256', memory)),
  };
}

async function firstVisit() {
  const response = await fetch('counter.wasm');
  if (!response.ok) throw new Error(`fetching counter.wasm: HTTP ${response.status}`);
  const original = new Uint8Array(await response.arrayBuffer());
  const instrumented = instrument(original);
  const { instance } = await WebAssembly.instantiate(instrumented.bytes);
  const t0 = performance.now();
  instance.exports['wizer-initialize']();
  const initMs = performance.now() - t0;
  // Calls after init change the state too: the snapshot is of the live instance, whatever ran.
  instance.exports.add(40n);
  instance.exports.add(2n);
  const before = await stateOf(instance);
  const bytes = await snapshot(instrumented, instance, { keepInstrumentation: true, removeExports: ['wizer-initialize'] });
  const sizes = { original: original.length, instrumented: instrumented.bytes.length, snapshot: bytes.length };
  await save({ bytes, before, sizes, initMs });
  return { phase: 'first', before, sizes, initMs, provenance: readProvenance(parseModule(bytes)) ?? null };
}

async function restore(saved) {
  const t0 = performance.now();
  const { instance } = await WebAssembly.instantiate(saved.bytes); // no init: the state is in the bytes
  const startMs = performance.now() - t0;
  const after = await stateOf(instance);
  const exportsInit = 'wizer-initialize' in instance.exports;

  // A savestate of the restored program: re-read the snapshot (validated: stored bytes are untrusted), run it,
  // snapshot it once more, and start from that.
  const reparsed = await parseInstrumented(saved.bytes);
  const live = await WebAssembly.instantiate(reparsed.module);
  live.exports.add(100n);
  const generation1 = await snapshot(reparsed, live, { keepInstrumentation: true });
  const { instance: next } = await WebAssembly.instantiate(generation1);
  const resnapshot = {
    state: await stateOf(next),
    size: generation1.length,
    provenance: readProvenance(parseModule(generation1)) ?? null,
    parentSha256: hex(await crypto.subtle.digest('SHA-256', saved.bytes)),
  };
  return {
    phase: 'restored', before: saved.before, after, sizes: saved.sizes, initMs: saved.initMs, startMs, exportsInit,
    provenance: readProvenance(parseModule(saved.bytes)) ?? null, resnapshot,
  };
}

function row(table, cells, classes = []) {
  const tr = document.createElement('tr');
  cells.forEach((text, i) => {
    const td = document.createElement('td');
    td.textContent = text;
    if (classes[i]) td.className = classes[i];
    tr.append(td);
  });
  document.querySelector(`#${table} tbody`).append(tr);
  document.getElementById(table).hidden = false;
}

const LABELS = {
  inits: 'init function runs', primes: 'primes listed by init', prime1000: '1000th prime (0-based)', total: 'total of add()',
  adds: 'add() calls', mean: 'mean (f64 global)', memoryPages: 'memory pages', memorySha256: 'memory SHA-256',
};
const shown = (key, value) => (key === 'memorySha256' ? `${value.slice(0, 16)}…` : String(value));

function render(result) {
  const status = document.getElementById('status');
  if (result.phase === 'first') {
    status.textContent = `First visit: initialized in ${result.initMs.toFixed(2)} ms, snapshot stored in IndexedDB. Reload the page.`;
    for (const [key, value] of Object.entries(result.before)) row('state', [LABELS[key], shown(key, value), '(reload)', '']);
  } else {
    status.textContent = `Reloaded: started from the stored snapshot in ${result.startMs.toFixed(1)} ms, without running init (it took ${result.initMs.toFixed(1)} ms on the first visit).`;
    for (const [key, value] of Object.entries(result.before)) {
      const same = value === result.after[key];
      row('state', [LABELS[key], shown(key, value), shown(key, result.after[key]), same ? 'same' : 'DIFFERENT'], ['', 'num', 'num', same ? 'same' : 'diff']);
    }
    row('state', ['wizer-initialize exported', 'yes', result.exportsInit ? 'yes' : 'no (removed)', ''], ['', 'num', 'num', '']);
  }
  const { original, instrumented, snapshot: snap } = result.sizes;
  row('sizes', ['original counter.wasm', String(original), 'fetched from the server'], ['', 'num', '']);
  row('sizes', ['instrumented', String(instrumented), '+ __wizer_ exports for reading state'], ['', 'num', '']);
  row('sizes', ['snapshot (generation 0)', String(snap), 'primes list as data, globals as constants'], ['', 'num', '']);
  if (result.resnapshot) {
    row('sizes', ['re-snapshot (generation 1)', String(result.resnapshot.size),
      `after add(100): total ${result.resnapshot.state.total}`], ['', 'num', '']);
  }
}

document.getElementById('reset').addEventListener('click', async () => {
  await forget();
  location.reload();
});

let result;
try {
  const saved = await load();
  result = saved ? await restore(saved) : await firstVisit();
  render(result);
} catch (e) {
  result = { phase: 'error', error: `${e?.name ?? 'Error'}: ${e?.message ?? e}` };
  document.getElementById('status').textContent = `Failed: ${result.error}`;
}
document.getElementById('result').textContent = JSON.stringify(result, null, 2);
document.documentElement.dataset.done = result.phase;
