// The dataset a job trains on, from its spec.

import type { JobSpec } from "@octet/jobs";
import { type Config, type Dataset, loadLlmcDataset, loadTextFile, syntheticCorpus } from "@octet/model";

/**
 * spec.data: the synthetic corpus (its seed; when the submitted spec had no `data`, the config's own
 * data.seed), a UTF-8 text file (byte tokens) or llm.c shards.
 */
export async function loadJobData(spec: JobSpec, config: Config, specHadData: boolean): Promise<Dataset> {
  const d = spec.data;
  switch (d.kind) {
    case "synthetic": {
      const seed = specHadData ? d.seed : config.data.seed;
      const c = syntheticCorpus({ seed, vocabSize: config.model.vocabSize });
      return { name: c.name, vocabSize: c.vocabSize, train: c.train, val: c.val, entropyRate: c.entropyRate, unigramEntropy: c.unigramEntropy, order1Entropy: c.order1Entropy };
    }
    case "text": {
      const t = await loadTextFile(d.path, { valFraction: d.valFraction });
      return { name: t.name, vocabSize: t.vocabSize, train: t.train, val: t.val };
    }
    case "llmc": {
      const t = await loadLlmcDataset({ train: [d.train], val: [d.val], vocabSize: config.model.vocabSize });
      return { name: t.name, vocabSize: t.vocabSize, train: t.train, val: t.val };
    }
  }
}
