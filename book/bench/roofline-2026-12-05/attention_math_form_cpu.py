"""CPU SDPA (fused, additive bias with a gradient) against a hand-written bf16 form with a float32 softmax, on the
window-attention shapes of the paper network (batch 2): forward and forward + backward, best of 5 alternating calls;
then each form's error against float32 SDPA. Output: attention_math_form_cpu.txt."""
import time, torch, torch.nn.functional as F
torch.manual_seed(0)
shapes = [(128, 3, 256, 32), (2, 192, 256, 32), (8, 12, 256, 32)]
def mk(shape, dt=torch.bfloat16):
    q, k, v = (torch.randn(shape, dtype=dt, requires_grad=True) for _ in range(3))
    b = torch.randn(1, shape[1], 256, 256, dtype=dt, requires_grad=True)
    return q, k, v, b
def fused(q, k, v, b): return F.scaled_dot_product_attention(q, k, v, attn_mask=b, scale=1.0)
def math32(q, k, v, b):
    a = (q @ k.transpose(-2, -1)) + b
    return a.softmax(-1, dtype=torch.float32).to(q.dtype) @ v
def run(fn, args, back):
    t0 = time.perf_counter(); o = fn(*args)
    if back: o.backward(torch.ones_like(o))
    return time.perf_counter() - t0
for shape in shapes:
    for back in (False, True):
        args = mk(shape)
        res = {"fused": [], "math32": []}
        for r in range(6):
            for name, fn in (("fused", fused), ("math32", math32)) if r % 2 == 0 else (("math32", math32), ("fused", fused)):
                res[name].append(run(fn, args, back))
        f, m = min(res["fused"][1:]), min(res["math32"][1:])
        print(shape, "fwd+bwd" if back else "fwd", f"fused {f*1e3:.1f} ms  math32 {m*1e3:.1f} ms  ratio {m/f:.2f}")
q, k, v, b = mk(shapes[0], torch.float32)
ref = fused(q, k, v, b)
q2, k2, v2, b2 = (t.detach().bfloat16() for t in (q, k, v, b))
for n, fn in (("fused", fused), ("math32", math32)):
    print(n, "max |bf16 - fp32|", (fn(q2, k2, v2, b2).float() - ref).abs().max().item(), "mean", (fn(q2, k2, v2, b2).float() - ref).abs().mean().item())
