// The MTP loss weight λ as a plain, serializable schedule, validated with zod and reported as
// TypeError/RangeError naming the field. DeepSeek-V3: λ = 0.3 for the first 10T tokens, 0.1 for the
// remaining 4.8T — here in steps: { kind: "piecewise", points: [[0, 0.3], [switchStep, 0.1]] }.

import { z } from "zod";

const lambdaValue = z.number().finite().nonnegative();

const constantSchedule = z.object({ kind: z.literal("constant"), value: lambdaValue }).strict();

// Piecewise-constant: from each point's step on, λ is that point's value. Steps strictly increase
// and the first point is at step 0.
const piecewiseSchedule = z
  .object({
    kind: z.literal("piecewise"),
    points: z.array(z.tuple([z.number().int().nonnegative(), lambdaValue])).min(1, "points must not be empty"),
  })
  .strict()
  .superRefine((schedule, ctx) => {
    if (schedule.points.length === 0) return; // reported by min()
    if (schedule.points[0][0] !== 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["points", 0, 0], message: "the first point must be at step 0" });
    }
    for (let i = 1; i < schedule.points.length; i++) {
      if (schedule.points[i][0] <= schedule.points[i - 1][0]) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["points", i, 0], message: "steps must increase strictly" });
      }
    }
  });

export const lambdaScheduleSchema = z.union([lambdaValue, constantSchedule, piecewiseSchedule]);

export type LambdaSchedule =
  | number
  | { kind: "constant"; value: number }
  | { kind: "piecewise"; points: Array<[number, number]> };

/** DeepSeek-V3's schedule: 0.3, then 0.1 from `switchStep` on (their switch: after 10T of 14.8T tokens). */
export function deepseekV3LambdaSchedule(switchStep: number): LambdaSchedule {
  return parseLambdaSchedule({ kind: "piecewise", points: [[0, 0.3], [switchStep, 0.1]] }, "deepseekV3LambdaSchedule");
}

/** Throws TypeError (wrong kind of value) or RangeError (a value out of range) naming the field. */
export function parseLambdaSchedule(value: unknown, name = "lambda"): LambdaSchedule {
  const parsed = lambdaScheduleSchema.safeParse(value);
  if (parsed.success) return parsed.data as LambdaSchedule;
  throw zodErrorToNative(parsed.error, name, value);
}

function zodErrorToNative(error: z.ZodError, name: string, value: unknown): TypeError | RangeError {
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

/** λ at a given step (a validated schedule). */
export function lambdaAt(schedule: LambdaSchedule, step: number): number {
  if (!Number.isInteger(step) || step < 0) throw new RangeError(`lambdaAt: step must be a non-negative integer, got ${step}`);
  if (typeof schedule === "number") return schedule;
  if (schedule.kind === "constant") return schedule.value;
  let lambda = schedule.points[0][1];
  for (const [from, value] of schedule.points) {
    if (step < from) break;
    lambda = value;
  }
  return lambda;
}
