// Names that become (or sit next to) paths. Anything that could escape the data directory is refused.
// Run and tensor names follow the rule every Octet service shares (@octet/proto/names): the EMA keeper refuses
// exactly the names refused here.

export { checkRunName, checkTensorName } from "@octet/proto/names";

/** Steps are non-negative safe integers. */
export function checkStep(step: unknown): number {
  if (typeof step === "bigint") step = Number(step);
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw new RangeError(`invalid step ${String(step)}: expected a non-negative integer`);
  }
  return step;
}

const STEP_DIGITS = 12;

export function stepDirName(step: number): string {
  return `step-${String(step).padStart(STEP_DIGITS, "0")}`;
}

export function parseStepDirName(name: string): number | undefined {
  const m = /^step-(\d{12,16})$/.exec(name);
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && stepDirName(n) === name ? n : undefined;
}

export function shardFileName(index: number, count: number): string {
  const w = 5;
  return `shard-${String(index).padStart(w, "0")}-of-${String(count).padStart(w, "0")}.safetensors`;
}
