// The build cache: a second `turbo run build` with nothing changed must restore every task from the cache.
// It did not, once: @octet/proto's build inputs (src/**) included the files its build generates (src/gen/), so
// the first build changed its own cache key and every dependent rebuilt on the next `npm start` (issue 17).
//
// Two checks. (1) No build task's inputs, as `turbo run build --dry=json` lists them for this tree, match any
// task's outputs — the cause, for every workspace, in about a second. (2) The symptom, end to end: the
// workspace files are copied into a fresh git repository (as a clone has them: no dist/, no src/gen/, no
// turbo cache), built twice, and the second build must say "Cached: N cached, N total". That copy builds only
// the workspaces that compile no native code, with what they depend on, so it takes seconds rather than the
// minutes of node-gyp; check (1) covers the native ones. Neither check builds this package (it has no build),
// so nothing recurses.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { after, describe, it } from "node:test";
import { cleanEnvironment, runCommand } from "./commands.js";
import { listWorkspaces, REPO_ROOT, type Workspace } from "./workspaces.js";

/** The part of one task of `turbo run build --dry=json` that these checks read. */
interface DryRunTask {
  taskId: string;
  /** Directory of the task's workspace, relative to the repository root. */
  directory: string;
  /** Input files, relative to `directory` (may start with ../), to their hashes. */
  inputs: Record<string, string>;
  /** Output globs relative to `directory`; a leading "!" excludes. */
  outputs: string[] | null;
}

/** A turbo glob (`*` within a path segment, `**` across segments, `?` one character) as a whole-path RegExp. */
function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      // "a/**" matches everything under a/; "**/b" matches b in any directory.
      const slashAfter = glob[i + 2] === "/";
      source += slashAfter ? "(?:.*/)?" : ".*";
      i += slashAfter ? 2 : 1;
    } else if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

/**
 * Every (task, input file) where the input file is an output of some task (its own or another's): a build
 * that writes a file another build hashes changes that key after the first build, so the next one misses.
 * Paths are compared relative to the repository root.
 */
function inputsThatAreOutputs(tasks: readonly DryRunTask[]): string[] {
  const outputs = tasks.map((t) => {
    const globs = t.outputs ?? [];
    const repoGlob = (g: string) => globToRegExp(posix.join(t.directory, g));
    return {
      taskId: t.taskId,
      include: globs.filter((g) => !g.startsWith("!")).map(repoGlob),
      exclude: globs.filter((g) => g.startsWith("!")).map((g) => repoGlob(g.slice(1))),
    };
  });
  const problems: string[] = [];
  for (const task of tasks) {
    for (const input of Object.keys(task.inputs)) {
      const file = posix.join(task.directory, input);
      for (const out of outputs) {
        if (out.include.some((r) => r.test(file)) && !out.exclude.some((r) => r.test(file))) {
          problems.push(`${task.taskId} hashes ${file}, which ${out.taskId} writes`);
        }
      }
    }
  }
  return problems;
}

/** The "Cached: X cached, Y total" line of a turbo run's summary. */
function cachedCounts(output: string): { cached: number; total: number } {
  const plain = output.replace(new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`, "g"), ""); // colour codes
  const m = /Cached:\s+(\d+) cached, (\d+) total/.exec(plain);
  if (!m) throw new TypeError(`no "Cached: N cached, N total" line in turbo's output:\n${plain.slice(-2000)}`);
  return { cached: Number(m[1]), total: Number(m[2]) };
}

/** Workspaces with a build that compiles no native code and depends only on workspaces of the same kind. */
function workspacesWithoutNativeBuild(workspaces: readonly Workspace[]): Workspace[] {
  const byName = new Map(workspaces.map((w) => [w.name, w]));
  const workspaceDeps = (w: Workspace) =>
    Object.keys({ ...w.packageJson.dependencies, ...w.packageJson.devDependencies }).filter((d) => byName.has(d));
  const memo = new Map<string, boolean>();
  const pure = (w: Workspace): boolean => {
    const known = memo.get(w.name);
    if (known !== undefined) return known;
    memo.set(w.name, false); // a cycle is not pure
    const build = w.packageJson.scripts?.build;
    const ok = build !== undefined && !/node-gyp|cmake|nvcc|\bmake\b/.test(build) && workspaceDeps(w).every((d) => pure(byName.get(d)!));
    memo.set(w.name, ok);
    return ok;
  };
  return workspaces.filter(pure);
}

describe("the build cache checker (on made-up dry runs)", () => {
  const task = (taskId: string, directory: string, inputs: string[], outputs: string[]): DryRunTask => ({
    taskId, directory, outputs, inputs: Object.fromEntries(inputs.map((i) => [i, "0"])),
  });

  it("finds a build that hashes what it generates (the @octet/proto bug)", () => {
    const before = task("@octet/proto#build", "packages/proto", ["src/index.ts", "src/gen/protos.js", "src/gen/proto/a.proto"], ["dist/**", "src/gen/**"]);
    assert.deepEqual(inputsThatAreOutputs([before]), [
      "@octet/proto#build hashes packages/proto/src/gen/protos.js, which @octet/proto#build writes",
      "@octet/proto#build hashes packages/proto/src/gen/proto/a.proto, which @octet/proto#build writes",
    ]);
    const fixed = task("@octet/proto#build", "packages/proto", ["src/index.ts"], ["dist/**", "src/gen/**"]);
    assert.deepEqual(inputsThatAreOutputs([fixed]), []);
  });

  it("finds a build that hashes another workspace's outputs, through ../", () => {
    const a = task("@x/a#build", "packages/a", ["src/a.ts"], ["dist/**", "build/Release/*.node"]);
    const b = task("@x/b#build", "packages/b", ["src/b.ts", "../a/build/Release/k.node", "../a/build/config.gypi"], ["dist/**"]);
    assert.deepEqual(inputsThatAreOutputs([a, b]), ["@x/b#build hashes packages/a/build/Release/k.node, which @x/a#build writes"]);
  });

  it("honours excluded outputs", () => {
    const a = task("@x/a#build", "packages/a", ["gen/keep.txt", "gen/made.js"], ["gen/**", "!gen/keep.txt"]);
    assert.deepEqual(inputsThatAreOutputs([a]), ["@x/a#build hashes packages/a/gen/made.js, which @x/a#build writes"]);
  });

  it("reads turbo's summary line, colours or not", () => {
    assert.deepEqual(cachedCounts(" Tasks:    4 successful, 4 total\nCached:    3 cached, 4 total\n"), { cached: 3, total: 4 });
    assert.deepEqual(cachedCounts("\x1b[1mCached:    \x1b[0m4 cached, 4 total"), { cached: 4, total: 4 });
    assert.throws(() => cachedCounts("error: no such task"), TypeError);
  });

  it("picks the workspaces without native code, and not those depending on one", () => {
    const ws = (name: string, build: string | undefined, deps: string[] = []): Workspace => ({
      name, dir: `packages/${name}`, packageJson: { name, scripts: build ? { build } : {}, dependencies: Object.fromEntries(deps.map((d) => [d, "0"])) },
    });
    const picked = workspacesWithoutNativeBuild([
      ws("proto", "tsc"), ws("numerics", "node-gyp rebuild && tsc", ["proto"]), ws("model", "tsc", ["numerics"]), ws("checks", undefined, ["proto"]), ws("plot", "tsc", ["proto"]),
    ]);
    assert.deepEqual(picked.map((w) => w.name), ["proto", "plot"]);
  });
});

describe("the build cache (this repository)", () => {
  it("no build task hashes a file that a build writes", { timeout: 120_000 }, () => {
    const dry = spawnSync("npx", ["turbo", "run", "build", "--dry=json"], { cwd: REPO_ROOT, env: cleanEnvironment(), encoding: "utf8", maxBuffer: 64 << 20, timeout: 110_000 });
    assert.equal(dry.status, 0, `turbo run build --dry=json: ${dry.stderr}`);
    const tasks = (JSON.parse(dry.stdout) as { tasks: DryRunTask[] }).tasks;
    assert.ok(tasks.some((t) => t.taskId === "@octet/proto#build"), tasks.map((t) => t.taskId).join(", "));
    assert.deepEqual(inputsThatAreOutputs(tasks), []);
  });

  describe("a fresh copy builds, then a second build is fully cached", () => {
    const copy = mkdtempSync(join(tmpdir(), "octet-cache-check-"));
    after(() => rmSync(copy, { recursive: true, force: true }));

    it("copies the workspace as a clone has it", () => {
      // Tracked files and new files git does not ignore, as they are in the working tree (what `npm test` tests).
      const listed = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: REPO_ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
      assert.equal(listed.status, 0, listed.stderr);
      let copied = 0;
      for (const file of listed.stdout.split("\0").filter(Boolean)) {
        const from = join(REPO_ROOT, file);
        // Deleted in the working tree but not yet in git, or not a plain file (a symlinked node_modules is not
        // ignored by "node_modules/", which matches directories only).
        if (!existsSync(from) || !lstatSync(from).isFile()) continue;
        mkdirSync(dirname(join(copy, file)), { recursive: true });
        copyFileSync(from, join(copy, file));
        copied++;
      }
      assert.ok(existsSync(join(copy, "turbo.json")) && copied > 100, `${copied} files copied`);
      assert.ok(!existsSync(join(copy, "packages/proto/src/gen")), "the copy has no generated code");
      // Dependencies are installed, not built: the copy uses the repository's node_modules.
      symlinkSync(join(REPO_ROOT, "node_modules"), join(copy, "node_modules"), "dir");
      // A git repository, so that turbo hashes files the way it does in a clone.
      const git = (...args: string[]) => {
        const r = spawnSync("git", ["-c", "user.name=octet", "-c", "user.email=octet@localhost", "-c", "commit.gpgsign=false", ...args], { cwd: copy, encoding: "utf8" });
        assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
      };
      git("init", "-q");
      git("add", ".");
      git("commit", "-q", "-m", "copy");
    });

    it("builds twice: the first from nothing, the second entirely from the cache", { timeout: 300_000 }, async () => {
      const names = workspacesWithoutNativeBuild(listWorkspaces(copy)).map((w) => w.name);
      assert.ok(names.includes("@octet/proto"), `workspaces without native code: ${names.join(", ")}`);
      const command = `npx turbo run build ${names.map((n) => `--filter=${n}`).join(" ")} --output-logs=errors-only --no-color`;
      const env = { ...cleanEnvironment(), FORCE_COLOR: "0" };
      const first = await runCommand(command, copy, 240, env);
      assert.equal(first.code, 0, first.output.slice(-4000));
      assert.deepEqual(cachedCounts(first.output), { cached: 0, total: names.length }, "the first build starts without a cache");
      const second = await runCommand(command, copy, 50, env);
      assert.equal(second.code, 0, second.output.slice(-4000));
      assert.deepEqual(cachedCounts(second.output), { cached: names.length, total: names.length }, `the second build rebuilt something:\n${second.output.slice(-4000)}`);
    });
  });
});
