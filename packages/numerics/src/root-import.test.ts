// The package root is the library only: importing it must not load @grpc/grpc-js (the gRPC server is
// @octet/numerics/service) nor carry the CUDA API (@octet/numerics/cuda). Each import runs in a fresh
// process, which reports the CommonJS modules it loaded (grpc-js is CommonJS, so an ES import of it lands in
// require.cache too) and the root's export names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

function importInFreshProcess(entry: string): { grpcModules: string[]; exports: string[] } {
  const script = `
    import { createRequire } from "node:module";
    const mod = await import(${JSON.stringify(new URL(entry, import.meta.url).href)});
    const grpcModules = Object.keys(createRequire(import.meta.url).cache).filter((path) => path.includes("/@grpc/grpc-js/"));
    process.stdout.write(JSON.stringify({ grpcModules, exports: Object.keys(mod) }));
  `;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: packageDir,
    encoding: "utf8",
    env: { ...process.env, OCTET_NUMERICS_BACKEND: "typescript" },
  });
  return JSON.parse(out);
}

test("importing @octet/numerics (src/index.ts) loads no @grpc/grpc-js module and exports no CUDA or service API", () => {
  const root = importInFreshProcess("./index.ts");
  assert.deepEqual(root.grpcModules, []);
  for (const name of ["quantize", "scaledMatmul", "numericsBackend", "encodeFp8", "RECIPES"]) assert.ok(root.exports.includes(name), name);
  for (const name of ["startNumericsServer", "numericsHandlers", "cudaStatus", "toDevice", "scaledMatmulDevice"]) {
    assert.ok(!root.exports.includes(name), `${name} belongs to a subpath, not the root`);
  }
});

test("the check sees grpc-js when it is loaded: @octet/numerics/service (src/service/index.ts) loads it", () => {
  const service = importInFreshProcess("./service/index.ts");
  assert.ok(service.grpcModules.length > 0, "the service entry should load @grpc/grpc-js");
  assert.deepEqual(service.exports.sort(), ["numericsHandlers", "startNumericsServer"]);
});
