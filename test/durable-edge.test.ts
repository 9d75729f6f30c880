// Durable execution at the edge: the chain of state images of test/durable.test.ts, run in workerd (the durable
// module given at deploy time, nothing compiled, nothing kept between requests) and in headless Chromium (images in
// IndexedDB, a fresh page per step), and hopping between them and Node. Every host's images and materialized files
// equal Node's byte for byte, and every chain ends as the uninterrupted run does.
// Skips with a line when workerd or Chromium cannot start, fails under CI=true (see the helpers).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildBrowser } from '../scripts/build-browser.ts';
import { durableApp, reference, type EndState } from './helpers/durable-app.ts';
import { launchChromiumOrSkip, startPageHost, startWorkerdHost, type PageHost, type WorkerdHost } from './helpers/durable-edge.ts';
import { endState, nodeHost, runChain, timings, wireAnswer, type Chain, type Host, type Step } from './helpers/durable-hosts.ts';
import { workerdOrSkip } from './helpers/workerd.ts';

const hasWorkerd = workerdOrSkip('durable tests in workerd');
const browser = await launchChromiumOrSkip('durable tests in Chromium');

const N = 7;
/** One step per suspension (a fetch and a big per round, a wait in rounds 1 and 4), and the step that returns. */
const STEPS = 2 * N + 2 + 1;
const report = (line: string) => { if (process.env.WIZ_TIMINGS) console.info(line); };

let node: Host;
/** The chain in Node, each step also materializing the image it starts from: what every other host must give. */
let nodeChain: Chain;
let ref: EndState;
let workerd: WorkerdHost;
let page: PageHost;
let bundleDir: string;

beforeAll(async () => {
  const bytes = await durableApp();
  node = await nodeHost(bytes);
  ref = await reference(N);
  nodeChain = await runChain(N, () => node, { materialize: true });
  if (!hasWorkerd && !browser) return;
  bundleDir = mkdtempSync(join(tmpdir(), 'wiz-durable-bundle-'));
  // The current source, bundled as dist/browser/wiz.js is.
  const bundle = readFileSync((await buildBrowser(bundleDir)).file, 'utf8');
  await Promise.all([
    hasWorkerd && startWorkerdHost(bytes, bundle).then((host) => { workerd = host; }),
    browser && startPageHost(browser, bytes, bundle).then((host) => { page = host; }),
  ]);
}, 300_000);

afterAll(async () => {
  await workerd?.stop();
  await page?.close();
  await browser?.close();
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
});

const last = (chain: Chain) => chain.steps[chain.steps.length - 1]!;
/** A step without the file it materialized. */
const bare = (step: Step): Step => {
  const { materialized: _, ...rest } = step;
  return rest as Step;
};

/** Each step of `chain` is Node's, image for image (and file for file where both materialized). */
function expectNodeSteps(chain: Chain, node: Chain = nodeChain): void {
  expect(chain.steps.length).toBe(node.steps.length);
  chain.steps.forEach((step, k) => {
    const expected = step.materialized === undefined ? bare(node.steps[k]!) : node.steps[k]!;
    expect(step, `step ${k} (${chain.hosts[k]}): ${step.line}`).toEqual(expected);
  });
}

test('the chain in Node ends as the uninterrupted run', () => {
  report(timings('node, call per step (restore, resume, capture, materialize)', nodeChain.ms));
  expect(nodeChain.steps.length).toBe(STEPS);
  expect(nodeChain.steps[0]!.line).toBe('suspended: rpc.fetch(0)');
  expect(last(nodeChain).line).toBe(`main(${N}) = ${ref.result}`);
  expect(endState(last(nodeChain))).toEqual(ref);
  // Every resumed step materialized the image it started from; the first one started from nothing.
  expect(nodeChain.steps.map((s) => s.materialized !== undefined)).toEqual([false, ...Array(STEPS - 1).fill(true)]);
});

describe.skipIf(!hasWorkerd)('in workerd', () => {
  test('one request per step, each restoring the image the last returned: images, files and the end are Node\'s', async () => {
    const chain = await runChain(N, () => workerd, { materialize: true });
    report(timings(`workerd, request per step (restore, resume, capture, materialize, JSON)`, chain.ms));
    expect(chain.hosts).toEqual(Array(STEPS).fill('workerd'));
    expect(endState(last(chain))).toEqual(ref);
    // Materializing checks its output with WebAssembly.validate: allowed where compiling is not.
    expect(chain.steps.filter((s) => s.materialized !== undefined).length).toBe(STEPS - 1);
    expectNodeSteps(chain);
  }, 120_000);

  test('requests share nothing: two chains at once, and one image resumed twice, give what each gives alone', async () => {
    const short = await runChain(4, () => node);
    const [long, other] = await Promise.all([runChain(N, () => workerd), runChain(4, () => workerd)]);
    expectNodeSteps(long);
    expectNodeSteps(other, short);
    const from = nodeChain.steps[5]!;
    const [once, twice] = await Promise.all([0, 1].map(() => workerd.resume(from.state, wireAnswer(from))));
    expect(once).toEqual(bare(nodeChain.steps[6]!));
    expect(twice).toEqual(once);
  }, 120_000);

  test('loadDurable without the deploy-time module fails in one line that names the platform\'s refusal', async () => {
    expect(await workerd.loadWithoutModule()).toEqual({
      name: 'WizError',
      code: 'unsupported',
      message: 'compiling WebAssembly at run time is forbidden here (Wasm code generation disallowed by embedder); '
        + 'give the module precompiled at deploy time (loadDurable(bytes, { module }))',
    });
  });
});

describe.skipIf(!browser)('in Chromium', () => {
  test('one page load per step, each resuming the image IndexedDB holds: images, files and the end are Node\'s', async () => {
    const steps: Step[] = [await page.startStored(N)];
    const ms: number[] = [];
    const reloads: number[] = [];
    while (steps[steps.length - 1]!.status === 'suspended') {
      let t = performance.now();
      // A fresh page: nothing of the last step is left but what IndexedDB keeps.
      await page.reload();
      reloads.push(performance.now() - t);
      t = performance.now();
      steps.push(await page.resumeStored(wireAnswer(steps[steps.length - 1]!), { materialize: true }));
      ms.push(performance.now() - t);
    }
    report(timings('chromium, page call per step (load the module, restore, resume, capture, materialize, IndexedDB)', ms));
    report(timings('chromium, page reload', reloads));
    const chain: Chain = { steps, hosts: steps.map(() => 'chromium'), ms };
    expect(endState(last(chain))).toEqual(ref);
    expect(steps.filter((s) => s.materialized !== undefined).length).toBe(STEPS - 1);
    expectNodeSteps(chain);
  }, 300_000);
});

describe('resumed anywhere', () => {
  test.skipIf(!hasWorkerd)('captured in Node, finished in workerd', async () => {
    const chain = await runChain(N, (k) => (k < 5 ? node : workerd));
    expect(chain.hosts.slice(4, 6)).toEqual(['node', 'workerd']);
    expect(endState(last(chain))).toEqual(ref);
    expectNodeSteps(chain);
  }, 120_000);

  test.skipIf(!browser)('captured in Chromium, finished in Node', async () => {
    const chain = await runChain(N, (k) => (k < 5 ? page : node));
    expect(chain.hosts.slice(4, 6)).toEqual(['chromium', 'node']);
    expect(endState(last(chain))).toEqual(ref);
    expectNodeSteps(chain);
  }, 120_000);

  test.skipIf(!hasWorkerd || !browser)('each step on the next host in turn: Node, workerd, Chromium', async () => {
    const hosts = [node, workerd, page];
    const chain = await runChain(N, (k) => hosts[k % 3]!, { materialize: true });
    expect(new Set(chain.hosts.slice(-3)).size).toBe(3);
    expect(endState(last(chain))).toEqual(ref);
    expectNodeSteps(chain);
  }, 120_000);
});
