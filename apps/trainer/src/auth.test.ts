// The trainer sends the bearer token the services require: its EMA link registers and pushes with it, and the
// CLI takes it from --auth-token-file or OCTET_AUTH_TOKEN, refusing a bad one before starting.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { startEmaServer } from "@octet/ema-keeper/service";
import { status, type OctetServer } from "@octet/proto";
import { EmaLink } from "./ema-link.js";
import { createLogger } from "./log.js";
import { runTrainerToExit } from "./testing/harness.js";

const TOKEN = "trainer-test-token-0123456789";
const servers: OctetServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.shutdown()));
});

test("the EMA link registers and pushes with the token; without it the keeper refuses the registration", async () => {
  const ema = await startEmaServer({ port: 0, authToken: TOKEN, shutdownGraceMs: 100 });
  servers.push(ema.server);
  const log = createLogger({ level: "silent" });
  const tensors = [{ name: "w", shape: [4] }];
  const anonymous = new EmaLink(ema.address, "auth-run", 1, 0.5, tensors, log);
  try {
    await assert.rejects(anonymous.start(null), (e: { code?: number }) => e.code === status.UNAUTHENTICATED);
  } finally {
    anonymous.close();
  }
  assert.deepEqual(ema.keeper.listRuns(), []);

  const link = new EmaLink(ema.address, "auth-run", 1, 0.5, tensors, log, TOKEN);
  try {
    await link.start(null);
    link.push(0, new Map([["w", new Float32Array([1, 2, 3, 4])]]));
    await link.client.flush();
    await ema.keeper.whenApplied("auth-run", 0);
    const snap = await link.snapshot(0, 5000);
    assert.deepEqual([...snap!.tensors.get("w")!], [1, 2, 3, 4]);
  } finally {
    link.close();
  }
});

test("CLI: a bad or unreadable token is refused at start, naming where it came from", async () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-trainer-auth-"));
  try {
    const short = join(dir, "short");
    writeFileSync(short, "abc\n");
    const a = await runTrainerToExit(["--checkpointer", "127.0.0.1:1", "--gpus", "0", "--auth-token-file", short]);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /--auth-token-file \(.*short\) must be 16 to 4096 characters long, got 3/);
    const b = await runTrainerToExit(["--checkpointer", "127.0.0.1:1", "--gpus", "0", "--auth-token-file", join(dir, "missing")]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /--auth-token-file: cannot read the token file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
