// The safetensors codec: exact bytes of the writer, round trips of every dtype, the dtype table's typed arrays,
// and the validation of malformed files (truncation, lying offsets, dtype/shape mismatch, overlaps, header size).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DTYPES, DTYPE_INFO, DTYPE_SIZES, bytesOf, tensorByteLength, typedArrayOf } from "./safetensors-dtypes.js";
import { MAX_HEADER_BYTES, SafetensorsFileReader, SafetensorsFileWriter, deserialize, encodeHeader, parseHeader, readHeaderFromFile, serialize } from "./safetensors.js";

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

function fileWithHeader(json: string, dataBytes: number, pad = true): Buffer {
  const j = Buffer.from(json);
  const n = pad ? Math.ceil(j.length / 8) * 8 : j.length;
  const out = Buffer.alloc(8 + n + dataBytes, 0x20);
  out.writeBigUInt64LE(BigInt(n), 0);
  j.copy(out, 8);
  out.fill(0, 8 + n);
  return out;
}

test("byte-exact: one F32 tensor, no metadata, header padded with 2 spaces to 56 bytes", () => {
  const data = new Uint8Array(new Float32Array([1, 2]).buffer);
  const bytes = serialize([{ name: "a", dtype: "F32", shape: [2], data }]);
  const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'; // 54 bytes
  const expected =
    "3800000000000000" + // N = 56, little-endian u64
    Buffer.from(json).toString("hex") +
    "2020" + // padding to a multiple of 8
    "0000803f" + // 1.0f
    "00000040"; // 2.0f
  assert.equal(hex(bytes), expected);
  assert.equal(bytes.length, 8 + 56 + 8);
});

test("byte-exact: __metadata__ first, scalar BF16 and U8 tensors, 7 spaces of padding", () => {
  const bytes = serialize(
    [
      { name: "x", dtype: "BF16", shape: [], data: Uint8Array.from([0x80, 0x3f]) },
      { name: "y", dtype: "U8", shape: [3], data: Uint8Array.from([7, 8, 9]) },
    ],
    { format: "pt" },
  );
  const json =
    '{"__metadata__":{"format":"pt"},"x":{"dtype":"BF16","shape":[],"data_offsets":[0,2]},"y":{"dtype":"U8","shape":[3],"data_offsets":[2,5]}}';
  assert.equal(json.length, 137);
  const expected = "9000000000000000" + Buffer.from(json).toString("hex") + "20".repeat(7) + "803f" + "070809";
  assert.equal(hex(bytes), expected);
  // The data start is 8-byte aligned.
  assert.equal(parseHeader(bytes).dataStart % 8, 0);
});

test("header length is a multiple of 8 for every JSON length", () => {
  for (let len = 1; len <= 20; len++) {
    const name = "t".repeat(len);
    const { header } = encodeHeader([{ name, dtype: "U8", shape: [1] }]);
    assert.equal((header.length - 8) % 8, 0);
    assert.equal(Number(header.readBigUInt64LE(0)), header.length - 8);
    const json = header.subarray(8).toString().trimEnd();
    assert.ok(header.subarray(8 + json.length).every((b) => b === 0x20), "padding is spaces");
  }
});

test("round trip of every dtype, data views are zero-copy", () => {
  const tensors = DTYPES.map((dtype, i) => {
    const shape = [2, i + 1];
    const data = new Uint8Array(tensorByteLength(dtype, shape)).map((_, j) => (j * 31 + i) & 0xff);
    return { name: `t.${dtype}`, dtype, shape, data };
  });
  const bytes = serialize(tensors, { k: "v" });
  const back = deserialize(bytes);
  assert.deepEqual(back.metadata, { k: "v" });
  assert.equal(back.tensors.length, tensors.length);
  for (const [i, t] of back.tensors.entries()) {
    assert.equal(t.name, tensors[i].name);
    assert.equal(t.dtype, tensors[i].dtype);
    assert.deepEqual(t.shape, tensors[i].shape);
    assert.deepEqual(Buffer.from(t.data), Buffer.from(tensors[i].data));
    assert.equal(t.data.buffer, bytes.buffer);
  }
  assert.equal(DTYPE_SIZES.F8_E4M3, 1);
  assert.equal(DTYPE_SIZES.BF16, 2);
  assert.equal(DTYPE_SIZES.I64, 8);
});

test("reads files whose tensors are listed out of buffer order and whose header is unpadded", () => {
  const json = '{"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"a":{"dtype":"I16","shape":[1],"data_offsets":[0,2]}}';
  const f = fileWithHeader(json, 3, false);
  f.set([1, 2, 3], f.length - 3);
  const { tensors } = deserialize(f);
  assert.deepEqual(tensors.map((t) => [t.name, [...t.data]]), [["a", [1, 2]], ["b", [3]]]);
});

test("zero-element tensors", () => {
  const bytes = serialize([
    { name: "e", dtype: "F32", shape: [0, 4], data: new Uint8Array(0) },
    { name: "f", dtype: "U8", shape: [1], data: Uint8Array.of(5) },
  ]);
  const { tensors } = deserialize(bytes);
  assert.deepEqual(tensors.map((t) => t.data.length), [0, 1]);
});

test("rejects malformed files with clear errors", () => {
  const cases: [Buffer, RegExp][] = [
    [Buffer.alloc(4), /too short/],
    [(() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(BigInt(MAX_HEADER_BYTES + 1), 0); return b; })(), /exceeds the 100000000-byte limit/],
    [(() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(1000n, 0); return b; })(), /past the end of the file/],
    [fileWithHeader("[1,2]", 0), /does not start with/],
    [fileWithHeader("{nope", 0), /not valid JSON/],
    [fileWithHeader('{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}', 1), /unknown dtype "Q7"/],
    [fileWithHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4), /span 4 bytes but F32\[2\] needs 8/],
    [fileWithHeader('{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,0]}}', 2), /invalid data_offsets/],
    [fileWithHeader('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', 3), /overlap/],
    [fileWithHeader('{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', 3), /gap before/],
    [fileWithHeader('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 5), /cover 2 bytes but the buffer holds 5/],
    [fileWithHeader('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}', 0), /non-negative integers/],
    [fileWithHeader('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}', 1), /unknown field "x"/],
    [fileWithHeader('{"__metadata__":{"k":1}}', 0), /must be a string/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(() => parseHeader(bytes), (e: Error) => (e instanceof RangeError || e instanceof TypeError) && re.test(e.message), re.source);
  }
});

test("writer refuses bad tensors", () => {
  assert.throws(() => serialize([{ name: "a", dtype: "F32", shape: [2], data: new Uint8Array(7) }]), RangeError);
  // Same byte length, but a Float32Array would be converted value by value instead of copied.
  assert.throws(() => serialize([{ name: "a", dtype: "F32", shape: [2], data: new Float32Array(2) as unknown as Uint8Array }]), /must be a Uint8Array/);
  assert.throws(() => encodeHeader([{ name: "a", dtype: "X" as "F32", shape: [1] }]), TypeError);
  assert.throws(() => encodeHeader([{ name: "a", dtype: "U8", shape: [1] }, { name: "a", dtype: "U8", shape: [1] }]), /duplicate/);
  assert.throws(() => encodeHeader([{ name: "__metadata__", dtype: "U8", shape: [1] }]), /reserved/);
  assert.throws(() => encodeHeader([{ name: "a", dtype: "U8", shape: [1.5] }]), RangeError);
});

test("dtype table: every dtype's typed array holds its elements (C64 as float32 pairs)", () => {
  for (const dtype of DTYPES) {
    const { array, bytes, name } = DTYPE_INFO[dtype];
    assert.equal(name, dtype);
    assert.equal(DTYPE_SIZES[dtype], bytes);
    assert.equal(bytes % array.BYTES_PER_ELEMENT, 0, dtype);
    const data = new Uint8Array(3 * bytes).map((_, i) => i + 1);
    const typed = typedArrayOf(dtype, data);
    assert.equal(typed.byteLength, data.byteLength, dtype);
    assert.deepEqual(Buffer.from(bytesOf(typed)), Buffer.from(data), dtype);
  }
  assert.ok(typedArrayOf("F32", new Uint8Array(8)) instanceof Float32Array);
  assert.ok(typedArrayOf("BF16", new Uint8Array(8)) instanceof Uint16Array);
  assert.ok(typedArrayOf("I64", new Uint8Array(8)) instanceof BigInt64Array);
  assert.equal(typedArrayOf("C64", new Uint8Array(16)).length, 4);
});

test("typedArrayOf: a view where aligned, a copy where not or when asked; bad input refused", () => {
  const file = new Uint8Array(16);
  new Float32Array(file.buffer, 4, 2).set([1.5, -2]);
  const view = typedArrayOf("F32", file.subarray(4, 12));
  assert.deepEqual([...view], [1.5, -2]);
  assert.equal(view.buffer, file.buffer, "aligned bytes are viewed, not copied");
  const copy = typedArrayOf("F32", file.subarray(4, 12), { copy: true });
  assert.notEqual(copy.buffer, file.buffer);
  assert.deepEqual([...copy], [1.5, -2]);
  const odd = new Uint8Array(9);
  odd.set(file.subarray(4, 12), 1);
  const misaligned = typedArrayOf("F32", odd.subarray(1));
  assert.deepEqual([...misaligned], [1.5, -2]);
  assert.notEqual(misaligned.buffer, odd.buffer);
  assert.throws(() => typedArrayOf("F32", new Uint8Array(6)), /6 bytes is not a whole number of 4-byte elements/);
  assert.throws(() => typedArrayOf("Q7" as "F32", new Uint8Array(4)), TypeError);
  assert.throws(() => typedArrayOf("F32", [0, 0, 0, 0] as unknown as Uint8Array), TypeError);
});

test("readHeaderFromFile reads and validates the header only; refuses a truncated file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "octet-safetensors-"));
  try {
    const bytes = serialize([{ name: "w", dtype: "F32", shape: [2, 2], data: new Uint8Array(16) }], { format: "pt" });
    await writeFile(join(dir, "ok.safetensors"), bytes);
    const h = await readHeaderFromFile(join(dir, "ok.safetensors"));
    assert.deepEqual(h.metadata, { format: "pt" });
    assert.deepEqual(h.tensors, [{ name: "w", dtype: "F32", shape: [2, 2], begin: 0, end: 16 }]);
    assert.equal(h.dataStart + h.dataBytes, bytes.length);
    await writeFile(join(dir, "short.safetensors"), bytes.subarray(0, bytes.length - 1));
    await assert.rejects(readHeaderFromFile(join(dir, "short.safetensors")), (e: Error) => e instanceof RangeError && /cover 16 bytes but the buffer holds 15/.test(e.message));
    await writeFile(join(dir, "cut.safetensors"), bytes.subarray(0, 20));
    await assert.rejects(readHeaderFromFile(join(dir, "cut.safetensors")), (e: Error) => e instanceof RangeError && /past the end of the file/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("streaming writer and reader: the same bytes as serialize, tensor by tensor; order, sizes and truncation checked", async () => {
  const dir = await mkdtemp(join(tmpdir(), "octet-safetensors-"));
  try {
    const a = { name: "a", dtype: "F32" as const, shape: [3], data: bytesOf(Float32Array.of(1, 2, 3)) };
    const b = { name: "b.weight", dtype: "BF16" as const, shape: [2, 2], data: bytesOf(Uint16Array.of(1, 2, 3, 4)) };
    const path = join(dir, "s.safetensors");
    const w = await SafetensorsFileWriter.create(path, [a, b], { format: "pt" });
    assert.equal(w.expected, "a");
    await assert.rejects(w.write("b.weight", b.data), /expects "a" next/);
    await assert.rejects(w.write("a", new Uint8Array(4)), /4 data bytes, expected 12/);
    await w.write("a", a.data);
    await w.write("b.weight", b.data);
    await assert.rejects(w.write("c", new Uint8Array(0)), /written already/);
    await w.close();
    assert.deepEqual(await readFile(path), serialize([a, b], { format: "pt" }));
    await assert.rejects(SafetensorsFileWriter.create(path, [a]), /EEXIST/);

    const r = await SafetensorsFileReader.open(path);
    assert.deepEqual(r.tensors.map((t) => t.name), ["a", "b.weight"]);
    assert.deepEqual(r.header.metadata, { format: "pt" });
    const got = await r.read("b.weight");
    assert.deepEqual([got.dtype, got.shape, [...got.data]], ["BF16", [2, 2], [...b.data]]);
    assert.deepEqual(new Float32Array((await r.read("a")).data.buffer), Float32Array.of(1, 2, 3));
    await assert.rejects(r.read("nope"), (e: Error) => e instanceof RangeError && /"nope" is not in/.test(e.message));
    await r.close();

    const partial = await SafetensorsFileWriter.create(join(dir, "p.safetensors"), [a, b]);
    await partial.write("a", a.data);
    await assert.rejects(partial.close(), /1 tensors not written \(next: "b.weight"\)/);

    const bytes = await readFile(path);
    await writeFile(join(dir, "cut.safetensors"), bytes.subarray(0, bytes.length - 3));
    await assert.rejects(SafetensorsFileReader.open(join(dir, "cut.safetensors")), (e: Error) => e instanceof RangeError && /tensor "b.weight" at \[12, 20\] runs past its end/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
