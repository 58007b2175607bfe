#!/usr/bin/env python3
"""PyTorch peers of the @octet/numerics CUDA kernels, measured on the same GPU in the same run as bench.mjs.

- device-to-device copy bandwidth (bytes read + written), 117 MiB (the bf16 input's size) and 512 MiB;
- the reference 1x128 quantizer (DeepGEMM's per_token_cast_to_fp8: amax clamped at 1e-4, sf = amax / 448,
  x * (1 / sf) cast to e4m3; pow2 scales rounded up on the float32 bits as src/quantize.ts does), eager and under
  torch.compile, on 8192x7168 bf16 (GB/s, bytes read + written);
- a bit-for-bit comparison of that quantizer (eager) with the sample bench.mjs wrote (--xcheck DIR);
- torch._scaled_mm with 1x128 / 128x128 block scales (cuBLASLt; scale_a [M, K/128] column-major, scale_b
  [N/128, K/128] passed transposed) and bf16 torch.matmul on DeepSeek-V3's shapes (TFLOP/s), each result checked
  against a float64 product on sampled rows so a wrong layout cannot pass unnoticed.
Timing as in bench.mjs: calls captured into a CUDA graph (operands rotated among enough copies to exceed twice the
L2), replayed after a warm-up, CUDA events around each replay, median. Prints JSON with --json PATH.
$OCTET_GPU_DEADLINE (epoch ms) time-boxes the run.
"""
import argparse
import datetime
import json
import math
import os
import time

import torch

T0 = time.time()
REPS = int(os.environ.get("OCTET_BENCH_REPS", "7"))
DSV3_NK = [(2112, 7168), (24576, 1536), (32768, 512), (7168, 16384), (4096, 7168), (7168, 2048)]
DSV3_M = [64, 128, 4096]
skipped = []


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def time_left_ms():
    d = os.environ.get("OCTET_GPU_DEADLINE")
    return float(d) - time.time() * 1000 if d else math.inf


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if s else float("nan")


def timed(fn, sets=1, graph=True):
    """Median milliseconds of one call fn(i) (i rotates operand sets)."""
    for i in range(sets):
        fn(i)
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    est = []
    for _ in range(3):
        s.record()
        fn(0)
        e.record()
        e.synchronize()
        est.append(s.elapsed_time(e))
    iters = min(64, max(4, math.ceil(4 / max(median(est), 1e-3))))
    iters = math.ceil(iters / sets) * sets
    if graph:
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for i in range(sets):
                    fn(i)
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                for i in range(iters):
                    fn(i)
            for _ in range(2):
                g.replay()
            times = []
            for _ in range(REPS):
                s.record()
                g.replay()
                e.record()
                e.synchronize()
                times.append(s.elapsed_time(e) / iters)
            return {"ms": median(times), "min": min(times), "max": max(times), "iters": iters, "method": "graph"}
        except Exception as ex:  # noqa: BLE001 — fall back on a plain loop
            method = f"loop (graph capture failed: {str(ex)[:120]})"
    else:
        method = "loop"
    times = []
    for _ in range(REPS):
        s.record()
        for i in range(iters):
            fn(i)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / iters)
    return {"ms": median(times), "min": min(times), "max": max(times), "iters": iters, "method": method}


# ---- the reference quantizers (DeepGEMM semantics, float32 throughout) ------------------------------------------------

def ceil_pow2_bits(sf):
    """2^ceil(log2 sf) on the float32 bits (src/quantize.ts ceilToPow2): exponent + 1 when the mantissa is non-zero."""
    bits = sf.view(torch.int32)
    up = (bits & 0x7F800000) + 0x800000
    return torch.where((bits & 0x7FFFFF) != 0, up, bits).view(torch.float32)


def per_token_cast_to_fp8(x, pow2=False, exact_div=False):
    """DeepGEMM's per_token_cast_to_fp8 as written. On CUDA, `amax / 448.0` (a tensor divided by a Python scalar)
    is computed as amax * (1/448), not the correctly rounded quotient; exact_div=True divides by a tensor instead,
    which rounds correctly — the definition of the CPU path (and of PyTorch on CPU tensors)."""
    m, n = x.shape
    pad = (-n) % 128
    xp = torch.nn.functional.pad(x, (0, pad)) if pad else x
    xv = xp.view(m, -1, 128)
    amax = xv.abs().float().amax(dim=2).view(m, -1).clamp(1e-4)
    sf = amax / torch.full_like(amax, 448.0) if exact_div else amax / 448.0
    if pow2:
        sf = ceil_pow2_bits(sf)
    q = (xv * (1.0 / sf.unsqueeze(2))).to(torch.float8_e4m3fn).view(m, -1)
    return (q[:, :n].contiguous() if pad else q), sf


def per_block_cast_to_fp8(x):
    m, n = x.shape
    mp, np_ = math.ceil(m / 128) * 128, math.ceil(n / 128) * 128
    xp = torch.zeros((mp, np_), dtype=x.dtype, device=x.device)
    xp[:m, :n] = x
    xv = xp.view(mp // 128, 128, np_ // 128, 128)
    amax = xv.abs().float().amax(dim=(1, 3), keepdim=True).clamp(1e-4)
    sf = amax / 448.0
    q = (xv * (1.0 / sf)).to(torch.float8_e4m3fn).view(mp, np_)[:m, :n].contiguous()
    return q, sf.view(mp // 128, np_ // 128)


def dequant_rows(q, sf, rows, block_rows):
    """float64 rows of a quantized matrix (1x128 tiles: block_rows=1; 128x128 blocks: 128)."""
    idx = torch.tensor(rows, device=q.device)
    vals = q.view(torch.uint8).index_select(0, idx).view(torch.float8_e4m3fn).to(torch.float32).to(torch.float64)
    k = vals.shape[1]
    s = sf[[r // block_rows for r in rows]].to(torch.float64)
    return vals * s.repeat_interleave(128, dim=1)[:, :k]


# ---- benchmarks ---------------------------------------------------------------------------------------------------------

def bench_copy():
    out = []
    for name, n in [("copy 112 MiB (the bf16 input's bytes)", 8192 * 7168 * 2), ("copy 512 MiB", 1 << 29)]:
        src = torch.empty(n, dtype=torch.uint8, device="cuda").random_(0, 255)
        dst = torch.empty_like(src)
        t = timed(lambda i: dst.copy_(src))
        out.append({"name": name, "bytes": 2 * n, "ms": t["ms"], "GBps": 2 * n / t["ms"] / 1e6, "timing": t})
        log(f"  {name:48s} {t['ms'] * 1000:8.1f} us {2 * n / t['ms'] / 1e6:7.0f} GB/s ({t['method']})")
        del src, dst
    return out


def bench_quantizer():
    R, C = 8192, 7168
    x = torch.randn(R, C, device="cuda", dtype=torch.bfloat16)
    nbytes = 2 * R * C + R * C + 4 * R * (C // 128)
    out = []
    t = timed(lambda i: per_token_cast_to_fp8(x), graph=False)
    out.append({"name": "reference quantizer, eager", "bytes": nbytes, "ms": t["ms"], "GBps": nbytes / t["ms"] / 1e6, "timing": t})
    log(f"  eager quantizer 1x128 bf16->e4m3            {t['ms'] * 1000:8.1f} us {nbytes / t['ms'] / 1e6:7.0f} GB/s")
    try:
        compiled = torch.compile(per_token_cast_to_fp8)
        compiled(x)
        torch.cuda.synchronize()
        t = timed(lambda i: compiled(x))
        out.append({"name": "reference quantizer, torch.compile", "bytes": nbytes, "ms": t["ms"], "GBps": nbytes / t["ms"] / 1e6, "timing": t})
        log(f"  torch.compile quantizer 1x128 bf16->e4m3    {t['ms'] * 1000:8.1f} us {nbytes / t['ms'] / 1e6:7.0f} GB/s ({t['method']})")
        qe, se = per_token_cast_to_fp8(x)
        qc, sc = compiled(x)
        same = bool(torch.equal(qe.view(torch.uint8), qc.view(torch.uint8)) and torch.equal(se.view(torch.int32), sc.view(torch.int32)))
        out[-1]["equalsEager"] = same
        log(f"  torch.compile output equals eager bit for bit: {same}")
    except Exception as ex:  # noqa: BLE001
        out.append({"name": "reference quantizer, torch.compile", "error": str(ex)[:300]})
        log(f"  torch.compile quantizer FAILED: {ex}")
    return out


def cross_check(d):
    """Our quantizer's output (bench.mjs) against the eager PyTorch reference on the same bf16 input."""
    meta = json.load(open(os.path.join(d, "meta.json")))
    R, C = meta["rows"], meta["cols"]
    raw = torch.frombuffer(bytearray(open(os.path.join(d, "x.bf16"), "rb").read()), dtype=torch.int16)
    x = raw.view(torch.bfloat16).view(R, C).cuda()
    res = {}
    for key, scale, exact in [("fp32", "fp32", False), ("fp32-exact", "fp32", True), ("pow2", "pow2", False)]:
        q, sf = per_token_cast_to_fp8(x, pow2=(scale == "pow2"), exact_div=exact)
        ours_q = torch.frombuffer(bytearray(open(os.path.join(d, f"data-{scale}.u8"), "rb").read()), dtype=torch.uint8).view(R, C).cuda()
        ours_s = torch.frombuffer(bytearray(open(os.path.join(d, f"scales-{scale}.f32"), "rb").read()), dtype=torch.int32).view(R, -1).cuda()
        dq = int((q.view(torch.uint8) != ours_q).sum())
        ds = int((sf.view(torch.int32) != ours_s).sum())
        res[key] = {"codesDiffer": dq, "scalesDiffer": ds, "codes": R * C, "scales": ours_s.numel()}
        log(f"  cross-check {key}: {dq} of {R * C} codes and {ds} of {ours_s.numel()} scales differ from PyTorch")
    return res


def bench_gemm(l2):
    rows = []
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1234)
    for N, K in DSV3_NK:
        if time_left_ms() < 30_000:
            skipped.append(f"GEMM N×K={N}×{K}: deadline near")
            continue
        sets = max(1, min(8, math.ceil(2 * l2 / (N * K + 64 * K))))
        wb = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.02 for _ in range(sets)]
        qb = [per_block_cast_to_fp8(w) for w in wb]
        for M in DSV3_M:
            sets_m = max(1, min(sets, math.ceil(2 * l2 / (N * K + M * K))))
            xa = [torch.randn(M, K, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(sets_m)]
            qa = [per_token_cast_to_fp8(x) for x in xa]
            # scale_a: [M, K/128] column-major; scale_b: [N/128, K/128] row-major, passed transposed.
            sa = [s.t().contiguous().t() for _, s in qa]
            sb = [s.t() for _, s in qb]
            flops = 2 * M * N * K
            line = {}
            try:
                def fp8(i):
                    j = i % sets_m
                    return torch._scaled_mm(qa[j][0], qb[j][0].t(), scale_a=sa[j], scale_b=sb[j], out_dtype=torch.bfloat16)
                y = fp8(0)
                pick = sorted(set([0, M - 1, M // 2]))
                ref = dequant_rows(qa[0][0], qa[0][1], pick, 1) @ dequant_rows(qb[0][0], qb[0][1], list(range(N)), 128).t()
                err = float((y[pick].double() - ref).norm() / ref.norm())
                t = timed(fp8, sets_m)
                line["fp8"] = flops / t["ms"] / 1e9
                rows.append({"M": M, "N": N, "K": K, "impl": "torch._scaled_mm 1x128/128x128", "ms": t["ms"], "tflops": line["fp8"], "relErr": err, "sets": sets_m, "timing": t})
            except Exception as ex:  # noqa: BLE001
                rows.append({"M": M, "N": N, "K": K, "impl": "torch._scaled_mm 1x128/128x128", "error": str(ex)[:300]})
                line["fp8"] = float("nan")
                err = float("nan")
                log(f"  {M}x{N}x{K} _scaled_mm FAILED: {str(ex)[:200]}")
            try:
                t = timed(lambda i: torch.matmul(xa[i % sets_m], wb[i % sets_m].t()), sets_m)
                line["bf16"] = flops / t["ms"] / 1e9
                rows.append({"M": M, "N": N, "K": K, "impl": "torch.matmul bf16", "ms": t["ms"], "tflops": line["bf16"], "sets": sets_m, "timing": t})
            except Exception as ex:  # noqa: BLE001
                rows.append({"M": M, "N": N, "K": K, "impl": "torch.matmul bf16", "error": str(ex)[:300]})
                line["bf16"] = float("nan")
            log(f"  {M:5d}x{N:5d}x{K:5d}  _scaled_mm {line['fp8']:7.0f}  bf16 {line['bf16']:7.0f} TFLOP/s  (rel.err {err:.1e}, {sets_m} sets)")
            del xa, qa, sa
        del wb, qb, sb
        torch.cuda.empty_cache()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--xcheck")
    args = ap.parse_args()
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "reps": REPS}
    if not torch.cuda.is_available():
        print("NO GPU: torch.cuda.is_available() is False")
        out["available"] = False
    else:
        p = torch.cuda.get_device_properties(0)
        out.update({"available": True, "device": p.name, "torch": torch.__version__, "cuda": torch.version.cuda,
                    "multiprocessors": p.multi_processor_count, "l2Bytes": getattr(p, "L2_cache_size", 50 << 20)})
        log(f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}) on {p.name}, {p.multi_processor_count} SMs")

        def save():
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({**out, "skipped": skipped}, f, indent=1)

        for key, fn in [("copy", bench_copy), ("quantize", bench_quantizer)]:
            log(f"== {key}")
            try:
                out[key] = fn()
            except Exception as ex:  # noqa: BLE001
                out[key + "Error"] = str(ex)[:300]
                log(f"{key} FAILED: {ex}")
            save()
        if args.xcheck and os.path.exists(os.path.join(args.xcheck, "meta.json")):
            log("== cross-check of our quantizer against PyTorch's")
            try:
                out["xcheck"] = cross_check(args.xcheck)
            except Exception as ex:  # noqa: BLE001
                out["xcheckError"] = str(ex)[:300]
                log(f"cross-check FAILED: {ex}")
            save()
        log("== GEMMs (TFLOP/s)")
        try:
            out["gemm"] = bench_gemm(out["l2Bytes"])
        except Exception as ex:  # noqa: BLE001
            out["gemmError"] = str(ex)[:300]
            log(f"GEMMs FAILED: {ex}")
        save()
        if skipped:
            log(f"left out (time box): {'; '.join(skipped)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**out, "skipped": skipped}, f, indent=1)
    log("peer done")


if __name__ == "__main__":
    main()
