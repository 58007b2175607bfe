#!/usr/bin/python3
"""The PyTorch peer of `npm run bench -w @octet/model`: the same architecture, trained in fp32.

Reads the @octet/model config JSON the benchmark writes (argv[1]) and times training steps (forward,
backward, gradient clipping, AdamW, the router's bias update) the way a PyTorch user would write the model:
nn.Modules, autograd, torch.optim.AdamW, a Python loop over the routed experts (as Hugging Face's
DeepseekV3MoE does). Prints one JSON object on stdout.

Architecture, matching packages/model/src (same shapes, same operations):
  embedding [V, C] → blocks (RMSNorm → attention → residual, RMSNorm → FFN → residual) → RMSNorm → head [V, C]
  attention: MLA (low-rank q with q_norm, compressed kv with kv_norm, one decoupled RoPE key shared by all
             heads, rotate-half RoPE) or MHA with RoPE on the whole head; causal softmax in fp32
  FFN: dense SwiGLU for the first nDenseLayers blocks, then DeepSeekMoE: shared SwiGLU expert(s) + routed
       SwiGLU experts, sigmoid gate, bias for the choice only, group-limited top-K (groups ranked by the sum
       of their two best biased scores), weights normalized over the chosen experts, aux-loss-free bias
       update b ← b + γ·sign(mean load − load) after each step
  MTP (model.mtp.depth D > 0): module k: eh_proj [C, 2C] · [RMSNorm(Emb(x_{i+k})); RMSNorm(h^{k-1}_i)] → one
       block of the last main block's kind → the shared final norm and head; L = L_main + λ/D Σ_k L_k
  AdamW with FP32 moments (PyTorch has no BF16-moment option), weight decay on matrices only
"""

import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(seq_len, dim, theta):
    half = dim // 2
    inv = 1.0 / theta ** (torch.arange(0, half, dtype=torch.float64) * 2 / dim)
    ang = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()  # [T, dim/2]


def apply_rope(x, cos, sin):
    """x [..., T, dim], rotate-half pairing (i with i + dim/2), as the CPU backend's rope()."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def linear(cin, cout, std):
    lin = nn.Linear(cin, cout, bias=False)
    nn.init.normal_(lin.weight, std=std)
    return lin


class MLA(nn.Module):
    def __init__(self, m, out_std):
        super().__init__()
        a = m["attention"]
        C, H, std = m["dModel"], m["nHeads"], m["initStd"]
        self.H, self.dn, self.dr, self.dv = H, a["qkNopeHeadDim"], a["qkRopeHeadDim"], a["vHeadDim"]
        self.qr, self.kvr, self.theta = a["qLoraRank"], a["kvLoraRank"], m["ropeTheta"]
        if self.qr > 0:
            self.wq_a = linear(C, self.qr, std)
            self.q_norm = RMSNorm(self.qr, m["normEps"])
            self.wq_b = linear(self.qr, H * (self.dn + self.dr), std)
        else:
            self.wq = linear(C, H * (self.dn + self.dr), std)
        self.wkv_a = linear(C, self.kvr + self.dr, std)
        self.kv_norm = RMSNorm(self.kvr, m["normEps"])
        self.wkv_b = linear(self.kvr, H * (self.dn + self.dv), std)
        self.wo = linear(H * self.dv, C, out_std)

    def forward(self, x):
        B, T, _ = x.shape
        H, dn, dr, dv = self.H, self.dn, self.dr, self.dv
        cos, sin = rope_tables(T, dr, self.theta)
        q = self.wq_b(self.q_norm(self.wq_a(x))) if self.qr > 0 else self.wq(x)
        q = q.view(B, T, H, dn + dr).transpose(1, 2)  # [B, H, T, dn+dr]
        q = torch.cat([q[..., :dn], apply_rope(q[..., dn:], cos, sin)], dim=-1)
        ckv, kr = self.wkv_a(x).split([self.kvr, dr], dim=-1)
        kr = apply_rope(kr, cos, sin)  # [B, T, dr], one key shared by the heads
        kv = self.wkv_b(self.kv_norm(ckv)).view(B, T, H, dn + dv).transpose(1, 2)
        k = torch.cat([kv[..., :dn], kr[:, None].expand(B, H, T, dr)], dim=-1)
        v = kv[..., dn:]
        out = causal_attention(q, k, v, 1.0 / math.sqrt(dn + dr))  # [B, H, T, dv]
        return self.wo(out.transpose(1, 2).reshape(B, T, H * dv))


class MHA(nn.Module):
    def __init__(self, m, out_std):
        super().__init__()
        C, H, D, std = m["dModel"], m["nHeads"], m["attention"]["headDim"], m["initStd"]
        self.H, self.D, self.theta = H, D, m["ropeTheta"]
        self.wq, self.wk, self.wv = linear(C, H * D, std), linear(C, H * D, std), linear(C, H * D, std)
        self.wo = linear(H * D, C, out_std)

    def forward(self, x):
        B, T, _ = x.shape
        cos, sin = rope_tables(T, self.D, self.theta)
        q, k, v = (w(x).view(B, T, self.H, self.D).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        out = causal_attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, 1.0 / math.sqrt(self.D))
        return self.wo(out.transpose(1, 2).reshape(B, T, self.H * self.D))


def causal_attention(q, k, v, scale):
    T = q.shape[-2]
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    return torch.matmul(torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1), v)


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden, std, out_std):
        super().__init__()
        self.w1, self.w3, self.w2 = linear(dim, hidden, std), linear(dim, hidden, std), linear(hidden, dim, out_std)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MoE(nn.Module):
    def __init__(self, m, out_std):
        super().__init__()
        e = m["moe"]
        C, std = m["dModel"], m["initStd"]
        self.E, self.top_k, self.n_group, self.topk_group = e["nRoutedExperts"], e["topK"], e["nGroup"], e["topkGroup"]
        self.norm_topk, self.scaling, self.gamma = e["normTopkProb"], e["routedScalingFactor"], e["biasUpdateSpeed"]
        self.gate = nn.Parameter(torch.randn(self.E, C) * std)
        self.register_buffer("bias", torch.zeros(self.E))
        self.shared = SwiGLU(C, e["nSharedExperts"] * e["expertHidden"], std, out_std) if e["nSharedExperts"] > 0 else None
        self.experts = nn.ModuleList(SwiGLU(C, e["expertHidden"], std, out_std) for _ in range(self.E))
        self.loads = torch.zeros(self.E)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        scores = torch.sigmoid(x @ self.gate.t())  # [N, E], fp32 gate
        with torch.no_grad():  # the choice: biased scores, group-limited top-K (no gradient through it)
            biased = scores + self.bias
            N = biased.shape[0]
            group = biased.view(N, self.n_group, -1).topk(2, dim=-1).values.sum(-1)  # [N, G]
            gidx = group.topk(self.topk_group, dim=-1).indices
            gmask = torch.zeros_like(group).scatter_(1, gidx, 1.0)
            emask = gmask[:, :, None].expand(N, self.n_group, self.E // self.n_group).reshape(N, self.E)
            idx = biased.masked_fill(emask == 0, float("-inf")).topk(self.top_k, dim=-1).indices  # [N, K]
        w = scores.gather(1, idx)  # gradient flows through the chosen experts' sigmoid scores
        if self.norm_topk:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * self.scaling
        y = self.shared(x) if self.shared is not None else torch.zeros_like(x)
        self.loads = torch.bincount(idx.flatten(), minlength=self.E).float()
        out = torch.zeros_like(x)
        for e in range(self.E):  # as Hugging Face's DeepseekV3MoE: gather each expert's tokens, scatter back
            tok, slot = torch.where(idx == e)
            if tok.numel() == 0:
                continue
            out = out.index_add(0, tok, self.experts[e](x[tok]) * w[tok, slot, None])
        return (y + out).view(shape)

    @torch.no_grad()
    def update_bias(self):
        self.bias += self.gamma * torch.sign(self.loads.mean() - self.loads)


class Block(nn.Module):
    def __init__(self, m, moe):
        super().__init__()
        out_std = m["initStd"] / math.sqrt(2 * m["nLayers"])
        self.attn_norm = RMSNorm(m["dModel"], m["normEps"])
        self.attn = MLA(m, out_std) if m["attention"]["kind"] == "mla" else MHA(m, out_std)
        self.ffn_norm = RMSNorm(m["dModel"], m["normEps"])
        self.ffn = MoE(m, out_std) if moe else SwiGLU(m["dModel"], m["ffnHidden"], m["initStd"], out_std)

    def forward(self, x):
        h = x + self.attn(self.attn_norm(x))
        return h + self.ffn(self.ffn_norm(h))


class MtpModule(nn.Module):
    def __init__(self, m, moe):
        super().__init__()
        C = m["dModel"]
        self.enorm, self.hnorm = RMSNorm(C, m["normEps"]), RMSNorm(C, m["normEps"])
        self.eh_proj = linear(2 * C, C, 1 / math.sqrt(2 * C))
        self.block = Block(m, moe)

    def forward(self, emb, h):
        return self.block(self.eh_proj(torch.cat([self.enorm(emb), self.hnorm(h)], dim=-1)))


class Model(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.embed = nn.Embedding(m["vocabSize"], m["dModel"])
        nn.init.normal_(self.embed.weight, std=1.0)
        self.layers = nn.ModuleList(Block(m, i >= m["nDenseLayers"]) for i in range(m["nLayers"]))
        self.norm = RMSNorm(m["dModel"], m["normEps"])
        self.head = nn.Parameter(torch.randn(m["vocabSize"], m["dModel"]) * m["initStd"])
        depth = m.get("mtp", {}).get("depth", 0)
        self.mtp = nn.ModuleList(MtpModule(m, m["nDenseLayers"] < m["nLayers"]) for _ in range(depth))

    def logits(self, h):
        return self.norm(h) @ self.head.t()

    def forward(self, inputs, targets, lam):
        h = self.embed(inputs)
        for layer in self.layers:
            h = layer(h)
        V = self.head.shape[0]
        loss = F.cross_entropy(self.logits(h).view(-1, V), targets.reshape(-1))
        T = inputs.shape[1]
        mtp = []
        prev = h
        for k, module in enumerate(self.mtp, start=1):  # module k on positions 0..T-k-1
            prev = module(self.embed(inputs[:, k:]), prev[:, : T - k])
            mtp.append(F.cross_entropy(self.logits(prev).reshape(-1, V), targets[:, k:].reshape(-1)))
        total = loss + lam * sum(mtp) / len(mtp) if mtp else loss
        return total, loss

    def moe_layers(self):
        return [m for m in self.modules() if isinstance(m, MoE)]


def blas_info():
    """The BLAS library this process has loaded (torch's fp32 matmul calls its sgemm: BLAS_INFO=generic)."""
    try:
        libs = sorted({line.split()[-1] for line in open("/proc/self/maps") if "blas" in line.lower() and ".so" in line})
        return ", ".join(libs) or "none loaded"
    except OSError:
        return "unknown"


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: torch_peer.py CONFIG.json [--steps N] [--warmup N] [--threads N]")
    config = json.load(open(sys.argv[1]))
    args = sys.argv[2:]
    opt = {"--steps": 6, "--warmup": 2, "--threads": 2}
    for i in range(0, len(args) - 1, 2):
        opt[args[i]] = int(args[i + 1])
    torch.set_num_threads(opt["--threads"])
    torch.manual_seed(1)
    m, t = config["model"], config["train"]
    model = Model(m)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and not n.startswith("embed")]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and not n.startswith("embed"))]
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": t["weightDecay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["eps"],
    )
    lam = 0.3
    B, T, V = t["batchSize"], m["seqLen"], m["vocabSize"]
    gen = torch.Generator().manual_seed(1)

    def step():
        # Random windows of random tokens: the data does not change the work (the routing aside).
        stream = torch.randint(0, V, (B, T + 1), generator=gen)
        optim.zero_grad(set_to_none=True)
        total, loss = model(stream[:, :-1], stream[:, 1:], lam)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["gradClip"])
        optim.step()
        for moe in model.moe_layers():
            moe.update_bias()
        return loss.item()

    for _ in range(opt["--warmup"]):
        step()
    t0 = time.perf_counter()
    for _ in range(opt["--steps"]):
        loss = step()
    sec = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "peer": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas_info(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "params": n_params,
        "steps": opt["--steps"],
        "stepMs": round(sec / opt["--steps"] * 1000, 1),
        "tokensPerSec": round(B * T * opt["--steps"] / sec),
        "loss": loss,
    }))


if __name__ == "__main__":
    main()
