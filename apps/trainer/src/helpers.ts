// Small helpers shared by the parts of a job attempt (job.ts and the classes it drives).

/** gRPC status codes the job's parts act on (the checkpointer and the EMA keeper answer with them). */
export const NOT_FOUND = 5;
export const ABORTED = 10;

/** The gRPC status code of an error from a gRPC client, if it has one. */
export function grpcCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown })?.code;
  return typeof c === "number" ? c : undefined;
}

/** An error's message, for messages that wrap it. */
export function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** x when finite; null otherwise (progress and records carry null, never NaN or Infinity, through JSON). */
export function finiteOrNull(x: number | null | undefined): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : x;
}

/** p, or a rejection naming `what` once `ms` pass without an answer (p itself is not cancelled). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
