import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadNativeAddon, nativeAddonPath } from "./index.js";

// Each case gets a package directory of its own with build/Release/<file> (CommonJS modules stand in for
// .node files: the loader require()s either the same way).
let root: string;
let cases = 0;

function packageWith(file: string, contents: string | Buffer): string {
  const dir = join(root, `pkg${cases++}`);
  mkdirSync(join(dir, "build", "Release"), { recursive: true });
  writeFileSync(join(dir, "build", "Release", file), contents);
  return dir;
}

interface Kernels {
  add(a: number, b: number): number;
  info(): string;
}

const ENV = "OCTET_NATIVE_COMMON_TEST_BACKEND";
const spec = (packageRoot: string | URL, file: string) =>
  ({ packageRoot, file, packageName: "@octet/example", envVar: ENV, functions: ["add", "info"] as const });

before(() => {
  root = mkdtempSync(join(tmpdir(), "octet-native-common-"));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
  delete process.env[ENV];
});

test("loads the addon, checks its functions and initializes it once", () => {
  const dir = packageWith("ok.cjs", "let n = 0; module.exports = { add: (a, b) => a + b + n, info: () => 'ok', setOffset: (v) => { n = v; } };");
  const seen: unknown[] = [];
  const load = loadNativeAddon<Kernels & { setOffset(v: number): void }>({
    ...spec(dir, "ok.cjs"),
    initialize: (addon) => {
      seen.push(addon);
      addon.setOffset(10);
    },
  });
  assert.equal(load.reason, null);
  assert.equal(load.path, join(dir, "build", "Release", "ok.cjs"));
  assert.ok(load.addon);
  assert.deepEqual(seen, [load.addon]);
  assert.equal(load.addon.add(1, 2), 13);
});

test("the package root may be a file: URL (new URL('..', import.meta.url))", () => {
  const dir = packageWith("url.cjs", "module.exports = { add: (a, b) => a + b, info: () => 'url' };");
  const fromSrc = new URL("..", pathToFileURL(join(dir, "src", "native.ts")));
  const load = loadNativeAddon<Kernels>(spec(fromSrc, "url.cjs"));
  assert.equal(load.reason, null);
  assert.equal(load.addon?.info(), "url");
  assert.equal(nativeAddonPath(fromSrc, "url.cjs"), join(dir, "build", "Release", "url.cjs"));
});

test("the environment variable disables an addon that exists", () => {
  const dir = packageWith("off.cjs", "module.exports = { add: () => 0, info: () => 'off' };");
  process.env[ENV] = "typescript";
  try {
    const load = loadNativeAddon<Kernels>(spec(dir, "off.cjs"));
    assert.equal(load.addon, null);
    assert.equal(load.reason, `disabled by ${ENV}=typescript`);
  } finally {
    delete process.env[ENV];
  }
  process.env[ENV] = "native";
  try {
    assert.equal(loadNativeAddon<Kernels>(spec(dir, "off.cjs")).reason, null, "only the value typescript disables");
  } finally {
    delete process.env[ENV];
  }
});

test("a missing addon says where it was looked for and how to build it", () => {
  const dir = join(root, "never-built");
  const load = loadNativeAddon<Kernels>(spec(dir, "missing.node"));
  const path = join(dir, "build", "Release", "missing.node");
  assert.equal(load.addon, null);
  assert.equal(load.reason, `addon not built (${path} is missing; run npm run build -w @octet/example)`);
});

test("a file that is not a loadable addon is reported, not thrown", () => {
  const dir = packageWith("garbage.node", Buffer.from("this is not an ELF shared object"));
  const load = loadNativeAddon<Kernels>(spec(dir, "garbage.node"));
  assert.equal(load.addon, null);
  assert.match(load.reason ?? "", new RegExp(`^failed to load ${escape(join(dir, "build", "Release", "garbage.node"))}: `));
});

test("a stale build that lacks a function is not used", () => {
  const dir = packageWith("stale.cjs", "module.exports = { add: (a, b) => a + b };");
  const load = loadNativeAddon<Kernels>(spec(dir, "stale.cjs"));
  assert.equal(load.addon, null);
  assert.match(load.reason ?? "", /: the addon lacks info\(\) \(stale build\?\)$/);
});

test("an initializer that throws makes the load fail with its message", () => {
  const dir = packageWith("init.cjs", "module.exports = { add: (a, b) => a + b, info: () => 'init' };");
  const load = loadNativeAddon<Kernels>({
    ...spec(dir, "init.cjs"),
    initialize: () => {
      throw new Error("table has 31 entries");
    },
  });
  assert.equal(load.addon, null);
  assert.match(load.reason ?? "", /: table has 31 entries$/);
});

test("a malformed spec is a TypeError naming the field", () => {
  const dir = join(root, "unused");
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir, "x.node"), envVar: "" }), { name: "TypeError", message: /envVar/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir, "x.node"), packageName: 3 as unknown as string }), { name: "TypeError", message: /packageName/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir, ""), functions: ["add"] }), { name: "TypeError", message: /file/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec("", "x.node") }), { name: "TypeError", message: /packageRoot/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir, "x.node"), functions: "add" as unknown as ["add"] }), { name: "TypeError", message: /functions/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir, "x.node"), initialize: 1 as unknown as () => void }), { name: "TypeError", message: /initialize/ });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
