// The package root is the library only: importing it must not load @grpc/grpc-js (the LoadBalancerService
// is @octet/router/service). Each import runs in a fresh process, which reports the CommonJS modules it
// loaded (grpc-js is CommonJS, so an ES import of it lands in require.cache too) and the entry's export names.
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
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: packageDir, encoding: "utf8" });
  return JSON.parse(out);
}

test("importing @octet/router (src/index.ts) loads no @grpc/grpc-js module and exports no service API", () => {
  const root = importInFreshProcess("./index.ts");
  assert.deepEqual(root.grpcModules, []);
  for (const name of ["routeTokens", "AuxFreeBalancer", "planDispatch", "planPlacement", "routerBackend"]) assert.ok(root.exports.includes(name), name);
  for (const name of ["startRouterServer", "loadBalancerHandlers", "LoadBalancerStore"]) {
    assert.ok(!root.exports.includes(name), `${name} belongs to @octet/router/service, not the root`);
  }
});

test("the check sees grpc-js when it is loaded: @octet/router/service (src/service/index.ts) loads it", () => {
  const service = importInFreshProcess("./service/index.ts");
  assert.ok(service.grpcModules.length > 0, "the service entry should load @grpc/grpc-js");
  for (const name of ["startRouterServer", "loadBalancerHandlers", "LoadBalancerStore", "stateToWire", "stateFromWire"]) {
    assert.ok(service.exports.includes(name), name);
  }
});
