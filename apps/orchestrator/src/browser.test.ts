// The web view in a real headless Chromium (playwright-core driving /usr/bin/chromium): a job page renders its
// loss curve as SVG and refreshes it live while the job runs, the index links to it, and bull-board renders.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium, type BrowserContext } from "playwright-core";
import type { Job } from "bullmq";
import { deferred, startTestBed, type TestBed } from "./testing/harness.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

let bed: TestBed;
let browser: BrowserContext;
let profile: string;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)`);
  bed = await startTestBed("browser", { refreshMs: 150 });
  profile = mkdtempSync(join(tmpdir(), "octet-chromium-"));
  // a fresh profile directory (playwright passes it as --user-data-dir)
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    // Without the background-networking flags Chromium's own connections are refused by a closed network.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await bed?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const pointsOf = (d: string) => (d.match(/[ML]-?\d/g) ?? []).length;

test("a job page draws the loss curve as SVG and refreshes it live until the job ends", async () => {
  const { job } = await bed.client.submit({ run: "browser-1", steps: 5 });
  const curve = bed.keys.curve(job.id);
  await bed.redis.rpush(curve, ...[3.1, 2.9, 2.7].map((loss, i) => JSON.stringify({ step: i + 1, loss })));

  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${bed.orch.httpUrl}/jobs/${job.id}`);
  assert.equal(await page.title(), `Job ${job.id}`);
  const path = page.locator("#curve svg path.loss");
  assert.equal(await path.getAttribute("data-points"), "3");
  assert.equal(pointsOf((await path.getAttribute("d")) ?? ""), 3);
  assert.match((await page.locator("#summary").textContent()) ?? "", /waiting/);
  assert.equal(await page.locator("#job").getAttribute("data-live"), "true");

  // the job runs: more points (with a validation loss) and progress appear without a reload
  const finish = deferred();
  const w = bed.worker(async (j: Job) => {
    await j.updateProgress({ phase: "running", step: 5, totalSteps: 5, loss: 2.3, valLoss: 2.4, tokensPerSec: 1234, lastCheckpoint: { step: 5, path: "/ckpt/browser-1/5" }, resumedFrom: null, attempt: 1, workerId: "w-browser" });
    await finish.promise;
    return { run: "browser-1", step: 5, loss: 2.3, valLoss: 2.4, tokensPerSec: 1234, recipe: "fp8", entropyRate: 2.0, unigramEntropy: 3.0, checkpoints: [{ step: 5, path: "/ckpt/browser-1/5" }], emaStep: 5, resumedFrom: null, seconds: 1 };
  });
  await bed.redis.rpush(curve, JSON.stringify({ step: 4, loss: 2.5 }), JSON.stringify({ step: 5, loss: 2.3, valLoss: 2.4 }));
  await page.waitForSelector('#curve svg path.loss[data-points="5"]', { state: "attached" });
  assert.equal(pointsOf((await path.getAttribute("d")) ?? ""), 5);
  assert.equal(await page.locator("#curve svg path.val-loss").getAttribute("data-points"), "1");
  assert.equal(await page.locator("#curve svg").getAttribute("data-last-step"), "5");
  await page.waitForSelector('#summary[data-state="active"]', { state: "attached" });
  assert.match((await page.locator("#summary").textContent()) ?? "", /\/ckpt\/browser-1\/5/);

  // the job ends: the page shows the result and stops refreshing
  finish.resolve();
  await page.waitForSelector('#job[data-live="false"]', { state: "attached" });
  assert.equal(await page.locator("#summary").getAttribute("data-state"), "completed");
  assert.match((await page.locator("#summary").textContent()) ?? "", /final loss/);
  const refreshes = await page.locator("#job").getAttribute("data-refreshes");
  await w.close();
  // a finished job's page is not live from the start
  await page.reload();
  assert.equal(await page.locator("#job").getAttribute("data-live"), "false");
  assert.equal(await page.locator("#curve svg path.loss").getAttribute("data-points"), "5");
  assert.ok(Number(refreshes) >= 1);
  assert.deepEqual(errors, []);
  await page.close();
});

test("the index lists jobs with links to their pages, and /queues renders bull-board with the queue", async () => {
  const { job } = await bed.client.submit({ run: "browser-index" });
  const page = await browser.newPage();
  await page.goto(`${bed.orch.httpUrl}/`);
  const row = page.locator(`tr[data-job-id="${job.id}"]`);
  assert.match((await row.textContent()) ?? "", /browser-index/);
  await row.locator("a").first().click();
  await page.waitForURL(`**/jobs/${job.id}`);
  assert.equal(await page.locator("#curve svg path.loss").getAttribute("data-points"), "0");

  await page.goto(`${bed.orch.httpUrl}/queues`);
  // bull-board is a client-side app: wait for it to render the queue's name from its API
  await page.getByText("octet-gpu").first().waitFor();
  assert.match(await page.title(), /Octet/);
  // and the queue's page shows the job (prioritized: BullMQ's set for jobs with a priority) with its spec
  await page.goto(`${bed.orch.httpUrl}/queues/queue/octet-gpu?status=prioritized`);
  await page.getByText('"browser-index"').first().waitFor();
  await page.close();
  await bed.client.cancel(job.id);
});
