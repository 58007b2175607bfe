// octet-up's flow: start what is not running (Redis, EMA keeper, checkpointer, orchestrator, trainer), submit
// the job(s) through gRPC, follow them, write the plot, report, and stop everything that was started — on
// success, on error and on SIGINT/SIGTERM.

import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { resolve, join } from "node:path";
import type { JobSpecInput } from "@octet/jobs";
import { ServiceError, Supervisor, describeExit, type Running } from "./children.js";
import type { JobOutcome, JobsApi } from "./jobs.js";
import { binScript } from "./locate.js";
import type { LaunchOptions } from "./options.js";
import { connectJobs } from "./orchestrator-client.js";
import { pingRedis, startPrivateRedis, type PrivateRedis } from "./redis.js";
import { checkpointPath, curveSvg, relDiff, reportLines, type FinishedJob } from "./report.js";
import { createUi, type Ui } from "./ui.js";

export interface Summary {
  config: string;
  recipe: string;
  steps: number;
  finalLoss: number;
  valLoss: number;
  entropyRate: number | null;
  unigramEntropy: number | null;
  bf16?: { finalLoss: number; valLoss: number };
  relDiff?: number;
  checkpoint: string | null;
  plot: string;
  web: string | null;
  jobs: string[];
  seconds: number;
  /** Process ids the launcher started (all stopped by the time this is printed). */
  pids: number[];
}

/** Thrown (and reported) when the user interrupts the launch. */
export class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

interface Services {
  redisUrl: string;
  privateRedis?: PrivateRedis;
  grpc: string;
  http: string | null;
  checkpointDataDir?: string;
}

/** Parses a {"event":"ready", ...} line. */
export function jsonReady(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    return o && o.event === "ready" ? o : undefined;
  } catch {
    return undefined;
  }
}

/** octet-ema-keeper prints "listening <address> port <port>". */
export function emaReady(line: string): string | undefined {
  const m = /^listening (\S+) port (\d+)/.exec(line);
  if (m) return m[1];
  const j = jsonReady(line);
  return typeof j?.grpc === "string" ? j.grpc : undefined;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((res) => {
    const t = setTimeout(res, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      res();
    }, { once: true });
  });
}

export async function launch(opts: LaunchOptions, ui: Ui = createUi({ json: opts.json })): Promise<Summary> {
  const t0 = Date.now();
  const out = resolve(opts.out);
  const logs = join(out, "logs");
  const dataDir = join(out, "checkpoints");
  mkdirSync(logs, { recursive: true });
  // The output folder never shows up in `git status` of a checkout it is created in.
  writeFileSync(join(out, ".gitignore"), "*\n");

  const sup = new Supervisor();
  const abort = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      // A second Ctrl-C: no more waiting.
      sup.killAllNow();
      process.exit(130);
    }
    signalled = sig;
    ui.error(`\noctet-up: ${sig} — stopping what it started (Ctrl-C again to kill at once)…`);
    abort.abort(new Interrupted(sig));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("SIGHUP", onSignal);

  let died: ((e: Error) => void) | undefined;
  const serviceDied = new Promise<never>((_, reject) => (died = reject));
  serviceDied.catch(() => {});
  sup.onUnexpectedExit((r: Running, code, signal) => {
    died!(new ServiceError(r.name, `${r.name} ${describeExit(code, signal)} while the job was running`, r.tail()));
  });
  const interrupted = new Promise<never>((_, reject) => abort.signal.addEventListener("abort", () => reject(abort.signal.reason as Error), { once: true }));
  interrupted.catch(() => {});
  /** Races a step of the launch against a service dying and the user interrupting. */
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, serviceDied, interrupted]);

  ui.info(
    `octet-up: ${opts.config} / ${opts.recipe}${opts.compareBf16 ? " and bf16" : ""}${opts.steps ? `, ${opts.steps} steps` : ""} — output in ${out}`,
    { event: "start", config: opts.config, recipe: opts.recipe, compareBf16: opts.compareBf16, steps: opts.steps ?? null, out },
  );

  let jobsApi: JobsApi | undefined;
  let services: Services | undefined;
  const submitted: string[] = [];
  let finished = false;
  try {
    // One bearer token for the run: every service started here requires it for its mutating calls, the trainer and
    // this process send it. Generated unless given, and never printed.
    const authToken = opts.authToken ?? randomBytes(32).toString("hex");
    services = await guard(startServices(opts, sup, ui, logs, dataDir, authToken));
    jobsApi = await guard(connectJobs(services.grpc, 10_000, authToken));

    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
    const recipes = opts.compareBf16 && opts.recipe !== "bf16" ? [opts.recipe, "bf16"] : [opts.recipe];
    const specs: JobSpecInput[] = recipes.map((recipe) => ({
      run: `up-${opts.config}-${recipe}-${stamp}`,
      config: opts.config,
      recipe: recipe as JobSpecInput["recipe"],
      seed: opts.seed,
      ...(opts.steps !== undefined ? { steps: opts.steps } : {}),
      gpus: 1,
      retries: 2,
    }));
    const ids: string[] = [];
    for (const spec of specs) {
      const id = await guard(jobsApi.submit(spec));
      ids.push(id);
      submitted.push(id);
      ui.info(`submitted job ${id}: ${spec.config} / ${spec.recipe}${spec.steps ? `, ${spec.steps} steps` : ""} (run ${spec.run})`, {
        event: "submitted", job: id, run: spec.run, config: spec.config, recipe: spec.recipe, steps: spec.steps ?? null,
      });
    }
    if (opts.trainers === 0) ui.info("no trainer started (--trainers 0): waiting for a worker already on the queue", { event: "waiting" });

    const outcomes: JobOutcome[] = await guard(
      Promise.all(
        ids.map((id, i) =>
          jobsApi!
            .follow(id, (u) => u.progress && ui.progress(recipes[i], id, u.progress), abort.signal)
            .then((o) => {
              ui.done(id);
              return o;
            }),
        ),
      ),
    );
    finished = true;
    const failed = outcomes.find((o) => o.state !== "completed" || !o.result);
    if (failed) throw new Error(`job ${failed.id} (${recipes[ids.indexOf(failed.id)]}) ${failed.state}: ${failed.error ?? "no result"}`);

    const jobs: FinishedJob[] = outcomes.map((o, i) => ({
      id: o.id,
      recipe: recipes[i],
      result: o.result!,
      curve: o.curve.length ? o.curve : [{ step: o.result!.step, loss: o.result!.loss, valLoss: o.result!.valLoss }],
    }));
    const main = jobs[0];
    const bf16 = jobs[1];
    const plot = join(out, "loss.svg");
    writeFileSync(plot, curveSvg(opts.config, jobs));
    const checkpoint = checkpointPath(main.result, opts.checkpointer ? undefined : services.checkpointDataDir);
    const web = services.http ? `${services.http.replace(/\/$/, "")}/jobs/${encodeURIComponent(main.id)}` : null;
    const seconds = (Date.now() - t0) / 1000;
    ui.report(reportLines({ config: opts.config, main, bf16, checkpoint, plot, web, keepOpen: opts.keepOpen, logs, seconds }));
    const summary: Summary = {
      config: opts.config,
      recipe: main.recipe,
      steps: main.result.step,
      finalLoss: main.result.loss,
      valLoss: main.result.valLoss,
      entropyRate: main.result.entropyRate,
      unigramEntropy: main.result.unigramEntropy,
      ...(bf16 ? { bf16: { finalLoss: bf16.result.loss, valLoss: bf16.result.valLoss }, relDiff: relDiff(main.result, bf16.result) } : {}),
      checkpoint,
      plot,
      web,
      jobs: ids,
      seconds: Math.round(seconds * 10) / 10,
      pids: sup.pids,
    };
    writeFileSync(join(out, "summary.json"), `${JSON.stringify({ ...summary, curves: jobs.map((j) => ({ job: j.id, recipe: j.recipe, curve: j.curve })) }, null, 1)}\n`);

    if (opts.keepOpen && !abort.signal.aborted) {
      ui.info(`services are up for browsing: ${web ?? "(no web view)"} — Ctrl-C stops them`, { event: "keep-open", web });
      await Promise.race([new Promise<void>((res) => abort.signal.addEventListener("abort", () => res(), { once: true })), serviceDied]);
    }
    return summary;
  } catch (e) {
    // Interrupted or failed: jobs still queued or running are cancelled so no worker keeps training them.
    if (!finished && jobsApi && submitted.length) {
      await Promise.race([Promise.allSettled(submitted.map((id) => jobsApi!.cancel(id))), sleep(3000)]);
    }
    throw e;
  } finally {
    ui.stop();
    jobsApi?.close();
    const alive = sup.alive().map((r) => r.name).reverse();
    if (alive.length) ui.info(`stopping ${alive.join(", ")}…`, { event: "stopping", services: alive });
    await sup.stopAll();
    services?.privateRedis?.cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("SIGHUP", onSignal);
  }
}

/**
 * The environment of every child: the launcher's, with the run's token as OCTET_AUTH_TOKEN and no other token
 * variable (a service-specific OCTET_<SERVICE>_AUTH_TOKEN or a token file would win over it, and the children
 * must agree on one token).
 */
export function childEnvironment(env: NodeJS.ProcessEnv, authToken: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, OCTET_LOG_LEVEL: env.OCTET_LOG_LEVEL ?? "info" };
  for (const name of Object.keys(out)) if (/^OCTET_(?:\w+_)?AUTH_TOKEN(?:_FILE)?$/.test(name)) delete out[name];
  out.OCTET_AUTH_TOKEN = authToken;
  return out;
}

async function startServices(opts: LaunchOptions, sup: Supervisor, ui: Ui, logs: string, dataDir: string, authToken: string): Promise<Services> {
  const node = process.execPath;
  const timeout = opts.readyTimeoutMs;
  const childEnv = childEnvironment(process.env, authToken);

  // Redis: the given one must answer; otherwise a private one.
  let redisUrl = opts.redis ?? "";
  let privateRedis: PrivateRedis | undefined;
  if (opts.orchestrator && opts.trainers === 0) {
    // Nothing to start that needs Redis: the running orchestrator has its own.
  } else if (opts.redis) {
    const ping = await pingRedis(opts.redis);
    if (!ping.ok) throw new ServiceError("redis", `Redis at ${opts.redis} (REDIS_URL) does not answer: ${ping.detail}`, "");
    ui.info(`redis         ${opts.redis} (already running)`, { event: "service", name: "redis", url: opts.redis, started: false });
  } else {
    privateRedis = await startPrivateRedis(sup, { logFile: join(logs, "redis.log"), readyTimeoutMs: timeout });
    redisUrl = privateRedis.url;
    ui.info(`redis         ${redisUrl} (private redis-server, pid ${privateRedis.proc.pid})`, { event: "service", name: "redis", url: redisUrl, started: true, pid: privateRedis.proc.pid });
  }

  const needWorkerServices = opts.trainers > 0;
  const starts: Promise<unknown>[] = [];
  let ema = opts.emaKeeper;
  let ckpt = opts.checkpointer;
  let grpc = opts.orchestrator;
  let http: string | null = opts.web ?? null;
  if (needWorkerServices && !ema) {
    starts.push(
      sup
        .start({
          name: "ema-keeper",
          command: node,
          args: [binScript("@octet/ema-keeper", "octet-ema-keeper"), "--host", "127.0.0.1", "--port", "0"],
          env: childEnv,
          ready: (l, s) => (s === "stdout" ? emaReady(l) : undefined),
          readyTimeoutMs: timeout,
          logFile: join(logs, "ema-keeper.log"),
        })
        .then(({ proc, ready }) => {
          ema = ready;
          ui.info(`ema-keeper    ${ready} (pid ${proc.pid})`, { event: "service", name: "ema-keeper", grpc: ready, started: true, pid: proc.pid });
        }),
    );
  }
  if (needWorkerServices && !ckpt) {
    mkdirSync(dataDir, { recursive: true });
    starts.push(
      sup
        .start({
          name: "checkpointer",
          command: node,
          args: [binScript("@octet/checkpointer", "octet-checkpointer"), "--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir],
          env: childEnv,
          ready: (l, s) => {
            const j = s === "stdout" ? jsonReady(l) : undefined;
            return typeof j?.grpc === "string" ? j.grpc : undefined;
          },
          readyTimeoutMs: timeout,
          logFile: join(logs, "checkpointer.log"),
        })
        .then(({ proc, ready }) => {
          ckpt = ready;
          ui.info(`checkpointer  ${ready} (pid ${proc.pid}), checkpoints in ${dataDir}`, { event: "service", name: "checkpointer", grpc: ready, dataDir, started: true, pid: proc.pid });
        }),
    );
  }
  if (!grpc) {
    starts.push(
      sup
        .start({
          name: "orchestrator",
          command: node,
          args: [
            binScript("@octet/orchestrator", "octet-orchestrator"),
            "--host", "127.0.0.1",
            "--port", String(opts.grpcPort),
            "--http-port", String(opts.webPort),
            "--redis", redisUrl,
          ],
          env: { ...childEnv, REDIS_URL: redisUrl },
          ready: (l, s) => {
            const j = s === "stdout" ? jsonReady(l) : undefined;
            return typeof j?.grpc === "string" ? { grpc: j.grpc, http: typeof j.http === "string" ? j.http : null } : undefined;
          },
          readyTimeoutMs: timeout,
          logFile: join(logs, "orchestrator.log"),
          hint: (tail) => (/EADDRINUSE/.test(tail) ? "A port it needs is taken: choose a free one with --grpc-port / --web-port, or 0 for any free port." : undefined),
        })
        .then(({ proc, ready }) => {
          grpc = ready.grpc;
          http = ready.http;
          ui.info(`orchestrator  gRPC ${ready.grpc}, web view ${ready.http ?? "-"} (pid ${proc.pid})`, { event: "service", name: "orchestrator", grpc: ready.grpc, http: ready.http, started: true, pid: proc.pid });
        }),
    );
  } else {
    ui.info(`orchestrator  ${grpc} (already running)`, { event: "service", name: "orchestrator", grpc, http, started: false });
  }
  // Wait for all of them, then report the first failure (the others are stopped by the caller).
  const settled = await Promise.allSettled(starts);
  const failure = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failure) throw failure.reason;

  for (let i = 0; i < opts.trainers; i++) {
    const name = opts.trainers > 1 ? `trainer-${i + 1}` : "trainer";
    const { proc } = await sup.start({
      name,
      command: node,
      args: [
        binScript("@octet/trainer", "octet-trainer"),
        "--redis", redisUrl,
        "--checkpointer", ckpt!,
        "--ema-keeper", ema!,
        "--cpu-slots", String(opts.cpuSlots),
      ],
      env: { ...childEnv, REDIS_URL: redisUrl },
      ready: (l, s) => (s === "stdout" ? jsonReady(l) : undefined),
      readyTimeoutMs: timeout,
      logFile: join(logs, `${name}.log`),
      // A trainer finishes its step and checkpoints on SIGTERM.
      stopGraceMs: 30_000,
    });
    ui.info(`${name.padEnd(13)} pid ${proc.pid}, ${opts.cpuSlots} slot${opts.cpuSlots > 1 ? "s" : ""} (GPUs when it finds them, CPU otherwise)`, { event: "service", name, started: true, pid: proc.pid });
  }
  return { redisUrl, privateRedis, grpc: grpc!, http, checkpointDataDir: opts.checkpointer ? undefined : dataDir };
}
