"""The TYRION network reproduces the official network's logits (fixtures tyrion_forward.json/.npz).

Every number comes from the fixture files: the weight-fill rule is applied to the rows of
``tyrion_state_dict.tsv`` (official keys, incl. the 3-channel patch embedding and the unused decoder
modules, which still consume their index ``i``), the official state dict is converted with
:func:`convert_official_tyrion`, and our float64 / float32 forwards are compared to the official logits.

The fixture stores the float64 logits as float32, so the float64 check is
``|ours − stored| ≤ 1e-9 · max_abs_logit + ½ ulp(stored)`` (the rounding of the stored value), and the
float64 ``max_abs_logit`` recorded in the json is checked at 1e-9 relative.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl4sar.models import Tyrion
from ssl4sar.models.convert import ConversionReport, convert_official_tyrion

pytestmark = [pytest.mark.reference, pytest.mark.slow]


def _official_state_dict(reference_dir: Path, rule: dict) -> dict[str, torch.Tensor]:
    """Apply ``weight_fill_rule`` to the TSV rows in file order (float64)."""
    with open(reference_dir / "tyrion_state_dict.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    sd: dict[str, torch.Tensor] = {}
    i = 0
    for row in rows:
        if row["kind"] != "param" or not row["dtype"].startswith(("float", "torch.float")):
            continue
        shape = tuple(int(s) for s in row["shape"].split(","))
        k = np.arange(math.prod(shape), dtype=np.float64)
        v = rule["scale"] * np.sin(rule["freq"] * k + rule["phase"] * i)
        if any(row["key"].endswith(s) for s in rule["plus_one_for_keys_ending_with"]):
            v = v + 1.0
        if any(row["key"].endswith(s) for s in rule["plus_ln10_for_keys_ending_with"]):
            v = v + math.log(10.0)
        sd[row["key"]] = torch.from_numpy(v.reshape(shape))
        i += 1
    return sd


def _input_image(spec: dict) -> np.ndarray:
    """Evaluate the json's input formula (functions of row index r and column index c) in float64."""
    _, _, h, w = spec["shape"]
    r, c = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    names = {"sin": np.sin, "cos": np.cos, "exp": np.exp, "sqrt": np.sqrt, "pi": np.pi, "r": r, "c": c}
    image = eval(spec["formula"], {"__builtins__": {}}, names)  # formula text from the fixture
    zero = spec.get("zero_block_rows_cols")
    if zero:
        (r0, r1), (c0, c1) = zero
        image[r0:r1, c0:c1] = 0.0
    return np.broadcast_to(image, (h, w)).astype(np.float64)


def test_logits_match_official(reference_dir: Path) -> None:
    meta = json.loads((reference_dir / "tyrion_forward.json").read_text())
    arrays = np.load(reference_dir / "tyrion_forward.npz")
    hp = meta["network_hyperparameters"]
    assert hp["in_chans"] == 3 and hp["patch_norm"]  # the official convention our converter undoes
    cfg = {k: hp[k] for k in ("img_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size",
                              "mlp_ratio", "qkv_bias", "num_classes", "drop_path_rate", "attn_drop_rate")}
    cfg["proj_drop_rate"] = hp["drop_rate"]

    official = _official_state_dict(reference_dir, meta["weight_fill_rule"])
    report = ConversionReport()
    converted = convert_official_tyrion(official, report=report)

    torch.set_num_threads(2)
    model = Tyrion.from_config(cfg).double().eval()
    model.load_state_dict(converted)  # strict: every tensor of ours is filled

    image = _input_image(meta["input"])
    stored_input = arrays["input"]
    assert stored_input.shape == image.shape
    np.testing.assert_allclose(image, stored_input, rtol=0, atol=float(np.spacing(np.float32(1.0))))

    # ---- float64
    x = torch.from_numpy(image.copy())[None, None]
    with torch.no_grad():
        skips = model.encode(model.embed(x))
        logits = model.head(model.decode(skips))[0].numpy()
    stored = arrays["logits"]
    assert logits.shape == stored.shape
    max_abs = float(meta["max_abs_logit"])
    assert abs(float(np.abs(logits).max()) - max_abs) <= 1e-9 * max_abs
    tol = 1e-9 * max_abs + 0.5 * np.spacing(np.abs(stored)).astype(np.float64)
    err = np.abs(logits - stored.astype(np.float64))
    assert np.all(err <= tol), f"float64 max error {err.max():.3e} (max_abs_logit {max_abs:.6f})"
    for n, skip in enumerate(skips):
        ref32 = arrays[f"skip{n}_channel_mean"]  # float32 storage of float64 values
        ours = skip[0].mean(dim=(1, 2)).numpy()  # mean over the tokens, one value per channel
        skip_tol = 1e-9 * float(np.abs(ref32).max()) + 0.5 * np.spacing(np.abs(ref32)).astype(np.float64)
        skip_err = np.abs(ours - ref32.astype(np.float64))
        assert np.all(skip_err <= skip_tol), f"skip {n}: max error {skip_err.max():.3e}"

    # ---- float32 (stored float32 input)
    model = model.float()
    with torch.no_grad():
        logits32 = model(torch.from_numpy(stored_input)[None, None])[0].numpy()
    err32 = float(np.abs(logits32 - stored).max())
    assert err32 <= 2e-4 * max_abs, f"float32 max error {err32:.3e}"
