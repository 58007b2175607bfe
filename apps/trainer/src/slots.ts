// The worker's slots (GPU indices, or CPU slot numbers): a job reserves all the slots it needs at once or none.
// A slot whose GPU became unusable is lost: it is never reserved again.

export class SlotPool {
  readonly total: number;
  private readonly freeSet: Set<number>;
  private readonly lostSet = new Set<number>();
  private waiters: (() => void)[] = [];

  constructor(total: number) {
    if (!Number.isInteger(total) || total < 1) throw new RangeError(`slots must be an integer >= 1, got ${total}`);
    this.total = total;
    this.freeSet = new Set(Array.from({ length: total }, (_, i) => i));
  }

  get free(): number {
    return this.freeSet.size;
  }

  /** Slots reserved by running jobs. */
  get busy(): number {
    return this.usable - this.freeSet.size;
  }

  /** Slots not lost (free or reserved). */
  get usable(): number {
    return this.total - this.lostSet.size;
  }

  /** The lost slots, ascending. */
  get lost(): number[] {
    return [...this.lostSet].sort((a, b) => a - b);
  }

  /** Reserves `n` slots together (the lowest free ones), or returns null when fewer than n are free. */
  reserve(n: number): number[] | null {
    if (!Number.isInteger(n) || n < 1 || n > this.freeSet.size) return null;
    const got = [...this.freeSet].sort((a, b) => a - b).slice(0, n);
    for (const i of got) this.freeSet.delete(i);
    return got;
  }

  release(slots: readonly number[]): void {
    for (const i of slots) {
      if (!Number.isInteger(i) || i < 0 || i >= this.total) throw new RangeError(`slot ${i} is not one of this pool's`);
      if (this.freeSet.has(i)) throw new RangeError(`slot ${i} released twice`);
    }
    for (const i of slots) if (!this.lostSet.has(i)) this.freeSet.add(i);
    this.wake();
  }

  /** Marks slots lost (their GPU is gone): a free one leaves the pool now, a reserved one when it is released. */
  lose(slots: readonly number[]): void {
    for (const i of slots) {
      if (!Number.isInteger(i) || i < 0 || i >= this.total) throw new RangeError(`slot ${i} is not one of this pool's`);
    }
    for (const i of slots) {
      this.lostSet.add(i);
      this.freeSet.delete(i);
    }
  }

  /** Resolves when a slot is released (or wake() is called). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
