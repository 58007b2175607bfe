// The one way from a config's `data` to the tokens a Trainer reads: the synthetic corpus, a text file or
// llm.c shards. The model CLIs and the job trainer both come through here.

import type { DataConfig } from "../config.js";
import { loadLlmcDataset, loadTextFile } from "./files.js";
import { syntheticCorpus } from "./synthetic.js";

export interface Dataset {
  name: string;
  vocabSize: number;
  train: Uint16Array;
  val: Uint16Array;
  /** Loss floor (nats/token) when known (the synthetic corpus). */
  entropyRate?: number;
  unigramEntropy?: number;
  order1Entropy?: number;
}

/** The synthetic corpus of `seed` over `vocabSize` tokens, with its entropy floors. */
export function syntheticDataset(seed: number, vocabSize: number): Dataset {
  const c = syntheticCorpus({ seed, vocabSize });
  return { name: c.name, vocabSize: c.vocabSize, train: c.train, val: c.val, entropyRate: c.entropyRate, unigramEntropy: c.unigramEntropy, order1Entropy: c.order1Entropy };
}

/**
 * The dataset `data` names (a validated config's `data`), for a model of `vocabSize` tokens. Text is byte
 * level (vocabulary 256); llm.c shards are checked against `vocabSize`. Files are read asynchronously;
 * a missing or malformed file rejects with the loader's error (RangeError / TypeError naming the file).
 */
export async function loadDataset(data: DataConfig, vocabSize: number): Promise<Dataset> {
  switch (data.kind) {
    case "synthetic":
      return syntheticDataset(data.seed, vocabSize);
    case "text": {
      const t = await loadTextFile(data.path, { valFraction: data.valFraction });
      return { name: t.name, vocabSize: t.vocabSize, train: t.train, val: t.val };
    }
    case "llmc": {
      const t = await loadLlmcDataset({ train: [data.train], val: [data.val], vocabSize });
      return { name: t.name, vocabSize: t.vocabSize, train: t.train, val: t.val };
    }
    default:
      throw new TypeError(`loadDataset: unknown data kind ${JSON.stringify((data as { kind?: unknown }).kind)}`);
  }
}
