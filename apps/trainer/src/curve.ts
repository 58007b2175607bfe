// The run's loss curve: kept in memory to be saved with each checkpoint (CurveLog) and written to Redis for
// the job's watchers (CurveWriter).

import type { CurvePoint } from "@octet/jobs";
import type { Redis } from "ioredis";
import type { Logger } from "./log.js";
import type { CurveArrays } from "./state.js";

/** Every point of the run's curve so far (restored + this attempt), kept to be saved with each checkpoint. */
export class CurveLog {
  private n = 0;
  private a: CurveArrays = { step: new Uint32Array(64), loss: new Float64Array(64), valLoss: new Float64Array(64), tokensPerSec: new Float32Array(64) };

  static from(c: CurveArrays | null, upTo: number): CurveLog {
    const log = new CurveLog();
    if (c) for (let i = 0; i < c.step.length; i++) if (c.step[i] <= upTo) log.add({ step: c.step[i], loss: c.loss[i], ...(Number.isNaN(c.valLoss[i]) ? {} : { valLoss: c.valLoss[i] }), tokensPerSec: c.tokensPerSec[i] });
    return log;
  }

  get length(): number {
    return this.n;
  }

  add(p: CurvePoint): void {
    if (this.n === this.a.step.length) {
      const grow = <T extends Uint32Array | Float64Array | Float32Array>(x: T): T => {
        const y = new (x.constructor as new (n: number) => T)(x.length * 2);
        y.set(x);
        return y;
      };
      this.a = { step: grow(this.a.step), loss: grow(this.a.loss), valLoss: grow(this.a.valLoss), tokensPerSec: grow(this.a.tokensPerSec) };
    }
    this.a.step[this.n] = p.step;
    this.a.loss[this.n] = p.loss;
    this.a.valLoss[this.n] = p.valLoss ?? NaN;
    this.a.tokensPerSec[this.n] = p.tokensPerSec ?? 0;
    this.n++;
  }

  /** The points up to `step`, as arrays (copies). */
  upTo(step: number): CurveArrays {
    let k = this.n;
    while (k > 0 && this.a.step[k - 1] > step) k--;
    return { step: this.a.step.slice(0, k), loss: this.a.loss.slice(0, k), valLoss: this.a.valLoss.slice(0, k), tokensPerSec: this.a.tokensPerSec.slice(0, k) };
  }

  points(): CurvePoint[] {
    const out: CurvePoint[] = [];
    for (let i = 0; i < this.n; i++) {
      const p: CurvePoint = { step: this.a.step[i], loss: this.a.loss[i], tokensPerSec: this.a.tokensPerSec[i] };
      if (!Number.isNaN(this.a.valLoss[i])) p.valLoss = this.a.valLoss[i];
      out.push(p);
    }
    return out;
  }
}

/** The job's curve: points buffered and RPUSHed to keys.curve(jobId) in batches (one write in flight). */
export class CurveWriter {
  private buf: CurvePoint[] = [];
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /**
   * Makes the list the curve of the state resumed: exactly `points` when the checkpoint carried its curve,
   * else what the list holds up to `step` (all of it gone when step is 0).
   */
  async reset(step: number, points: CurvePoint[] | null): Promise<void> {
    let keep: string[];
    if (points) keep = points.map((p) => JSON.stringify(p));
    else if (step <= 0) keep = [];
    else {
      keep = (await this.redis.lrange(this.key, 0, -1)).filter((s) => {
        try {
          return (JSON.parse(s) as CurvePoint).step <= step;
        } catch {
          return false;
        }
      });
    }
    const m = this.redis.multi().del(this.key);
    for (let i = 0; i < keep.length; i += 10_000) m.rpush(this.key, ...keep.slice(i, i + 10_000));
    await m.exec();
  }

  add(p: CurvePoint, now = false): void {
    if (this.closed) return;
    this.buf.push(p);
    if (now) this.send();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.send();
      }, this.intervalMs);
    }
  }

  private send(): void {
    if (this.inFlight || this.buf.length === 0) return;
    const batch = this.buf.splice(0);
    this.inFlight = this.redis
      .rpush(this.key, ...batch.map((p) => JSON.stringify(p)))
      .then(() => undefined)
      .catch((e: unknown) => {
        this.log.warn("curve write failed; points kept for the next write", { err: e });
        this.buf.unshift(...batch);
      })
      .finally(() => {
        this.inFlight = null;
        if (this.buf.length && !this.closed && !this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.send();
          }, this.intervalMs);
        }
      });
  }

  /** Writes what is buffered (flush) or drops it, and stops. */
  async close(flush: boolean): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!flush) {
      this.closed = true;
      this.buf = [];
      return;
    }
    for (let i = 0; i < 1000 && (this.inFlight || this.buf.length); i++) {
      if (this.inFlight) await this.inFlight;
      else this.send();
    }
    this.closed = true;
  }
}
