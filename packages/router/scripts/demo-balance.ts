// npm run demo:balance -w @octet/router
// A router whose logits favour 8 of 64 experts (+1.5 in logit units), trained with nothing but the
// auxiliary-loss-free bias update (γ = 0.001, DeepSeek-V3's). Prints max/mean load per step and the
// final expert-load histogram.
import { runSkewedBalanceDemo } from "../src/testing/skewed-demo.js";

const steps = Number(process.env.DEMO_STEPS ?? 300);
const result = runSkewedBalanceDemo({
  steps,
  onStep: (step, stats) => {
    const marker = stats.maxOverMean < 1.2 ? " <1.2" : "";
    process.stdout.write(`step ${String(step).padStart(4)}  max/mean ${stats.maxOverMean.toFixed(3)}${marker}\n`);
  },
});
const firstBelow = result.history.find((h) => h.maxOverMean < 1.2);
const { expertLoad, meanLoad, groupTokens } = result.finalStats;
console.log(`\n64 experts, 8 groups (topkGroup 4), topK 6, 4096 tokens/step, γ = 0.001`);
console.log(`start max/mean ${result.history[0].maxOverMean.toFixed(3)}; first below 1.2 at step ${firstBelow?.step ?? "never"}; final (step ${result.history.length - 1}) ${result.finalMaxOverMean.toFixed(3)}`);
console.log(`\nfinal expert loads (mean ${meanLoad.toFixed(1)}), one bar per expert:`);
const width = 40;
const max = Math.max(...expertLoad);
expertLoad.forEach((load, e) => {
  const bar = "#".repeat(Math.round((load / max) * width));
  const favoured = result.favouredExperts.includes(e) ? `  <- favoured by the logits, bias ${result.bias[e].toFixed(3)}` : "";
  console.log(`e${String(e).padStart(2, "0")} ${String(load).padStart(5)} ${bar}${favoured}`);
});
console.log(`\ntokens received per group (node): ${Array.from(groupTokens).join(" ")}`);
