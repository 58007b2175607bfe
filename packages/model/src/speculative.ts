// Speculative decoding with the trained MTP module 1 (DeepSeek-V3 §5.4.3): for a prefix p the main model
// gives its greedy next token n = main(p); MTP module 1, from h^0 at p's last position and Emb(n), drafts
// d, the token after next; the draft is accepted when the main model, given p + [n], predicts d too.
// DeepSeek-V3 reports 85–90% acceptance of the second token.
//
// @octet/mtp's acceptanceRate() measures this with two functions of a prefix (one forward pass per call).
// measureAcceptance() computes the same trials in two batched passes per window, by causality: every
// output at position i depends on positions ≤ i only, so a prefix can be padded to the window length and
// read at its last position, and all prefixes of a window go in one batch.
//   pass 1: the window s_0..s_{L−1} (L = T − 1), padded to T → n_j = argmax main logits at j (prefix s_0..s_j)
//   pass 2: sequence j = s_0..s_j, n_j, padding (T tokens), j = 0..L−1, one batch →
//           draft d_j = argmax MTP-1 logits at position j (h^0_j and Emb(n_j)),
//           verification v_j = argmax main logits at position j + 1 (after s_0..s_j, n_j); accepted: v_j = d_j.

import type { SpeculativeModels } from "@octet/mtp";
import type { TensorHandle } from "./backend/backend.js";
import type { Transformer } from "./model.js";

/** Inference logits on the host (decoding reads them: outside any training step). */
function logitsOf(model: Transformer, t: TensorHandle): Float32Array {
  return model.be.toHost(t) as Float32Array;
}

function argmaxRow(logits: Float32Array, row: number, V: number): number {
  let best = 0;
  let max = -Infinity;
  for (let v = 0; v < V; v++) {
    const z = logits[row * V + v];
    if (z > max) {
      max = z;
      best = v;
    }
  }
  return best;
}

export interface AcceptanceMeasurement {
  /** accepted / drafted. */
  acceptanceRate: number;
  /** Drafts made (one per prefix). */
  drafted: number;
  /** Drafts the main model confirmed. */
  accepted: number;
  /** Windows of held-out text measured (each gives seqLen − 1 prefixes). */
  windows: number;
  /** How often the main model's next token n is the text's next token. */
  mainAccuracy: number;
  /** How often the draft d equals the text's token after next, when n was the text's next token. */
  draftAccuracy: number;
  /** Expected tokens per verification pass with one draft: 1 + acceptanceRate. */
  tokensPerStep: number;
}

/**
 * Acceptance rate of MTP module 1's drafts over every prefix (lengths 1..T−1) of consecutive windows of
 * `tokens` (held-out text), up to `maxDrafts` drafts (whole windows).
 */
export function measureAcceptance(model: Transformer, tokens: Uint16Array | Int32Array, maxDrafts: number): AcceptanceMeasurement {
  if (!model.mtp) throw new RangeError("measureAcceptance: the model has no MTP module (model.mtp.depth is 0)");
  if (!Number.isInteger(maxDrafts) || maxDrafts < 1) throw new RangeError(`measureAcceptance: maxDrafts must be a positive integer, got ${maxDrafts}`);
  const { seqLen: T, vocabSize: V } = model.cfg;
  const L = T - 1; // prefix lengths 1..L; the text's next token of the longest is s_L (checked too)
  const windows = Math.min(Math.ceil(maxDrafts / L), Math.floor(tokens.length / (L + 2)));
  if (windows < 1) throw new RangeError(`measureAcceptance: ${tokens.length} tokens are too few for one window of ${L + 2}`);
  let drafted = 0;
  let accepted = 0;
  let mainRight = 0;
  let draftTrials = 0;
  let draftRight = 0;
  for (let w = 0; w < windows; w++) {
    const s = tokens.subarray(w * (L + 2), (w + 1) * (L + 2)); // s_0..s_L and s_{L+1} (for accuracies)
    // Pass 1: the main model's next token after every prefix of the window.
    const window = new Int32Array(T); // s_0..s_{L−1}, one padding token
    for (let j = 0; j < L; j++) window[j] = s[j];
    const p1 = logitsOf(model, model.predict(window, T).logits); // [T, V]
    const next = Int32Array.from({ length: L }, (_, j) => argmaxRow(p1, j, V)); // n_j after s_0..s_j
    // Pass 2: prefix j followed by n_j, one sequence per prefix.
    const batch = new Int32Array(L * T); // [L, T]
    for (let j = 0; j < L; j++) {
      for (let i = 0; i <= j; i++) batch[j * T + i] = s[i];
      batch[j * T + j + 1] = next[j];
    }
    const pass = model.predict(batch, T);
    const logits = logitsOf(model, pass.logits); // [L·T, V]
    const draftLogits = logitsOf(model, pass.draftLogits!); // [L·(T−1), V]
    for (let j = 0; j < L; j++) {
      const draft = argmaxRow(draftLogits, j * (T - 1) + j, V);
      const verified = argmaxRow(logits, j * T + j + 1, V);
      drafted++;
      if (draft === verified) accepted++;
      if (next[j] === s[j + 1]) {
        mainRight++;
        draftTrials++;
        if (draft === s[j + 2]) draftRight++;
      }
    }
  }
  return {
    acceptanceRate: accepted / drafted,
    drafted,
    accepted,
    windows,
    mainAccuracy: mainRight / drafted,
    draftAccuracy: draftTrials ? draftRight / draftTrials : NaN,
    tokensPerStep: 1 + accepted / drafted,
  };
}

/**
 * The model as @octet/mtp's SpeculativeModels (one forward pass per call: the prefix padded to seqLen,
 * read at its last position), for acceptanceRate() / speculativeDecode(). Prefixes up to seqLen − 1.
 */
export function speculativeModels(model: Transformer): SpeculativeModels {
  if (!model.mtp) throw new RangeError("speculativeModels: the model has no MTP module (model.mtp.depth is 0)");
  const { seqLen: T, vocabSize: V } = model.cfg;
  const padded = (prefix: readonly number[], extra?: number) => {
    const n = prefix.length + (extra === undefined ? 0 : 1);
    if (prefix.length < 1 || n > T) throw new RangeError(`speculativeModels: prefix of ${prefix.length} tokens does not fit the window (1..${T - 1})`);
    const x = new Int32Array(T);
    x.set(prefix);
    if (extra !== undefined) x[prefix.length] = extra;
    return x;
  };
  return {
    mainNextToken: (prefix) => argmaxRow(logitsOf(model, model.predict(padded(prefix), T).logits), prefix.length - 1, V),
    mtpDraftAfterNext: (prefix, next) => argmaxRow(logitsOf(model, model.predict(padded(prefix, next), T).draftLogits!), prefix.length - 1, V),
  };
}
