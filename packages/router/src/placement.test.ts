import { test } from "node:test";
import assert from "node:assert/strict";
import { balancedPacking, planPlacement, replicateExperts } from "./placement.js";
import { seededRandom } from "./testing/random.js";

function zipfLoads(experts: number, exponent: number, seed: number): number[] {
  // Zipf-like skew, with the heavy experts scattered (not all at the low indices).
  const random = seededRandom(seed);
  const ranks = Array.from({ length: experts }, (_, i) => i).sort(() => random() - 0.5);
  return ranks.map((rank) => Math.round(100000 / Math.pow(rank + 1, exponent)));
}

test("balancedPacking: equal item counts per pack, heaviest first into the lightest pack", () => {
  const { packOf, rankInPack } = balancedPacking([10, 1, 8, 3, 6, 4], 2);
  // order 10,8,6,4,3,1: 10→p0, 8→p1, 6→p1 (8 < 10), 4→p0 (10 < 14), 3→p0 (14 = 14, tie → lower pack),
  // p0 is then full, so 1→p1.
  assert.deepEqual(Array.from(packOf), [0, 1, 1, 0, 1, 0]);
  const counts = [0, 0];
  for (const p of packOf) counts[p]++;
  assert.deepEqual(counts, [3, 3]);
  const loads = [0, 0];
  [10, 1, 8, 3, 6, 4].forEach((w, i) => (loads[packOf[i]] += w));
  assert.deepEqual(loads, [17, 15]);
  assert.deepEqual(Array.from(rankInPack), [0, 2, 0, 2, 1, 1]);
});

test("replicateExperts gives extra replicas to the heaviest load per replica", () => {
  const { physicalToLogical, replicaCounts, replicaRank } = replicateExperts([90, 10, 40], 6);
  // 90 → 2 replicas (45), 45 > 40 → 3 replicas (30), then 40 → 2 (20)
  assert.deepEqual(Array.from(physicalToLogical), [0, 1, 2, 0, 0, 2]);
  assert.deepEqual(Array.from(replicaCounts), [3, 1, 2]);
  assert.deepEqual(Array.from(replicaRank), [0, 0, 0, 1, 2, 1]);
});

test("placement maps are consistent: every slot is used once, replicas match the counts", () => {
  const loads = zipfLoads(64, 1.2, 1);
  const placement = planPlacement({ loads, numGroups: 8, numNodes: 2, gpusPerNode: 4, redundantExperts: 16 });
  assert.equal(placement.mode, "hierarchical");
  assert.equal(placement.physicalExperts, 80);
  assert.equal(placement.expertsPerGpu, 10);
  const counted = new Int32Array(64);
  for (const e of placement.physicalToLogical) counted[e]++;
  assert.deepEqual(counted, placement.replicaCounts);
  for (let e = 0; e < 64; e++) {
    for (let r = 0; r < placement.maxReplicas; r++) {
      const slot = placement.logicalToPhysical[e * placement.maxReplicas + r];
      if (r < placement.replicaCounts[e]) assert.equal(placement.physicalToLogical[slot], e);
      else assert.equal(slot, -1);
    }
  }
  // Hierarchical: a group's experts (8 per group) all live on one node (40 slots per node).
  for (let g = 0; g < 8; g++) {
    const nodes = new Set<number>();
    placement.physicalToLogical.forEach((e, slot) => {
      if (Math.floor(e / 8) === g) nodes.add(Math.floor(slot / 40));
    });
    assert.equal(nodes.size, 1, `group ${g} spans nodes ${[...nodes]}`);
  }
  const total = loads.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(placement.gpuLoadAfter.reduce((a, b) => a + b, 0) - total) < 1e-6 * total);
});

test("on skewed loads, replicas improve the GPU balance ratio and never worsen it", () => {
  const configs = [
    { experts: 256, numGroups: 8, numNodes: 8, gpusPerNode: 8, redundantExperts: 64 },
    { experts: 256, numGroups: 8, numNodes: 4, gpusPerNode: 8, redundantExperts: 32 },
    { experts: 64, numGroups: 4, numNodes: 2, gpusPerNode: 4, redundantExperts: 8 },
    // global mode: 6 groups do not divide among 4 nodes
    { experts: 48, numGroups: 6, numNodes: 4, gpusPerNode: 2, redundantExperts: 16 },
  ];
  for (const { experts, ...rest } of configs) {
    for (let seed = 1; seed <= 5; seed++) {
      for (const exponent of [0.8, 1.2, 2]) {
        const loads = zipfLoads(experts, exponent, seed);
        const placement = planPlacement({ loads, ...rest });
        const label = JSON.stringify({ experts, ...rest, seed, exponent, before: placement.balanceBefore, after: placement.balanceAfter });
        assert.ok(placement.balanceAfter < placement.balanceBefore, label);
        assert.ok(placement.balanceAfter >= 1);
        if (rest.numGroups % rest.numNodes !== 0) assert.equal(placement.mode, "global");
      }
    }
  }
});

test("bad placement requests throw RangeError naming the problem", () => {
  const loads = new Array(64).fill(1);
  assert.throws(() => planPlacement({ loads, numGroups: 8, numNodes: 2, gpusPerNode: 4, redundantExperts: 3 }), { name: "RangeError", message: /divisible by the number of GPUs/ });
  assert.throws(() => planPlacement({ loads, numGroups: 7, numNodes: 1, gpusPerNode: 4, redundantExperts: 0 }), { name: "RangeError", message: /divisible by numGroups/ });
  assert.throws(() => planPlacement({ loads: [...loads.slice(1), -1], numGroups: 8, numNodes: 1, gpusPerNode: 4, redundantExperts: 0 }), { name: "RangeError", message: /loads\[63\]/ });
  assert.throws(() => planPlacement({ loads, numGroups: 8, numNodes: 0, gpusPerNode: 4, redundantExperts: 0 }), { name: "RangeError", message: /numNodes/ });
});
