// Test helpers (excluded from the build).
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Tensor } from "@octet/numerics";

export async function tempDir(prefix = "octet-ckpt-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Deterministic tensor: f32 values seed + i * 0.5. */
export function f32Tensor(name: string, shape: number[], seed = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = seed + i * 0.5;
  return { name, dtype: "F32", shape, data: new Uint8Array(f.buffer) };
}

export function byteTensor(name: string, bytes: number, seed = 0): Tensor {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 7 + seed) & 0xff;
  return { name, dtype: "U8", shape: [bytes], data };
}

/** Mounts a size-limited tmpfs (root only); returns undefined when that is not possible here. */
export function mountTmpfs(dir: string, bytes: number): (() => void) | undefined {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return undefined;
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  return () => execFileSync("umount", ["-l", dir], { stdio: "ignore" });
}
