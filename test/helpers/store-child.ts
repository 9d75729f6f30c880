// The kill test's child: saves the generations of worker "w" (from where the store stands) into an fs or SQLite
// store for ever, pruning and collecting now and then, and says on stdout what it is doing, so that its parent can
// SIGKILL it at a chosen moment: `saving N`, `saved N`, and `batch` / `batched` around every driver batch.
import { createImageStore, type StoreDriver } from '../../src/durable/store.ts';
import { fsDriver } from '../../cli/stores/fs.ts';
import { sqliteDriver } from '../../cli/stores/sqlite.ts';
import { killGeneration } from './store-images.ts';

export const KILL_KEEP = 12;

if (import.meta.main) {
  const [kind, dir] = process.argv.slice(2) as [string, string];
  const say = (line: string): void => void process.stdout.write(`${line}\n`); // a pipe: written before it returns
  const inner: StoreDriver = kind === 'fs' ? await fsDriver(dir) : await sqliteDriver(dir);
  const driver: StoreDriver = {
    ...inner,
    batch: async (writes, deletes) => {
      say(`batch ${writes.length} ${deletes.length}`);
      await inner.batch(writes, deletes);
      say('batched');
    },
  };
  const store = createImageStore(driver);
  const latest = (await store.generations('w')).at(-1) ?? -1;
  say(`ready ${latest}`);
  for (let g = latest + 1; ; g++) {
    const { image, chunks } = await killGeneration(g);
    say(`saving ${g}`);
    await store.save('w', image, chunks);
    say(`saved ${g}`);
    if (g % 5 === 4) {
      say('pruning');
      await store.prune('w', KILL_KEEP);
      say('pruned');
    }
    if (g % 7 === 6) {
      say('collecting');
      await store.collect();
      say('collected');
    }
  }
}
