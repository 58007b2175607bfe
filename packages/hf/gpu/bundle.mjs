// Bundles the four Node programs the GPU comparison needs into ES modules under <repo>/.carry/hf/, for the GPU
// machine, which has Node (carried) but no node_modules: octet-export and octet-import (this package), and the
// model's train and logits CLIs. Native addons stay outside (*.node): numerics and router run their TypeScript
// path there (run.sh sets OCTET_NUMERICS_BACKEND / OCTET_ROUTER_BACKEND=typescript), the CPU model is the oracle.
//   node packages/hf/gpu/bundle.mjs      (here, with node_modules), then carry .carry/hf and .carry/node.xz
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const model = join(pkg, "..", "model");
const outdir = join(pkg, "..", "..", ".carry", "hf");
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: {
    export: join(pkg, "src/cli-export.ts"),
    import: join(pkg, "src/cli-import.ts"),
    train: join(model, "src/cli/train.ts"),
    logits: join(model, "src/cli/logits.ts"),
  },
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
