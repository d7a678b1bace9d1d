"""The book's experiments, designed like the paper's: several seeds per initialisation, tests, ensembles, CIs.

The paper trains five runs per initialisation, reports the test MDE as mean ± sd over runs, tests the differences
between methods (:func:`ssl4sar.stats.compare_methods`) and builds its final model as the ensemble of the runs of one
initialisation (mean of the softmax, then test-time augmentation). This module runs that protocol at any scale:

* :func:`finetune_seeds` fine-tunes every (initialisation, seed), each run in its own single-thread process (two
  runs at a time on two cores), scores its exported network on the test split and writes ``finetune/runs.csv``.
  A run's numbers depend on its seed only, not on which process ran it or how many ran beside it.
* :func:`seed_summary` (mean ± sd per initialisation) and :func:`compare_initialisations` (the paper's tests).
* :func:`evaluate_ensembles` evaluates the ensemble of one initialisation's seeds with and without TTA (one pass
  over the scenes, shared by processes on a CPU) and writes
  ``evaluate/summary.csv``: every single run and ensemble with its test MDE, fronts found and a bootstrap 95 %
  interval of the pooled MDE over test scenes (:func:`bootstrap_pooled_mde`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssl4sar.book import RUN_THREADS, WorkLayout, pin_threads, pinned_threads
from ssl4sar.io import write_text_atomic
from ssl4sar.parallel import parallel_map  # re-exported: its home before the synthetic data used it too

log = logging.getLogger(__name__)

#: Initialisations in the order the paper reports them (scratch is the floor, not in the paper's tables).
INIT_ORDER = ("scratch", "imagenet", "optsimmim", "opttranslator")
#: The paper's names of the initialisations (``ssl4sar.stats.PAPER_RUN_MDES_M`` keys).
PAPER_NAMES = {"imagenet": "TYRION", "optsimmim": "OptSimMIM", "opttranslator": "OptTranslator"}
#: Columns of ``finetune/runs.csv``.
RUN_COLUMNS = ("init", "seed", "val_mde_m", "val_fronts_found", "val_images", "best_epoch", "test_mde_m",
               "fronts_found", "test_images", "mean_iou", "seconds", "checkpoint")
#: Columns of ``evaluate/summary.csv``.
SUMMARY_COLUMNS = ("model", "init", "members", "tta", "test_mde_m", "ci_low_m", "ci_high_m", "fronts_found",
                   "test_images", "mean_iou")
#: Initialisation pairs tested (baseline, opponent; H1: the baseline's MDEs are larger), when both are present.
TEST_PAIRS = (("scratch", "optsimmim"), ("scratch", "opttranslator"), ("imagenet", "optsimmim"),
              ("imagenet", "opttranslator"), ("scratch", "imagenet"), ("optsimmim", "opttranslator"))


def _finite(value: Any) -> float:
    """``value`` as a float, NaN for ``None`` and the logged placeholder of an undefined MDE."""
    from ssl4sar.domain import is_undefined_mde

    v = float("nan") if value is None else float(value)
    return float("nan") if not math.isfinite(v) or is_undefined_mde(v) else v


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run of the protocol: an initialisation (name and weights source) and a seed."""

    init: str
    source: str
    seed: int
    out_dir: Path


def run_one(cfg: Mapping[str, Any], caffe_root: Path, spec: RunSpec, *, max_epochs: int | None = None,
            imagenet_weights: str | Path | None = None, threads: int = RUN_THREADS, device: str = "cpu",
            resume: bool = False) -> dict[str, Any]:
    """Fine-tune one run on ``device`` (a CPU process with ``threads`` threads, or one GPU), score it on the test
    split; one row.

    The test evaluation (no TTA) goes to ``out_dir/test`` (the tables and fronts of :func:`ssl4sar.evaluate.evaluate`).
    ``resume``: keep what an interrupted call left in ``out_dir``: training goes on from its last checkpoint (a
    finished run trains no further), the test scenes already scored with the same model are kept; ``seconds`` then
    counts this call only. Otherwise ``out_dir`` is replaced.
    """
    import shutil

    from ssl4sar.evaluate import evaluate
    from ssl4sar.finetune import finetune
    from ssl4sar.metrics_log import epoch_table
    from ssl4sar.training import single_device_hardware

    pin_threads(threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "ssl4sar.data.caffe"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if spec.out_dir.exists() and not resume:
        shutil.rmtree(spec.out_dir)  # the protocol's own output: start afresh
    t0 = time.perf_counter()
    result = finetune(cfg, caffe_root, spec.out_dir, init=spec.source, seed=spec.seed, max_epochs=max_epochs,
                      imagenet_weights=imagenet_weights if spec.init == "imagenet" else None, resume=resume,
                      progress=False, **single_device_hardware(device))
    table = epoch_table(result.metrics_csv)
    write_text_atomic(spec.out_dir / "metrics.csv", table.to_csv())
    best_epoch, val_images, val_found = None, math.nan, math.nan
    if result.best_mde_export is not None:
        from ssl4sar.models.convert import load_checkpoint

        _, meta = load_checkpoint(result.best_mde_export)
        best_epoch = meta.get("epoch")
        if best_epoch is not None and int(best_epoch) in table.index and "val/images" in table:
            row = table.loc[int(best_epoch)]
            val_images = float(row["val/images"])
            val_found = val_images - float(row["val/missing_fronts"])
    test = evaluate([result.best_mde_export], caffe_root, "test", spec.out_dir / "test", preset=dict(cfg),
                    device=device, figures=0, progress=False, resume=resume)
    s = test.summary
    return {"init": spec.init, "seed": spec.seed, "val_mde_m": _finite(result.best_mde_m),
            "val_fronts_found": val_found, "val_images": val_images,
            "best_epoch": None if best_epoch is None else int(best_epoch) + 1,
            "test_mde_m": _finite(s.get("pooled_mde_m")), "fronts_found": int(s["images"]) - int(s["missing_fronts"]),
            "test_images": int(s["images"]), "mean_iou": _finite(s.get("mean_iou")),
            "seconds": round(time.perf_counter() - t0, 1), "checkpoint": str(result.best_mde_export)}


def _run_spec(args: tuple[Mapping[str, Any], Path, RunSpec, int | None, Any, str, bool], threads: int
              ) -> dict[str, Any]:
    cfg, caffe_root, spec, max_epochs, imagenet_weights, device, resume = args
    return run_one(cfg, caffe_root, spec, max_epochs=max_epochs, imagenet_weights=imagenet_weights, threads=threads,
                   device=device, resume=resume)


def protocol_device(device: str | None = "auto", workers: int = 1, gpu_workers: int = 1) -> tuple[str, int]:
    """The device of the protocol's runs and how many run at once: ``("cuda", gpu_workers)`` where a GPU is found
    (by default one run after the other on it), else ``("cpu", workers)`` (single-thread processes side by side).
    Both counts must be at least 1 (:func:`check_worker_counts`), whichever device is found."""
    from ssl4sar.models.fast import resolve_device

    check_worker_counts(workers=workers, gpu_workers=gpu_workers)
    dev = resolve_device(device)
    return (str(dev), int(gpu_workers)) if dev.type == "cuda" else ("cpu", int(workers))


def check_worker_counts(**counts: int) -> None:
    """:class:`~ssl4sar.errors.SettingError` naming the first of ``counts`` (name → number of processes) below 1;
    ``-1`` does not mean "all cores" here."""
    from ssl4sar.errors import SettingError

    for name, value in counts.items():
        if value < 1:
            raise SettingError(f"{name} must be at least 1, got {value}")


def finetune_seeds(cfg: Mapping[str, Any], caffe_root: str | Path, layout: WorkLayout, sources: Mapping[str, str],
                   seeds: Sequence[int], *, workers: int = 1, max_epochs: int | None = None,
                   imagenet_weights: str | Path | None = None, threads: int = RUN_THREADS, device: str = "cpu",
                   resume: bool = False) -> pd.DataFrame:
    """Fine-tune every initialisation of ``sources`` (name → ``scratch`` / ``imagenet`` / checkpoint) with each seed
    on ``device`` (see :func:`protocol_device`); ``resume``: each run goes on from what it left (:func:`run_one`).

    Writes ``layout.finetune_run(init, seed)`` per run and ``layout.finetune_runs_csv``; returns that table
    (:data:`RUN_COLUMNS`, one row per run, in the order of :data:`INIT_ORDER` then seed). MDEs in metres, NaN
    where no front was found at all; ``checkpoint`` relative to the work folder. Floats are written at full
    precision, so that two builds can be compared exactly.
    """
    if not sources:
        raise ValueError("no initialisation to fine-tune")
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"seeds must be distinct and not empty, got {list(seeds)}")
    order = sorted(sources, key=lambda i: (INIT_ORDER.index(i) if i in INIT_ORDER else len(INIT_ORDER), i))
    specs = [RunSpec(init, str(sources[init]), int(s), layout.finetune_run(init, int(s))) for init in order
             for s in seeds]
    jobs = [(dict(cfg), Path(caffe_root), spec, max_epochs, imagenet_weights, device, resume) for spec in specs]
    rows = parallel_map(_run_spec, jobs, workers, threads=threads)
    runs = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    runs["checkpoint"] = [layout.relative(p) for p in runs["checkpoint"]]
    layout.finetune.mkdir(parents=True, exist_ok=True)
    write_text_atomic(layout.finetune_runs_csv, runs.to_csv(index=False))
    return runs


def read_runs(layout: WorkLayout) -> pd.DataFrame:
    """``finetune/runs.csv`` of chapter 4; a clear error when it is missing."""
    if not layout.finetune_runs_csv.is_file():
        raise FileNotFoundError(f"{layout.relative(layout.finetune_runs_csv)} not found: chapter 4 (04_finetuning) "
                                "writes it; run it with the same work_dir and preset first")
    return pd.read_csv(layout.finetune_runs_csv)


def checkpoint_path(layout: WorkLayout, shown: str) -> Path:
    """The file behind a ``checkpoint`` entry of ``runs.csv`` (written relative to the work folder)."""
    p = Path(shown)
    return layout.root / p.relative_to("work_dir") if p.parts and p.parts[0] == "work_dir" else p


def _mean_sd(values: pd.Series) -> str:
    v = values.dropna().astype(float)
    if v.empty:
        return "—"
    return f"{v.mean():.0f} ± {v.std(ddof=1):.0f}" if len(v) > 1 else f"{v.iloc[0]:.0f}"


def seed_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per initialisation: seeds, test MDE and fronts found as mean ± sd over seeds (sd with ddof 1), val MDE."""
    rows = []
    for init, g in runs.groupby("init", sort=False):
        n = int(g["test_images"].iloc[0])
        found = g["fronts_found"].astype(float)
        rows.append({"init": init, "seeds": len(g), "test MDE (m)": _mean_sd(g["test_mde_m"]),
                     "fronts found": f"{found.mean():.1f} ± {found.std(ddof=1):.1f} of {n}" if len(g) > 1
                     else f"{found.iloc[0]:.0f} of {n}",
                     "val MDE (m)": _mean_sd(g["val_mde_m"]), "mean IoU": f"{g['mean_iou'].mean():.3f}"})
    return pd.DataFrame(rows).set_index("init")


def compare_initialisations(runs: pd.DataFrame, seed: int = 0, n_resamples: int = 9999) -> pd.DataFrame:
    """The paper's tests (Levene, permutation Levene, one-sided Mann–Whitney U, Cohen's d) between initialisations.

    Uses the test MDE of every run with a front; pairs of :data:`TEST_PAIRS` whose initialisations both have at
    least two such runs. An empty table (same columns) when no pair qualifies.
    """
    from ssl4sar.stats import compare_methods

    mdes = {init: g["test_mde_m"].dropna().astype(float).tolist() for init, g in runs.groupby("init", sort=False)}
    pairs = [(a, b) for a, b in TEST_PAIRS if len(mdes.get(a, [])) >= 2 and len(mdes.get(b, [])) >= 2]
    if not pairs:
        return pd.DataFrame(columns=["baseline", "opponent", "mean_baseline_m", "mean_opponent_m", "mwu_u", "mwu_p",
                                     "significant", "cohens_d_pooled"])
    with np.errstate(all="ignore"):
        return compare_methods(mdes, pairs=pairs, n_resamples=n_resamples, seed=seed)


def choose_ensemble_init(runs: pd.DataFrame) -> str:
    """The initialisation whose seeds form the ensemble, from validation numbers only.

    Most validation fronts found (mean over seeds), then the lowest mean validation MDE, then the paper's
    preference (OptTranslator, OptSimMIM, ImageNet, scratch).
    """
    preference = ("opttranslator", "optsimmim", "imagenet", "scratch")
    keys = []
    for init, g in runs.groupby("init", sort=False):
        found = g["val_fronts_found"].astype(float).mean()
        mde = g["val_mde_m"].astype(float).mean()
        keys.append((-found if math.isfinite(found) else math.inf, mde if math.isfinite(mde) else math.inf,
                     preference.index(init) if init in preference else len(preference), init))
    return min(keys)[-1]


def bootstrap_pooled_mde(per_image: pd.DataFrame, n_bootstrap: int = 2000, confidence: float = 0.95,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (metres) of the pooled MDE, resampling scenes with replacement.

    The pooled MDE of a resample is Σ distances / Σ count over its scenes with a front (``sum_m``,
    ``n_distances`` of ``per_image.csv``). ``(nan, nan)`` when no scene has a front; a constant interval when one
    scene has.
    """
    sums = per_image["sum_m"].to_numpy(float)
    counts = per_image["n_distances"].to_numpy(float)
    if counts.sum() <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = len(per_image)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rep = (weights @ sums) / (weights @ counts)
    rep = rep[np.isfinite(rep)]
    lo, hi = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    return float(np.quantile(rep, lo)), float(np.quantile(rep, hi))


def _summary_row(model: str, init: str, members: int, tta: bool, out_dir: Path, seed: int) -> dict[str, Any]:
    per_image = pd.read_csv(out_dir / "per_image.csv")
    s = json.loads((out_dir / "summary.json").read_text())
    lo, hi = bootstrap_pooled_mde(per_image, seed=seed)
    return {"model": model, "init": init, "members": members, "tta": tta,
            "test_mde_m": _finite(s.get("pooled_mde_m")), "ci_low_m": lo, "ci_high_m": hi,
            "fronts_found": int(s["images"]) - int(s["missing_fronts"]), "test_images": int(s["images"]),
            "mean_iou": _finite(s.get("mean_iou"))}


def evaluate_ensembles(cfg: Mapping[str, Any], caffe_root: str | Path, layout: WorkLayout, runs: pd.DataFrame,
                       init: str | None = None, *, workers: int = 1, figures: int = 0, seed: int = 0,
                       threads: int = RUN_THREADS, device: str = "cpu", resume: bool = True) -> pd.DataFrame:
    """Ensemble of the seeds of ``init`` (default :func:`choose_ensemble_init`), without and with TTA.

    Writes ``layout.evaluation("ensemble")`` and ``layout.evaluation("ensemble_tta")`` (tables, class maps, fronts,
    uncertainty) and ``layout.evaluate_summary_csv``: one row per single run (its test evaluation of chapter 4)
    and per ensemble (:data:`SUMMARY_COLUMNS`; CI: bootstrap over test scenes, 2000 resamples). Returns it.

    Both ensembles come from one pass over the scenes (:func:`ssl4sar.evaluate.evaluate_with_and_without_tta`:
    each member's unrotated map is computed once). On a CPU ``workers`` processes of ``threads`` torch threads
    share the scenes, so that every core works to the end: run as one process each, the evaluation without TTA
    finished after a quarter of the time and left its core idle.

    ``resume`` (default): keep the scenes an earlier call finished with the same members' weights, settings and
    data (:func:`ssl4sar.evaluate.evaluate`'s records), so that running the chapter again after a stop (a closed
    notebook, a lost connection) evaluates only the rest; the tables are those of an uninterrupted run.
    """
    from ssl4sar.evaluate import evaluate_with_and_without_tta

    init = init or choose_ensemble_init(runs)
    members = [checkpoint_path(layout, c) for c in runs.loc[runs["init"] == init, "checkpoint"]]
    if not members:
        raise ValueError(f"no run of initialisation {init!r} in runs.csv (have {sorted(set(runs['init']))})")
    processes = max(1, int(workers)) if device == "cpu" else 1
    with pinned_threads(threads * processes):  # each process gets `threads` of them
        evaluate_with_and_without_tta(members, Path(caffe_root), "test", layout.evaluation("ensemble"),
                                      layout.evaluation("ensemble_tta"), figures=0, tta_figures=figures,
                                      preset=dict(cfg), device=device, progress=False, resume=resume,
                                      processes=processes)
    rows = [_summary_row(f"{r.init} seed {r.seed}", r.init, 1, False, checkpoint_path(layout, r.checkpoint).parent
                         / "test", seed) for r in runs.itertuples()]
    rows += [_summary_row(f"ensemble of {len(members)} {init}" + (" + TTA" if tta else ""), init, len(members), tta,
                          layout.evaluation(name), seed) for name, tta in (("ensemble", False), ("ensemble_tta", True))]
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    write_text_atomic(layout.evaluate_summary_csv, summary.to_csv(index=False))
    return summary


def best_single_run(runs: pd.DataFrame) -> pd.Series:
    """The run with the most validation fronts found, then the lowest validation MDE (no test data used)."""
    keys = runs.assign(_found=-runs["val_fronts_found"].astype(float).fillna(-math.inf),
                       _mde=runs["val_mde_m"].astype(float).fillna(math.inf))
    return runs.loc[keys.sort_values(["_found", "_mde"], kind="stable").index[0]]


#: columns of runs.csv shown beside the chosen run
CHOICE_COLUMNS = ("init", "seed", "val_mde_m", "val_fronts_found", "test_mde_m", "fronts_found", "selected")


def choose_checkpoint(layout: WorkLayout, checkpoint: str | Path | None = None
                      ) -> tuple[Path, pd.DataFrame | None]:
    """The model a chapter applies: ``checkpoint`` when given (:class:`FileNotFoundError` when missing), else the best
    run of ``runs.csv`` on validation data (:func:`best_single_run`).

    Returns ``(checkpoint file, the runs with a ``selected`` column, or None when ``checkpoint`` was given)``; the
    table keeps :data:`CHOICE_COLUMNS`, MDEs in m rounded to 0.1 m.
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {layout.relative(path)} not found")
        return path, None
    runs = read_runs(layout)
    best = best_single_run(runs)
    table = runs.assign(selected=runs.index == best.name)[list(CHOICE_COLUMNS)].round(1)
    return checkpoint_path(layout, best["checkpoint"]), table


def model_note(layout: WorkLayout, paths: Sequence[Path], img_size: int, settings: Any, preset_name: str) -> str:
    """Markdown: which model(s) a chapter applies (paths relative to the work folder), how (float32 or autocast,
    windows, stride, Gaussian σ in px, TTA rotations; ``settings``:
    :class:`ssl4sar.inference_settings.InferenceSettings`), and — for the ``smoke`` and ``demo`` presets — that it
    is the small model of this build, not TYRION trained on CaFFe."""
    tta = tuple(settings.rotations) != (0,) or bool(settings.flips)
    return (f"Model: {len(paths)} member(s), {', '.join(f'`{layout.relative(p)}`' for p in paths)} ({img_size} px "
            f"input), on `{settings.device}` {_precision_words(settings)}; windows of {settings.context_size} px "
            f"every {settings.stride} px, "
            f"Gaussian σ {settings.sigma:g} px, "
            + (f"test-time augmentation with the rotations {list(settings.rotations)}." if tta
               else "no test-time augmentation.")
            + f"\n\n**This is the `{preset_name}` model of this build**"
            + (": a small network trained for minutes on synthetic scenes. The accuracy below describes that model, "
               "not TYRION trained on CaFFe." if preset_name in ("smoke", "demo") else "."))


def _precision_words(settings: Any) -> str:
    amp = getattr(settings, "amp_dtype", None)
    return f"with {amp} autocast" if amp else "in float32"


def plan_initialisations(inits: Sequence[str], layout: WorkLayout, cfg: Mapping[str, Any],
                         paper_cfg: Mapping[str, Any], imagenet_weights: str | Path | None = None
                         ) -> tuple[dict[str, str], list[str]]:
    """Which initialisations can be trained: name → weights source, and a sentence for each one skipped.

    ``scratch`` always; ``imagenet`` with an existing ``imagenet_weights`` file and the SwinV2-T network of the
    paper preset; ``optsimmim`` / ``opttranslator`` when chapters 2 / 3 exported their network; any other name is
    taken as a checkpoint path.
    """
    swinv2_t = all(cfg["model"][k] == paper_cfg["model"][k] for k in ("patch_size", "embed_dim", "depths",
                                                                       "num_heads"))
    chapter = {"optsimmim": "chapter 2 (`02_optsimmim`)", "opttranslator": "chapter 3 (`03_opttranslator`)"}
    plan: dict[str, str] = {}
    notes: list[str] = []
    for init in inits:
        if init == "scratch":
            plan[init] = "scratch"
        elif init == "imagenet":
            if imagenet_weights is None:
                notes.append("`imagenet` skipped: no ImageNet weights file given (parameter `imagenet_weights`).")
            elif not Path(imagenet_weights).is_file():
                notes.append(f"`imagenet` skipped: `{imagenet_weights}` does not exist.")
            elif not swinv2_t:
                notes.append("`imagenet` skipped: the ImageNet SwinV2-T weights fit only the `paper` preset's network.")
            else:
                plan[init] = "imagenet"
        elif init in chapter:
            checkpoint = layout.pretrained(init)
            if checkpoint.is_file():
                plan[init] = str(checkpoint)
            else:
                notes.append(f"`{init}` skipped: `{layout.relative(checkpoint)}` is missing; "
                             f"{chapter[init]} writes it.")
        else:
            plan[init] = init
    return plan, notes


def recipe_table(cfg: Mapping[str, Any], paper_cfg: Mapping[str, Any], seeds: int) -> pd.DataFrame:
    """The fine-tuning recipe of ``cfg`` next to the paper's (rows: setting; columns: paper, this run)."""

    def rows(c: Mapping[str, Any], n_seeds: int) -> dict[str, Any]:
        ft, data, model = c["finetune"], c["data"], c["model"]
        return {"context / target crop (px)": f"{data['context_size']} / {data['target_size']}",
                "network: dim / depths": f"{model['embed_dim']} / {model['depths']}",
                "SGD lr (constant)": ft["lr"], "global batch": ft["global_batch_size"],
                "steps per epoch": int(data["samples_per_epoch"]) // int(ft["global_batch_size"]),
                "epochs": ft["max_epochs"], "seeds per initialisation": n_seeds}

    return pd.DataFrame({"paper": rows(paper_cfg, 5), f"this run ({cfg.get('name', 'custom')})": rows(cfg, seeds)})


def first_seed_curves(layout: WorkLayout, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per initialisation, the per-epoch table (``metrics.csv``) of its first seed, for the learning curves."""
    curves = {}
    for init, g in runs.groupby("init", sort=False):
        path = checkpoint_path(layout, g["checkpoint"].iloc[0]).parent / "metrics.csv"
        if path.is_file():
            curves[f"{init} (seed {int(g['seed'].iloc[0])})"] = pd.read_csv(path, index_col="epoch")
    return curves


def rescore_without_length_filter(eval_dir: str | Path, caffe_root: str | Path, out_dir: str | Path
                                  ) -> dict[str, Any]:
    """Score the saved class maps of an evaluation again with the short-front filter off (``min_front_length_m`` 0).

    Evidence for a diagnosis: when an evaluation finds fewer fronts than expected, this tells whether the fronts
    were there and dropped as too short, or not there at all. Returns fronts found and pooled MDE (m), with and
    without the filter. No network is run.
    """
    from ssl4sar.data import caffe
    from ssl4sar.evaluate import evaluate_predictions

    eval_dir = Path(eval_dir)
    maps = {p.name.removesuffix("_zones.png"): caffe.read_zones(p)
            for p in sorted((eval_dir / "class_maps").glob("*_zones.png"))}
    before = json.loads((eval_dir / "summary.json").read_text())
    after = evaluate_predictions(maps, caffe_root, "test", out_dir, min_front_length_m=0.0, figures=0,
                                 progress=False).summary
    return {"fronts_found": int(before["images"]) - int(before["missing_fronts"]),
            "fronts_found_without_filter": int(after["images"]) - int(after["missing_fronts"]),
            "test_images": int(before["images"]), "test_mde_m": _finite(before.get("pooled_mde_m")),
            "test_mde_without_filter_m": _finite(after.get("pooled_mde_m"))}


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """``evaluate/summary.csv`` as a chapter shows it: one row per model, the interval and the fronts found as
    text (``182–258``, ``30 of 32``), so that the table fits the page."""
    ci = [f"{lo:.0f}–{hi:.0f}" if math.isfinite(lo) and math.isfinite(hi) else "–"
          for lo, hi in zip(summary["ci_low_m"].astype(float), summary["ci_high_m"].astype(float), strict=True)]
    return pd.DataFrame({"test MDE (m)": summary["test_mde_m"].astype(float).round(1).to_numpy(),
                         "95 % CI (m)": ci,
                         "fronts found": [f"{int(f)} of {int(n)}" for f, n in
                                          zip(summary["fronts_found"], summary["test_images"], strict=True)],
                         "mean IoU": summary["mean_iou"].astype(float).round(3).to_numpy()},
                        index=pd.Index(summary["model"], name="model"))


def ensemble_findings(summary: pd.DataFrame) -> str:
    """Sentences comparing the ensembles with their members (fronts found, MDE), from ``evaluate/summary.csv``."""
    ens = summary[summary["members"] > 1]
    if ens.empty:
        return "No ensemble was evaluated."
    init = str(ens["init"].iloc[0])
    members = summary[(summary["members"] == 1) & (summary["init"] == init)]
    n = int(ens["test_images"].iloc[0])
    found = members["fronts_found"].astype(float)
    text = [f"The members (the {len(members)} seeds of `{init}`) find {found.mean():.1f} of {n} test fronts on "
            f"average (from {found.min():.0f} to {found.max():.0f})."]
    for row in ens.itertuples():
        mde = f"{row.test_mde_m:.0f} m" if math.isfinite(row.test_mde_m) else "no MDE (no front)"
        text.append(f"The {row.model} finds {row.fronts_found} of {n}, MDE {mde}.")
    fewer = ens[ens["fronts_found"] < found.mean()]
    if len(fewer):
        text.append("**The ensemble finds fewer fronts than its average member**, the opposite of the paper's finding; "
                    "see the diagnosis below.")
    return " ".join(text)


def load_evaluation_tables(eval_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``per_image.csv`` and ``breakdown.csv`` of an evaluation folder."""
    eval_dir = Path(eval_dir)
    return pd.read_csv(eval_dir / "per_image.csv"), pd.read_csv(eval_dir / "breakdown.csv")


def breakdown_table(breakdowns: Mapping[str, pd.DataFrame], group_type: str) -> pd.DataFrame:
    """MDE per group of ``group_type`` (season, glacier, sensor, resolution) for several evaluations.

    A cell reads ``MDE (missing fronts)``; "—" where every image of the group misses its front.
    """
    cols: dict[str, list[str]] = {}
    index: Any = None
    images: Any = None
    for name, b in breakdowns.items():
        b = b[b["group_type"] == group_type].set_index("group_value")
        cols[name] = [("—" if not math.isfinite(m) else f"{m:.0f}") + (f" ({k})" if k else "")
                      for m, k in zip(b["mde_m"].astype(float), b["missing_fronts"].astype(int))]
        index, images = b.index, b["images"].to_numpy()
    table = pd.DataFrame(cols, index=index)
    table.insert(0, "images", images)
    return table.rename_axis(group_type)


def complete_evaluations(layout: WorkLayout) -> list[str]:
    """Evaluations under ``work_dir/evaluate`` with ``summary.json`` and ``fronts/``: ensemble + TTA first."""
    preference = ["ensemble_tta", "ensemble"]
    if not layout.evaluate.is_dir():
        return []
    names = [p.name for p in layout.evaluate.iterdir() if (p / "summary.json").is_file() and (p / "fronts").is_dir()]
    return sorted(names, key=lambda n: (preference.index(n) if n in preference else len(preference), n))


def model_evaluations(layout: WorkLayout, names: Sequence[str] | None = None) -> list[str]:
    """The evaluations of chapter 5 a later chapter compares: ``names`` (all must be complete), default every complete
    one (:func:`complete_evaluations`, ensemble + TTA first). :class:`FileNotFoundError` names the missing ones."""
    available = complete_evaluations(layout)
    runs = list(names) if names is not None else available
    missing = [r for r in runs if r not in available]
    if missing or not runs:
        raise FileNotFoundError(f"evaluations {missing or 'of chapter 5'} not found in "
                                f"{layout.relative(layout.evaluate)} (available: {available or 'none'}); run chapter 5 "
                                f"(05_evaluation) with the same work_dir first")
    return runs


def ensemble_summary(layout: WorkLayout) -> pd.DataFrame | None:
    """The ensembles' rows of ``evaluate/summary.csv`` (test MDE with its interval, fronts found, images; 0.1 m),
    indexed by model; ``None`` when chapter 5 wrote no summary."""
    if not layout.evaluate_summary_csv.is_file():
        return None
    summary = pd.read_csv(layout.evaluate_summary_csv)
    return summary.loc[summary["members"] > 1, ["model", "test_mde_m", "ci_low_m", "ci_high_m", "fronts_found",
                                                "test_images"]].set_index("model").round(1)


def read_model_fronts(eval_dir: str | Path, stems: Sequence[str]) -> dict[str, np.ndarray]:
    """The post-processed fronts ``<stem>_front.png`` of an evaluation for ``stems``; a clear error if none."""
    from ssl4sar.annotators import FRONT_SUFFIX, read_front_png

    folder = Path(eval_dir) / "fronts"
    found = {s: folder / f"{s}{FRONT_SUFFIX}" for s in stems if (folder / f"{s}{FRONT_SUFFIX}").is_file()}
    if not found:
        raise FileNotFoundError(f"{folder}: no front for any annotated image (e.g. {stems[0]}{FRONT_SUFFIX}); "
                                "were the annotations made on the evaluated split?")
    return {s: read_front_png(p) for s, p in found.items()}


def filter_findings(diagnosis: Mapping[str, Mapping[str, Any]], min_front_length_m: float) -> str:
    """A sentence per evaluation from :func:`rescore_without_length_filter` results: how many fronts the filter took."""
    text = []
    for name, d in diagnosis.items():
        lost = int(d["fronts_found_without_filter"]) - int(d["fronts_found"])
        n = int(d["test_images"])
        if lost > 0:
            text.append(f"`{name}`: the {min_front_length_m:g} m short-front filter removes the only front "
                        f"of {lost} of {n} scenes ({int(d['fronts_found'])} found with it, "
                        f"{int(d['fronts_found_without_filter'])} "
                        "without): the zones have an ocean–glacier boundary there, but only in pieces shorter than "
                        "the threshold.")
        else:
            text.append(f"`{name}`: the filter removes no scene's front; the {n - int(d['fronts_found'])} scenes "
                        "without a front have no ocean–glacier boundary in the predicted zones.")
    return " ".join(text)
