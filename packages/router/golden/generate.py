# Golden routing decisions from Hugging Face transformers' own DeepSeek-V3 MoE router, regenerated on a
# machine with torch + transformers:   python3 generate.py OUT_DIR
# For each case: float32 logits [T, E] and bias [E] in, HF's topk_indices and topk_weights out.
# File layout (routing.bin.gz): uint32 LE header length, JSON header {transformers, torch, api, cases: [...]}
# naming each array's dtype/shape/offset, then the raw little-endian arrays.
import gzip, json, sys, inspect, torch, transformers
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as m
from transformers import DeepseekV3Config

CASES = [
    # name, experts, n_group, topk_group, top_k, norm_topk_prob, routed_scaling_factor, tokens, bias_scale
    ("groups4_top2_negbias", 8, 4, 2, 2, True, 2.5, 257, 1.5),
    ("plain_top4_nonorm", 16, 1, 1, 4, False, 1.0, 257, 0.3),
    ("groups8_top6", 64, 8, 3, 6, True, 2.5, 257, 0.8),
    ("deepseek_v3_shape", 256, 8, 4, 8, True, 2.5, 512, 0.05),
    ("all_groups_eligible", 32, 4, 4, 5, True, 1.7, 129, 0.2),
    # Every biased score below 0: whether ineligible experts are masked with -inf (transformers 5.x) or with
    # 0.0 (4.x) decides the choice here.
    ("negative_bias_masking", 16, 4, 2, 6, True, 2.5, 129, "negative"),
]

def route(gate, logits):
    # DeepseekV3TopkRouter.forward(hidden) computes logits = hidden @ weight.T in float32; with hidden_size = E
    # and weight = I the logits are exactly the given ones (checked below).
    router_logits, weights, indices = gate(logits)
    assert torch.equal(router_logits, logits)
    return indices, weights

out = sys.argv[1]
g = torch.Generator().manual_seed(20261123)
header = {"transformers": transformers.__version__, "torch": torch.__version__, "cases": []}
blobs, offset = [], 0
def add(case, name, t):
    global offset
    raw = t.contiguous().numpy().tobytes()
    case.setdefault("arrays", {})[name] = {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "offset": offset, "bytes": len(raw)}
    blobs.append(raw); offset += len(raw)

for name, E, n_group, topk_group, top_k, norm, scale, T, bias_scale in CASES:
    cfg = DeepseekV3Config(hidden_size=E, moe_intermediate_size=8, n_routed_experts=E, n_shared_experts=1,
                           num_experts_per_tok=top_k, n_group=n_group, topk_group=topk_group,
                           norm_topk_prob=norm, routed_scaling_factor=scale)
    moe = m.DeepseekV3MoE(cfg).eval()
    gate = moe.gate
    if bias_scale == "negative":
        bias = (-1.5 - 1.5 * torch.rand(E, generator=g)).float()
    else:
        bias = (torch.randn(E, generator=g) * bias_scale).float()
    with torch.no_grad():
        gate.e_score_correction_bias.copy_(bias)
        gate.weight.copy_(torch.eye(E))
        logits = (torch.randn(T, E, generator=g) * 2).float()
        logits[3] = logits[2]  # a repeated row
        logits[5, :] = 0.0      # every expert tied
        idx, w = route(gate, logits)
    header["api"] = "DeepseekV3TopkRouter.forward"
    case = {"name": name, "experts": E, "nGroup": n_group, "topkGroup": topk_group, "topK": top_k,
            "normTopkProb": norm, "routedScalingFactor": scale, "tokens": T}
    add(case, "logits", logits); add(case, "bias", bias)
    add(case, "indices", idx.to(torch.int32)); add(case, "weights", w.float())
    header["cases"].append(case)

h = json.dumps(header).encode()
with open(f"{out}/routing.bin.gz", "wb") as raw_file, gzip.GzipFile(fileobj=raw_file, mode="wb", mtime=0) as f:
    f.write(len(h).to_bytes(4, "little")); f.write(h)
    for b in blobs: f.write(b)
print("routing golden written with transformers", transformers.__version__, "via", header["api"])
print(inspect.getsource(m.DeepseekV3TopkRouter.forward))
