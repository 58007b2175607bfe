// Output paths: a directory or file is built under a temporary name beside its destination and renamed into place
// only when complete, so a failure leaves nothing (and an existing output is replaced only with force).

import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, realpathSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, isAbsolute, sep } from "node:path";

/** Whether `inner` is `outer` or lies inside it (after resolving links of the existing part). */
export function isInside(inner: string, outer: string): boolean {
  const real = (p: string) => {
    let head = resolve(p);
    const tail: string[] = [];
    while (!existsSync(head) && dirname(head) !== head) {
      tail.unshift(basename(head));
      head = dirname(head);
    }
    return join(realpathSync(head), ...tail);
  };
  const rel = relative(real(outer), real(inner));
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/** A file name that stays inside its directory: no separators, no "..", not empty. */
export function checkPlainFileName(name: unknown, what: string): string {
  if (typeof name !== "string" || name.length === 0 || name === "." || name === ".." || name.includes("/") || name.includes("\\") || name.includes("\0")) {
    throw new RangeError(`${what}: ${JSON.stringify(name)} is not a plain file name inside the directory`);
  }
  return name;
}

/**
 * Checks an output path before any work: it must not be or contain `source` (replacing it would destroy the input),
 * and an existing one needs `force` (and must be of the kind written: a directory, or a file).
 */
export function checkOutput(to: string, opts: { force: boolean; kind: "dir" | "file"; source: string; flag: string }): string {
  const path = resolve(to);
  if (isInside(opts.source, path) || isInside(path, opts.source)) {
    throw new RangeError(`${opts.flag} ${to}: overlaps the input ${opts.source}`);
  }
  if (existsSync(path)) {
    if (!opts.force) throw new RangeError(`${opts.flag} ${to}: exists already; pass --force to replace it`);
    const isDir = lstatSync(path).isDirectory();
    if (opts.kind === "dir" && !isDir) throw new RangeError(`${opts.flag} ${to}: exists and is not a directory`);
    if (opts.kind === "file" && isDir) throw new RangeError(`${opts.flag} ${to}: exists and is a directory`);
  }
  return path;
}

function tempBeside(path: string, tag: string): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${randomBytes(6).toString("hex")}`);
}

/**
 * Runs `build(tmpDir)` and renames the finished directory to `path` (replacing an existing one, which check()
 * allowed); on any failure the temporary directory is removed and `path` is left as it was.
 */
export async function atomicDirectory<T>(path: string, build: (tmp: string) => Promise<T>): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempBeside(path, "tmp");
  await mkdir(tmp);
  try {
    const result = await build(tmp);
    if (existsSync(path)) {
      const old = tempBeside(path, "old");
      await rename(path, old);
      await rename(tmp, path);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, path);
    }
    return result;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The same for one file: `build(tmpPath)` writes it, then it is renamed over `path`. */
export async function atomicFile<T>(path: string, build: (tmp: string) => Promise<T>): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempBeside(path, "tmp");
  try {
    const result = await build(tmp);
    await rename(tmp, path);
    return result;
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
