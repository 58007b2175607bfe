// @octet/repo-checks — the repository's checks of itself, run by `npm test` (see docs/ARCHITECTURE.md,
// "Keeping this map true"): the package graph (layering.ts, boundaries.ts, imports.ts) and the READMEs'
// commands (markdown.ts, commands.ts). Private: nothing outside this repository uses it.

export { LAYERING } from "./layering.js";
export {
  checkManifests, checkReferences, checkRowsMatchWorkspaces, checkTable, formatViolations,
  type Layer, type LayerRule, type Violation,
} from "./boundaries.js";
export { referencesIn, referencesUnder, type ModuleReference } from "./imports.js";
export { commandsOf, documentationFiles, fencedBlocks, inlineCode, parseMarker, type DocsMarker, type FencedBlock } from "./markdown.js";
export { npmCommandProblems, runCommand } from "./commands.js";
export { listWorkspaces, REPO_ROOT, type Workspace } from "./workspaces.js";
