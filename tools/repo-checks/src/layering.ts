// The package graph of the repository: which workspace may use which. This table is the single source of the
// layering — boundaries.test.ts checks every import and every package.json against it, and docs.test.ts checks
// that docs/ARCHITECTURE.md shows it. A new workspace needs a row here (the check fails until it has one).
//
// Layers, lowest first: a package may import only packages of lower layers, and only those its row lists.
// Apps sit above every library and never import each other (the launcher starts the other apps as child
// processes through their bins: `runs`, which is not an import). Tools are outside the graph.

import type { LayerRule } from "./boundaries.js";

export const LAYERING: readonly LayerRule[] = [
  // layer 0: foundations with no Octet dependency
  { name: "@octet/proto", dir: "packages/proto", layer: 0, imports: [] },
  { name: "@octet/schedules", dir: "packages/schedules", layer: 0, imports: [] },
  { name: "@octet/plot", dir: "packages/plot", layer: 0, imports: [] },
  { name: "@octet/native-common", dir: "packages/native-common", layer: 0, imports: [] },
  // layer 1: the numbers
  { name: "@octet/numerics", dir: "packages/numerics", layer: 1, imports: ["@octet/proto", "@octet/native-common"] },
  // layer 2: the pieces of a model that do not need the model
  {
    name: "@octet/router", dir: "packages/router", layer: 2,
    imports: ["@octet/numerics", "@octet/proto", "@octet/native-common", "@octet/schedules"],
  },
  { name: "@octet/mtp", dir: "packages/mtp", layer: 2, imports: ["@octet/numerics", "@octet/schedules"] },
  // layer 3: the model, and the services that hold its state without knowing it
  {
    name: "@octet/model", dir: "packages/model", layer: 3,
    imports: ["@octet/numerics", "@octet/router", "@octet/mtp", "@octet/schedules", "@octet/plot"],
  },
  { name: "@octet/ema-keeper", dir: "packages/ema-keeper", layer: 3, imports: ["@octet/proto", "@octet/numerics"] },
  { name: "@octet/checkpointer", dir: "packages/checkpointer", layer: 3, imports: ["@octet/proto", "@octet/numerics"] },
  // layer 4: the job queue's contract; it validates model configs, so it sees the model's config and nothing else
  { name: "@octet/jobs", dir: "packages/jobs", layer: 4, imports: ["@octet/proto", "@octet/model/config"] },
  // layer 4: checkpoints to and from the Hugging Face DeepSeek-V3 format (the model for its names, the checkpointer
  // for its runs, numerics for the codec and the FP8 blocks)
  { name: "@octet/hf", dir: "packages/hf", layer: 4, imports: ["@octet/model", "@octet/numerics", "@octet/checkpointer"] },
  // apps
  {
    name: "@octet/orchestrator", dir: "apps/orchestrator", layer: "app",
    imports: ["@octet/jobs", "@octet/proto", "@octet/plot", "@octet/model/config"],
  },
  {
    name: "@octet/trainer", dir: "apps/trainer", layer: "app",
    imports: ["@octet/model", "@octet/numerics", "@octet/jobs", "@octet/checkpointer", "@octet/ema-keeper", "@octet/proto"],
  },
  {
    name: "@octet/launcher", dir: "apps/launcher", layer: "app",
    imports: ["@octet/jobs", "@octet/checkpointer", "@octet/plot"],
    runs: ["@octet/ema-keeper", "@octet/checkpointer", "@octet/orchestrator", "@octet/trainer"],
  },
  // tools: depend (devDependencies) on every workspace so that turbo builds them all before the checks
  { name: "@octet/repo-checks", dir: "tools/repo-checks", layer: "tool", imports: [] },
];
