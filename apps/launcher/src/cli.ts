#!/usr/bin/env node
// octet-up: the main command. `npm start` at the repository root builds everything and runs this.

import { ServiceError } from "./children.js";
import { Interrupted, launch } from "./launch.js";
import { buildCommand, parseOptions } from "./options.js";
import { createUi } from "./ui.js";

async function main(): Promise<number> {
  const cmd = buildCommand().exitOverride();
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2), cmd);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
    if (!err.code?.startsWith("commander.")) process.stderr.write(`octet-up: ${err.message}\n`);
    return 2;
  }
  const ui = createUi({ json: opts.json });
  try {
    const summary = await launch(opts, ui);
    const { pids: _pids, jobs: _jobs, unigramEntropy: _u, ...line } = summary;
    // The last line: one JSON object for scripts.
    process.stdout.write(`${JSON.stringify({ ...line, jobs: summary.jobs })}\n`);
    return 0;
  } catch (e) {
    const err = e as Error;
    if (err instanceof Interrupted) {
      process.stdout.write(`${JSON.stringify({ error: err.message })}\n`);
      return err.signal === "SIGINT" ? 130 : 143;
    }
    const text = err instanceof ServiceError ? err.message : (err.stack ?? err.message);
    process.stderr.write(`octet-up: ${text}\n`);
    process.stdout.write(`${JSON.stringify({ error: err.message.split("\n")[0], ...(err instanceof ServiceError ? { service: err.service } : {}) })}\n`);
    return 1;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`octet-up: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
