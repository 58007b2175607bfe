// npm run train -w @octet/model -- --config tiny --recipe fp8 [--device cpu|cuda] [--steps N] [--seed S] [--out DIR] [--resume]
//                                  [--init-from <state or octet-import weights file>]
// A progress bar on a terminal, JSON lines otherwise; the last line is one JSON summary object.

import { Command } from "commander";
import cliProgress from "cli-progress";
import { runTraining } from "../run.js";
import { prepareInitFrom } from "./init-from.js";
import { checkedConfig, fail, parseDevice, parseIntOption, parseRecipe, printJson, resolveConfig } from "./common.js";

const program = new Command()
  .name("octet-train")
  .option("--config <name|file.json>", "preset name or JSON config file", "tiny")
  .option("--recipe <recipe>", "fp32 | bf16 | fp8 | fp8-delayed", "fp8")
  .option("--device <device>", "cpu | cuda (every tensor on the GPU; exits non-zero, naming why, without one)", "cpu")
  .option("--steps <n>", "training steps (overrides the config)", parseIntOption("--steps"))
  .option("--seed <s>", "seed of the initialization and the batches", parseIntOption("--seed"), 1)
  .option("--out <dir>", "where metrics.jsonl and state.safetensors go", "runs/train")
  .option("--resume", "continue from <out>/state.safetensors when present", false)
  .option("--init-from <file>", "start from these weights (a state or an octet-import file; the model config comes from it): fresh optimizer, step 0")
  .parse();

const o = program.opts<{ config: string; recipe: string; device: string; steps?: number; seed: number; out: string; resume: boolean; initFrom?: string }>();
try {
  const recipe = parseRecipe(o.recipe);
  const device = parseDevice(o.device);
  let config = checkedConfig(resolveConfig(o.config), recipe, o.steps);
  // --init-from: the weights go into a fresh step-0 state under --out, from which the run then resumes.
  const init = o.initFrom ? await prepareInitFrom({ from: o.initFrom, config, recipe, seed: o.seed, outDir: o.out }) : null;
  if (init) config = init.config;
  const tty = process.stdout.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar({ format: "step {value}/{total} | loss {loss} | mtp {mtp} | val {val} | {tps} tok/s | ETA {eta_formatted}", hideCursor: true }, cliProgress.Presets.shades_classic)
    : null;
  let started = false;
  let lastVal = "-";
  const logEvery = Math.max(1, Math.floor(config.train.steps / 50));
  const summary = await runTraining({
    config, recipe, device, seed: o.seed, outDir: o.out, resume: o.resume || init !== null, data: init?.data,
    onStep: (r) => {
      if (bar) {
        if (!started) { bar.start(config.train.steps, r.step - 1, { loss: "-", mtp: "-", val: lastVal, tps: "-" }); started = true; }
        bar.update(r.step, { loss: r.loss.toFixed(4), mtp: r.mtpLosses.length ? r.mtpLoss.toFixed(4) : "off", val: lastVal, tps: r.tokensPerSec.toFixed(0) });
      } else if (r.step % logEvery === 0) {
        const mtp = r.mtpLosses.length ? { mtpLoss: r.mtpLoss, lambda: r.lambda } : {};
        printJson({ type: "step", step: r.step, loss: r.loss, ...mtp, lr: r.lr, tokensPerSec: Math.round(r.tokensPerSec), etaSec: Math.round(r.etaSec) });
      }
    },
    onEval: (step, valLoss, valMtpLoss) => {
      lastVal = valLoss.toFixed(4);
      if (!bar) printJson({ type: "eval", step, valLoss, ...(Number.isNaN(valMtpLoss) ? {} : { valMtpLoss }) });
    },
  });
  bar?.stop();
  const { curve: _curve, ...rest } = summary;
  printJson(init ? { ...rest, initFrom: o.initFrom } : rest);
} catch (err) {
  fail(err);
}
