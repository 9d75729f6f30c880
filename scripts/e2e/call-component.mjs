// Runs in the temporary ComponentizeJS project: `node call-component.mjs DIR` imports the component that
// `jco transpile` wrote to DIR and calls its exports. Prints JSON.
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const app = await import(pathToFileURL(resolve(join(process.argv[2], 'app.js'))).href);
process.stdout.write(JSON.stringify({ answer: app.answer(), initializedAt: app.initializedAt(), calledAt: Date.now() }));
