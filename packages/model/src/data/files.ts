// Real data: UTF-8 text as byte-level tokens, and llm.c / nanoGPT-style uint16 token shards.
//
// llm.c's shard format (dev/data/data_common.py, write_datafile): a header of 256 little-endian int32
// — [0] magic 20240520, [1] version 1, [2] number of tokens, the rest zero — then the tokens as
// little-endian uint16. (llm.c's version 2 stores uint32 tokens for larger vocabularies; it is refused
// here with its own message, since these loaders produce Uint16Array.)

import { readFile, writeFile, rename } from "node:fs/promises";
import { basename } from "node:path";

export const LLMC_MAGIC = 20240520;
export const LLMC_VERSION = 1;
export const LLMC_HEADER_INTS = 256;
export const LLMC_HEADER_BYTES = LLMC_HEADER_INTS * 4;

export interface TokenDataset {
  name: string;
  vocabSize: number;
  train: Uint16Array;
  val: Uint16Array;
}

export interface SplitOptions {
  /** Fraction of the tokens held out as validation (the tail), in [0, 1). Default 0.1. */
  valFraction?: number;
}

/** Splits `tokens` into train (head) and val (the last ⌊valFraction·n⌋ tokens); views, no copy. */
export function splitTrainVal(tokens: Uint16Array, valFraction = 0.1): { train: Uint16Array; val: Uint16Array } {
  if (!(tokens instanceof Uint16Array)) throw new TypeError("splitTrainVal: tokens must be a Uint16Array");
  if (typeof valFraction !== "number" || !(valFraction >= 0 && valFraction < 1)) {
    throw new RangeError(`splitTrainVal: valFraction must be in [0, 1), got ${String(valFraction)}`);
  }
  const nVal = Math.floor(tokens.length * valFraction);
  return { train: tokens.subarray(0, tokens.length - nVal), val: tokens.subarray(tokens.length - nVal) };
}

/** Bytes of a UTF-8 encoding as tokens 0..255. */
export function encodeBytes(text: string): Uint16Array {
  return Uint16Array.from(Buffer.from(text, "utf8"));
}

/** Byte-level tokens back to text (invalid UTF-8, e.g. a cut multi-byte character, becomes U+FFFD). */
export function decodeBytes(tokens: ArrayLike<number>): string {
  const bytes = new Uint8Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t > 255) throw new RangeError(`decodeBytes: token ${t} at ${i} is not a byte (0..255)`);
    bytes[i] = t;
  }
  return new TextDecoder("utf-8").decode(bytes);
}

/**
 * A UTF-8 text file as byte-level tokens (vocabulary 256), split into train and val. The file must be
 * valid UTF-8 (a RangeError names the file and the byte offset otherwise) and not empty.
 */
export async function loadTextFile(path: string, options: SplitOptions = {}): Promise<TokenDataset> {
  if (typeof path !== "string" || path === "") throw new TypeError("loadTextFile: path must be a non-empty string");
  const buf = await readFile(path);
  if (buf.length === 0) throw new RangeError(`loadTextFile: ${path} is empty`);
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    let offset = 0;
    // Locate the first invalid byte for the message (decode growing prefixes by chunk boundaries).
    for (let i = 0; i < buf.length; i++) {
      const b = buf[i];
      const len = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
      let ok = len > 0 && i + len <= buf.length;
      for (let j = 1; ok && j < len; j++) ok = (buf[i + j] & 0xc0) === 0x80;
      if (ok) {
        try {
          new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(i, i + len));
        } catch {
          ok = false;
        }
      }
      if (!ok) {
        offset = i;
        break;
      }
      i += len - 1;
    }
    throw new RangeError(`loadTextFile: ${path} is not valid UTF-8 (first bad byte at offset ${offset})`);
  }
  const tokens = Uint16Array.from(buf);
  const { train, val } = splitTrainVal(tokens, options.valFraction ?? 0.1);
  return { name: `text:${basename(path)}`, vocabSize: 256, train, val };
}

/** Reads one llm.c token shard (version 1, uint16 tokens). */
export async function loadLlmcShard(path: string): Promise<Uint16Array> {
  if (typeof path !== "string" || path === "") throw new TypeError("loadLlmcShard: path must be a non-empty string");
  const buf = await readFile(path);
  return parseLlmcShard(buf, path);
}

/** Parses the bytes of an llm.c shard; `name` is used in error messages. */
export function parseLlmcShard(buf: Uint8Array, name = "shard"): Uint16Array {
  if (buf.length < LLMC_HEADER_BYTES) {
    throw new RangeError(`llm.c shard ${name}: ${buf.length} bytes is shorter than the ${LLMC_HEADER_BYTES}-byte header`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getInt32(0, true);
  if (magic !== LLMC_MAGIC) throw new RangeError(`llm.c shard ${name}: bad magic ${magic} (want ${LLMC_MAGIC})`);
  const version = view.getInt32(4, true);
  if (version === 2) throw new RangeError(`llm.c shard ${name}: version 2 (uint32 tokens) is not supported; want version ${LLMC_VERSION} (uint16 tokens)`);
  if (version !== LLMC_VERSION) throw new RangeError(`llm.c shard ${name}: unsupported version ${version} (want ${LLMC_VERSION})`);
  const n = view.getInt32(8, true);
  if (n < 0) throw new RangeError(`llm.c shard ${name}: negative token count ${n} in the header`);
  const want = LLMC_HEADER_BYTES + 2 * n;
  if (buf.length !== want) {
    throw new RangeError(
      `llm.c shard ${name}: the header says ${n} tokens (${want} bytes in all) but the file has ${buf.length} bytes` +
        (buf.length < want ? " (truncated?)" : " (trailing data)"),
    );
  }
  const tokens = new Uint16Array(n);
  for (let i = 0; i < n; i++) tokens[i] = view.getUint16(LLMC_HEADER_BYTES + 2 * i, true);
  return tokens;
}

/** Serializes tokens as an llm.c shard (version 1). */
export function encodeLlmcShard(tokens: ArrayLike<number>): Buffer {
  if (tokens === null || typeof tokens !== "object" || typeof tokens.length !== "number") {
    throw new TypeError("encodeLlmcShard: tokens must be an array-like of integers");
  }
  if (tokens.length > 0x7fffffff) throw new RangeError(`encodeLlmcShard: ${tokens.length} tokens do not fit the int32 count`);
  const buf = Buffer.alloc(LLMC_HEADER_BYTES + 2 * tokens.length);
  buf.writeInt32LE(LLMC_MAGIC, 0);
  buf.writeInt32LE(LLMC_VERSION, 4);
  buf.writeInt32LE(tokens.length, 8);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t > 0xffff) throw new RangeError(`encodeLlmcShard: token ${t} at ${i} does not fit uint16`);
    buf.writeUInt16LE(t, LLMC_HEADER_BYTES + 2 * i);
  }
  return buf;
}

/** Writes tokens as an llm.c shard (version 1), atomically (temporary file, then rename). */
export async function writeLlmcShard(path: string, tokens: ArrayLike<number>): Promise<void> {
  if (typeof path !== "string" || path === "") throw new TypeError("writeLlmcShard: path must be a non-empty string");
  const buf = encodeLlmcShard(tokens);
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, buf);
  await rename(tmp, path);
}

export interface LlmcDatasetOptions {
  /** Train shards, concatenated in the given order. */
  train: string[];
  /** Val shards, concatenated in order. */
  val: string[];
  /** Vocabulary size; default: one more than the largest token seen (GPT-2 shards: pass 50257). */
  vocabSize?: number;
}

/** A dataset from llm.c shards (nanoGPT/llm.c layout: *_train_*.bin and *_val_*.bin). */
export async function loadLlmcDataset(options: LlmcDatasetOptions): Promise<TokenDataset> {
  const { train: trainPaths, val: valPaths } = options;
  if (!Array.isArray(trainPaths) || trainPaths.length === 0) throw new TypeError("loadLlmcDataset: train must be a non-empty array of shard paths");
  if (!Array.isArray(valPaths)) throw new TypeError("loadLlmcDataset: val must be an array of shard paths");
  const concat = (parts: Uint16Array[]): Uint16Array => {
    const out = new Uint16Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const train = concat(await Promise.all(trainPaths.map(loadLlmcShard)));
  const val = concat(await Promise.all(valPaths.map(loadLlmcShard)));
  let max = -1;
  for (const arr of [train, val]) for (let i = 0; i < arr.length; i++) if (arr[i] > max) max = arr[i];
  const vocabSize = options.vocabSize ?? max + 1;
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 65536) throw new RangeError(`loadLlmcDataset: vocabSize must be in [1, 65536], got ${vocabSize}`);
  if (max >= vocabSize) throw new RangeError(`loadLlmcDataset: token ${max} is outside the vocabulary of ${vocabSize}`);
  return { name: `llmc:${basename(trainPaths[0])}`, vocabSize, train, val };
}
