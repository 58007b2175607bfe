# Golden vectors from the real references, regenerated on a machine with PyTorch:
#   python3 generate.py OUT_DIR
# casts.bin.gz: for every bfloat16 bit pattern p and five float32 patterns around it (p<<16 | low, low in
#   LOWS), PyTorch's float32 -> float8_e4m3fn, float8_e5m2 and bfloat16 casts.
# quantize.bin.gz: DeepGEMM's reference quantizers (deep_gemm/utils per_token_cast_to_fp8 and
#   per_block_cast_to_fp8, with and without UE8M0 scales) on a float32 input with rows at many magnitudes.
# Layout of each file: a little-endian uint32 header length, a JSON header naming the arrays (name, dtype,
# shape, byte offset), then the raw arrays.
import gzip, json, sys, torch

def align(x, y): return (x + y - 1) // y * y
def ceil_to_ue8m0(x): return torch.pow(2.0, torch.ceil(torch.log2(x.abs())))

def per_token_cast_to_fp8(x, use_ue8m0):
    m, n = x.shape
    padded_n = align(n, 128)
    x_padded = torch.zeros((m, padded_n), dtype=x.dtype)
    x_padded[:, :n] = x
    x_view = x_padded.view(m, -1, 128)
    x_amax = x_view.abs().float().amax(dim=2).view(m, -1).clamp(1e-4)
    sf = x_amax / 448.0
    sf = ceil_to_ue8m0(sf) if use_ue8m0 else sf
    return (x_view * (1.0 / sf.unsqueeze(2))).to(torch.float8_e4m3fn).view(m, padded_n)[:, :n].contiguous(), sf

def per_block_cast_to_fp8(x, use_ue8m0):
    m, n = x.shape
    x_padded = torch.zeros((align(m, 128), align(n, 128)), dtype=x.dtype)
    x_padded[:m, :n] = x
    x_view = x_padded.view(-1, 128, x_padded.size(1) // 128, 128)
    x_amax = x_view.abs().float().amax(dim=(1, 3), keepdim=True).clamp(1e-4)
    sf = x_amax / 448.0
    sf = ceil_to_ue8m0(sf) if use_ue8m0 else sf
    x_scaled = (x_view * (1.0 / sf)).to(torch.float8_e4m3fn)
    return x_scaled.view_as(x_padded)[:m, :n].contiguous(), sf.view(x_view.size(0), x_view.size(2))

def write(path, arrays):
    header, blobs, offset = [], [], 0
    for name, t in arrays:
        t = t.contiguous().cpu()
        raw = t.view(torch.uint8).numpy().tobytes() if t.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) else t.numpy().tobytes()
        header.append({"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "offset": offset, "bytes": len(raw)})
        blobs.append(raw); offset += len(raw)
    h = json.dumps({"torch": torch.__version__, "arrays": header}).encode()
    with open(path, "wb") as raw_file, gzip.GzipFile(fileobj=raw_file, mode="wb", mtime=0) as f:
        f.write(len(h).to_bytes(4, "little")); f.write(h)
        for b in blobs: f.write(b)

out = sys.argv[1]
LOWS = [0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF]
patterns = torch.arange(0, 1 << 16, dtype=torch.int64)
bits = torch.cat([(patterns << 16) | low for low in LOWS]).to(torch.int64)
bits = torch.where(bits >= (1 << 31), bits - (1 << 32), bits).to(torch.int32)
f = bits.view(torch.float32)
write(f"{out}/casts.bin.gz", [
    ("input", f),
    ("e4m3", f.to(torch.float8_e4m3fn)),
    ("e5m2", f.to(torch.float8_e5m2)),
    ("bf16", f.to(torch.bfloat16).view(torch.int16)),
])

g = torch.Generator().manual_seed(20261123)
rows, cols = 260, 300
x = torch.randn(rows, cols, generator=g, dtype=torch.float32)
magnitudes = torch.pow(10.0, torch.linspace(-9, 6, rows)).unsqueeze(1)  # rows from 1e-9 (amax clamp) to 1e6
x = x * magnitudes
x[7, :] = 0.0  # an all-zero row
arrays = [("input", x)]
for ue8m0 in (False, True):
    tag = "pow2" if ue8m0 else "fp32"
    d, s = per_token_cast_to_fp8(x, ue8m0)
    arrays += [(f"token_{tag}_data", d), (f"token_{tag}_scales", s.contiguous())]
    d, s = per_block_cast_to_fp8(x, ue8m0)
    arrays += [(f"block_{tag}_data", d), (f"block_{tag}_scales", s.contiguous())]
write(f"{out}/quantize.bin.gz", arrays)
print("golden vectors written with torch", torch.__version__)
