// What the docs check does with a documented command: resolve it statically (does the npm script, the
// workspace, the bin exist?) and run it (exit code 0, expected output, within a time limit).

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { binsOf, type PackageJson, readJson, type Workspace } from "./workspaces.js";

export interface RepoCommands {
  /** root package.json scripts */
  rootScripts: Record<string, string>;
  workspaces: readonly Workspace[];
  /** bins of the root's own devDependencies (turbo, nx, tsx, …): what `npx <bin>` finds in a fresh checkout */
  toolBins: ReadonlySet<string>;
}

export function repoCommands(root: string, workspaces: readonly Workspace[]): RepoCommands {
  const rootJson = readJson<PackageJson>(join(root, "package.json"));
  const toolBins = new Set<string>();
  for (const dep of Object.keys({ ...rootJson.devDependencies, ...rootJson.dependencies })) {
    const pj = join(root, "node_modules", dep, "package.json");
    if (existsSync(pj)) for (const bin of Object.keys(binsOf(readJson<PackageJson>(pj)))) toolBins.add(bin);
  }
  return { rootScripts: rootJson.scripts ?? {}, workspaces, toolBins };
}

/** Split a shell command line into simple commands (at &&, ||, ;, |) and those into words; comments dropped. */
function simpleCommands(line: string): string[][] {
  const withoutComment = line.replace(/(^|\s)#.*$/, "");
  return withoutComment
    .split(/&&|\|\||;|\|/)
    .map((part) => part.trim().split(/\s+/).filter(Boolean))
    .map((words) => {
      // leading VAR=value assignments and `(cd dir &&` groups are not the command
      while (words.length && (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0]) || words[0] === "(")) words.shift();
      if (words[0]?.startsWith("(")) words[0] = words[0].slice(1);
      return words;
    })
    .filter((words) => words.length > 0);
}

/**
 * Problems with the npm commands in a documented line: `npm run X` / `npm test` / `npm start` naming a script
 * that does not exist (at the root, in the workspace of `-w`, or — for a package's own README — in that
 * package), `-w` naming no workspace, `npx X` naming a workspace's bin (npm links those only when they were
 * built before the install; in a fresh checkout `npx` goes to the registry) or nothing installed.
 * `ownWorkspace` is the workspace whose README the line is in, if any.
 */
export function npmCommandProblems(line: string, repo: RepoCommands, ownWorkspace?: Workspace): string[] {
  const problems: string[] = [];
  const byName = new Map(repo.workspaces.map((w) => [w.name, w]));
  const workspaceBins = new Map<string, string>();
  for (const w of repo.workspaces) for (const bin of Object.keys(binsOf(w.packageJson))) workspaceBins.set(bin, w.name);

  for (const words of simpleCommands(line)) {
    if (words[0] === "npx" || (words[0] === "npm" && (words[1] === "exec" || words[1] === "x") && !words.includes("-w") && !words.some((w) => w.startsWith("--workspace")))) {
      const rest = words[0] === "npx" ? words.slice(1) : words.slice(2).filter((w) => w !== "--");
      const bin = rest.find((w) => !w.startsWith("-"));
      if (!bin) continue;
      const owner = workspaceBins.get(bin);
      if (owner) {
        problems.push(`\`npx ${bin}\` from the repository root: ${bin} is the bin of the workspace ${owner}, which npm links only when it was built before \`npm ci\`; use \`npm run ${bin} --\` (a root script)`);
      } else if (!repo.toolBins.has(bin)) {
        problems.push(`\`npx ${bin}\`: no root devDependency provides the bin ${bin} (npx would download it)`);
      }
      continue;
    }
    if (words[0] !== "npm") continue;
    const verb = words[1];
    let script: string | undefined;
    if (verb === "run" || verb === "run-script") script = words.slice(2).find((w) => !w.startsWith("-"));
    else if (verb === "test" || verb === "start" || verb === "t") script = verb === "t" ? "test" : verb;
    else continue;
    if (!script) continue;
    // -w/--workspace before a `--` belongs to npm; after it, to the script
    const npmArgs = words.slice(0, words.indexOf("--") < 0 ? words.length : words.indexOf("--"));
    const workspaces: string[] = [];
    npmArgs.forEach((w, i) => {
      if (w === "-w" || w === "--workspace") workspaces.push(npmArgs[i + 1] ?? "");
      else if (w.startsWith("--workspace=")) workspaces.push(w.slice("--workspace=".length));
    });
    if (workspaces.length > 0) {
      for (const name of workspaces) {
        const ws = byName.get(name) ?? repo.workspaces.find((w) => w.dir === name);
        if (!ws) problems.push(`\`${words.join(" ")}\`: no workspace ${name}`);
        else if (!ws.packageJson.scripts?.[script]) problems.push(`\`${words.join(" ")}\`: ${ws.name} has no script "${script}"`);
      }
    } else if (!repo.rootScripts[script] && !ownWorkspace?.packageJson.scripts?.[script]) {
      problems.push(`\`${words.join(" ")}\`: no script "${script}" at the repository root${ownWorkspace ? ` or in ${ownWorkspace.name}` : ""}`);
    }
  }
  return problems;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  output: string;
  seconds: number;
}

/**
 * The environment a documented command runs in: this process' own, less what npm, turbo and node's test
 * runner set for the test that runs the check (a nested `npm run` must not inherit `-w`, a nested turbo
 * must not think it is a task of ours, a nested `node --test` must not report to our runner).
 */
export function cleanEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) {
    if (/^npm_/i.test(key) || /^TURBO_/.test(key) || key === "NODE_TEST_CONTEXT" || key === "INIT_CWD") continue;
    out[key] = value;
  }
  return out;
}

/** Run one command line with bash in `cwd`; its process group is killed at the time limit. */
export function runCommand(command: string, cwd: string, timeoutSeconds: number, env = cleanEnvironment()): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn("bash", ["-o", "pipefail", "-c", command], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => chunks.push(b));
    child.stderr.on("data", (b: Buffer) => chunks.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }, timeoutSeconds * 1000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, output: Buffer.concat(chunks).toString("utf8"), seconds: (Date.now() - started) / 1000 });
    });
  });
}
