// The HTTP side: /metrics (Prometheus), /queues (bull-board), the web view (/ and /jobs/<id>) and the JSON API
// (/api/jobs, /api/jobs/<id>).
import express, { type NextFunction, type Request, type Response } from "express";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Logger } from "@octet/proto";
import type { EventHub } from "./events.js";
import type { OrchestratorMetrics } from "./metrics.js";
import { renderCurveSvg, renderIndex, renderJobPage, renderJobSummary, renderNotFound } from "./pages.js";
import { DEFAULT_CURVE_POINTS, JobStoreError, type JobStore } from "./store.js";
import { JOB_STATES, type JobStateName } from "@octet/jobs/view";

export interface HttpAppOptions {
  store: JobStore;
  hub: EventHub;
  metrics: OrchestratorMetrics;
  logger: Logger;
  /** How often an unfinished job's page refreshes (default 1000 ms). */
  refreshMs?: number;
}

function statesParam(q: unknown): JobStateName[] {
  if (q === undefined || q === "") return [];
  const parts = String(q)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of parts) if (!JOB_STATES.includes(s as JobStateName)) throw new JobStoreError("invalid", `state: unknown state ${JSON.stringify(s)}; one of ${JOB_STATES.join(", ")}`);
  return parts as JobStateName[];
}

function intParam(q: unknown, name: string, fallback: number): number {
  if (q === undefined || q === "") return fallback;
  const n = Number(q);
  if (!Number.isInteger(n) || n < 0) throw new JobStoreError("invalid", `${name}: must be a non-negative integer, got ${JSON.stringify(q)}`);
  return n;
}

type Handler = (req: Request, res: Response) => Promise<void>;

export function createHttpApp(opts: HttpAppOptions): express.Express {
  const { store, hub, metrics, logger } = opts;
  const refreshMs = opts.refreshMs ?? 1000;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  const wrap =
    (fn: Handler) =>
    (req: Request, res: Response, next: NextFunction): void => {
      fn(req, res).catch(next);
    };

  app.get(
    "/metrics",
    wrap(async (_req, res) => {
      await metrics.refresh(store, hub);
      res.type(metrics.contentType()).send(await metrics.metrics());
    }),
  );

  app.get("/healthz", (_req, res) => {
    res.json({ ok: true });
  });

  const board = new ExpressAdapter();
  board.setBasePath("/queues");
  // @bull-board/express 9.10.1 carries its own @bull-board/api 9.10.1: the adapter is the same at run time, only
  // the two copies' class types differ.
  const serverAdapter = board as unknown as Parameters<typeof createBullBoard>[0]["serverAdapter"];
  createBullBoard({ queues: [new BullMQAdapter(store.queue)], serverAdapter, options: { uiConfig: { boardTitle: "Octet" } } });
  app.use("/queues", board.getRouter());

  app.get(
    "/api/jobs",
    wrap(async (req, res) => {
      const page = await store.list({
        states: statesParam(req.query.state),
        pageSize: intParam(req.query.limit, "limit", 50) || undefined,
        pageToken: typeof req.query.pageToken === "string" && req.query.pageToken ? req.query.pageToken : undefined,
      });
      res.json(page);
    }),
  );

  app.get(
    "/api/jobs/:id",
    wrap(async (req, res) => {
      const withCurve = req.query.curve !== "0" && req.query.curve !== "false";
      const job = await store.get(String(req.params.id), { curve: withCurve, maxCurvePoints: intParam(req.query.maxPoints, "maxPoints", DEFAULT_CURVE_POINTS) });
      if (!job) {
        res.status(404).json({ error: `no job ${JSON.stringify(req.params.id)} in queue ${store.queue.name}` });
        return;
      }
      res.json(job);
    }),
  );

  app.get(
    "/",
    wrap(async (req, res) => {
      const state = typeof req.query.state === "string" ? req.query.state : undefined;
      const pageToken = typeof req.query.pageToken === "string" && req.query.pageToken ? req.query.pageToken : undefined;
      const page = await store.list({ states: statesParam(state), pageSize: 100, pageToken });
      res.type("html").send(renderIndex(page, { state, pageToken, queue: store.queue.name }));
    }),
  );

  app.get(
    "/jobs/:id",
    wrap(async (req, res) => {
      const id = String(req.params.id);
      const job = await store.get(id);
      if (!job) {
        res.status(404).type("html").send(renderNotFound(`no job ${JSON.stringify(id)} in queue ${store.queue.name}`, "../"));
        return;
      }
      res.type("html").send(renderJobPage(job, await store.curve(id), refreshMs));
    }),
  );

  app.get(
    "/jobs/:id/summary",
    wrap(async (req, res) => {
      const job = await store.get(String(req.params.id));
      if (!job) {
        res.status(404).type("text").send("not found");
        return;
      }
      res.set("cache-control", "no-store").type("html").send(renderJobSummary(job));
    }),
  );

  app.get(
    "/jobs/:id/curve.svg",
    wrap(async (req, res) => {
      const points = await store.curve(String(req.params.id), intParam(req.query.maxPoints, "maxPoints", DEFAULT_CURVE_POINTS));
      res.set("cache-control", "no-store").type("image/svg+xml").send(renderCurveSvg(points));
    }),
  );

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    void _next;
    if (err instanceof JobStoreError) {
      res.status(err.code === "not-found" ? 404 : 400).json({ error: err.message });
      return;
    }
    logger.error({ err, path: req.path }, "http request failed");
    res.status(503).json({ error: (err as Error).message ?? String(err) });
  });

  return app;
}
