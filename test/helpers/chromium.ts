// Headless Chromium for the browser tests: Debian's `chromium` (apt-get install chromium) driven by playwright-core,
// never a downloaded browser. The rule: without it the tests are skipped with a line saying why, except under CI
// (CI=true, or WIZ_REQUIRE_BROWSER), where they fail.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium; WIZ_CHROMIUM names another system binary. */
export const CHROMIUM = process.env.WIZ_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_HINT = 'apt-get install chromium';
/** As this machine needs them: no sandbox as root, nothing that reaches the (closed) network. */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const required = () => process.env.CI === 'true' || !!process.env.WIZ_REQUIRE_BROWSER;

/** Whether the binary is there; when not, says so (`what` is skipped) or, under CI, throws. */
export function hasChromiumOrSkip(what: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (required()) throw new Error(`${what} required but there is no ${CHROMIUM} (${CHROMIUM_HINT})`);
  console.warn(`${what} skipped: no ${CHROMIUM} (${CHROMIUM_HINT})`);
  return false;
}

/** A launched Chromium, or undefined after printing why it cannot start (under CI: throws). */
export async function launchChromiumOrSkip(what: string): Promise<Browser | undefined> {
  let problem: string;
  if (!existsSync(CHROMIUM)) problem = `there is no ${CHROMIUM} (${CHROMIUM_HINT})`;
  else {
    try {
      // No short limit: a busy machine may take long to start a browser.
      return await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 120_000 });
    } catch (e) {
      const message = String((e as Error).message ?? e).replace(/\x1b\[\d+m/g, '');
      const exit = /<process did exit: (exitCode=\w+, signal=\w+)>/.exec(message)?.[1];
      problem = `${CHROMIUM} cannot start: ${message.split('\n')[0]!.replace(/^browserType\.launch: /, '')}${exit ? ` (${exit})` : ''}`;
    }
  }
  if (required()) throw new Error(`${what} required but ${problem}`);
  console.warn(`${what} skipped: ${problem}`);
  return undefined;
}
