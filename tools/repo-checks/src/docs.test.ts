// The docs check: every command a README (or docs/) tells a user to run is either run here or knowingly
// skipped with a reason, the npm commands the prose mentions exist, and relative links lead to files of the
// repository. Markers: see markdown.ts.
//
// Checked blocks run from the repository root (or their cwd=) one command at a time, each within its time
// limit (default 120 s), and must exit 0 and print what their `# expect:` lines name. They need the
// workspaces built: `npm test` (turbo) builds every workspace first, this package depends on all of them.
// OCTET_DOCS_CHECK_ONLY=<text>[,<text>…] runs only the blocks whose "file:line" contains one of the texts;
// OCTET_DOCS_CHECK_ONLY=none runs none (the static checks still run).

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, it } from "node:test";
import { npmCommandProblems, repoCommands, runCommand } from "./commands.js";
import { LAYERING } from "./layering.js";
import { commandsOf, documentationFiles, fencedBlocks, inlineCode, readText, SHELL_LANGUAGES, type FencedBlock } from "./markdown.js";
import { binsOf, listWorkspaces, REPO_ROOT } from "./workspaces.js";

const DEFAULT_TIMEOUT_SECONDS = 120;
const files = documentationFiles(REPO_ROOT);
const workspaces = listWorkspaces();
const blocks: FencedBlock[] = files.flatMap((file) => fencedBlocks(readText(REPO_ROOT, file), file));
const isShell = (b: FencedBlock) => b.language === "" || SHELL_LANGUAGES.has(b.language);

describe("docs: every block is labelled, every command block checked or knowingly skipped", () => {
  it("finds the READMEs", () => {
    assert.ok(files.includes("README.md") && files.includes("docs/ARCHITECTURE.md"), files.join(", "));
    assert.ok(files.length >= 10, `only ${files.length} documentation files: ${files.join(", ")}`);
  });

  it("no unlabelled fence, no unmarked shell block, no marker on a block that is not commands", () => {
    const problems: string[] = [];
    for (const b of blocks) {
      const where = `${b.file}:${b.line}`;
      if (b.markerError) problems.push(`${where}: ${b.markerError}`);
      else if (b.language === "") problems.push(`${where}: a fence without a language — \`\`\`sh for commands (and a docs-check marker), \`\`\`text for output or diagrams`);
      else if (isShell(b) && !b.marker) problems.push(`${where}: a ${b.language} block without <!-- docs-check --> or <!-- docs-check: skip (why) --> before it`);
      else if (!isShell(b) && b.marker) problems.push(`${where}: a docs-check marker on a ${b.language} block (only shell blocks are run)`);
      else if (b.marker?.kind === "check" && commandsOf(b).length === 0) problems.push(`${where}: a checked block with no command`);
    }
    assert.deepEqual(problems, []);
  });

  it("every relative link points to a file or directory that exists", () => {
    const problems: string[] = [];
    for (const file of files) {
      readText(REPO_ROOT, file).split("\n").forEach((line, index) => {
        for (const [, href] of line.matchAll(/\]\(([^)\s]+)\)/g)) {
          if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith("#")) continue; // a URL or an anchor
          const target = join(REPO_ROOT, dirname(file), decodeURI(href.split("#")[0]));
          if (relative(REPO_ROOT, target).startsWith("..")) problems.push(`${file}:${index + 1}: ${href} leaves the repository`);
          else if (!existsSync(target)) problems.push(`${file}:${index + 1}: ${href} does not exist`);
        }
      });
    }
    assert.deepEqual(problems, []);
  });

  it("every npm and npx command in the docs names a script, workspace and bin that exist", () => {
    const repo = repoCommands(REPO_ROOT, workspaces);
    const problems: string[] = [];
    for (const file of files) {
      const own = workspaces.find((w) => file === `${w.dir}/README.md`);
      const text = readText(REPO_ROOT, file);
      const lines = [
        ...fencedBlocks(text, file).filter(isShell).flatMap((b) => commandsOf(b).map((c) => ({ code: c.text, line: c.line }))),
        ...inlineCode(text).filter((s) => /^(?:[A-Z_]+=\S+\s+)*(?:npm|npx)\s/.test(s.code)),
      ];
      for (const { code, line } of lines) {
        for (const p of npmCommandProblems(code, repo, own)) problems.push(`${file}:${line}: ${p}`);
      }
    }
    assert.deepEqual(problems, []);
  });
});

describe("docs: every workspace bin runs from the repository root", () => {
  // npm links a workspace's bin into node_modules/.bin only if the file existed at install time, and dist/ is
  // built after `npm ci`: so `npx octet-numerics` goes to the registry in a fresh checkout. The root has one
  // script per bin instead (`npm run octet-numerics -- --help`), which the READMEs use.
  it("a root script named after each bin runs that bin's file", () => {
    const rootScripts = repoCommands(REPO_ROOT, workspaces).rootScripts;
    const problems: string[] = [];
    for (const w of workspaces) {
      for (const [bin, file] of Object.entries(binsOf(w.packageJson))) {
        const expected = `node ${join(w.dir, file).split("\\").join("/")}`;
        if (rootScripts[bin] !== expected) problems.push(`package.json scripts.${bin}: ${JSON.stringify(rootScripts[bin])}, expected ${JSON.stringify(expected)}`);
      }
    }
    assert.deepEqual(problems, []);
  });
});

describe("docs: the install line and CI install the same system packages", () => {
  const aptFile = join(REPO_ROOT, ".ci/apt-packages");
  const listed = readFileSync(aptFile, "utf8").split("\n")
    .map((l) => l.replace(/#.*/, "").trim()).filter(Boolean).map((l) => l.split(/\s+/)[0]);

  it(".ci/apt-packages names packages", () => {
    assert.ok(listed.includes("redis-server") && listed.includes("chromium"), listed.join(" "));
  });

  it("the README's apt-get line installs exactly .ci/apt-packages, in its order", () => {
    const readme = readText(REPO_ROOT, "README.md");
    const lines = readme.split("\n").flatMap((l) => [...l.matchAll(/apt-get install -y ([a-z0-9.+\- ]+)/g)].map((m) => m[1].trim().split(/\s+/)));
    assert.equal(lines.length, 1, "one `apt-get install -y …` in README.md");
    assert.deepEqual(lines[0], listed);
  });

  it(".ci/run installs from .ci/apt-packages (and lists no package of its own)", () => {
    const run = readFileSync(join(REPO_ROOT, ".ci/run"), "utf8");
    assert.match(run, /\.ci\/apt-packages|apt-packages/);
    assert.doesNotMatch(run, /need_apt\+=\([a-z]/, ".ci/run adds package names by itself");
  });
});

describe("docs: docs/ARCHITECTURE.md shows the layering table", () => {
  it("each package in the row of its layer, with what it may import", () => {
    const doc = readText(REPO_ROOT, "docs/ARCHITECTURE.md");
    const problems: string[] = [];
    for (const rule of LAYERING) {
      const rows = doc.split("\n").filter((l) => l.startsWith("|")).map((l) => l.split("|").map((c) => c.trim()));
      const cells = rows.find((c) => c[2] === `\`${rule.name}\``);
      if (!cells) {
        problems.push(`${rule.name}: no row of the package-graph table (| layer | package | may import | … |) names it`);
        continue;
      }
      const layer = typeof rule.layer === "number" ? String(rule.layer) : rule.layer;
      if (cells[1] !== layer) problems.push(`${rule.name}: layer cell "${cells[1]}", the table says ${layer}`);
      const named = [...(cells[3] ?? "").matchAll(/`(@octet\/[^`]+)`/g)].map((m) => m[1]).sort();
      const expected = [...rule.imports].sort();
      if (named.join(" ") !== expected.join(" ")) problems.push(`${rule.name}: imports cell names ${named.join(", ") || "nothing"}, the table allows ${expected.join(", ") || "nothing"}`);
    }
    assert.deepEqual(problems, []);
  });
});

const only = (process.env.OCTET_DOCS_CHECK_ONLY ?? "").split(",").map((s) => s.trim()).filter(Boolean);
const selected = (b: FencedBlock) => only.length === 0 || only.some((o) => `${b.file}:${b.line}`.includes(o));

describe("docs: the checked commands run", () => {
  for (const block of blocks.filter((b) => b.marker?.kind === "check" && selected(b))) {
    const marker = block.marker as { kind: "check"; timeoutSeconds?: number; cwd?: string };
    const timeout = marker.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
    const cwd = join(REPO_ROOT, marker.cwd ?? ".");
    const commands = commandsOf(block);
    it(`${block.file}:${block.line}`, { timeout: (timeout * commands.length + 30) * 1000 }, async () => {
      assert.ok(existsSync(cwd), `cwd ${marker.cwd} does not exist`);
      for (const command of commands) {
        const r = await runCommand(command.text, cwd, timeout);
        const where = `${block.file}:${command.line}: \`${command.text}\``;
        const tail = r.output.split("\n").slice(-25).join("\n");
        assert.ok(!r.timedOut, `${where} ran past ${timeout} s (timeout=N in its marker raises the limit)\n${tail}`);
        assert.equal(r.code, 0, `${where} exited ${r.code ?? r.signal} after ${r.seconds.toFixed(1)} s\n${tail}`);
        for (const text of command.expect) assert.ok(r.output.includes(text), `${where}: the output lacks "${text}"\n${tail}`);
      }
    });
  }
});
