// @octet/schedules — a value that changes with the training step (the router's bias update speed γ, the MTP
// loss weight λ) as plain, serializable data: it travels in configs, checkpoints, job specs and gRPC requests,
// so it is JSON, not a function. Validated with zod; failures are TypeError/RangeError naming the field, like
// every other input of Octet's libraries.
//
// A schedule is a number (constant), { kind: "constant", value }, or { kind: "piecewise", points } where
// points are [step, value] with strictly increasing steps, the first at step 0: from each point's step on, the
// value is that point's (DeepSeek-V3: γ = 0.001 up to 14.3T tokens then 0; λ = 0.3 for 10T tokens then 0.1).

import { z } from "zod";

export type StepSchedule =
  | number
  | { kind: "constant"; value: number }
  | { kind: "piecewise"; points: Array<[number, number]> };

/** The zod schema of a schedule whose values satisfy `value` (default: finite and non-negative). */
export function stepScheduleSchema(value: z.ZodNumber = z.number().finite().nonnegative()) {
  const constant = z.object({ kind: z.literal("constant"), value }).strict();
  const piecewise = z
    .object({
      kind: z.literal("piecewise"),
      points: z.array(z.tuple([z.number().int().nonnegative(), value])).min(1, "points must not be empty"),
    })
    .strict()
    .superRefine((schedule, ctx) => {
      // zod still runs refinements after the min(1) issue; an empty list has nothing more to check.
      if (schedule.points.length === 0) return;
      if (schedule.points[0][0] !== 0) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["points", 0, 0], message: "the first point must be at step 0" });
      }
      for (let i = 1; i < schedule.points.length; i++) {
        if (schedule.points[i][0] <= schedule.points[i - 1][0]) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["points", i, 0], message: "steps must increase strictly" });
        }
      }
    });
  return z.union([value, constant, piecewise]);
}

/**
 * Parses `value` as a schedule; throws TypeError (wrong kind of value) or RangeError (a value out of range)
 * naming the field (`name`, then the path inside the schedule).
 */
export function parseStepSchedule(value: unknown, name: string, schema = stepScheduleSchema()): StepSchedule {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data as StepSchedule;
  throw zodErrorToNative(parsed.error, name, value);
}

/** The value of a (validated) schedule at a step (a non-negative integer). */
export function valueAt(schedule: StepSchedule, step: number): number {
  if (!Number.isInteger(step) || step < 0) throw new RangeError(`valueAt: step must be a non-negative integer, got ${step}`);
  if (typeof schedule === "number") return schedule;
  if (schedule.kind === "constant") return schedule.value;
  let value = schedule.points[0][1];
  for (const [from, v] of schedule.points) {
    if (step < from) break;
    value = v;
  }
  return value;
}

/**
 * A zod error as the error a library of Octet throws: TypeError when the value is of the wrong kind, RangeError
 * when it is out of range; the message names the deepest failing path under `name`.
 */
export function zodErrorToNative(error: z.ZodError, name: string, value: unknown): TypeError | RangeError {
  // A union reports every branch; the most informative issue is the deepest one.
  const issues = error.issues.flatMap((issue) =>
    issue.code === z.ZodIssueCode.invalid_union ? issue.unionErrors.flatMap((e) => e.issues) : [issue],
  );
  const deepest = issues.reduce((best, issue) => (issue.path.length > best.path.length ? issue : best), issues[0]);
  const where = [name, ...deepest.path].join(".");
  const message = `${where}: ${deepest.message}`;
  const isTypeProblem =
    (typeof value !== "number" && (value === null || typeof value !== "object")) ||
    (deepest.code === z.ZodIssueCode.invalid_type && deepest.received !== "nan");
  return isTypeProblem ? new TypeError(message) : new RangeError(message);
}
