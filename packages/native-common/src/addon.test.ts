// The loader, on real Node-API addons: a small one is compiled once (g++ against the Node headers) and copied
// where node-gyp-build looks for a package's binary, a local build (build/Release) or a prebuilt one
// (prebuilds/<platform>-<arch>, named as prebuildify names it).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { arch, platform, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadNativeAddon, nativeAddonPath } from "./index.js";

const nodeInclude = join(dirname(process.execPath), "..", "include", "node");
const compiler = spawnSync("g++", ["--version"]).status === 0 ? "g++" : null;
const skipCompile = !compiler ? "g++ is not installed" : !existsSync(join(nodeInclude, "node_api.h")) ? `no Node headers at ${nodeInclude}` : false;

// add(a, b) = a + b + offset; info() = "ok"; setOffset(v).
const ADDON = String.raw`
#include <node_api.h>
static double offset = 0;
static napi_value Add(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; double a = 0, b = 0;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_get_value_double(env, argv[0], &a); napi_get_value_double(env, argv[1], &b);
  napi_value out; napi_create_double(env, a + b + offset, &out); return out;
}
static napi_value Info(napi_env env, napi_callback_info) {
  napi_value out; napi_create_string_utf8(env, "ok", NAPI_AUTO_LENGTH, &out); return out;
}
static napi_value SetOffset(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_get_value_double(env, argv[0], &offset); return nullptr;
}
NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"add", nullptr, Add, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
    {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
    {"setOffset", nullptr, SetOffset, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, 3, props);
  return exports;
}
`;

interface Kernels {
  add(a: number, b: number): number;
  info(): string;
  setOffset(v: number): void;
}

let root: string;
let binary: string;
let cases = 0;

// A package directory of its own (a package.json, as node-gyp-build reads one) with the binary at `relative`.
function packageWith(relative: string | null, contents?: Buffer): string {
  const dir = join(root, `pkg${cases++}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "@octet/example", version: "0.0.0" }));
  if (relative !== null) {
    mkdirSync(dirname(join(dir, relative)), { recursive: true });
    if (contents) writeFileSync(join(dir, relative), contents);
    else copyFileSync(binary, join(dir, relative));
  }
  return dir;
}

const ENV = "OCTET_NATIVE_COMMON_TEST_BACKEND";
const spec = (packageRoot: string | URL) => ({ packageRoot, packageName: "@octet/example", envVar: ENV, functions: ["add", "info"] as const });
const PREBUILT = join("prebuilds", `${platform()}-${arch()}`, "@octet+example.node");

before(() => {
  root = mkdtempSync(join(tmpdir(), "octet-native-common-"));
  if (skipCompile) return;
  const source = join(root, "addon.cc");
  binary = join(root, "addon.node");
  writeFileSync(source, ADDON);
  execFileSync(compiler!, ["-std=c++17", "-O1", "-shared", "-fPIC", "-I", nodeInclude, source, "-o", binary]);
});
after(() => {
  rmSync(root, { recursive: true, force: true });
  delete process.env[ENV];
});

test("a local build (build/Release) loads, is checked and initialized once", { skip: skipCompile }, () => {
  const dir = packageWith(join("build", "Release", "octet_example.node"));
  const seen: unknown[] = [];
  const load = loadNativeAddon<Kernels>({
    ...spec(dir),
    initialize: (addon) => {
      seen.push(addon);
      addon.setOffset(10);
    },
  });
  assert.equal(load.reason, null);
  assert.equal(load.path, join(dir, "build", "Release", "octet_example.node"));
  assert.ok(load.addon);
  assert.deepEqual(seen, [load.addon]);
  assert.equal(load.addon.add(1, 2), 13);
});

test("without a local build, the package's prebuilt binary for this platform loads", { skip: skipCompile }, () => {
  const dir = packageWith(PREBUILT);
  const load = loadNativeAddon<Kernels>(spec(dir));
  assert.equal(load.reason, null);
  assert.equal(load.path, join(dir, PREBUILT));
  assert.equal(load.addon?.info(), "ok");
  // A prebuilt binary for another platform is not picked.
  const other = packageWith(join("prebuilds", platform() === "linux" ? "darwin-x64" : "linux-x64", "@octet+example.node"));
  assert.equal(nativeAddonPath(other), null);
});

test("a local build wins over the prebuilt binary (what `npm run build` or `npm rebuild` made is what runs)", { skip: skipCompile }, () => {
  const dir = packageWith(PREBUILT);
  mkdirSync(join(dir, "build", "Release"), { recursive: true });
  copyFileSync(binary, join(dir, "build", "Release", "octet_example.node"));
  assert.equal(nativeAddonPath(dir), join(dir, "build", "Release", "octet_example.node"));
});

test("the package root may be a file: URL (new URL('..', import.meta.url))", { skip: skipCompile }, () => {
  const dir = packageWith(join("build", "Release", "octet_example.node"));
  const fromSrc = new URL("..", pathToFileURL(join(dir, "src", "native.ts")));
  const load = loadNativeAddon<Kernels>(spec(fromSrc));
  assert.equal(load.reason, null);
  assert.equal(load.addon?.info(), "ok");
  assert.equal(nativeAddonPath(fromSrc), join(dir, "build", "Release", "octet_example.node"));
});

test("the environment variable disables an addon that exists", { skip: skipCompile }, () => {
  const dir = packageWith(join("build", "Release", "octet_example.node"));
  process.env[ENV] = "typescript";
  try {
    const load = loadNativeAddon<Kernels>(spec(dir));
    assert.equal(load.addon, null);
    assert.equal(load.reason, `disabled by ${ENV}=typescript`);
    assert.equal(load.path, join(dir, "build", "Release", "octet_example.node"));
  } finally {
    delete process.env[ENV];
  }
  process.env[ENV] = "native";
  try {
    assert.equal(loadNativeAddon<Kernels>(spec(dir)).reason, null, "only the value typescript disables");
  } finally {
    delete process.env[ENV];
  }
});

test("no binary at all: the reason names the platform and how to get one, here and in an installed package", () => {
  const dir = packageWith(null);
  const load = loadNativeAddon<Kernels>(spec(dir));
  assert.equal(load.addon, null);
  assert.equal(load.path, null);
  assert.equal(
    load.reason,
    `no native binary for ${platform()}-${arch()} (neither ${dir}/build/Release/*.node nor a prebuilds/${platform()}-${arch()} binary; ` +
      "in the repository run npm run build -w @octet/example, in a project that installed it run npm rebuild @octet/example with a C++ compiler, make and python3)",
  );
});

test("a file that is not a loadable addon is reported, not thrown", () => {
  const dir = packageWith(join("build", "Release", "garbage.node"), Buffer.from("this is not an ELF shared object"));
  const load = loadNativeAddon<Kernels>(spec(dir));
  assert.equal(load.addon, null);
  assert.match(load.reason ?? "", new RegExp(`^failed to load ${escape(join(dir, "build", "Release", "garbage.node"))}: `));
});

test("a stale build that lacks a function is not used", { skip: skipCompile }, () => {
  const dir = packageWith(join("build", "Release", "octet_example.node"));
  const load = loadNativeAddon<Kernels & { missing(): void }>({ ...spec(dir), functions: ["add", "info", "missing"] });
  assert.equal(load.addon, null);
  assert.match(load.reason ?? "", /: the addon lacks missing\(\) \(stale build\?\)$/);
});

test("an initializer that throws makes the load fail with its message", { skip: skipCompile }, () => {
  const dir = packageWith(join("build", "Release", "octet_example.node"));
  const load = loadNativeAddon<Kernels>({
    ...spec(dir),
    initialize: () => {
      throw new Error("table has 31 entries");
    },
  });
  assert.equal(load.addon, null);
  assert.match(load.reason ?? "", /: table has 31 entries$/);
});

test("a malformed spec is a TypeError naming the field", () => {
  const dir = join(root, "unused");
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir), envVar: "" }), { name: "TypeError", message: /envVar/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir), packageName: 3 as unknown as string }), { name: "TypeError", message: /packageName/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec("") }), { name: "TypeError", message: /packageRoot/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir), functions: "add" as unknown as ["add"] }), { name: "TypeError", message: /functions/ });
  assert.throws(() => loadNativeAddon<Kernels>({ ...spec(dir), initialize: 1 as unknown as () => void }), { name: "TypeError", message: /initialize/ });
  assert.throws(() => nativeAddonPath(""), { name: "TypeError", message: /packageRoot/ });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
