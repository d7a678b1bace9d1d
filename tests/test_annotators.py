"""Human-vs-model comparison: loading annotator folders, pair MDEs, bootstrap intervals, simulated annotators."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage.draw import line

from ssl4sar.annotators import (
    PAPER_ENSEMBLE_MDE_M,
    PAPER_HUMAN_MDE_M,
    PAPER_N_ANNOTATORS,
    compare_annotators,
    load_annotator_fronts,
    read_front_png,
    simulate_annotators,
)
from ssl4sar.errors import DataError
from ssl4sar.metrics import front_distances
from ssl4sar.postprocess import front_components

STEMS = ("COL_2011-06-18_TDX_7_1_024", "Mapple_2018-06-11_S1_20_2_009", "JAC_2009-08-15_TSX_6_1_005")


def wavy_front(shape=(120, 160), phase=0.0) -> np.ndarray:
    f = np.zeros(shape, np.uint8)
    x = np.arange(shape[1])
    y = (shape[0] / 2 + 15 * np.sin(x / 20.0 + phase)).astype(int)
    for i in range(shape[1] - 1):
        rr, cc = line(y[i], x[i], y[i + 1], x[i + 1])
        f[rr, cc] = 1
    return f


def test_paper_constants():
    assert (PAPER_ENSEMBLE_MDE_M, PAPER_HUMAN_MDE_M, PAPER_N_ANNOTATORS) == (75.0, 38.0, 10)


def test_simulate_annotators_reproducible_smooth_and_scaled():
    gt = wavy_front()
    a = simulate_annotators(gt, 3, displacement_m=60.0, resolution_m=6.0, seed=4)
    b = simulate_annotators(gt, 3, displacement_m=60.0, resolution_m=6.0, seed=4)
    c = simulate_annotators(gt, 3, displacement_m=60.0, resolution_m=6.0, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1])  # annotators differ from each other
    for f in a:
        assert f.dtype == np.uint8 and set(np.unique(f)) <= {0, 1}
        _, _, comp = front_components(f)
        assert comp.max() == 0  # still one connected line
    mdes = [np.mean([front_distances(f, gt, 6.0).mean()
                     for f in simulate_annotators(gt, 4, d, 6.0, seed=1)]) for d in (10.0, 60.0, 240.0)]
    assert mdes[0] < mdes[1] < mdes[2]
    assert 0.2 * 60 < mdes[1] < 1.5 * 60  # of the order of the RMS displacement
    with pytest.raises(ValueError):
        simulate_annotators(gt, 0, 10.0, 6.0)


def _write_annotators(root, fronts_by_annotator):
    for name, fronts in fronts_by_annotator.items():
        (root / name).mkdir(parents=True)
        for stem, f in fronts.items():
            Image.fromarray((f > 0).astype(np.uint8) * 255).save(root / name / f"{stem}_front.png")


def test_load_annotator_fronts_round_trip_and_errors(tmp_path):
    gt = wavy_front()
    fronts = {f"ann{i}": {s: f for s, f in zip(STEMS, simulate_annotators(gt, 3, 30.0, 7.0, seed=i))}
              for i in range(3)}
    _write_annotators(tmp_path / "study", fronts)
    loaded = load_annotator_fronts(tmp_path / "study")
    assert sorted(loaded) == ["ann0", "ann1", "ann2"]
    assert sorted(loaded["ann1"]) == sorted(STEMS)
    assert np.array_equal(loaded["ann2"][STEMS[1]], fronts["ann2"][STEMS[1]])
    assert list(load_annotator_fronts(tmp_path / "study", ["ann2", "ann0"])) == ["ann2", "ann0"]
    with pytest.raises(DataError, match="does not exist"):
        load_annotator_fronts(tmp_path / "nowhere")
    with pytest.raises(DataError, match="at least two"):
        load_annotator_fronts(tmp_path / "study", ["ann0"])
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((4, 4), 127, np.uint8)).save(bad)
    with pytest.raises(DataError, match="only 0 and 255"):
        read_front_png(bad)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(DataError, match="no '"):
        load_annotator_fronts(tmp_path / "empty")


def test_compare_annotators_pairs_bootstrap_and_model():
    gts = {s: wavy_front(phase=i) for i, s in enumerate(STEMS)}
    n_ann = 4
    sims = {s: simulate_annotators(g, n_ann, 40.0, 7.0, seed=i) for i, (s, g) in enumerate(gts.items())}
    annotations = {f"a{j}": {s: sims[s][j] for s in STEMS} for j in range(n_ann)}
    model = {s: simulate_annotators(g, 1, 150.0, 7.0, seed=99)[0] for s, g in gts.items()}
    res = compare_annotators(annotations, model, resolution_m=7.0, n_bootstrap=300, seed=1)
    hh = res.pairs[res.pairs["kind"] == "human-human"]
    mh = res.pairs[res.pairs["kind"] == "model-human"]
    assert len(hh) == n_ann * (n_ann - 1) // 2 and len(mh) == n_ann
    # a pair's MDE is the pooled MDE over the images
    row = hh.iloc[0]
    d = np.concatenate([front_distances(annotations[row["a"]][s], annotations[row["b"]][s], 7.0) for s in STEMS])
    assert row["mde_m"] == pytest.approx(d.mean(), rel=1e-12)
    summ = res.summary.set_index("kind")
    assert summ.loc["model-human", "mean_mde_m"] > summ.loc["human-human", "mean_mde_m"]
    for kind in ("human-human", "model-human"):
        lo, hi, mean = summ.loc[kind, ["ci_low_m", "ci_high_m", "mean_mde_m"]]
        assert lo <= mean <= hi and lo < hi
        assert res.bootstrap[kind].shape == (300,)
    again = compare_annotators(annotations, model, resolution_m=7.0, n_bootstrap=300, seed=1)
    assert again.summary.equals(res.summary)
    assert len(res.per_image) == (len(hh) + len(mh)) * len(STEMS)


def test_compare_annotators_identical_annotators_and_stem_resolution():
    gt = wavy_front()
    annotations = {"a": {STEMS[0]: gt, STEMS[1]: gt}, "b": {STEMS[0]: gt, STEMS[1]: gt, STEMS[2]: gt}}
    res = compare_annotators(annotations, n_bootstrap=50)  # resolution parsed from the CaFFe stems
    assert res.pairs["mde_m"].iloc[0] == 0.0 and res.pairs["images"].iloc[0] == 2
    empty = np.zeros_like(gt)
    res2 = compare_annotators({"a": {STEMS[0]: gt}, "b": {STEMS[0]: empty}}, n_bootstrap=10)
    assert res2.pairs["missing_fronts"].iloc[0] == 1 and np.isnan(res2.pairs["mde_m"].iloc[0])
    with pytest.raises(ValueError):
        compare_annotators({"a": {STEMS[0]: gt}})
    with pytest.raises(ValueError, match="no image"):
        compare_annotators({"a": {STEMS[0]: gt}, "b": {STEMS[1]: gt}})


def test_human_vs_model_tables_with_a_model_without_fronts():
    from ssl4sar.annotators import HUMAN_GROUP, human_vs_model, summary_for_display

    gts = {s: wavy_front(phase=i) for i, s in enumerate(STEMS)}
    sims = {s: simulate_annotators(g, 3, 40.0, 7.0, seed=i) for i, (s, g) in enumerate(gts.items())}
    annotations = {f"a{j}": {s: sims[s][j] for s in STEMS} for j in range(3)}
    good = {s: gts[s] for s in STEMS}
    one = {s: (gts[s] if i == 0 else np.zeros_like(gts[s])) for i, s in enumerate(STEMS)}
    none = {s: np.zeros_like(gts[s]) for s in STEMS}
    study = human_vs_model(annotations, {"ensemble_tta": good, "one": one, "none": none}, n_bootstrap=100)
    summary = study.summary.set_index("group")
    assert list(summary.index) == [HUMAN_GROUP, "ensemble_tta vs human", "one vs human", "none vs human"]
    assert summary.loc["one vs human", "images without model front"] == 2
    lo, hi = summary.loc["one vs human", ["ci_low_m", "ci_high_m"]]
    assert lo == pytest.approx(hi)  # one image: the bootstrap cannot vary
    assert np.isnan(summary.loc["none vs human", "mean_mde_m"])
    assert summary.loc["ensemble_tta vs human", "paper (m)"] == PAPER_ENSEMBLE_MDE_M
    ratio = summary.loc["ensemble_tta vs human", "mean_mde_m"] / summary.loc[HUMAN_GROUP, "mean_mde_m"]
    assert summary.loc["ensemble_tta vs human", "ratio to human–human"] == pytest.approx(ratio)
    assert study.per_image.shape == (len(STEMS), 4)
    shown = summary_for_display(study.summary)
    assert shown.loc["none vs human", "95% CI (m)"] == "n/a"


def test_study_note_write_study_and_paper_lines(tmp_path):
    from ssl4sar.annotators import PAPER_LINES, human_vs_model, study_note, write_study

    gts = {s: wavy_front(phase=i) for i, s in enumerate(STEMS)}
    sims = {s: simulate_annotators(g, 3, 40.0, 7.0, seed=i) for i, (s, g) in enumerate(gts.items())}
    annotations = {f"a{j}": {s: sims[s][j] for s in STEMS} for j in range(3)}
    one = {s: (gts[s] if i == 0 else np.zeros_like(gts[s])) for i, s in enumerate(STEMS)}
    two = {s: (gts[s] if i < 2 else np.zeros_like(gts[s])) for i, s in enumerate(STEMS)}
    study = human_vs_model(annotations, {"ensemble_tta": {s: gts[s] for s in STEMS}, "one": one, "two": two},
                           n_bootstrap=50)
    paper = ("The paper: ensemble vs annotators **75 m**, annotators among themselves **38 m**, a ratio of 1.97.")
    assert study_note(study, "ensemble_tta", 3) == paper
    assert study_note(study, "one", 3) == paper + (" **one found no front on 2 of the 3 images**: its pairs rest on "
                                                   "the 1 others — with one image the bootstrap has nothing to "
                                                   "resample and its interval collapses to a point.")
    assert study_note(study, "two", 3).endswith("**two found no front on 1 of the 3 images**: its pairs rest on the "
                                                "2 others.")
    paths = write_study(study, tmp_path)
    assert [p.name for p in paths] == ["summary.csv", "pairs.csv", "per_image.csv"]
    import pandas as pd

    pairs = pd.read_csv(tmp_path / "pairs.csv")
    assert len(pairs) == 3 + 3 * 3   # 3 human pairs, 3 model-human pairs per model
    per_image = pd.read_csv(tmp_path / "per_image.csv", index_col=0)
    assert sorted(per_image.index) == sorted(STEMS) and per_image.shape[1] == 4
    assert PAPER_LINES == {"paper, human vs human": 38.0, "paper, ensemble vs human": 75.0}


def test_prepare_annotators_simulated_and_real_and_the_example_image(tmp_path):
    from ssl4sar.annotators import example_image, prepare_annotators
    from ssl4sar.data.synthetic import generate

    caffe_root = generate(tmp_path / "data", preset="smoke", seed=0, layouts=("caffe",))["caffe"]
    sim = prepare_annotators(caffe_root, tmp_path / "out", n=4, displacement_m=58.0, seed=3)
    assert sim.simulated and sim.root == tmp_path / "out" / "simulated_annotators"
    assert list(sim.fronts) == ["annotator_01", "annotator_02", "annotator_03", "annotator_04"]
    assert len(sim.stems) == 3   # the smoke preset's three test scenes
    assert sim.note.startswith("**These annotators are a simulation**, not human delineations: 4 annotators, each the "
                               "ground-truth front of the 3 test images displaced by a smooth random field with an "
                               "RMS displacement of **58 m** (correlation length 1000 m), seed 3.")
    real = prepare_annotators(caffe_root, tmp_path / "unused", sim.root, shown=lambda p: p.name)
    assert not real.simulated and not (tmp_path / "unused").exists()
    assert real.note == "Annotator fronts from `simulated_annotators`: 4 annotators, 3 images delineated by all."
    assert real.stems == sim.stems
    # the example: the first stem on which the model has a front; all zeros when it has none there
    model = {sim.stems[0]: np.zeros_like(sim.fronts["annotator_01"][sim.stems[0]]),
             sim.stems[1]: sim.fronts["annotator_02"][sim.stems[1]]}
    stem, sar, fronts, front = example_image(caffe_root, sim, model)
    assert stem == sim.stems[1] and sar.shape == front.shape and np.array_equal(front, model[stem])
    assert list(fronts) == list(sim.fronts) and np.array_equal(fronts["annotator_03"], sim.fronts["annotator_03"][stem])
    stem, _, _, front = example_image(caffe_root, sim, {})
    assert stem == sim.stems[0] and not front.any() and front.shape == sim.fronts["annotator_01"][stem].shape
