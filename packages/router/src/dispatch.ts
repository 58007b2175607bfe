// Dispatch plans: how a batch's token→expert assignments become one contiguous buffer per expert, and
// how the experts' outputs come back to their tokens.

import {
  requireFiniteNumber,
  requireFloat32Array,
  requireInt32Array,
  requireLength,
  requirePositiveInteger,
} from "./validate.js";

/** Which assignments an over-capacity expert drops (Megatron-LM's `moe_token_drop_policy`). */
export type DropPolicy = "probs" | "position";

export interface DispatchOptions {
  tokens: number;
  experts: number;
  topK: number;
  /** Omit (the default) to drop nothing. Otherwise each expert keeps at most
   *  ceil(tokens · topK / experts · capacityFactor) assignments, as in Megatron-LM. */
  capacityFactor?: number;
  /** "probs" (default): keep the assignments with the largest weights; "position": keep the
   *  earliest tokens. */
  dropPolicy?: DropPolicy;
}

export interface DispatchPlan {
  tokens: number;
  experts: number;
  topK: number;
  /** Rows of the expert-grouped buffer (tokens · topK minus the dropped). */
  rows: number;
  /** [rows] the token each row comes from: gather input rows with it to build the expert buffer.
   *  Rows are grouped by expert, tokens in increasing order within an expert. */
  tokenOfRow: Int32Array;
  /** [rows] the assignment (t · topK + k) each row serves. */
  assignmentOfRow: Int32Array;
  /** [experts] rows each expert receives. */
  expertCounts: Int32Array;
  /** [experts + 1] where each expert's rows start; expert e owns rows [offsets[e], offsets[e+1]). */
  expertOffsets: Int32Array;
  /** [tokens · topK] the inverse: the row serving each assignment, or -1 when it was dropped. */
  rowOfAssignment: Int32Array;
  /** [rows] the weight to apply to each row's expert output when combining it into its token. */
  combineWeights: Float32Array;
  /** Per-expert capacity, or null when nothing can be dropped. */
  capacity: number | null;
  /** Assignments dropped in total and per expert. */
  dropped: number;
  droppedPerExpert: Int32Array;
}

export function planDispatch(indices: Int32Array, weights: Float32Array, opts: DispatchOptions): DispatchPlan {
  requireInt32Array("indices", indices);
  requireFloat32Array("weights", weights);
  const tokens = requirePositiveInteger("tokens", opts.tokens);
  const experts = requirePositiveInteger("experts", opts.experts);
  const topK = requirePositiveInteger("topK", opts.topK);
  const assignments = tokens * topK;
  requireLength("indices", indices.length, assignments, `[tokens=${tokens}, topK=${topK}]`);
  requireLength("weights", weights.length, assignments, `[tokens=${tokens}, topK=${topK}]`);
  let capacity: number | null = null;
  if (opts.capacityFactor !== undefined) {
    const factor = requireFiniteNumber("capacityFactor", opts.capacityFactor);
    if (factor <= 0) throw new RangeError(`capacityFactor must be positive, got ${factor}`);
    capacity = Math.ceil((assignments / experts) * factor);
  }
  const dropPolicy = opts.dropPolicy ?? "probs";
  if (dropPolicy !== "probs" && dropPolicy !== "position") {
    throw new RangeError(`dropPolicy must be "probs" or "position", got ${String(dropPolicy)}`);
  }

  // Counting sort of the assignments by expert; stable, so tokens stay in increasing order.
  const routedCounts = new Int32Array(experts);
  for (let a = 0; a < assignments; a++) {
    const expert = indices[a];
    if (expert < 0 || expert >= experts || !Number.isInteger(expert)) {
      throw new RangeError(`indices[${a}] = ${expert} is not an expert in [0, ${experts})`);
    }
    routedCounts[expert]++;
  }
  const routedOffsets = new Int32Array(experts + 1);
  for (let e = 0; e < experts; e++) routedOffsets[e + 1] = routedOffsets[e] + routedCounts[e];
  const sortedAssignments = new Int32Array(assignments);
  const cursor = routedOffsets.slice(0, experts);
  for (let a = 0; a < assignments; a++) sortedAssignments[cursor[indices[a]]++] = a;

  const expertCounts = new Int32Array(experts);
  const droppedPerExpert = new Int32Array(experts);
  const expertOffsets = new Int32Array(experts + 1);
  const keptAssignments = new Int32Array(assignments);
  let rows = 0;
  for (let e = 0; e < experts; e++) {
    expertOffsets[e] = rows;
    let segment = sortedAssignments.subarray(routedOffsets[e], routedOffsets[e + 1]);
    if (capacity !== null && segment.length > capacity) {
      droppedPerExpert[e] = segment.length - capacity;
      if (dropPolicy === "position") {
        segment = segment.subarray(0, capacity);
      } else {
        // Keep the largest weights (ties: earlier assignment), then restore token order.
        const byWeight = Array.from(segment).sort((x, y) => weights[y] - weights[x] || x - y);
        segment = Int32Array.from(byWeight.slice(0, capacity)).sort();
      }
    }
    keptAssignments.set(segment, rows);
    expertCounts[e] = segment.length;
    rows += segment.length;
  }
  expertOffsets[experts] = rows;

  const tokenOfRow = new Int32Array(rows);
  const assignmentOfRow = keptAssignments.slice(0, rows);
  const combineWeights = new Float32Array(rows);
  const rowOfAssignment = new Int32Array(assignments).fill(-1);
  for (let row = 0; row < rows; row++) {
    const a = assignmentOfRow[row];
    tokenOfRow[row] = (a / topK) | 0;
    combineWeights[row] = weights[a];
    rowOfAssignment[a] = row;
  }
  return {
    tokens,
    experts,
    topK,
    rows,
    tokenOfRow,
    assignmentOfRow,
    expertCounts,
    expertOffsets,
    rowOfAssignment,
    combineWeights,
    capacity,
    dropped: assignments - rows,
    droppedPerExpert,
  };
}

/** Gathers input rows [tokens, hidden] into the expert-grouped buffer [plan.rows, hidden]. */
export function dispatchRows(input: Float32Array, plan: DispatchPlan, hidden: number): Float32Array {
  requireFloat32Array("input", input);
  requirePositiveInteger("hidden", hidden);
  requireLength("input", input.length, plan.tokens * hidden, `[tokens=${plan.tokens}, hidden=${hidden}]`);
  const out = new Float32Array(plan.rows * hidden);
  for (let row = 0; row < plan.rows; row++) {
    const source = plan.tokenOfRow[row] * hidden;
    out.set(input.subarray(source, source + hidden), row * hidden);
  }
  return out;
}

/** Combines expert outputs [plan.rows, hidden] back per token: y_t = Σ_k w_{t,k} · out_row(t,k).
 *  Dropped assignments contribute nothing. Accumulates in float64, returns float32. */
export function combineRows(expertOutput: Float32Array, plan: DispatchPlan, hidden: number): Float32Array {
  requireFloat32Array("expertOutput", expertOutput);
  requirePositiveInteger("hidden", hidden);
  requireLength("expertOutput", expertOutput.length, plan.rows * hidden, `[rows=${plan.rows}, hidden=${hidden}]`);
  const accumulator = new Float64Array(plan.tokens * hidden);
  for (let row = 0; row < plan.rows; row++) {
    const weight = plan.combineWeights[row];
    const target = plan.tokenOfRow[row] * hidden;
    const source = row * hidden;
    for (let h = 0; h < hidden; h++) accumulator[target + h] += weight * expertOutput[source + h];
  }
  return Float32Array.from(accumulator);
}
