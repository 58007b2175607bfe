// Bundles the GPU scripts (check.ts, bench.ts, report.ts and what they import from src/) into single ES modules in
// <repo>/.carry/gpu/, for the GPU machine, which has no node_modules. The CUDA addon stays outside the bundle: it is
// loaded by path at run time ($OCTET_CUDA_ADDON, which run.sh sets). sources.sha256 lets run.sh notice a stale bundle.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(pkg, "..", "..", ".carry", "gpu");
mkdirSync(outdir, { recursive: true });
await build({
  entryPoints: { check: join(pkg, "gpu/check.ts"), bench: join(pkg, "gpu/bench.ts"), report: join(pkg, "gpu/report.ts") },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  outdir,
  outExtension: { ".js": ".mjs" },
  external: ["*.node"],
  logLevel: "info",
});
writeFileSync(join(outdir, "sources.sha256"), sourcesHash(pkg) + "\n");

/** sha256 of src/*.ts and gpu/*.ts concatenated in sorted path order (run.sh computes the same with sha256sum). */
export function sourcesHash(root) {
  const files = ["src", "gpu"].flatMap((d) => readdirSync(join(root, d)).filter((f) => f.endsWith(".ts")).map((f) => `${d}/${f}`)).sort();
  const h = createHash("sha256");
  for (const f of files) h.update(readFileSync(join(root, f)));
  return h.digest("hex");
}
