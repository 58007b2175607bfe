// Small argument checks shared by the public functions. Bad input throws RangeError (a value out of
// range or a length that does not match a shape) or TypeError (the wrong kind of value), and the
// message names the argument so that a caller can tell what to fix.

export function requirePositiveInteger(name: string, value: unknown): number {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

export function requireNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

export function requireFiniteNumber(name: string, value: unknown): number {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isFinite(value)) throw new RangeError(`${name} must be a finite number, got ${value}`);
  return value;
}

export function requireLength(name: string, actual: number, expected: number, shape: string): void {
  if (actual !== expected) {
    throw new RangeError(`${name} has length ${actual} but the shape ${shape} needs ${expected}`);
  }
}

export function requireFloat32Array(name: string, value: unknown): Float32Array {
  if (!(value instanceof Float32Array)) throw new TypeError(`${name} must be a Float32Array`);
  return value;
}

export function requireInt32Array(name: string, value: unknown): Int32Array {
  if (!(value instanceof Int32Array)) throw new TypeError(`${name} must be an Int32Array`);
  return value;
}

/** Throws a RangeError naming the first NaN (and, unless allowed, infinite) element. */
export function requireNoNaN(name: string, values: ArrayLike<number>, allowInfinite = true): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== v) throw new RangeError(`${name}[${i}] is NaN`);
    if (!allowInfinite && (v === Infinity || v === -Infinity)) throw new RangeError(`${name}[${i}] is ${v}`);
  }
}
