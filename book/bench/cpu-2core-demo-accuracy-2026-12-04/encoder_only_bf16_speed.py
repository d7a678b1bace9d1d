import time, torch, json
torch.set_num_threads(1)
from ssl4sar.config import load_preset
from ssl4sar.models.tyrion import Tyrion
from ssl4sar.models.fast import optimize_for_device
torch.manual_seed(0)
m = Tyrion.from_config(load_preset("paper")["model"]).eval()
optimize_for_device(m, "cpu", fused=True, channels_last=False)
x = torch.rand(2, 1, 512, 512)
orig = m.encode
def enc_bf16(t):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s = orig(t)
    return [v.float() for v in s]
def run(mode):
    m.encode = enc_bf16 if mode == "enc" else orig
    with torch.inference_mode():
        if mode == "all":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                m.centre_logits(x, 256)
        else:
            m.centre_logits(x, 256)
res = {k: [] for k in ("fp32", "all", "enc")}
for k in res: run(k)
for r in range(3):
    for k in res:
        t0 = time.perf_counter(); run(k); res[k].append(time.perf_counter() - t0)
b = {k: min(v) for k, v in res.items()}
print(json.dumps({"best_s_per_2_windows": b, "all_vs_fp32": b["fp32"]/b["all"], "enc_vs_fp32": b["fp32"]/b["enc"], "enc_vs_all": b["all"]/b["enc"]}))
