"""Does an Octet model exported with octet-export compute the same function in transformers' DeepseekV3ForCausalLM,
and does a transformers DeepSeek-V3 model imported with octet-import compute the same function in Octet?

Run by run.sh on the GPU machine (Python 3.12, PyTorch, transformers 5.x, safetensors; Node carried, no network):

  1. export:  a trained `tiny` Octet state -> octet-export --dtype fp32 at rope_interleave true and false ->
              DeepseekV3ForCausalLM.from_pretrained(dtype=float32, eager attention) -> logits on 4 sequences,
              against Octet's CPU forward of the same state (npm run logits, recipe fp32).
  2. import:  DeepseekV3Config at tiny's sizes -> from_config (random weights, a random correction bias) ->
              save_pretrained -> octet-import -> Octet's logits against transformers' on the same 4 sequences,
              at rope_interleave true and false.

Each row passes when max |logits_hf - logits_octet| <= 1e-4 * max |logits_octet|. Prints one table; writes
results.json and table.txt to $OUT. Exit status 0 only if every row passes.

Both sides run in float32 on the CPU (the model is small; no TF32 or reduced-precision GEMM can enter).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
import traceback

import torch

TOL = 1e-4
SEQS = 4


def sh(cmd: list[str], env: dict | None = None) -> str:
    """Runs a command, returns its stdout; raises with its stderr on failure."""
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r.stdout


class Octet:
    """The bundled Node programs (.carry/hf/*.mjs)."""

    def __init__(self, node: str, bundle: str):
        self.node, self.bundle = node, bundle

    def run(self, prog: str, *args: str) -> str:
        return sh([self.node, "--max-semi-space-size=64", os.path.join(self.bundle, f"{prog}.mjs"), *args])

    def logits(self, state: str, tokens: list[list[int]], out: str) -> torch.Tensor:
        self.run("logits", "--state", state, "--tokens", json.dumps(tokens), "--out", out, "--recipe", "fp32")
        with open(out) as f:
            d = json.load(f)
        return torch.tensor(d["logits"], dtype=torch.float32).reshape(d["shape"])


def hf_model_class():
    from transformers import DeepseekV3ForCausalLM

    return DeepseekV3ForCausalLM


def load_hf(path: str):
    cls = hf_model_class()
    kwargs = dict(attn_implementation="eager")
    try:
        model = cls.from_pretrained(path, dtype=torch.float32, **kwargs)
    except TypeError:  # transformers 4.x names it torch_dtype
        model = cls.from_pretrained(path, torch_dtype=torch.float32, **kwargs)
    return model.float().eval()


def hf_logits(model, tokens: list[list[int]]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor(tokens, dtype=torch.long), use_cache=False).logits.float()


def compare(name: str, hf: torch.Tensor, octet: torch.Tensor, extra: str = "") -> dict:
    if tuple(hf.shape) != tuple(octet.shape):
        return {"check": name, "pass": False, "note": f"shapes {tuple(hf.shape)} vs {tuple(octet.shape)}"}
    diff = (hf - octet).abs()
    scale = octet.abs().max().item()
    max_abs = diff.max().item()
    rel = max_abs / scale if scale > 0 else float("inf")
    argmax_agree = (hf.argmax(-1) == octet.argmax(-1)).float().mean().item()
    return {
        "check": name,
        "max_abs_diff": max_abs,
        "logit_scale": scale,
        "rel": rel,
        "argmax_agree": argmax_agree,
        "pass": bool(rel <= TOL),
        "note": extra,
    }


def tiny_config_kwargs(rope_interleave: bool) -> dict:
    """DeepseekV3Config at Octet's `tiny` preset (packages/model/src/config.ts)."""
    return dict(
        vocab_size=256, hidden_size=128, intermediate_size=384, moe_intermediate_size=128,
        num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=4, num_key_value_heads=4,
        n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=4, topk_group=2,
        norm_topk_prob=True, routed_scaling_factor=1.0,
        q_lora_rank=96, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
        rms_norm_eps=1e-6, max_position_embeddings=64, initializer_range=0.02,
        tie_word_embeddings=False, rope_interleave=rope_interleave, hidden_act="silu",
        attention_bias=False, attention_dropout=0.0,
    )


def make_config(rope_interleave: bool):
    from transformers import DeepseekV3Config

    kw = tiny_config_kwargs(rope_interleave)
    params = inspect.signature(DeepseekV3Config.__init__).parameters
    if "rope_parameters" in params:  # transformers 5.x
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0}
    else:
        kw["rope_theta"] = 10000.0
        kw["rope_scaling"] = None
    cfg = DeepseekV3Config(**kw)
    if getattr(cfg, "rope_interleave", rope_interleave) != rope_interleave:
        raise RuntimeError(f"DeepseekV3Config ignored rope_interleave={rope_interleave}")
    return cfg


def random_hf_model(rope_interleave: bool, seed: int):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = make_config(rope_interleave)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    if type(model).__name__ != "DeepseekV3ForCausalLM":
        raise RuntimeError(f"from_config made a {type(model).__name__}")
    model = model.float().eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Weights well away from ties: norms around 1, gates with clearly separated expert scores.
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("mlp.gate.weight"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn(b.shape, generator=g))
    return model


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", default=shutil.which("node") or "/tmp/node")
    ap.add_argument("--bundle", required=True, help=".carry/hf with export.mjs, import.mjs, train.mjs, logits.mjs")
    ap.add_argument("--state", help="a trained tiny state.safetensors (default: train one here)")
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--work", default="/tmp/octet-hf-compare")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/octet-hf-out"))
    a = ap.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    torch.backends.cuda.matmul.allow_tf32 = False
    import transformers

    os.makedirs(a.out, exist_ok=True)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    octet = Octet(a.node, a.bundle)
    env = f"transformers {transformers.__version__}, torch {torch.__version__}, python {sys.version.split()[0]}"
    rows: list[dict] = []
    gen = torch.Generator().manual_seed(1234)
    tokens = torch.randint(0, 256, (SEQS, 64), generator=gen).tolist()

    # 1. Octet -> HF.
    try:
        state = a.state
        if not state:
            t0 = time.time()
            run_dir = os.path.join(a.work, "tiny")
            octet.run("train", "--config", "tiny", "--recipe", "fp8", "--steps", str(a.train_steps), "--out", run_dir)
            state = os.path.join(run_dir, "state.safetensors")
            print(f"trained tiny for {a.train_steps} steps (fp8 recipe) in {time.time() - t0:.0f}s", flush=True)
        ref = octet.logits(state, tokens, os.path.join(a.work, "octet-logits.json"))
        for inter in (True, False):
            name = f"export fp32, rope_interleave={str(inter).lower()}"
            try:
                d = os.path.join(a.work, f"export-{inter}")
                octet.run("export", "--from", state, "--to", d, "--dtype", "fp32", "--rope-interleave", str(inter).lower())
                model = load_hf(d)
                if getattr(model.config, "rope_interleave", None) != inter:
                    raise RuntimeError(f"loaded config has rope_interleave={getattr(model.config, 'rope_interleave', None)}")
                rows.append(compare(name, hf_logits(model, tokens), ref))
            except Exception as e:  # noqa: BLE001 - one row per failure, the others still run
                traceback.print_exc()
                rows.append({"check": name, "pass": False, "note": f"{type(e).__name__}: {str(e)[:300]}"})
        # A control: the export with the wrong RoPE layout must NOT match (the permutation is doing something).
        try:
            d = os.path.join(a.work, "export-True")
            with open(os.path.join(d, "config.json")) as f:
                c = json.load(f)
            c["rope_interleave"] = False
            wrong = os.path.join(a.work, "export-wrong")
            shutil.copytree(d, wrong)
            with open(os.path.join(wrong, "config.json"), "w") as f:
                json.dump(c, f)
            r = compare("control: interleaved rows read as halves", hf_logits(load_hf(wrong), tokens), ref)
            r["pass"] = not r.get("pass", True) and "max_abs_diff" in r
            r["note"] = "must differ"
            rows.append(r)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            rows.append({"check": "control: interleaved rows read as halves", "pass": False, "note": f"{type(e).__name__}: {str(e)[:300]}"})
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        rows.append({"check": "export: train / Octet logits", "pass": False, "note": f"{type(e).__name__}: {str(e)[:300]}"})

    # 2. HF -> Octet.
    for inter in (True, False):
        name = f"import of a random HF model, rope_interleave={str(inter).lower()}"
        try:
            model = random_hf_model(inter, seed=7 if inter else 8)
            d = os.path.join(a.work, f"hf-random-{inter}")
            model.save_pretrained(d)
            saved = sorted(os.listdir(d))
            w = os.path.join(a.work, f"imported-{inter}.safetensors")
            info = json.loads(octet.run("import", "--from", d, "--to", w, "--mtp-depth", "0").strip().splitlines()[-1])
            got = octet.logits(w, tokens, os.path.join(a.work, f"imported-{inter}-logits.json"))
            rows.append(compare(name, hf_logits(model, tokens), got, f"experts on disk: {info.get('experts')}; files: {', '.join(saved)}"))
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            rows.append({"check": name, "pass": False, "note": f"{type(e).__name__}: {str(e)[:300]}"})

    lines = [f"Octet <-> transformers DeepseekV3ForCausalLM, FP32 logits on {SEQS} sequences of 64 tokens ({env})",
             f"pass: max |hf - octet| <= {TOL:g} x max |octet logits|", "",
             f"{'check':<52} {'max abs diff':>13} {'logit scale':>12} {'rel':>10} {'argmax':>7}  result  note"]
    for r in rows:
        num = lambda k, fmt: format(r[k], fmt) if k in r else "-"  # noqa: E731
        lines.append(f"{r['check']:<52} {num('max_abs_diff', '13.3e')} {num('logit_scale', '12.4f')} {num('rel', '10.2e')} "
                     f"{num('argmax_agree', '7.3f')}  {'PASS' if r['pass'] else 'FAIL':<6}  {r.get('note', '')}")
    table = "\n".join(lines)
    print("\n" + table)
    with open(os.path.join(a.out, "table.txt"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"env": env, "tolerance": TOL, "rows": rows}, f, indent=2)
    return 0 if rows and all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
