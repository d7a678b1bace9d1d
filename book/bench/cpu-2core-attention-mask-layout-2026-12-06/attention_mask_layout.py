"""The fused attention's position-bias mask: permuted (last-dimension stride = heads, the layout before commit
014915f) against contiguous (after). CUDA's fused SDPA kernels need a unit-stride last dimension, so the permuted mask
sent the unshifted blocks to PyTorch's float32 math kernel on a GPU; the CPU's flash kernel takes either.

Three parts, written to OUT.json and printed:
1. ``evidence``: calls per step in the committed H200 profiles (efficient-attention kernels, bmm) against the paper
   network's shifted and unshifted blocks.
2. ``arguments``: shape and strides of the mask that every block passes to ``scaled_dot_product_attention``, both
   layouts (paper network, bf16 autocast, training).
3. ``timing``: this CPU, alternating rounds, best round: the SDPA operator alone at the stage-1 and stage-4 shapes
   (forward, forward + backward) and the paper network's eager fine-tuning step (bf16, batch 2, SGD), both layouts;
   outputs and losses compared bit for bit.

Usage: python attention_mask_layout.py OUT.json [ROUNDS (5)] [STEPS per round (2)]
"""
from __future__ import annotations

import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import ssl4sar
from ssl4sar.bench.training import StepSettings, finetune_case
from ssl4sar.config import load_preset
from ssl4sar.models.fast import FusedWindowAttention, autocast, enable_fused_attention
from ssl4sar.models.tyrion import Tyrion

HERE = Path(__file__).resolve().parent
PROFILES = {  # each profiles 2 steps of the fine-tuning step, paper network, batch 16
    "h200 eager fast path (first session)": HERE.parent / "h200-2026-12-04" / "profile.txt",
    "h200 eager fast path": HERE.parent / "h200-2026-12-04-compile" / "bench-b16" / "profile.txt",
    "h200 compiled fast path": HERE.parent / "h200-2026-12-04-compile" / "bench-b16" / "profile-compile.txt",
}
CONTIGUOUS_BIAS = FusedWindowAttention.relative_position_bias


def permuted_bias(self: FusedWindowAttention) -> torch.Tensor:
    """The same values in the layout before 014915f: (heads, N, N) with strides (1, N·heads, heads)."""
    return CONTIGUOUS_BIAS(self).permute(1, 2, 0).contiguous().permute(2, 0, 1)


LAYOUTS = {"permuted": permuted_bias, "contiguous": CONTIGUOUS_BIAS}


def use_layout(name: str) -> None:
    FusedWindowAttention.relative_position_bias = LAYOUTS[name]


def blocks(model: Tyrion) -> list[dict[str, Any]]:
    return [{"stage": s, "block": b, "shifted": bool(any(blk.shift_size)), "heads": blk.attn.num_heads}
            for s, stage in enumerate(model.encoder.layers) for b, blk in enumerate(stage.blocks)]


def evidence(model: Tyrion) -> dict[str, Any]:
    info = blocks(model)
    out: dict[str, Any] = {"blocks": len(info), "shifted_blocks": sum(b["shifted"] for b in info),
                           "unshifted_blocks": sum(not b["shifted"] for b in info), "profiles": {}}
    for label, path in PROFILES.items():
        calls = {}
        for line in path.read_text().splitlines():
            m = re.match(r"\s*(aten::_efficient_attention_(?:forward|backward)|aten::bmm)\s", line)
            if m:
                calls[m.group(1)] = int(line.split()[-1]) // 2  # the "# of Calls" column, 2 profiled steps
        out["profiles"][label] = {"file": str(path.relative_to(HERE.parent)), "calls_per_step": calls}
    return out


def arguments(model: Tyrion) -> dict[str, Any]:
    real = F.scaled_dot_product_attention
    out: dict[str, Any] = {}
    x = torch.rand(1, 1, model.img_size, model.img_size, generator=torch.Generator().manual_seed(0))
    seen: list[dict[str, Any]] = []

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor, **kw: Any) -> torch.Tensor:
        seen.append({"q": [list(q.shape), list(q.stride())], "mask": [list(attn_mask.shape), list(attn_mask.stride())],
                     "mask_last_dim_stride_1": attn_mask.stride(-1) == 1})
        return real(q, k, v, attn_mask=attn_mask, **kw)

    for layout in LAYOUTS:
        use_layout(layout)
        seen.clear()
        F.scaled_dot_product_attention = spy
        try:
            with autocast("cpu", torch.bfloat16):
                model.train()(x)
        finally:
            F.scaled_dot_product_attention = real
        out[layout] = [{**b, **s} for b, s in zip(blocks(model), seen)]
    use_layout("contiguous")
    return out


def best_of(fns: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def op_case(windows: int, heads: int, grad: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(windows, heads, 256, 32, generator=g).bfloat16().requires_grad_(grad) for _ in range(3))
    values = torch.randn(heads, 256, 256, generator=g).bfloat16()
    masks = {"permuted": values.permute(1, 2, 0).contiguous().permute(2, 0, 1).unsqueeze(0),
             "contiguous": values.unsqueeze(0)}
    outs: dict[str, torch.Tensor] = {}

    def run(layout: str) -> None:
        mask = masks[layout].detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
            if grad:
                for t in (q, k, v):
                    t.grad = None
                out.float().sum().backward()
                out = torch.cat([out.flatten(), q.grad.flatten(), k.grad.flatten(), v.grad.flatten(),
                                 mask.grad.flatten()])
        outs[layout] = out.detach()

    return {"shape": [windows, heads, 256, 32], "backward": grad, "run": run, "outs": outs}


def main() -> None:
    out_path = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    torch.set_num_threads(2)
    cfg = load_preset("paper")["model"]
    torch.manual_seed(0)
    model = Tyrion.from_config(cfg)
    enable_fused_attention(model)
    res: dict[str, Any] = {"what": __doc__.split("\n\n")[0], "torch": torch.__version__,
                           "ssl4sar": ssl4sar.__version__, "python": platform.python_version(),
                           "torch_threads": torch.get_num_threads(), "rounds": rounds}
    res["evidence"] = evidence(model)
    print(json.dumps(res["evidence"], indent=1), flush=True)
    res["arguments"] = arguments(model)
    for layout, rows in res["arguments"].items():
        print(layout, [(r["stage"], r["block"], r["shifted"], r["mask"][1][-1]) for r in rows], flush=True)
    # the operator alone: stage 1 of a batch-2 step (128 windows, 3 heads) and stage 4 at batch 8 (8 windows, 24 heads)
    res["operator"] = []
    for windows, heads in ((128, 3), (8, 24)):
        for grad in (False, True):
            case = op_case(windows, heads, grad)
            fns = {layout: (lambda lay=layout, run=case["run"]: run(lay)) for layout in LAYOUTS}
            for fn in fns.values():
                fn()
            t = best_of(fns, rounds)
            row = {"shape": case["shape"], "backward": grad, "best_s": {k: min(v) for k, v in t.items()},
                   "identical": torch.equal(case["outs"]["permuted"], case["outs"]["contiguous"])}
            row["ratio_permuted_over_contiguous"] = row["best_s"]["permuted"] / row["best_s"]["contiguous"]
            res["operator"].append(row)
            print(row, flush=True)
    # the paper network's eager fine-tuning step, bf16, batch 2 (one case per layout: same seed, same weights)
    cases = {}
    for layout in LAYOUTS:
        use_layout(layout)
        cases[layout] = finetune_case(cfg, StepSettings("cpu", 2, "bf16", True, False, False, seed=0))
        torch.manual_seed(12345)
        cases[layout].step()  # warm-up
    losses: dict[str, list[float]] = {k: [] for k in cases}

    def step_fn(layout: str) -> Any:
        def run() -> None:
            use_layout(layout)
            for _ in range(steps):
                torch.manual_seed(len(losses[layout]))  # the decoder's dropout: the same masks for both layouts
                cases[layout].step()
                losses[layout].append(cases[layout].last["loss"])
        return run

    t = best_of({k: step_fn(k) for k in cases}, rounds)
    use_layout("contiguous")
    res["finetune_step"] = {
        "preset": "paper", "batch_size": 2, "precision": "bf16-mixed", "steps_per_round": steps,
        "round_s_per_step": {k: [x / steps for x in v] for k, v in t.items()},
        "best_s_per_step": {k: min(v) / steps for k, v in t.items()},
        "losses_identical": losses["permuted"] == losses["contiguous"], "losses": losses,
    }
    fs = res["finetune_step"]
    fs["ratio_permuted_over_contiguous"] = fs["best_s_per_step"]["permuted"] / fs["best_s_per_step"]["contiguous"]
    fs["rounds_faster_contiguous"] = sum(a > b for a, b in zip(t["permuted"], t["contiguous"]))
    print(json.dumps({k: v for k, v in fs.items() if k != "losses"}, indent=1), flush=True)
    Path(out_path).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
