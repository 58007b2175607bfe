// The numerics service's work, independent of the transport: validate a wire header and payload, run the
// library, and lay the results out as bytes. Every problem is a RangeError naming the field, which the
// service scaffolding turns into INVALID_ARGUMENT.

import { type Fp8Format, decodeBf16 } from "../formats.js";
import { type Quantized, type ScaleKind, dequantize, gridShape } from "../quantize.js";
import { quantize } from "../backend.js";

// Wire enums (proto/numerics.proto).
const FORMATS: Record<number, Fp8Format> = { 0: "e4m3", 1: "e4m3", 2: "e5m2" };
const FORMAT_CODES: Record<Fp8Format, number> = { e4m3: 1, e5m2: 2 };
const SCALES: Record<number, ScaleKind> = { 0: "fp32", 1: "fp32", 2: "pow2" };
const DTYPE_BYTES: Record<number, number> = { 0: 4, 1: 4, 2: 2 };

export interface WireQuantizeHeader {
  shape?: number[] | null;
  block?: number[] | null;
  format?: number | null;
  scale?: number | null;
  dtype?: number | null;
}

export interface WireQuantizedHeader {
  shape?: number[] | null;
  block?: number[] | null;
  format?: number | null;
  scaleGrid?: number[] | null;
}

export interface TensorLimits {
  /** Largest tensor (rows · cols) a request may carry. */
  maxElements: number;
}

export class TooLargeError extends Error {
  override name = "TooLargeError";
}

function pair(field: string, value: number[] | null | undefined): [number, number] {
  if (!value || value.length !== 2 || !value.every((v) => Number.isInteger(v) && v > 0)) {
    throw new RangeError(`${field} must be two positive integers, got ${JSON.stringify(value ?? [])}`);
  }
  return [value[0], value[1]];
}

function enumValue<T>(field: string, table: Record<number, T>, value: number | null | undefined): T {
  const v = table[value ?? 0];
  if (v === undefined) throw new RangeError(`${field}: unknown value ${value}`);
  return v;
}

export interface QuantizeJob {
  shape: [number, number];
  block: [number, number];
  format: Fp8Format;
  scale: ScaleKind;
  /** Bytes of input the header promises. */
  inputBytes: number;
  bytesPerElement: number;
}

export function parseQuantizeHeader(header: WireQuantizeHeader | null | undefined, limits: TensorLimits): QuantizeJob {
  if (!header) throw new RangeError("header is required");
  const shape = pair("header.shape", header.shape);
  const block = pair("header.block", header.block);
  const elements = shape[0] * shape[1];
  if (elements > limits.maxElements) throw new TooLargeError(`header.shape [${shape}] has ${elements} elements, above this server's limit of ${limits.maxElements}`);
  const bytesPerElement = enumValue("header.dtype", DTYPE_BYTES, header.dtype);
  return {
    shape,
    block,
    format: enumValue("header.format", FORMATS, header.format),
    scale: enumValue("header.scale", SCALES, header.scale),
    inputBytes: elements * bytesPerElement,
    bytesPerElement,
  };
}

/** Little-endian bytes to float32 values (copying only when the bytes are not 4-aligned). */
function float32FromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Float32Array(new Uint8Array(bytes).buffer);
}

function uint16FromBytes(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return new Uint16Array(new Uint8Array(bytes).buffer);
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export interface QuantizedBytes {
  header: { shape: number[]; block: number[]; format: number; scaleGrid: number[] };
  data: Uint8Array;
  scales: Uint8Array;
}

export function quantizeBytes(job: QuantizeJob, payload: Uint8Array): QuantizedBytes {
  if (payload.byteLength !== job.inputBytes) {
    throw new RangeError(
      `data has ${payload.byteLength} bytes but shape [${job.shape}] of ${job.bytesPerElement === 2 ? "bf16" : "f32"} needs ${job.inputBytes}`,
    );
  }
  const values = job.bytesPerElement === 2 ? decodeBf16(uint16FromBytes(payload)) : float32FromBytes(payload);
  const q = quantize(values, job.shape, { block: job.block, format: job.format, scale: job.scale });
  return {
    header: { shape: q.shape, block: q.block, format: FORMAT_CODES[q.format], scaleGrid: gridShape(q.shape, q.block) },
    data: q.data,
    scales: bytesOf(q.scales),
  };
}

export interface DequantizeJob {
  shape: [number, number];
  block: [number, number];
  format: Fp8Format;
  dataBytes: number;
  scaleBytes: number;
}

export function parseQuantizedHeader(header: WireQuantizedHeader | null | undefined, limits: TensorLimits): DequantizeJob {
  if (!header) throw new RangeError("header is required");
  const shape = pair("header.shape", header.shape);
  const block = pair("header.block", header.block);
  const elements = shape[0] * shape[1];
  if (elements > limits.maxElements) throw new TooLargeError(`header.shape [${shape}] has ${elements} elements, above this server's limit of ${limits.maxElements}`);
  const grid = gridShape(shape, block);
  if (header.scaleGrid && header.scaleGrid.length > 0 && (header.scaleGrid.length !== 2 || header.scaleGrid[0] !== grid[0] || header.scaleGrid[1] !== grid[1])) {
    throw new RangeError(`header.scale_grid [${header.scaleGrid}] does not match shape [${shape}] in [${block}] blocks, which is [${grid}]`);
  }
  return { shape, block, format: enumValue("header.format", FORMATS, header.format), dataBytes: elements, scaleBytes: grid[0] * grid[1] * 4 };
}

export function dequantizeBytes(job: DequantizeJob, data: Uint8Array, scales: Uint8Array): Uint8Array {
  if (data.byteLength !== job.dataBytes) throw new RangeError(`data has ${data.byteLength} codes but shape [${job.shape}] needs ${job.dataBytes}`);
  if (scales.byteLength !== job.scaleBytes) {
    throw new RangeError(`scales has ${scales.byteLength} bytes but the block grid of shape [${job.shape}] in [${job.block}] blocks needs ${job.scaleBytes} (float32)`);
  }
  const q: Quantized = { data, scales: float32FromBytes(scales), shape: job.shape, block: job.block, format: job.format };
  return bytesOf(dequantize(q));
}

/** Concatenate chunks that arrive in order, refusing more bytes than promised. */
export class ByteAssembler {
  private readonly buffer: Uint8Array;
  private filled = 0;

  constructor(readonly field: string, readonly expected: number) {
    this.buffer = new Uint8Array(expected);
  }

  append(chunk: Uint8Array | null | undefined): void {
    if (!chunk || chunk.byteLength === 0) return;
    if (this.filled + chunk.byteLength > this.expected) {
      throw new RangeError(`${this.field}: received more than the ${this.expected} bytes the header's shape needs`);
    }
    this.buffer.set(chunk, this.filled);
    this.filled += chunk.byteLength;
  }

  finish(): Uint8Array {
    if (this.filled !== this.expected) throw new RangeError(`${this.field}: received ${this.filled} bytes but the header's shape needs ${this.expected}`);
    return this.buffer;
  }
}

/** Split bytes into slices of at most `size` (views, no copies). */
export function* slices(bytes: Uint8Array, size: number): Generator<Uint8Array> {
  for (let offset = 0; offset < bytes.byteLength; offset += size) yield bytes.subarray(offset, Math.min(offset + size, bytes.byteLength));
}
