// The MTP loss weight λ as a step schedule (@octet/schedules). DeepSeek-V3: λ = 0.3 for the first 10T tokens,
// 0.1 for the remaining 4.8T — here in steps: { kind: "piecewise", points: [[0, 0.3], [switchStep, 0.1]] }.

import { type StepSchedule, parseStepSchedule, stepScheduleSchema, valueAt } from "@octet/schedules";

export type LambdaSchedule = StepSchedule;

export const lambdaScheduleSchema = stepScheduleSchema();

/** DeepSeek-V3's schedule: 0.3, then 0.1 from `switchStep` on (their switch: after 10T of 14.8T tokens). */
export function deepseekV3LambdaSchedule(switchStep: number): LambdaSchedule {
  return parseLambdaSchedule({ kind: "piecewise", points: [[0, 0.3], [switchStep, 0.1]] }, "deepseekV3LambdaSchedule");
}

/** Throws TypeError (wrong kind of value) or RangeError (a value out of range) naming the field. */
export function parseLambdaSchedule(value: unknown, name = "lambda"): LambdaSchedule {
  return parseStepSchedule(value, name, lambdaScheduleSchema);
}

/** λ at a given step (a validated schedule). */
export const lambdaAt: (schedule: LambdaSchedule, step: number) => number = valueAt;
