"""Presets: typed sections, strict keys, `base` overrides, one source of defaults."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from ssl4sar.config import (
    PRESETS,
    FinetuneSection,
    Preset,
    as_preset,
    load_preset,
    paper_preset,
)
from ssl4sar.errors import DataError


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_complete_and_typed(name: str) -> None:
    cfg = load_preset(name)
    assert cfg["name"] == name
    typed = as_preset(cfg)
    assert isinstance(typed, Preset) and typed.to_dict() == cfg
    assert isinstance(typed.finetune, FinetuneSection) and isinstance(typed.finetune.lr, float)
    assert typed.finetune.loss_weights.ce_target == 0.5
    assert yaml.safe_load(yaml.safe_dump(cfg)) == cfg  # plain data: checkpoints and run records dump it


def test_demo_and_smoke_list_only_what_differs_from_paper() -> None:
    paper = load_preset("paper")
    for name in ("demo", "smoke"):
        raw = yaml.safe_load(Path(__file__).parents[1].joinpath("ssl4sar", "configs", f"{name}.yaml").read_text())
        assert raw.pop("base") == "paper"

        def repeats(node: dict, ref: dict, prefix: str = "") -> list[str]:
            out = []
            for k, v in node.items():
                if isinstance(v, dict) and isinstance(ref.get(k), dict):
                    out += repeats(v, ref[k], f"{prefix}{k}.")
                elif k in ref and ref[k] == v:
                    out.append(prefix + k)
            return out

        assert repeats(raw, paper) == [], f"{name}.yaml repeats paper values"
    demo, smoke = load_preset("demo"), load_preset("smoke")
    # inherited from paper, set in one place only
    assert demo["finetune"]["momentum"] == smoke["finetune"]["momentum"] == paper["finetune"]["momentum"] == 0.9
    assert demo["pretrain"]["optsimmim"] == {"lr": 0.01, "mask_ratio": 0.3, "token_size": 4}
    assert smoke["pretrain"]["optsimmim"]["lr"] == 0.001 and smoke["model"]["mlp_ratio"] == 2.0
    assert demo["synthetic"]["looks"] == 8.0 and "looks" not in smoke["synthetic"]


def test_misspelt_key_names_the_valid_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'lrr' \(did you mean 'lr'\?\); valid keys of "
                                         r"preset\.finetune: max_epochs, global_batch_size, .*, lr, "
                                         r"label_smoothing") as info:
        load_preset("smoke", {"finetune.lrr": 0.1})
    assert "preset 'smoke': with overrides finetune.lrr: preset.finetune" in str(info.value)
    with pytest.raises(ValueError, match=r"unknown key 'finetuen' \(did you mean 'finetune'\?\); valid keys of "
                                         r"preset: name, seed, model, data, finetune"):
        load_preset("paper", {"finetuen": {"lr": 0.1}})
    with pytest.raises(ValueError, match=r"preset\.pretrain\.optsimmim: unknown key 'mask_ration'"):
        load_preset("demo", {"pretrain.optsimmim.mask_ration": 0.5})
    with pytest.raises(ValueError, match=r"preset\.finetune\.loss_weights: unknown key 'ce'"):
        load_preset("demo", {"finetune.loss_weights.ce": 0.5})


def test_values_are_type_checked() -> None:
    with pytest.raises(ValueError, match=r"preset\.finetune\.max_epochs: expected an integer, got 'ten'"):
        load_preset("smoke", {"finetune.max_epochs": "ten"})
    with pytest.raises(ValueError, match=r"preset\.model\.depths\[1\]: expected an integer, got 1\.5"):
        load_preset("smoke", {"model.depths": [1, 1.5, 1, 1]})
    with pytest.raises(ValueError, match=r"preset\.finetune\.lr: expected a number, got True"):
        load_preset("smoke", {"finetune.lr": True})
    cfg = load_preset("smoke", {"finetune.lr": 1, "finetune.max_epochs": 3})
    assert cfg["finetune"]["lr"] == 1.0 and isinstance(cfg["finetune"]["lr"], float)
    assert cfg["finetune"]["max_epochs"] == 3
    # YAML 1.1 reads `1e12` (no dot) as a string: a number is still meant
    assert load_preset("smoke", {"finetune.lr": "1e12"})["finetune"]["lr"] == 1e12
    with pytest.raises(ValueError, match=r"preset\.finetune\.lr: expected a number, got 'fast'"):
        load_preset("smoke", {"finetune.lr": "fast"})


# (override, the message): a value of the right type outside the values the setting can take used to pass the
# schema and fail later (torch's "Invalid learning rate: -1.0", numpy's seed bounds) or run silently wrong (a
# probability of 30, a negative minimum front length)
OUT_OF_RANGE = [
    ({"finetune.lr": -1}, r"preset\.finetune\.lr: expected a number >= 0, got -1\.0"),
    ({"pretrain.optsimmim.lr": -0.5}, r"preset\.pretrain\.optsimmim\.lr: expected a number >= 0, got -0\.5"),
    ({"data.prob_mixup": 30}, r"preset\.data\.prob_mixup: expected a number in \[0, 1\], got 30\.0"),
    ({"data.mixup_weight": [0.1, 1.5]}, r"preset\.data\.mixup_weight\[1\]: expected a number in \[0, 1\], got 1\.5"),
    ({"finetune.momentum": 1}, r"preset\.finetune\.momentum: expected a number in \[0, 1\), got 1\.0"),
    ({"finetune.global_batch_size": 0}, r"preset\.finetune\.global_batch_size: expected an integer >= 1, got 0"),
    ({"model.depths": [2, 0, 6, 2]}, r"preset\.model\.depths\[1\]: expected an integer >= 1, got 0"),
    ({"model.num_classes": 1}, r"preset\.model\.num_classes: expected an integer >= 2, got 1"),
    ({"data.num_workers": -1}, r"preset\.data\.num_workers: expected an integer >= 0, got -1"),
    ({"pretrain.optsimmim.mask_ratio": 1.0},
     r"preset\.pretrain\.optsimmim\.mask_ratio: expected a number in \(0, 1\), got 1\.0"),
    ({"inference.gaussian_sigma": 0}, r"preset\.inference\.gaussian_sigma: expected a number > 0, got 0\.0"),
    ({"postprocess.min_front_length_m": -750},
     r"preset\.postprocess\.min_front_length_m: expected a number >= 0, got -750\.0"),
    ({"pretrain.val_max_pairs": 0}, r"preset\.pretrain\.val_max_pairs: expected an integer >= 1, got 0"),
    ({"seed": -1}, r"preset\.seed: expected an integer in \[0, 4294967295\], got -1"),
    ({"finetune.lr": float("nan")}, r"preset\.finetune\.lr: expected a number >= 0, got nan"),
    # infinity met every bound: a learning rate of inf, or a short-front threshold that drops every front
    ({"finetune.lr": "inf"}, r"preset\.finetune\.lr: expected a finite number >= 0, got inf"),
    ({"postprocess.min_front_length_m": float("inf")},
     r"preset\.postprocess\.min_front_length_m: expected a finite number >= 0, got inf"),
    ({"inference.gaussian_sigma": float("-inf")},
     r"preset\.inference\.gaussian_sigma: expected a finite number > 0, got -inf"),
]


@pytest.mark.parametrize("override, message", OUT_OF_RANGE, ids=[next(iter(o)) for o, _ in OUT_OF_RANGE])
def test_values_outside_their_range_are_refused_naming_the_range(override, message) -> None:
    with pytest.raises(ValueError, match=message):
        load_preset("smoke", override)


def test_the_edges_of_each_range_are_accepted() -> None:
    cfg = load_preset("smoke", {"data.prob_mixup": 1, "data.num_workers": 0, "finetune.momentum": 0,
                                "postprocess.min_front_length_m": 0, "seed": 2 ** 32 - 1,
                                "pretrain.val_max_pairs": None, "model.drop_path_rate": 0,
                                "finetune.lr": 0})  # a learning rate of 0 leaves the weights as they are
    assert cfg["data"]["prob_mixup"] == 1.0 and cfg["seed"] == 2 ** 32 - 1


def test_cli_seed_outside_numpys_range_is_refused_naming_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ssl4sar.cli import main

    (tmp_path / "data").mkdir()
    with caplog.at_level(logging.ERROR):
        rc = main(["finetune", "--preset", "smoke", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                   "--seed", "-1"])
    assert rc == 1
    assert "seed: expected an integer in [0, 4294967295], got -1" in caplog.text


def test_check_seed_is_a_setting_check() -> None:
    from ssl4sar.config import check_seed
    from ssl4sar.errors import SettingError

    assert check_seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 1.5, "3"):
        with pytest.raises(SettingError, match="seed: expected an integer"):
            check_seed(bad)


def test_yaml_file_with_base_and_with_a_typo(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("base: smoke\nfinetune:\n  max_epochs: 5\n")
    cfg = load_preset(str(good))
    assert cfg["name"] == "mine" and cfg["finetune"]["max_epochs"] == 5
    assert cfg["model"] == load_preset("smoke")["model"]
    child = tmp_path / "child.yaml"
    child.write_text("base: mine.yaml\nname: kid\nseed: 3\n")  # relative to the file that names it
    kid = load_preset(child)
    assert kid["name"] == "kid" and kid["seed"] == 3 and kid["finetune"]["max_epochs"] == 5

    bad = tmp_path / "bad.yaml"
    bad.write_text("base: paper\nfinetune:\n  lrr: 0.1\n")
    with pytest.raises(DataError, match=rf"{bad}: preset\.finetune: unknown key 'lrr'.*valid keys"):
        load_preset(str(bad))
    partial = tmp_path / "partial.yaml"
    partial.write_text("name: partial\nseed: 0\n")
    with pytest.raises(DataError, match=r"preset: missing key\(s\) model, data, finetune.*base: paper"):
        load_preset(str(partial))
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="chain loops"):
        load_preset(loop)


def test_as_preset_checks_dicts() -> None:
    cfg = load_preset("smoke")
    assert as_preset(cfg).model.img_size == 64
    assert as_preset("smoke") == as_preset(cfg)
    broken = {**cfg, "finetune": {k: v for k, v in cfg["finetune"].items() if k != "lr"}}
    with pytest.raises(ValueError, match=r"preset 'smoke': preset\.finetune: missing key\(s\) lr"):
        as_preset(broken)


def test_library_defaults_come_from_the_paper_preset() -> None:
    from ssl4sar.data.augment import AugmentParams
    from ssl4sar.evaluate import PAPER_TTA_ROTATIONS
    from ssl4sar.finetune import SegmentationModule
    from ssl4sar.models.tyrion import MODEL_CONFIG_DEFAULTS
    from ssl4sar.postprocess import DEFAULT_MIN_FRONT_LENGTH_M

    paper = paper_preset()
    assert MODEL_CONFIG_DEFAULTS == paper.model.to_dict()
    assert DEFAULT_MIN_FRONT_LENGTH_M == paper.postprocess.min_front_length_m == 750.0
    assert list(PAPER_TTA_ROTATIONS) == paper.inference.tta_rotations
    aug = AugmentParams()
    assert aug.zoom_range == tuple(paper.data.zoom_range) and aug.prob_mixup == paper.data.prob_mixup
    import inspect

    sig = inspect.signature(SegmentationModule.__init__).parameters
    assert sig["lr"].default == paper.finetune.lr and sig["weight_decay"].default == paper.finetune.weight_decay


def test_cli_set_with_a_misspelt_key_fails_naming_the_valid_keys(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from ssl4sar.cli import main

    with caplog.at_level(logging.ERROR):
        rc = main(["finetune", "--preset", "smoke", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                   "--set", "finetune.lrr=0.1"])
    assert rc == 1
    assert "unknown key 'lrr' (did you mean 'lr'?); valid keys of preset.finetune:" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        rc = main(["pretrain", "--method", "optsimmim", "--preset", "smoke", "--ssl4sar", str(tmp_path), "--out",
                   str(tmp_path / "p"), "--set", "pretrain.optsimmim.lrr=0.1"])
    assert rc == 1
    assert "preset.pretrain.optsimmim: unknown key 'lrr'" in caplog.text
