"""Roofline bounds of sliding-window inference with the paper network, from its shapes alone.

The library's GPU inference fast path runs: no gradients, bf16, fused attention, channels-last convolutions, and
the centre-only decoder (`Tyrion.centre_logits`). This script records that forward pass on PyTorch's `meta` device
with `ssl4sar.bench.traffic`, the same recorder that `python -m ssl4sar.bench.roofline` uses for a training step. It
then prints the time per batch at the roofline in both traffic models: unfused (every operator through memory) and
fused (only the matrix products, convolutions and attention move bytes).

The windows/s and the % of peak use the full forward pass's FLOPs per window, as the `make bench` rows do.

Usage: python inference_bounds.py PEAK_TFLOPS BANDWIDTH_GBS BATCH ...   (several batch sizes allowed)
Output for this README: inference_bounds.txt (H200: 802 TFLOP/s measured bf16 peak, 4800 GB/s specification;
this CPU: 0.42 TFLOP/s and 45 GB/s, both measured in cpu-2core-b2/).
"""

from __future__ import annotations

import sys

import torch

from ssl4sar.bench.measure import count_flops
from ssl4sar.bench.traffic import KINDS, TrafficRecorder, fused_attention_model
from ssl4sar.config import load_preset
from ssl4sar.models.fast import enable_fused_attention, set_channels_last
from ssl4sar.models.tyrion import Tyrion


def inference_costs(model_config: dict, batch: int) -> list:
    """Recorded per-operator costs of one centre-only bf16 forward pass of ``batch`` windows."""
    recorder = TrafficRecorder()
    with torch.device("meta"), torch.no_grad():
        model = Tyrion.from_config(model_config)
        enable_fused_attention(model)
        model.to(torch.bfloat16).eval()
        set_channels_last(model, True)
        c = model.img_size
        x = torch.empty(batch, 1, c, c, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        with recorder, fused_attention_model(recorder):
            model.centre_logits(x, c // 2)
    return list(recorder.costs.values())


def main(argv: list[str]) -> None:
    peak_tflops, bandwidth_gbs, batches = float(argv[0]), float(argv[1]), [int(b) for b in argv[2:]]
    peak, bandwidth = peak_tflops * 1e12, bandwidth_gbs * 1e9
    cfg = load_preset("paper")["model"]
    c = cfg["img_size"]
    full = count_flops(lambda: Tyrion.from_config(cfg), lambda m: m(torch.empty(1, 1, c, c)))
    print(f"peak {peak_tflops} TFLOP/s, bandwidth {bandwidth_gbs} GB/s; full forward {full / 1e9:.1f} GFLOP/window")
    for batch in batches:
        costs = inference_costs(cfg, batch)
        executed = sum(k.flops for k in costs) / batch
        print(f"\nbatch {batch}: centre-only forward executes {executed / 1e9:.1f} GFLOP/window")
        for fused in (False, True):
            t = sum(k.seconds(peak, bandwidth, fused=fused) for k in costs)
            print(f"  {'fused' if fused else 'unfused':8s} {t * 1e3:8.2f} ms per batch, {batch / t:8.1f} windows/s, "
                  f"{100 * full * batch / t / peak:5.1f} % of peak")
        for kind in KINDS:
            rows = [k for k in costs if k.kind == kind]
            if not rows:
                continue
            flops, moved = sum(k.flops for k in rows), sum(k.bytes for k in rows)
            unfused = sum(k.seconds(peak, bandwidth, fused=False) for k in rows)
            print(f"    {kind:12s} {flops / 1e9:9.1f} GFLOP {moved / 1e9:7.2f} GB  unfused {unfused * 1e3:8.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
