// The one rule for the names the services keep state under: run names and tensor names. The checkpointer turns
// run names into directories, so a run name is never a path: no separators, no "..", no control characters.
// Tensor names are never paths either, but they are checked with the same care: printable, no traversal. The EMA
// keeper, the checkpointer and the router's load balancer all use these functions, so a name one service takes
// is a name every service takes (`@octet/proto/names` loads no gRPC: the libraries' roots use it too).

export const MAX_RUN_NAME_LENGTH = 128;
export const MAX_TENSOR_NAME_LENGTH = 512;

const RUN_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TENSOR_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:\-/[\]]{0,511}$/;

/**
 * Returns `run` when it is 1-128 characters of [A-Za-z0-9._-] starting with a letter or digit, without "..";
 * throws a TypeError for a non-string and a RangeError naming the name otherwise.
 */
export function checkRunName(run: unknown): string {
  if (typeof run !== "string") throw new TypeError("run name must be a string");
  if (!RUN_RE.test(run) || run.includes("..")) {
    throw new RangeError(
      `invalid run name ${JSON.stringify(run)}: use 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit, without ".."`,
    );
  }
  return run;
}

/**
 * Returns `name` when it is up to 512 characters of [A-Za-z0-9_.:-/[]], starting with a letter, digit or "_",
 * with no empty, "." or ".." segment between slashes; throws a TypeError for a non-string and a RangeError naming
 * the name otherwise.
 */
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
