import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Directory holding copies of every proto/*.proto this package was generated from (shipped in dist/gen/proto). */
export const protoDir: string = fileURLToPath(new URL("./gen/proto/", import.meta.url));

/** Absolute paths of the .proto files in protoDir, sorted. */
export function protoFiles(): string[] {
  return readdirSync(protoDir)
    .filter((f) => f.endsWith(".proto"))
    .sort()
    .map((f) => protoDir + f);
}
