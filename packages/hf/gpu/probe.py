# Probe of the installed transformers: copies its DeepSeek-V3 sources and what save_pretrained writes at tiny's sizes.
import os, json, shutil, inspect, sys
out = os.environ.get("OUT", "/tmp/out")
import torch, transformers, safetensors
print("transformers", transformers.__version__, "torch", torch.__version__, "safetensors", safetensors.__version__)
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as m, configuration_deepseek_v3 as c
src = os.path.dirname(transformers.__file__)
for rel in ["models/deepseek_v3/modeling_deepseek_v3.py", "models/deepseek_v3/configuration_deepseek_v3.py",
            "conversion_mapping.py", "core_model_loading.py", "modeling_rope_utils.py", "integrations/finegrained_fp8.py",
            "quantizers/quantizer_finegrained_fp8.py", "integrations/moe.py", "utils/quantization_config.py"]:
    p = os.path.join(src, rel)
    if os.path.exists(p):
        os.makedirs(os.path.join(out, "src", os.path.dirname(rel)), exist_ok=True)
        shutil.copy(p, os.path.join(out, "src", rel))
    else:
        print("missing", rel)
cfg = c.DeepseekV3Config(vocab_size=256, hidden_size=128, intermediate_size=384, moe_intermediate_size=128,
    num_hidden_layers=3, first_k_dense_replace=1, num_attention_heads=4, num_key_value_heads=4,
    n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=4, topk_group=2,
    q_lora_rank=96, kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
    rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=64, tie_word_embeddings=False)
print("config", cfg.to_json_string())
torch.manual_seed(0)
model = m.DeepseekV3ForCausalLM(cfg)
for k, v in model.state_dict().items():
    print("mem", k, tuple(v.shape), v.dtype)
d = os.path.join(out, "saved")
model.save_pretrained(d)
from safetensors import safe_open
for f in sorted(os.listdir(d)):
    print("file", f)
    if f.endswith(".safetensors"):
        with safe_open(os.path.join(d, f), "pt") as sf:
            for k in sf.keys():
                t = sf.get_slice(k)
                print("disk", k, t.get_shape(), t.get_dtype())
# reload per-expert layout? build a per-expert state dict from the packed one and check from_pretrained reads it
