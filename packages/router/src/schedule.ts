// The bias update speed γ as a plain, serializable schedule (it travels in configs, checkpoints and
// gRPC requests), validated with zod and reported as TypeError/RangeError like every other input.

import { z } from "zod";

const gammaValue = z.number().finite().nonnegative();

const constantSchedule = z.object({ kind: z.literal("constant"), value: gammaValue }).strict();

// Piecewise-constant: from each point's step on, γ is that point's value (DeepSeek-V3: 0.001 up to
// 14.3T tokens, then 0). Points are [step, γ] with strictly increasing steps, the first at step 0.
const piecewiseSchedule = z
  .object({
    kind: z.literal("piecewise"),
    points: z
      .array(z.tuple([z.number().int().nonnegative(), gammaValue]))
      .min(1, "points must not be empty"),
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

export const gammaScheduleSchema = z.union([gammaValue, constantSchedule, piecewiseSchedule]);

export type GammaSchedule =
  | number
  | { kind: "constant"; value: number }
  | { kind: "piecewise"; points: Array<[number, number]> };

/** DeepSeek-V3's bias update speed. */
export const DEEPSEEK_V3_GAMMA = 0.001;

/** Throws TypeError (wrong kind of value) or RangeError (a value out of range) naming the field. */
export function parseGammaSchedule(value: unknown, name = "gamma"): GammaSchedule {
  const parsed = gammaScheduleSchema.safeParse(value);
  if (parsed.success) return parsed.data as GammaSchedule;
  throw zodErrorToNative(parsed.error, name, value);
}

export function zodErrorToNative(error: z.ZodError, name: string, value: unknown): TypeError | RangeError {
  // A union reports every branch; the most informative issue is the deepest one.
  const issues = error.issues.flatMap((issue) =>
    issue.code === z.ZodIssueCode.invalid_union ? issue.unionErrors.flatMap((e) => e.issues) : [issue],
  );
  const deepest = issues.reduce((best, issue) => (issue.path.length > best.path.length ? issue : best), issues[0]);
  const where = [name, ...deepest.path].join(".");
  const message = `${where}: ${deepest.message}`;
  const isTypeProblem =
    typeof value !== "number" && (value === null || typeof value !== "object") ||
    (deepest.code === z.ZodIssueCode.invalid_type && deepest.received !== "nan");
  return isTypeProblem ? new TypeError(message) : new RangeError(message);
}

/** γ at a given step. */
export function gammaAt(schedule: GammaSchedule, step: number): number {
  if (typeof schedule === "number") return schedule;
  if (schedule.kind === "constant") return schedule.value;
  let gamma = schedule.points[0][1];
  for (const [from, value] of schedule.points) {
    if (step < from) break;
    gamma = value;
  }
  return gamma;
}
