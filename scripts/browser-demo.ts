// Serves the browser demo (browser/demo.html) on 127.0.0.1 with the current browser build of the library:
// `npm run demo:browser [port]`, then open the printed address; reload the page to start from the snapshot.
import { buildBrowser, BROWSER_DIR } from './build-browser.ts';
import { startDemoServer } from '../test/helpers/browser-server.ts';

await buildBrowser();
const server = await startDemoServer(BROWSER_DIR, Number(process.argv[2] ?? 8123));
console.log(`wiz browser demo: ${server.url} (Ctrl-C stops it)`);
