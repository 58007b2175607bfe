// Where the services' executables are: the `bin` of each workspace package, run with this Node.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root of an installed package, found from its main entry (works whatever its exports allow). */
export function packageRoot(pkg: string): string {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve(pkg));
  } catch (e) {
    throw new Error(`cannot find the package ${pkg} (${(e as Error).message}); run \`npm ci\` at the repository root`);
  }
  for (let dir = dirname(entry); ; dir = dirname(dir)) {
    const pj = join(dir, "package.json");
    if (existsSync(pj)) {
      const name = (JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name;
      if (name === pkg) return dir;
    }
    if (dirname(dir) === dir) throw new Error(`cannot find the package.json of ${pkg} above ${entry}`);
  }
}

/** The JavaScript file behind a package's bin command, checked to exist (i.e. built). */
export function binScript(pkg: string, bin: string): string {
  const root = packageRoot(pkg);
  const json = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin?: string | Record<string, string> };
  const rel = typeof json.bin === "string" ? json.bin : json.bin?.[bin];
  if (!rel) throw new Error(`${pkg} has no bin named ${bin}`);
  const file = join(root, rel);
  if (!existsSync(file)) throw new Error(`${bin} is not built (${file} is missing); run \`npm run build\` at the repository root`);
  return file;
}
