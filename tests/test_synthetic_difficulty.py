"""The demo preset's easier synthetic data: difficulty keys are parsed, validated and change the scenes."""

from __future__ import annotations

import numpy as np
import pytest

from ssl4sar.config import load_preset
from ssl4sar.data.synthetic import Radiometry, generate_caffe, synthetic_difficulty
from ssl4sar.errors import DataError


def test_demo_preset_difficulty_is_parsed():
    kw = synthetic_difficulty(load_preset("demo")["synthetic"])
    assert kw["looks"] == 8.0 and kw["na_probability"] == pytest.approx(0.15)
    rad = kw["radiometry"]
    assert isinstance(rad, Radiometry) and rad.rock_db == (-16.0, -11.0)
    # the realistic presets set nothing: the generator's defaults apply
    assert synthetic_difficulty(load_preset("paper")["synthetic"]) == {}


@pytest.mark.parametrize("bad", [{"looks": 0}, {"looks": "many"}, {"na_probability": 1.5},
                                 {"radiometry": {"no_such_field": 1}}, {"radiometry": [1, 2]}])
def test_bad_difficulty_values_name_the_source(bad):
    with pytest.raises(DataError, match="my.yaml"):
        synthetic_difficulty(bad, source="my.yaml")


def _speckle_cv(root):
    """Coefficient of variation of SAR amplitude inside each scene's glacier class (lower = fewer looks' noise)."""
    from ssl4sar.data.caffe import discover, load_scene

    cvs = []
    for scene in discover(root, "train"):
        arrays = load_scene(scene, with_front=False, with_bbox=False)
        sar, zones = arrays["image"].astype(float), arrays["zones"]
        vals = sar[(zones == 2) & (sar > 0) & (sar < 255)]
        if vals.size > 500:
            cvs.append(vals.std() / vals.mean())
    return float(np.median(cvs))


def test_more_looks_give_smoother_scenes(tmp_path):
    kw = dict(n_train=4, n_test=1, scene_size=(96, 128), seed=3)
    generate_caffe(tmp_path / "few", looks=1.0, **kw)
    generate_caffe(tmp_path / "many", looks=16.0, **kw)
    assert _speckle_cv(tmp_path / "many") < 0.8 * _speckle_cv(tmp_path / "few")
