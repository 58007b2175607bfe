// infra/ checked without a cluster or a Docker daemon: every YAML parses; the Kubernetes manifests hang
// together (selectors, named ports, probes, config keys, GPU requests, the kustomization lists every file); the
// compose file names real commands; redis.conf boots a real redis-server with the settings BullMQ needs.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { findExecutable, freePort } from "./redis.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const infra = join(repo, "infra");
const k8sDir = join(infra, "k8s");

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function loadYaml(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { merge: true });
  const out: Obj[] = [];
  for (const d of docs) {
    assert.deepEqual(d.errors.map((e) => e.message), [], `${file} parses`);
    const js = d.toJS() as Obj | null;
    if (js) out.push(js);
  }
  return out;
}

/** The bin scripts of the services, as the image runs them (paths from the repository root). */
function serviceScripts(): Set<string> {
  const scripts = new Set<string>();
  for (const dir of ["packages/ema-keeper", "packages/checkpointer", "apps/orchestrator", "apps/trainer", "apps/launcher"]) {
    const pj = JSON.parse(readFileSync(join(repo, dir, "package.json"), "utf8")) as { bin?: Record<string, string> };
    for (const rel of Object.values(pj.bin ?? {})) scripts.add(join(dir, rel));
  }
  return scripts;
}

const k8sFiles = readdirSync(k8sDir).filter((f) => f.endsWith(".yaml"));
const k8s = k8sFiles.filter((f) => f !== "kustomization.yaml").flatMap((f) => loadYaml(join(k8sDir, f)).map((o) => ({ file: f, o })));
const byKind = (kind: string) => k8s.filter((x) => x.o.kind === kind).map((x) => x.o);
const workloads = () => [...byKind("Deployment"), ...byKind("StatefulSet")];
const container = (name: string) => workloads().find((w) => w.metadata.name === name)!.spec.template.spec.containers[0] as Obj;

test("every YAML file under infra/ parses", () => {
  const files = [join(infra, "compose.yaml"), ...k8sFiles.map((f) => join(k8sDir, f))];
  for (const f of files) assert.ok(loadYaml(f).length > 0, f);
});

test("k8s: every object has apiVersion, kind, a name and the octet namespace; the kustomization lists every file", () => {
  for (const { file, o } of k8s) {
    assert.ok(o.apiVersion && o.kind && o.metadata?.name, `${file}: apiVersion, kind, metadata.name`);
    if (o.kind !== "Namespace") assert.equal(o.metadata.namespace, "octet", `${file} ${o.kind}/${o.metadata.name} namespace`);
  }
  const kust = loadYaml(join(k8sDir, "kustomization.yaml"))[0];
  assert.deepEqual([...kust.resources].sort(), k8sFiles.filter((f) => f !== "kustomization.yaml").sort());
});

test("k8s: selectors match their pod labels, Services select a workload and target named container ports", () => {
  for (const w of workloads()) {
    const labels = w.spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(w.spec.selector.matchLabels as Record<string, string>)) assert.equal(labels[k], v, `${w.metadata.name} selector ${k}`);
  }
  for (const svc of byKind("Service")) {
    const sel = svc.spec.selector as Record<string, string>;
    const targets = workloads().filter((w) => Object.entries(sel).every(([k, v]) => w.spec.template.metadata.labels[k] === v));
    assert.ok(targets.length > 0, `Service ${svc.metadata.name} selects a workload`);
    const portNames = new Set(targets.flatMap((w) => (w.spec.template.spec.containers as Obj[]).flatMap((c) => (c.ports ?? []).map((p: Obj) => p.name))));
    for (const p of svc.spec.ports as Obj[]) {
      if (typeof p.targetPort === "string") assert.ok(portNames.has(p.targetPort), `Service ${svc.metadata.name} targetPort ${p.targetPort}`);
    }
  }
  const sts = byKind("StatefulSet")[0];
  assert.equal(sts.metadata.name, "redis");
  assert.ok(byKind("Service").some((s) => s.metadata.name === sts.spec.serviceName && s.spec.clusterIP === "None"), "headless governing Service");
  assert.ok(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage, "Redis PVC");
});

test("k8s: gRPC readiness probes on the gRPC services, /metrics on the orchestrator, a GPU request on the trainer", () => {
  for (const [name, port] of [["ema-keeper", 50061], ["checkpointer", 50062], ["orchestrator", 50051]] as const) {
    const c = container(name);
    assert.equal(c.readinessProbe?.grpc?.port, port, `${name} gRPC readiness probe`);
    assert.ok((c.ports as Obj[]).some((p) => p.containerPort === port), `${name} declares port ${port}`);
  }
  const orch = container("orchestrator");
  assert.equal(orch.livenessProbe.httpGet.path, "/metrics");
  assert.ok((orch.ports as Obj[]).some((p) => p.name === orch.livenessProbe.httpGet.port));
  assert.equal(container("trainer").resources.limits["nvidia.com/gpu"], 1);
  assert.equal(container("redis").readinessProbe.exec.command.join(" "), "redis-cli ping");
  // The checkpointer's data dir is on its PVC.
  const ck = workloads().find((w) => w.metadata.name === "checkpointer")!;
  const claim = ck.spec.template.spec.volumes.find((v: Obj) => v.persistentVolumeClaim).persistentVolumeClaim.claimName;
  assert.ok(byKind("PersistentVolumeClaim").some((p) => p.metadata.name === claim));
  const dataDir = (container("checkpointer").env as Obj[]).find((e) => e.name === "OCTET_CHECKPOINTER_DATA_DIR")!.value as string;
  const mount = (container("checkpointer").volumeMounts as Obj[])[0].mountPath as string;
  assert.ok(dataDir.startsWith(mount), "checkpoints are written to the volume");
});

test("k8s: commands run the services' built bins; $(VARS) and envFrom name keys the ConfigMap has", () => {
  const scripts = serviceScripts();
  const cm = byKind("ConfigMap").find((c) => c.metadata.name === "octet-env")!;
  for (const w of workloads()) {
    for (const c of w.spec.template.spec.containers as Obj[]) {
      if (c.image.startsWith("redis")) continue;
      assert.equal(c.command[0], "node");
      assert.ok(scripts.has(c.command[1]), `${w.metadata.name} runs ${c.command[1]}`);
      assert.ok((c.envFrom as Obj[]).some((e) => e.configMapRef?.name === "octet-env"));
      for (const arg of c.command as string[]) {
        const m = /^\$\((\w+)\)$/.exec(arg);
        if (m) assert.ok(m[1] in cm.data || (c.env ?? []).some((e: Obj) => e.name === m[1]), `${w.metadata.name}: $(${m[1]}) is defined`);
      }
    }
  }
  assert.match(cm.data.REDIS_URL, /^redis:\/\/redis:6379$/);
});

test("k8s: the services listen on every interface of their pod explicitly, and every Octet pod gets the bearer token from the octet-auth Secret", () => {
  assert.equal((container("ema-keeper").env as Obj[]).find((e) => e.name === "OCTET_EMA_HOST")?.value, "0.0.0.0");
  assert.equal((container("checkpointer").env as Obj[]).find((e) => e.name === "OCTET_CHECKPOINTER_HOST")?.value, "0.0.0.0");
  const orch = container("orchestrator").command as string[];
  assert.equal(orch[orch.indexOf("--host") + 1], "0.0.0.0");
  for (const w of workloads()) {
    for (const c of w.spec.template.spec.containers as Obj[]) {
      if (c.image.startsWith("redis")) continue;
      const token = ((c.env ?? []) as Obj[]).find((e) => e.name === "OCTET_AUTH_TOKEN");
      assert.deepEqual(token?.valueFrom?.secretKeyRef, { name: "octet-auth", key: "token" }, `${w.metadata.name}: OCTET_AUTH_TOKEN from the Secret`);
    }
  }
  // The token itself is never in the manifests.
  assert.ok(!byKind("Secret").length, "no Secret committed");
});

test("k8s: the redis.conf in the ConfigMap is infra/redis.conf", () => {
  const cm = byKind("ConfigMap").find((c) => c.metadata.name === "redis-conf")!;
  assert.equal(cm.data["redis.conf"].trimEnd(), readFileSync(join(infra, "redis.conf"), "utf8").trimEnd());
});

test("compose: services, GPU reservation, CPU variant, volumes, commands", () => {
  const c = loadYaml(join(infra, "compose.yaml"))[0];
  const scripts = serviceScripts();
  assert.deepEqual(Object.keys(c.services).sort(), ["checkpointer", "ema-keeper", "orchestrator", "redis", "trainer", "trainer-cpu"]);
  for (const [name, s] of Object.entries(c.services as Record<string, Obj>)) {
    if (name === "redis") continue;
    assert.equal(s.command[0], "node");
    assert.ok(scripts.has(s.command[1]), `${name} runs ${s.command[1]}`);
    assert.equal(s.build.dockerfile, "infra/Dockerfile");
  }
  const dev = c.services.trainer.deploy.resources.reservations.devices[0];
  assert.equal(dev.driver, "nvidia");
  assert.deepEqual(dev.capabilities, ["gpu"]);
  assert.ok(c.services["trainer-cpu"].command.includes("--cpu-slots"));
  assert.ok(!("deploy" in c.services["trainer-cpu"]));
  assert.ok(c.services.redis.volumes.some((v: string) => v.startsWith("./redis.conf:")));
  assert.ok(c.services.redis.volumes.some((v: string) => v.startsWith("redis-data:")));
  assert.ok(c.services.checkpointer.volumes.some((v: string) => v.startsWith("checkpoints:")));
  assert.deepEqual(Object.keys(c.volumes).sort(), ["checkpoints", "redis-data"]);
  assert.ok(c.services.orchestrator.ports.some((p: string) => p.endsWith(":50051")));
  assert.ok(c.services.orchestrator.ports.some((p: string) => p.endsWith(":8080")));
  assert.ok(existsSync(join(infra, "Dockerfile")) && existsSync(join(infra, "grpc-health.mjs")));
  // Listening on every interface is explicit; published ports stay on the host's loopback unless asked.
  assert.equal(c.services["ema-keeper"].environment.OCTET_EMA_HOST, "0.0.0.0");
  assert.equal(c.services.checkpointer.environment.OCTET_CHECKPOINTER_HOST, "0.0.0.0");
  assert.equal(c.services.orchestrator.command[c.services.orchestrator.command.indexOf("--host") + 1], "0.0.0.0");
  for (const p of c.services.orchestrator.ports as string[]) assert.match(p, /^\$\{OCTET_PUBLISH_ADDR:-127\.0\.0\.1\}:/);
  // Every Octet service and trainer gets the bearer token, which compose requires from the shell.
  for (const [name, svc] of Object.entries(c.services as Record<string, Obj>)) {
    if (name === "redis") continue;
    assert.match(String(svc.environment.OCTET_AUTH_TOKEN), /^\$\{OCTET_AUTH_TOKEN:\?/, `${name}: OCTET_AUTH_TOKEN, required`);
  }
});

test("redis.conf boots redis-server with AOF everysec, RDB snapshots and noeviction", { skip: !findExecutable("redis-server") && "redis-server not installed" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "octet-redis-conf-"));
  const conf = readFileSync(join(infra, "redis.conf"), "utf8").replace(/^dir \/data$/m, `dir ${dir}`);
  writeFileSync(join(dir, "redis.conf"), conf);
  const port = await freePort();
  const child = spawn("redis-server", [join(dir, "redis.conf"), "--port", String(port), "--bind", "127.0.0.1"], { stdio: ["ignore", "pipe", "pipe"] });
  try {
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 10_000);
      const on = (d: Buffer) => {
        out += d.toString();
        if (/Ready to accept connections/.test(out)) {
          clearTimeout(t);
          resolve();
        }
      };
      child.stdout.on("data", on);
      child.stderr.on("data", on);
      child.once("exit", (code) => reject(new Error(`redis-server exited ${code}:\n${out}`)));
    });
    const get = async (key: string) => {
      const cli = spawn("redis-cli", ["-p", String(port), "--raw", "config", "get", key]);
      let s = "";
      cli.stdout.on("data", (d: Buffer) => (s += d.toString()));
      await new Promise((r) => cli.once("exit", r));
      return s.trim().split("\n")[1];
    };
    if (findExecutable("redis-cli")) {
      assert.equal(await get("maxmemory-policy"), "noeviction");
      assert.equal(await get("appendonly"), "yes");
      assert.equal(await get("appendfsync"), "everysec");
      assert.equal(await get("save"), "3600 1 300 100 60 10000");
    }
    assert.ok(existsSync(join(dir, "appendonlydir")), "AOF directory created");
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  }
});
