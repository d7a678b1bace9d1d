import sys, time, json
import numpy as np, torch
torch.set_num_threads(1)
from ssl4sar.models.convert import load_model
from ssl4sar.data.caffe import discover, load_scene
from ssl4sar.bench.paths import REFERENCE, fast_path
from ssl4sar.bench.accuracy import _on_path
from ssl4sar.inference import sliding_window_probabilities
ckpt, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
dev = torch.device("cpu")
model = load_model(ckpt, map_location="cpu", trusted=True).float().eval()
scenes = discover(data, "test")[:n]
c = int(model.img_size); stride = c // 4; sigma = c / 16
def run(m, amp, centre_only=True):
    maps, secs = {}, 0.0
    for s in scenes:
        img = load_scene(s)["image"]; t0 = time.perf_counter()
        p = sliding_window_probabilities(m, img, context_size=c, stride=stride, sigma=sigma, batch_size=8,
                                         device=dev, amp_dtype=amp, centre_only=centre_only)
        secs += time.perf_counter() - t0; maps[s.stem] = p.argmax(0).astype(np.uint8)
    return maps, secs
ref, _ = run(_on_path(model, REFERENCE, dev), None, False)
def agree(maps):
    d = sum(int((maps[k] != ref[k]).sum()) for k in ref); tot = sum(v.size for v in ref.values())
    return [1 - d / tot, d]
out = {}
fast = fast_path(dev)
m1 = _on_path(model, fast, dev)
hf = m1.head.forward
def head32(x):
    with torch.autocast("cpu", enabled=False):
        return hf(x.float())
m1.head.forward = head32
out["bf16_head_fp32"] = agree(run(m1, torch.bfloat16)[0])
# the last decoder convolution (full-res upsampling conv) and head in fp32
m2 = _on_path(model, fast, dev)
last = m2.decoder[-1]
print([type(x).__name__ for x in m2.decoder], file=sys.stderr)
convs = [mod for mod in last.modules() if isinstance(mod, torch.nn.Conv2d)]
for mod in convs + [m2.head]:
    f = mod.forward
    def w(x, f=f):
        with torch.autocast("cpu", enabled=False):
            return f(x.float())
    mod.forward = w
out["bf16_last_step_and_head_fp32"] = agree(run(m2, torch.bfloat16)[0])
print(json.dumps(out))
