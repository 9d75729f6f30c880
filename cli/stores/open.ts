// The CLI's image stores: a directory holding either one SQLite database (the default) or one file per key.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WizError } from '../../src/errors.ts';
import { createImageStore, type ImageStore, type ImageStoreOptions } from '../../src/durable/store.ts';
import { FS_MARKER, fsDriver } from './fs.ts';
import { SQLITE_FILE, sqliteDriver } from './sqlite.ts';

export type StoreKind = 'sqlite' | 'fs';

/**
 * Opens the store in `dir`, creating it unless `create` is false (a command that only reads or continues a worker
 * must not leave an empty store behind when it names the wrong directory); refuses a directory of the other kind.
 */
export async function openStore(dir: string, kind: StoreKind = 'sqlite', options?: ImageStoreOptions & { create?: boolean; worker?: string }): Promise<ImageStore> {
  if (options?.create === false && !existsSync(join(dir, SQLITE_FILE)) && !existsSync(join(dir, FS_MARKER))) {
    // Said as a missing worker when one is named: `wiz run` is what makes both.
    throw new WizError('usage', options.worker === undefined ? `no store in ${dir}` : `no worker "${options.worker}" in ${dir} (no store there)`);
  }
  if (kind !== 'sqlite' && kind !== 'fs') throw new WizError('usage', `store kind "${String(kind)}" is neither sqlite nor fs`);
  const other = kind === 'sqlite' ? FS_MARKER : SQLITE_FILE;
  if (existsSync(join(dir, other))) throw new WizError('usage', `${dir} holds a${kind === 'sqlite' ? 'n fs' : ' sqlite'} store, not a${kind === 'sqlite' ? ' sqlite' : 'n fs'} one`);
  const driver = kind === 'fs' ? await fsDriver(dir) : await sqliteDriver(dir);
  return createImageStore(driver, options);
}
