// Names that become (or sit next to) paths. Anything that could escape the data directory is refused.

const RUN_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
// Tensor names are never used as paths, but they are checked with the same care: printable, no traversal.
const TENSOR_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:\-/[\]]{0,511}$/;

/** Throws a RangeError unless `run` is 1-128 characters of [A-Za-z0-9._-] starting with a letter or digit. */
export function checkRunName(run: unknown): string {
  if (typeof run !== "string") throw new TypeError("run name must be a string");
  if (!RUN_RE.test(run) || run.includes("..")) {
    throw new RangeError(
      `invalid run name ${JSON.stringify(run)}: use 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit, without ".."`,
    );
  }
  return run;
}

/** Throws a RangeError for tensor names with path traversal, absolute paths, or characters outside [A-Za-z0-9_.:-/[]]. */
export function checkTensorName(name: unknown): string {
  if (typeof name !== "string") throw new TypeError("tensor name must be a string");
  const segments = name.split("/");
  if (!TENSOR_RE.test(name) || segments.some((s) => s === "" || s === "." || s === "..")) {
    throw new RangeError(
      `invalid tensor name ${JSON.stringify(name)}: use up to 512 characters of [A-Za-z0-9_.:-/[]], no empty, "." or ".." path segments`,
    );
  }
  return name;
}

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
