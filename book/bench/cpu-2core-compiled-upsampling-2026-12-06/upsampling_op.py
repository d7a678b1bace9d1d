"""Nearest x2 upsampling alone, on a decoder-sized map (batch 2, 96 channels, 128 x 128 -> 256 x 256): forward and
backward of sum(up(x) * g) with F.interpolate against the broadcast form that
`ssl4sar.models.tyrion.upsample_nearest_2x` uses under torch.compile; eager and compiled, float32 and bf16,
contiguous and channels-last. One thread, best of 5 calls after 2 warm-up calls; prints whether values and
gradients are bit-identical and whether the layout is kept.
Usage: python upsampling_op.py > upsampling_op.txt
"""
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)


def interpolate(x):
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def broadcast(x):  # the compiled branch of ssl4sar.models.tyrion.upsample_nearest_2x, without the is_compiling test
    b, c, h, w = x.shape
    if x.is_contiguous():
        return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)
    nhwc = x.permute(0, 2, 3, 1)
    return nhwc[:, :, None, :, None, :].expand(b, h, 2, w, 2, c).reshape(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


def step(up, x, g):
    y = up(x)
    (y * g).sum().backward()
    return y


print("torch", torch.__version__, "threads", torch.get_num_threads())
for dtype in (torch.float32, torch.bfloat16):
    for channels_last in (False, True):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        x0 = torch.randn(2, 96, 128, 128).to(dtype).to(memory_format=fmt)
        g = torch.randn(2, 96, 256, 256).to(dtype).to(memory_format=fmt)
        outs = {}
        for mode in ("eager", "compiled"):
            for name, up in (("interpolate", interpolate), ("broadcast", broadcast)):
                fn = lambda x, g, up=up: step(up, x, g)  # noqa: E731
                if mode == "compiled":
                    fn = torch.compile(fn)
                x = x0.clone().requires_grad_()
                for _ in range(2):
                    x.grad = None
                    y = fn(x, g)
                times = []
                for _ in range(5):
                    x.grad = None
                    t = time.perf_counter()
                    y = fn(x, g)
                    times.append(time.perf_counter() - t)
                outs[(mode, name)] = (y.detach(), x.grad.clone(), min(times))
        for mode in ("eager", "compiled"):
            yi, gi, ti = outs[(mode, "interpolate")]
            yb, gb, tb = outs[(mode, "broadcast")]
            print(f"{str(dtype)[6:]:8s} {'channels-last' if channels_last else 'contiguous':13s} {mode:8s} "
                  f"values equal {torch.equal(yi, yb)!s:5s} gradients equal {torch.equal(gi, gb)!s:5s} "
                  f"layout kept {yb.is_contiguous(memory_format=fmt)!s:5s} "
                  f"interpolate {ti * 1e3:6.1f} ms broadcast {tb * 1e3:6.1f} ms -> {ti / tb:.2f}x")
