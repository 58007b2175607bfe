// The bias update speed γ as a step schedule (@octet/schedules: a number, a constant, or piecewise-constant),
// because it travels in configs, checkpoints and gRPC requests.

import { type StepSchedule, parseStepSchedule, stepScheduleSchema, valueAt } from "@octet/schedules";

export type GammaSchedule = StepSchedule;

export const gammaScheduleSchema = stepScheduleSchema();

/** DeepSeek-V3's bias update speed. */
export const DEEPSEEK_V3_GAMMA = 0.001;

/** Throws TypeError (wrong kind of value) or RangeError (a value out of range) naming the field. */
export function parseGammaSchedule(value: unknown, name = "gamma"): GammaSchedule {
  return parseStepSchedule(value, name, gammaScheduleSchema);
}

/** γ at a given step. */
export const gammaAt: (schedule: GammaSchedule, step: number) => number = valueAt;
