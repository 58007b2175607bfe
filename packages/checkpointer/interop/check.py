#!/usr/bin/env python3
"""Interoperability check of Octet's safetensors files against Hugging Face's `safetensors` library.

    node --import tsx interop/write-octet.ts      # (in packages/checkpointer) writes interop/octet_*.safetensors
    pip install safetensors numpy [torch]
    python interop/check.py [DIR]                 # DIR defaults to this script's directory
    npm test -w @octet/checkpointer               # src/interop.test.ts then reads interop/hf_*.safetensors

1. Loads DIR/octet_numpy.safetensors with safetensors.numpy and DIR/octet_torch.safetensors with
   safetensors.torch (when torch is installed) and compares every tensor with the expected values below.
2. Writes DIR/hf_numpy.safetensors (safetensors.numpy) and DIR/hf_torch.safetensors (safetensors.torch) with the
   same values, for the TypeScript side to load.
Prints one JSON object; exits 1 if any check failed. The values must match src/testing/interop-values.ts.
"""
import json
import os
import sys

import numpy as np

METADATA = {"source": "interop"}


def numpy_tensors():
    return {
        "f32": (np.arange(24, dtype=np.float32) * 0.5 - 3).reshape(2, 3, 4),
        "f64": np.arange(5, dtype=np.float64) * 0.25,
        "f16": np.arange(10, dtype=np.float16) / np.float16(4),
        "i64": (np.arange(6, dtype=np.int64) - 3) * 10**12,
        "i32": np.arange(-5, 5, dtype=np.int32),
        "i16": np.arange(-4, 4, dtype=np.int16),
        "u16": np.arange(8, dtype=np.uint16) * np.uint16(1000),
        "i8": np.arange(-4, 4, dtype=np.int8),
        "u8": np.arange(256, dtype=np.uint8).reshape(16, 16),
        "u32": np.arange(4, dtype=np.uint32) * np.uint32(10**9),
        "u64": np.arange(3, dtype=np.uint64) * np.uint64(10**18),
        "bool": np.arange(6) % 2 == 0,
        "scalar": np.array(7, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def torch_tensors(torch):
    quarters = (torch.arange(16, dtype=torch.float32) - 8) / 4
    return {
        "bf16": (torch.arange(16, dtype=torch.float32) / 8).to(torch.bfloat16),
        "f8_e4m3": quarters.to(torch.float8_e4m3fn).reshape(4, 4),
        "f8_e5m2": quarters.to(torch.float8_e5m2),
        "f32": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float32),
    }


def compare_numpy(loaded, expected):
    errors = []
    if sorted(loaded) != sorted(expected):
        errors.append(f"names {sorted(loaded)} != {sorted(expected)}")
    for name, want in expected.items():
        got = loaded.get(name)
        if got is None:
            continue
        if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
            errors.append(f"{name}: got {got.dtype}{list(got.shape)}, want {want.dtype}{list(want.shape)} (or bytes differ)")
    return errors


def compare_torch(torch, loaded, expected):
    errors = []
    if sorted(loaded) != sorted(expected):
        errors.append(f"names {sorted(loaded)} != {sorted(expected)}")
    for name, want in expected.items():
        got = loaded.get(name)
        if got is None:
            continue
        same = got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape)
        same = same and got.contiguous().view(torch.uint8).flatten().tolist() == want.contiguous().view(torch.uint8).flatten().tolist()
        if not same:
            errors.append(f"{name}: got {got.dtype}{list(got.shape)}, want {want.dtype}{list(want.shape)} (or bytes differ)")
    return errors


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    report = {}
    ok = True
    try:
        import safetensors
        from safetensors.numpy import load_file as np_load, save_file as np_save
    except ImportError as e:
        print(json.dumps({"ok": False, "error": f"safetensors is not installed: {e}"}))
        return 1
    report["safetensors_version"] = safetensors.__version__

    path = os.path.join(d, "octet_numpy.safetensors")
    if os.path.exists(path):
        try:
            errors = compare_numpy(np_load(path), numpy_tensors())
        except Exception as e:  # the library refusing the file is a failure too
            errors = [f"load failed: {e!r}"]
        report["octet_numpy"] = {"ok": not errors, "errors": errors}
        ok = ok and not errors
    else:
        report["octet_numpy"] = {"skipped": f"{path} absent (run interop/write-octet.ts)"}

    np_save(numpy_tensors(), os.path.join(d, "hf_numpy.safetensors"), metadata=METADATA)
    report["wrote"] = ["hf_numpy.safetensors"]

    try:
        import torch
        from safetensors.torch import load_file as pt_load, save_file as pt_save
    except ImportError:
        torch = None
        report["octet_torch"] = {"skipped": "torch is not installed"}
    if torch is not None:
        report["torch_version"] = torch.__version__
        path = os.path.join(d, "octet_torch.safetensors")
        if os.path.exists(path):
            try:
                errors = compare_torch(torch, pt_load(path), torch_tensors(torch))
            except Exception as e:
                errors = [f"load failed: {e!r}"]
            report["octet_torch"] = {"ok": not errors, "errors": errors}
            ok = ok and not errors
        else:
            report["octet_torch"] = {"skipped": f"{path} absent (run interop/write-octet.ts)"}
        pt_save(torch_tensors(torch), os.path.join(d, "hf_torch.safetensors"), metadata=METADATA)
        report["wrote"].append("hf_torch.safetensors")

    report["ok"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
