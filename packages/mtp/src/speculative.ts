// Speculative decoding with the first MTP module (DeepSeek-V3 §5.4.3): at each step the main model
// gives the next token t+1 and MTP module 1 drafts the token after it, t+2; the main model, given t+1,
// verifies the draft. DeepSeek-V3 reports 85–90% acceptance for the second token (≈1.8× TPS).
// Both models are greedy here and come in as functions of a prefix, so any model can be measured.

export type TokenSeq = ArrayLike<number>;

export interface SpeculativeModels {
  /** The main model's greedy next token after `prefix`. */
  mainNextToken(prefix: readonly number[]): number;
  /**
   * MTP module 1's greedy draft of the token after next: given `prefix` and the main model's next
   * token `next` (whose embedding module 1 consumes with h^0 of the prefix's last position).
   */
  mtpDraftAfterNext(prefix: readonly number[], next: number): number;
}

export interface AcceptanceOptions extends SpeculativeModels {
  /** Contexts to measure on (e.g. held-out text). */
  sequences: TokenSeq[];
  /** Shortest prefix measured; default 1. Each prefix seq[0..n), n = minPrefix..len, is one trial. */
  minPrefix?: number;
}

export interface AcceptanceReport {
  accepted: number;
  total: number;
  /** accepted / total (NaN when total = 0). */
  rate: number;
}

function checkToken(what: string, t: unknown): number {
  if (typeof t !== "number" || !Number.isInteger(t) || t < 0) throw new TypeError(`${what} must return a non-negative integer token, got ${String(t)}`);
  return t;
}

function checkModels(m: SpeculativeModels, what: string): void {
  if (typeof m?.mainNextToken !== "function" || typeof m?.mtpDraftAfterNext !== "function") {
    throw new TypeError(`${what}: mainNextToken and mtpDraftAfterNext must be functions`);
  }
}

/**
 * Acceptance rate of the MTP draft over every prefix of the given sequences: for prefix p, with
 * n = main(p) and d = draft(p, n), the draft is accepted when main(p + [n]) = d.
 */
export function acceptanceRate(options: AcceptanceOptions): AcceptanceReport {
  checkModels(options, "acceptanceRate");
  const { sequences } = options;
  if (!Array.isArray(sequences)) throw new TypeError("acceptanceRate: sequences must be an array of token sequences");
  const minPrefix = options.minPrefix ?? 1;
  if (!Number.isInteger(minPrefix) || minPrefix < 1) throw new RangeError(`acceptanceRate: minPrefix must be a positive integer, got ${minPrefix}`);
  let accepted = 0;
  let total = 0;
  for (const seq of sequences) {
    const tokens = Array.from(seq);
    for (let n = minPrefix; n <= tokens.length; n++) {
      const prefix = tokens.slice(0, n);
      const next = checkToken("mainNextToken", options.mainNextToken(prefix));
      const draft = checkToken("mtpDraftAfterNext", options.mtpDraftAfterNext(prefix, next));
      prefix.push(next);
      const verified = checkToken("mainNextToken", options.mainNextToken(prefix));
      total++;
      if (verified === draft) accepted++;
    }
  }
  return { accepted, total, rate: total === 0 ? NaN : accepted / total };
}

export interface SpeculativeDecodeOptions extends SpeculativeModels {
  prompt: TokenSeq;
  maxNewTokens: number;
}

export interface SpeculativeDecodeReport extends AcceptanceReport {
  /** The generated tokens (identical to plain greedy decoding with the main model). */
  tokens: number[];
  /** Verification passes of the main model (one per step; each checks next + draft together). */
  steps: number;
  /** tokens.length / steps: ≈ 1 + rate (DeepSeek-V3: ≈ 1.8). */
  tokensPerStep: number;
}

/**
 * Greedy generation with MTP drafts: each step emits the main model's next token and, when the main
 * model confirms it, the drafted one after it as well. Prefix calls stand in for one batched
 * verification pass per step (which in a real decoder also yields the following next token).
 */
export function speculativeDecode(options: SpeculativeDecodeOptions): SpeculativeDecodeReport {
  checkModels(options, "speculativeDecode");
  const { maxNewTokens } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new RangeError(`speculativeDecode: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  const ctx = Array.from(options.prompt);
  if (ctx.length === 0) throw new RangeError("speculativeDecode: prompt must not be empty");
  const out: number[] = [];
  let accepted = 0;
  let total = 0;
  let steps = 0;
  let next = checkToken("mainNextToken", options.mainNextToken(ctx));
  while (out.length < maxNewTokens) {
    steps++;
    const draft = checkToken("mtpDraftAfterNext", options.mtpDraftAfterNext(ctx, next));
    ctx.push(next);
    out.push(next);
    const verified = checkToken("mainNextToken", options.mainNextToken(ctx)); // same pass: main(ctx + next)
    if (out.length >= maxNewTokens) break;
    total++;
    if (verified === draft) {
      accepted++;
      ctx.push(draft);
      out.push(draft);
      if (out.length >= maxNewTokens) break;
      next = checkToken("mainNextToken", options.mainNextToken(ctx)); // same pass: main(ctx + next + draft)
    } else {
      next = verified;
    }
  }
  return { tokens: out, steps, accepted, total, rate: total === 0 ? NaN : accepted / total, tokensPerStep: steps === 0 ? 0 : out.length / steps };
}
