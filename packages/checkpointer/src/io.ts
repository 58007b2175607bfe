// Large sequential writes and reads that hash the bytes in the same pass: the hash of chunk i runs on the main
// thread while the libuv thread pool writes (or reads) it, so checksums cost little next to the I/O itself.

import { createHash } from "node:crypto";
import type { ObjectReader, ObjectSink } from "./storage.js";

/** Size of the pieces handed to the filesystem. */
export const IO_CHUNK_BYTES = 32 * 1024 * 1024;

/** Writes byte arrays to a sink in large pieces, coalescing small ones, hashing everything written. */
export class HashingWriter {
  private readonly hash = createHash("sha256");
  private buf: Buffer | undefined;
  private fill = 0;
  bytes = 0;

  constructor(
    private readonly sink: ObjectSink,
    private readonly chunkBytes = IO_CHUNK_BYTES,
  ) {}

  private async emit(piece: Uint8Array): Promise<void> {
    const w = this.sink.write(piece);
    this.hash.update(piece);
    this.bytes += piece.byteLength;
    await w;
  }

  private async flush(): Promise<void> {
    if (this.buf && this.fill > 0) {
      const b = this.buf.subarray(0, this.fill);
      await this.emit(b);
      // The sink is done with it once write() settled; reuse the buffer.
      this.fill = 0;
    }
  }

  async write(data: Uint8Array): Promise<void> {
    if (data.byteLength >= this.chunkBytes / 4) {
      await this.flush();
      for (let off = 0; off < data.byteLength; off += this.chunkBytes) {
        await this.emit(data.subarray(off, Math.min(data.byteLength, off + this.chunkBytes)));
      }
      return;
    }
    this.buf ??= Buffer.allocUnsafe(this.chunkBytes);
    if (this.fill + data.byteLength > this.chunkBytes) await this.flush();
    this.buf.set(data, this.fill);
    this.fill += data.byteLength;
  }

  /** Flushes, closes (fsyncs) the sink and returns the byte count and SHA-256 hex of everything written. */
  async finish(): Promise<{ bytes: number; sha256: string }> {
    await this.flush();
    await this.sink.close();
    return { bytes: this.bytes, sha256: this.hash.digest("hex") };
  }
}

/** Reads a whole object into memory, hashing it in the same pass. */
export async function readAllHashed(reader: ObjectReader, chunkBytes = IO_CHUNK_BYTES): Promise<{ data: Buffer; sha256: string }> {
  const data = Buffer.allocUnsafe(reader.size);
  const hash = createHash("sha256");
  let pos = 0;
  let prev: Buffer | undefined;
  while (pos < reader.size) {
    const len = Math.min(chunkBytes, reader.size - pos);
    const piece = data.subarray(pos, pos + len);
    const r = readFully(reader, piece, pos);
    if (prev) hash.update(prev);
    await r;
    prev = piece;
    pos += len;
  }
  if (prev) hash.update(prev);
  return { data, sha256: hash.digest("hex") };
}

/** Hashes an object without keeping it, with two buffers so that reading and hashing overlap. */
export async function hashObject(reader: ObjectReader, chunkBytes = IO_CHUNK_BYTES): Promise<string> {
  const hash = createHash("sha256");
  const bufs = [Buffer.allocUnsafe(Math.min(chunkBytes, reader.size)), Buffer.allocUnsafe(Math.min(chunkBytes, reader.size))];
  let pos = 0;
  let i = 0;
  let prev: Buffer | undefined;
  while (pos < reader.size) {
    const len = Math.min(chunkBytes, reader.size - pos);
    const piece = bufs[i].subarray(0, len);
    const r = readFully(reader, piece, pos);
    if (prev) hash.update(prev);
    await r;
    prev = piece;
    pos += len;
    i ^= 1;
  }
  if (prev) hash.update(prev);
  return hash.digest("hex");
}

export async function readFully(reader: ObjectReader, into: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < into.length) {
    const n = await reader.read(into.subarray(off), position + off, into.length - off);
    if (n === 0) throw new Error(`unexpected end of object at byte ${position + off}`);
    off += n;
  }
}
