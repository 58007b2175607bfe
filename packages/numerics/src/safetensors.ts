// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON header (padded with spaces to
// a multiple of 8, as Hugging Face's writer does), then the byte buffer. The header maps tensor names to
// {dtype, shape, data_offsets: [begin, end]} (relative to the buffer) plus an optional "__metadata__" string map.
// Tensors are contiguous, in order, non-overlapping, and cover the buffer exactly.
//
// The one codec of the repository: the checkpointer's shards and the model's state files are both written and
// read here. Bad input throws TypeError (wrong kind of value) or RangeError (sizes and offsets that do not add up).

import { type FileHandle, open } from "node:fs/promises";
import { type Tensor, type TensorSpec, checkDType, tensorByteLength } from "./safetensors-dtypes.js";

/** Hugging Face's limit on the header size; larger headers are refused before being read. */
export const MAX_HEADER_BYTES = 100_000_000;
export const METADATA_KEY = "__metadata__";

export interface TensorEntry extends TensorSpec {
  /** Byte offsets relative to the start of the buffer that follows the header. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Tensors in buffer order. */
  tensors: TensorEntry[];
  metadata: Record<string, string> | undefined;
  /** Size of the whole header region, 8 + N: where the buffer begins in the file. */
  dataStart: number;
  /** Length of the byte buffer. */
  dataBytes: number;
}

function checkMetadata(metadata: unknown): Record<string, string> {
  if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
    throw new TypeError(`${METADATA_KEY} must be an object of string values`);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new TypeError(`${METADATA_KEY}[${JSON.stringify(k)}] must be a string`);
  }
  return metadata as Record<string, string>;
}

/**
 * Builds the header bytes (the 8-byte length prefix included) for tensors laid out in the given order.
 * Returns the header and each tensor's [begin, end) offsets within the buffer.
 */
export function encodeHeader(
  specs: readonly TensorSpec[],
  metadata?: Record<string, string>,
): { header: Buffer; entries: TensorEntry[]; dataBytes: number } {
  const obj: Record<string, unknown> = {};
  if (metadata !== undefined) obj[METADATA_KEY] = checkMetadata(metadata);
  const entries: TensorEntry[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const s of specs) {
    if (typeof s.name !== "string" || s.name.length === 0) throw new TypeError("tensor name must be a non-empty string");
    if (s.name === METADATA_KEY) throw new RangeError(`tensor name ${METADATA_KEY} is reserved`);
    if (seen.has(s.name)) throw new RangeError(`duplicate tensor name ${JSON.stringify(s.name)}`);
    seen.add(s.name);
    const dtype = checkDType(s.dtype, `tensor ${JSON.stringify(s.name)}`);
    const bytes = tensorByteLength(dtype, s.shape, `tensor ${JSON.stringify(s.name)} shape`);
    const e: TensorEntry = { name: s.name, dtype, shape: [...s.shape], begin: offset, end: offset + bytes };
    entries.push(e);
    obj[s.name] = { dtype, shape: e.shape, data_offsets: [e.begin, e.end] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(obj), "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) throw new RangeError(`header of ${padded} bytes exceeds ${MAX_HEADER_BYTES}`);
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  return { header, entries, dataBytes: offset };
}

/** Length of the header JSON region from the first 8 bytes; throws on a header above the limit. */
export function readHeaderLength(prefix: Uint8Array, fileBytes?: number): number {
  if (prefix.length < 8) throw new RangeError(`file too short for a safetensors header (${prefix.length} bytes)`);
  const n = Buffer.from(prefix.buffer, prefix.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new RangeError(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const len = Number(n);
  if (fileBytes !== undefined && 8 + len > fileBytes) {
    throw new RangeError(`header length ${len} runs past the end of the file (${fileBytes} bytes)`);
  }
  return len;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

/**
 * Parses and validates a header's JSON bytes (without the 8-byte prefix). `dataBytes`, when known, is the
 * length of the buffer that follows; the tensors must cover it exactly.
 */
export function parseHeaderJson(json: Uint8Array, dataBytes?: number): Omit<SafetensorsHeader, "dataStart"> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  } catch {
    throw new TypeError("header is not valid UTF-8");
  }
  if (!text.startsWith("{")) throw new TypeError("header does not start with '{'");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TypeError(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new TypeError("header is not a JSON object");
  let metadata: Record<string, string> | undefined;
  const tensors: TensorEntry[] = [];
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = checkMetadata(raw);
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (name.length === 0) throw new TypeError("empty tensor name");
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new TypeError(`${where}: entry is not an object`);
    const info = raw as Record<string, unknown>;
    for (const k of Object.keys(info)) {
      if (k !== "dtype" && k !== "shape" && k !== "data_offsets") throw new TypeError(`${where}: unknown field ${JSON.stringify(k)}`);
    }
    const dtype = checkDType(info.dtype, where);
    if (!Array.isArray(info.shape) || !info.shape.every(isNonNegInt)) {
      throw new TypeError(`${where}: shape must be an array of non-negative integers`);
    }
    const shape = info.shape as number[];
    const off = info.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !isNonNegInt(off[0]) || !isNonNegInt(off[1])) {
      throw new TypeError(`${where}: data_offsets must be [begin, end] non-negative integers`);
    }
    const [begin, end] = off as [number, number];
    if (end < begin) throw new RangeError(`${where}: invalid data_offsets [${begin}, ${end}]`);
    const expected = tensorByteLength(dtype, shape, `${where} shape`);
    if (end - begin !== expected) {
      throw new RangeError(
        `${where}: data_offsets span ${end - begin} bytes but ${dtype}[${shape.join(", ")}] needs ${expected}`,
      );
    }
    tensors.push({ name, dtype, shape, begin, end });
  }
  // Stable sort by begin: zero-length tensors sharing an offset keep header order.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of tensors) {
    if (t.begin !== cursor) {
      throw new RangeError(
        t.begin < cursor
          ? `tensor ${JSON.stringify(t.name)}: data_offsets [${t.begin}, ${t.end}] overlap the previous tensor`
          : `tensor ${JSON.stringify(t.name)}: gap before data_offsets [${t.begin}, ${t.end}] (expected begin ${cursor})`,
      );
    }
    cursor = t.end;
  }
  if (dataBytes !== undefined && cursor !== dataBytes) {
    // A truncated file: name the first tensor whose bytes are not all there.
    const cut = cursor > dataBytes ? tensors.find((t) => t.end > dataBytes) : undefined;
    throw new RangeError(
      `tensors cover ${cursor} bytes but the buffer holds ${dataBytes}` +
        (cut ? ` (tensor ${JSON.stringify(cut.name)} at [${cut.begin}, ${cut.end}] runs past its end)` : ""),
    );
  }
  return { tensors, metadata, dataBytes: cursor };
}

/** Parses a whole in-memory safetensors file's header. */
export function parseHeader(file: Uint8Array): SafetensorsHeader {
  const n = readHeaderLength(file, file.length);
  const h = parseHeaderJson(file.subarray(8, 8 + n), file.length - 8 - n);
  return { ...h, dataStart: 8 + n };
}

/** Serializes tensors (in the given order) into one safetensors byte array. */
export function serialize(tensors: readonly Tensor[], metadata?: Record<string, string>): Buffer {
  const { header, entries, dataBytes } = encodeHeader(tensors, metadata);
  const out = Buffer.allocUnsafe(header.length + dataBytes);
  header.copy(out, 0);
  tensors.forEach((t, i) => {
    const e = entries[i];
    // A typed array here would be converted element by element by Buffer#set, not copied as bytes.
    if (!(t.data instanceof Uint8Array)) throw new TypeError(`tensor ${JSON.stringify(t.name)}: data must be a Uint8Array (bytesOf(array) gives one)`);
    if (t.data.byteLength !== e.end - e.begin) {
      throw new RangeError(`tensor ${JSON.stringify(t.name)}: ${t.data.byteLength} data bytes, expected ${e.end - e.begin}`);
    }
    out.set(t.data, header.length + e.begin);
  });
  return out;
}

/** Parses an in-memory safetensors file; tensor data are views into `file` (zero-copy). */
export function deserialize(file: Uint8Array): { tensors: Tensor[]; metadata: Record<string, string> | undefined } {
  const h = parseHeader(file);
  return {
    metadata: h.metadata,
    tensors: h.tensors.map((e) => ({
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      data: file.subarray(h.dataStart + e.begin, h.dataStart + e.end),
    })),
  };
}

/** The validated header of an open safetensors file (checked against the file's size). */
async function readHeaderOf(fh: FileHandle): Promise<SafetensorsHeader> {
  const { size } = await fh.stat();
  const prefix = Buffer.alloc(8);
  const { bytesRead } = await fh.read(prefix, 0, 8, 0);
  const n = readHeaderLength(prefix.subarray(0, bytesRead), size);
  const json = Buffer.alloc(n);
  const r = await fh.read(json, 0, n, 8);
  if (r.bytesRead !== n) throw new RangeError("short read of the safetensors header");
  const h = parseHeaderJson(json, size - 8 - n);
  return { ...h, dataStart: 8 + n };
}

/** Reads and validates the header of a safetensors file on disk, without reading the buffer. */
export async function readHeaderFromFile(path: string): Promise<SafetensorsHeader> {
  const fh = await open(path, "r");
  try {
    return await readHeaderOf(fh);
  } finally {
    await fh.close();
  }
}

/**
 * A safetensors file on disk read tensor by tensor: the header is read and validated once (against the file's
 * size, so a truncated file is refused naming the tensor it cuts), then each read fetches one tensor's bytes.
 * Never holds more than the tensor asked for.
 */
export class SafetensorsFileReader {
  private readonly byName: Map<string, TensorEntry>;

  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    private readonly fh: FileHandle,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  static async open(path: string): Promise<SafetensorsFileReader> {
    const fh = await open(path, "r");
    try {
      return new SafetensorsFileReader(path, await readHeaderOf(fh), fh);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Tensors in buffer order. */
  get tensors(): readonly TensorEntry[] {
    return this.header.tensors;
  }

  entry(name: string): TensorEntry | undefined {
    return this.byName.get(name);
  }

  /** One tensor's bytes (its own buffer); a RangeError naming the tensor when it is absent or cut short. */
  async read(name: string): Promise<Tensor> {
    const e = this.byName.get(name);
    if (!e) throw new RangeError(`tensor ${JSON.stringify(name)} is not in ${this.path}`);
    const data = new Uint8Array(e.end - e.begin);
    let off = 0;
    while (off < data.length) {
      const { bytesRead } = await this.fh.read(data, off, data.length - off, this.header.dataStart + e.begin + off);
      if (bytesRead === 0) throw new RangeError(`tensor ${JSON.stringify(name)}: ${this.path} ends after ${off} of its ${data.length} bytes`);
      off += bytesRead;
    }
    return { name: e.name, dtype: e.dtype, shape: [...e.shape], data };
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/**
 * A safetensors file written tensor by tensor: the header (every tensor's dtype and shape, so every offset)
 * first, then each tensor's bytes in the order of `specs`. The file is created exclusively (an existing file
 * is an error); close() checks that every tensor was written and syncs it to disk.
 */
export class SafetensorsFileWriter {
  private next = 0;

  private constructor(
    readonly path: string,
    private readonly entries: TensorEntry[],
    private readonly fh: FileHandle,
    private position: number,
  ) {}

  static async create(path: string, specs: readonly TensorSpec[], metadata?: Record<string, string>): Promise<SafetensorsFileWriter> {
    const { header, entries } = encodeHeader(specs, metadata);
    const fh = await open(path, "wx");
    try {
      await fh.write(header, 0, header.length, 0);
    } catch (e) {
      await fh.close();
      throw e;
    }
    return new SafetensorsFileWriter(path, entries, fh, header.length);
  }

  /** The name of the tensor write() expects next (undefined once all are written). */
  get expected(): string | undefined {
    return this.entries[this.next]?.name;
  }

  async write(name: string, data: Uint8Array): Promise<void> {
    const e = this.entries[this.next];
    if (!e) throw new RangeError(`tensor ${JSON.stringify(name)}: every tensor of ${this.path} is written already`);
    if (e.name !== name) throw new RangeError(`tensor ${JSON.stringify(name)}: ${this.path} expects ${JSON.stringify(e.name)} next`);
    if (!(data instanceof Uint8Array)) throw new TypeError(`tensor ${JSON.stringify(name)}: data must be a Uint8Array (bytesOf(array) gives one)`);
    if (data.byteLength !== e.end - e.begin) {
      throw new RangeError(`tensor ${JSON.stringify(name)}: ${data.byteLength} data bytes, expected ${e.end - e.begin}`);
    }
    let off = 0;
    while (off < data.byteLength) {
      const { bytesWritten } = await this.fh.write(data, off, data.byteLength - off, this.position + off);
      off += bytesWritten;
    }
    this.position += data.byteLength;
    this.next++;
  }

  /** Checks that every tensor was written, syncs and closes; the file is complete after this. */
  async close(): Promise<void> {
    if (this.next !== this.entries.length) {
      await this.fh.close();
      throw new RangeError(`${this.path}: ${this.entries.length - this.next} tensors not written (next: ${JSON.stringify(this.entries[this.next].name)})`);
    }
    await this.fh.sync();
    await this.fh.close();
  }

  /** Closes without the checks (the caller removes the partial file). */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}
