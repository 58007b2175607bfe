// Decay policies: the decay d used for the update applied at a given step,
//   ema ← d · ema + (1 − d) · param.

export type DecayPolicy =
  /** d = decay at every step. */
  | { kind: "fixed"; decay: number }
  /**
   * d = min(decay, (a + step) / (b + step)), with a = 1, b = 10 by default: the common warm-up
   * (TensorFlow's ExponentialMovingAverage with num_updates) that lets early steps move the EMA more.
   */
  | { kind: "warmup"; decay: number; a?: number; b?: number }
  /**
   * d = min(decay, max(minDecay, 1 − (1 + step / gamma)^(−power))), timm / k-diffusion's "EMAWarmup"
   * (gamma = 1, power = 2/3 or 3/4 by default in those libraries; here power defaults to 2/3).
   */
  | { kind: "power"; decay: number; gamma?: number; power?: number; minDecay?: number };

function checkUnit(name: string, x: unknown): number {
  if (typeof x !== "number") throw new TypeError(`${name} must be a number`);
  if (!(x >= 0 && x <= 1)) throw new RangeError(`${name} must be within [0, 1], got ${x}`);
  return x;
}

function checkPositive(name: string, x: unknown): number {
  if (typeof x !== "number") throw new TypeError(`${name} must be a number`);
  if (!(Number.isFinite(x) && x > 0)) throw new RangeError(`${name} must be a finite number > 0, got ${x}`);
  return x;
}

/** Validates a policy and returns it with every default filled in (the form that is stored and exported). */
export function normalizeDecayPolicy(policy: unknown): DecayPolicy {
  if (policy === null || typeof policy !== "object") throw new TypeError("decay policy must be an object");
  const p = policy as Record<string, unknown>;
  switch (p.kind) {
    case "fixed":
      return { kind: "fixed", decay: checkUnit("decay", p.decay) };
    case "warmup": {
      const a = p.a === undefined ? 1 : p.a;
      const b = p.b === undefined ? 10 : p.b;
      if (typeof a !== "number" || typeof b !== "number") throw new TypeError("warmup a and b must be numbers");
      if (!(Number.isFinite(a) && a >= 0)) throw new RangeError(`warmup a must be finite and >= 0, got ${a}`);
      if (!(Number.isFinite(b) && b > a)) throw new RangeError(`warmup b must be finite and > a, got ${b}`);
      return { kind: "warmup", decay: checkUnit("decay", p.decay), a, b };
    }
    case "power": {
      const gamma = checkPositive("gamma", p.gamma === undefined ? 1 : p.gamma);
      const power = checkPositive("power", p.power === undefined ? 2 / 3 : p.power);
      const minDecay = checkUnit("minDecay", p.minDecay === undefined ? 0 : p.minDecay);
      return { kind: "power", decay: checkUnit("decay", p.decay), gamma, power, minDecay };
    }
    default:
      throw new RangeError(`unknown decay policy kind ${JSON.stringify(p.kind)} (fixed, warmup, power)`);
  }
}

/** The decay for the update at `step` (a non-negative integer). */
export function decayAt(policy: DecayPolicy, step: number): number {
  if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`step must be an integer >= 0, got ${step}`);
  switch (policy.kind) {
    case "fixed":
      return policy.decay;
    case "warmup": {
      const a = policy.a ?? 1;
      const b = policy.b ?? 10;
      return Math.min(policy.decay, (a + step) / (b + step));
    }
    case "power": {
      const gamma = policy.gamma ?? 1;
      const power = policy.power ?? 2 / 3;
      const value = 1 - Math.pow(1 + step / gamma, -power);
      return Math.min(policy.decay, Math.max(policy.minDecay ?? 0, value));
    }
  }
}
