// The grouped expert GEMMs' harness (cuda/test/grouped_test.cu) under @octet/numerics' CPU emulation, where no GPU
// is: the kernels' index math, offsets handling, determinism and the FP8 fake-quant codes bit for bit, compiled with
// g++ as the numerics package's emulation test does. Skipped, naming why, without g++.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const cuda = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "cuda");
const shim = join(cuda, "..", "..", "numerics", "cuda", "emu", "shim");
const gxx = spawnSync("g++", ["--version"]).status === 0;

test("grouped_test.cu under the CPU emulation: every check passes", { skip: !gxx && "g++ not found", timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-grouped-emu-"));
  try {
    const exe = join(dir, "grouped_emu");
    const b = spawnSync("g++", ["-std=c++20", "-O2", "-ffp-contract=off", "-DOCTET_EMU", `-I${shim}`, "-x", "c++", join(cuda, "test", "grouped_test.cu"),
      "-x", "c++", join(cuda, "grouped.cu"), "-o", exe], { encoding: "utf8" });
    assert.equal(b.status, 0, b.stderr);
    const r = spawnSync(exe, ["quick"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /grouped_test: 0 failure\(s\)/);
    for (const name of ["fprop", "dgrad", "wgrad", "fake-quant e4m3", "fake-quant e5m2", "bad offsets"]) assert.match(r.stdout, new RegExp(`${name}.* PASS `));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
