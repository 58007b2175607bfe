// The docs check's reading of Markdown and of npm commands, on small made-up inputs.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cleanEnvironment, npmCommandProblems, runCommand, type RepoCommands } from "./commands.js";
import { commandsOf, fencedBlocks, inlineCode, parseMarker } from "./markdown.js";

describe("markdown", () => {
  const doc = [
    "# Title",
    "",
    "<!-- docs-check: timeout=30 -->",
    "```sh",
    "npm run a -- --help   # a comment",
    "# expect: Usage",
    "# a comment line",
    "npm run b \\",
    "  --flag",
    "```",
    "",
    "<!-- docs-check: skip (needs Docker) -->",
    "",
    "```bash",
    "docker build .",
    "```",
    "```",
    "unlabelled",
    "```",
    "````ts",
    "```",
    "const x = 1;",
    "````",
  ].join("\n");
  const blocks = fencedBlocks(doc, "README.md");

  it("finds the blocks, their languages, lines and markers", () => {
    assert.deepEqual(blocks.map((b) => [b.line, b.language, b.marker]), [
      [4, "sh", { kind: "check", timeoutSeconds: 30 }],
      [14, "bash", { kind: "skip", reason: "needs Docker" }],
      [17, "", undefined],
      [20, "ts", undefined],
    ]);
    assert.deepEqual(blocks[3].lines, ["```", "const x = 1;"]);
  });

  it("reads commands: comments dropped, continuations joined, expectations attached", () => {
    assert.deepEqual(commandsOf(blocks[0]), [
      { text: "npm run a -- --help   # a comment", line: 5, expect: ["Usage"] },
      { text: "npm run b  --flag", line: 8, expect: [] },
    ]);
  });

  it("markers: a skip needs a reason; unknown options are refused", () => {
    assert.deepEqual(parseMarker(""), { kind: "check" });
    assert.deepEqual(parseMarker(": cwd=packages/x"), { kind: "check", cwd: "packages/x" });
    assert.deepEqual(parseMarker(": skip — takes minutes"), { kind: "skip", reason: "takes minutes" });
    assert.throws(() => parseMarker(": skip"), /skip needs a reason/);
    assert.throws(() => parseMarker(": timeout=soon"), /unknown option "timeout=soon"/);
    const bad = fencedBlocks("<!-- docs-check: skip -->\n```sh\nls\n```", "x.md");
    assert.match(bad[0].markerError ?? "", /skip needs a reason/);
  });

  it("inline code outside fences", () => {
    assert.deepEqual(inlineCode("run `npm test` and ``a ` b``\n```sh\n`not this`\n```\n`npm run x`"), [
      { code: "npm test", line: 1 }, { code: "a ` b", line: 1 }, { code: "npm run x", line: 5 },
    ]);
  });
});

describe("npm commands", () => {
  const repo: RepoCommands = {
    rootScripts: { test: "turbo run test", start: "node x", "octet-tool": "node packages/tool/dist/cli.js" },
    workspaces: [
      { name: "@octet/tool", dir: "packages/tool", packageJson: { name: "@octet/tool", bin: { "octet-tool": "./dist/cli.js" }, scripts: { bench: "b", spec: "s" } } },
    ],
    toolBins: new Set(["turbo", "nx"]),
  };

  it("accepts scripts that exist at the root, in a -w workspace, or in the README's own package", () => {
    assert.deepEqual(npmCommandProblems("npm test && npm start -- --help", repo), []);
    assert.deepEqual(npmCommandProblems("FOO=1 npm run bench -w @octet/tool -- -w not-npm", repo), []);
    assert.deepEqual(npmCommandProblems("npm run spec", repo, repo.workspaces[0]), []);
    assert.deepEqual(npmCommandProblems("npx nx release --dry-run | tail", repo), []);
  });

  it("names scripts, workspaces and bins that do not exist, and npx of a workspace bin", () => {
    assert.deepEqual(npmCommandProblems("npm run nope", repo), ['`npm run nope`: no script "nope" at the repository root']);
    assert.match(npmCommandProblems("npm run train -w @octet/tool", repo)[0], /@octet\/tool has no script "train"/);
    assert.match(npmCommandProblems("npm test -w @octet/ghost", repo)[0], /no workspace @octet\/ghost/);
    assert.match(npmCommandProblems("npx octet-tool --port 1", repo)[0], /bin of the workspace @octet\/tool.*use `npm run octet-tool --`/);
    assert.match(npmCommandProblems("npx cowsay", repo)[0], /no root devDependency provides the bin cowsay/);
  });
});

describe("running a command", () => {
  it("exit code, output, time limit; npm's and the test runner's variables are not passed on", async () => {
    const env = cleanEnvironment({ PATH: process.env.PATH, npm_config_workspace: "x", NODE_TEST_CONTEXT: "child", KEEP: "1" });
    assert.deepEqual(Object.keys(env).sort(), ["KEEP", "PATH"]);
    const ok = await runCommand("echo hello; echo err >&2", process.cwd(), 10, env);
    assert.equal(ok.code, 0);
    assert.match(ok.output, /hello/);
    assert.match(ok.output, /err/);
    const failed = await runCommand("false | cat", process.cwd(), 10, env);
    assert.equal(failed.code, 1, "pipefail");
    const slow = await runCommand("sleep 5", process.cwd(), 0.3, env);
    assert.equal(slow.timedOut, true);
    assert.ok(slow.seconds < 4, `killed after ${slow.seconds} s`);
  });
});
