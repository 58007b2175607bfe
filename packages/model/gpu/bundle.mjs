// Bundles gpu/check.ts (and what it imports: the model, numerics, router, mtp sources) into one ES module,
// <repo>/.carry/gpu-model/check.mjs, for the GPU machine, which has no node_modules. The addons stay outside the
// bundle and are loaded by path (run.sh sets OCTET_CUDA_ADDON and OCTET_MODEL_CUDA_ADDON).
//   node packages/model/gpu/bundle.mjs        (on a machine with node_modules), then carry .carry
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(pkg, "..", "..", ".carry", "gpu-model");
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: { check: join(pkg, "gpu/check.ts") },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outdir,
  outExtension: { ".js": ".mjs" },
  external: ["*.node"],
  // Bundled CommonJS dependencies call require(): give the ES module one.
  banner: { js: "import { createRequire as __octetRequire } from 'node:module'; const require = __octetRequire(import.meta.url);" },
  logLevel: "info",
});
