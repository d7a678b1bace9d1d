"""Fine-tuning TYRION on CaFFe-layout data (spec §6): the LightningModule and the entry point :func:`finetune`
(the command ``ssl4sar finetune`` is :mod:`ssl4sar.commands.finetune`; the run itself :mod:`ssl4sar.runner`).

Why one module of ~630 lines: about 85 of them are this docstring and ~270 the
:class:`SegmentationModule` itself (training step, whole-scene validation with the MDE, optimiser); the entry
point and the model ranking beside it are short, and the LightningModule is the module's one job.

:class:`SegmentationModule` holds the network as attribute ``model`` (a :class:`~ssl4sar.models.tyrion.Tyrion`) and
stores ``model_config`` in its hyper-parameters, so :func:`ssl4sar.models.convert.load_model` reads its Lightning
checkpoints directly.

Training (one step = one batch of random context crops, §3.3)
    loss = :func:`ssl4sar.losses.tyrion_loss` on the context logits and their centre crop (weights and label
    smoothing from the preset's ``finetune`` section); SGD with momentum and weight decay on all parameters at a
    constant learning rate (paper: lr 0.01, momentum 0.9, weight decay 1e-4, no schedule). The reference hard-codes
    lr 0.01 and ignores its config; here the preset's ``finetune.lr`` is used (same value in the paper preset).
    A non-finite training loss stops the run at that step, before its backward pass, with a
    :class:`~ssl4sar.errors.TrainingDiverged` naming the last good checkpoint (:class:`ssl4sar.training.
    DivergenceGuard`; the reference would train on with NaN weights); on the demo data, lr 0.05 diverges within
    the first epoch.

Validation (every ``finetune.val_every_n_epochs`` epochs, on the non-overlapping windows of the ``val`` split, §3.4)
    * ``val/iou_patch`` — the reference's ``val/IoU_img``: per window, ``Σ_c IoU_c / #classes present in the centre
      target`` of the argmax of the centre crop (a class absent from the target contributes 0), averaged over all
      windows (each window counted once, also under DDP, where Lightning's sampler pads with repeats);
    * ``val/loss`` and its four parts, per window (the reference validates with batch size 1), averaged;
    * full-image validation: the centre-crop argmax tiles of each scene are stitched (§7.1, non-overlapping),
      post-processed with the scene's resolution (from its stem) and bounding box (§7.2,
      :func:`ssl4sar.postprocess.extract_front`) and compared with the ground truth: ``val/mde`` (pooled MDE,
      metres, §8.1), ``val/mde_picture`` (picture-normalised), ``val/mde_front_length`` (front-length-normalised),
      ``val/missing_fronts`` (count), ``val/iou_image`` (per-image macro zone IoU averaged over images, §8.2, with
      the project's convention that a class absent from both prediction and ground truth is left out),
      ``val/images`` (scenes evaluated).

    When no front can be evaluated (every scene a missing front, or Lightning's sanity check before training) the
    three MDE values are logged as :data:`MDE_UNDEFINED_M` = 1e6 m, because the checkpoint monitor needs a number.
    The reference logs 7777 in that case; 7777 m is a plausible MDE on a large scene, 1e6 m (1000 km) is not, so a
    checkpoint chosen by ``val/mde`` is never one without any front unless no epoch had one.

    Under DDP every process keeps the tiles of the windows it validated; at the end of the epoch each scene's
    canvas is reduced (element-wise max; unfilled pixels are 0, filled ones class + 1) onto the process that
    evaluates that scene (scene ``i`` on rank ``i mod world_size``), and the per-scene sums are all-reduced — so the
    post-processing runs in parallel and every rank logs the same numbers.

Checkpoints (``out_dir/checkpoints``): the best ``val/mde`` (min) — the one the paper evaluates (§15.5) —, the best
``val/iou_patch`` (max) and ``last.ckpt``; at the end of :func:`finetune` the best-MDE network is exported in the
project's own format to ``out_dir/best_mde.pt`` (:func:`ssl4sar.models.convert.save_checkpoint`).

Initialisation (``--init`` / ``finetune.init``)
    ``scratch`` (random), ``imagenet`` (Microsoft's ``swinv2_tiny_patch4_window16_256.pth`` in the encoder; the path
    from ``--imagenet-weights``, ``finetune.imagenet_weights`` or the data manifest entry ``swinv2-tiny-imagenet``
    under the data root) or the path of a checkpoint: an official TYRION or OptSimMIM / OptTranslator Lightning
    checkpoint, one of our Lightning checkpoints (fine-tuning or pretraining) or our ``.pt`` format. Encoder *and*
    decoder transfer (spec §5.4); pretraining heads are dropped by name (:mod:`ssl4sar.models.convert`). The
    optimiser state is never taken from the init checkpoint. Initialisation only happens when a run starts; a
    resumed run takes every weight from ``last.ckpt`` and keeps recording the initial weights it started from,
    with a fingerprint of their values (resuming it with an ``--init`` naming other ones, or a file that holds other
    weights now than when the run started, is refused).

Hardware, precision, batch (see :mod:`ssl4sar.training`)
    The global batch of the preset is kept: ``accumulation = global_batch / (batch_per_device × devices × nodes)``.
    ``--precision bf16-mixed`` autocasts to bfloat16 on CUDA; on CUDA the network and its input also use the
    ``channels_last`` memory format. Everything runs on CPU (fp32).

Multi-GPU and multi-node (Lightning's DDP strategy; never a home-made launcher)
    * one node, Lightning starts the processes itself::

        ssl4sar finetune --preset paper --data CAFFE --out runs/ft --devices 4

    * ``torchrun`` (one command per node; Lightning detects the torchelastic environment)::

        torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
            $(which ssl4sar) finetune --preset paper --data CAFFE --out runs/ft --devices 4 --num-nodes 2

    * SLURM (one task per GPU; Lightning detects the SLURM environment and, with ``#SBATCH --signal=SIGUSR1@90``,
      saves ``hpc_ckpt_*.ckpt`` before a requeue, which the next job resumes from)::

        #SBATCH --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 --signal=SIGUSR1@90
        srun ssl4sar finetune --preset paper --data CAFFE --out runs/ft --devices 4 --num-nodes 2

    Re-running the same command with the same ``--out`` resumes from ``out/checkpoints/last.ckpt``
    (``--no-resume`` starts afresh).

Reproducibility: ``seed_everything(seed)``, per-sample data generators (:mod:`ssl4sar.data.datasets`) and per-step
torch seeds (:class:`ssl4sar.training.StepSeed`): the same seed gives the same weights on the same machine, and a run
interrupted at an epoch boundary (``--max-steps`` a multiple of the steps per epoch) and resumed ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from ssl4sar.config import as_preset, paper_preset
from ssl4sar.domain import MDE_UNDEFINED_M  # re-exported
from ssl4sar.errors import DataError
from ssl4sar.losses import DEFAULT_LOSS_WEIGHTS, LOSS_PARTS, center_crop, tyrion_loss
from ssl4sar.metrics import front_result, mde_summary, zone_metrics
from ssl4sar.models.fast import CompiledCall, cache_attention_bias
from ssl4sar.models.initialise import (  # re-exported: their home before they were shared with pretraining
    IMAGENET_RESOURCE,
    export_lightning_checkpoint,
    initialise_model,
    resolve_imagenet_weights,
)
from ssl4sar.models.tyrion import Tyrion
from ssl4sar.postprocess import DEFAULT_MIN_FRONT_LENGTH_M, extract_front
from ssl4sar.runner import RunSpec, run_training
from ssl4sar.training import TrainingPlan

__all__ = [
    "MDE_UNDEFINED_M",
    "BEST_MDE_EXPORT",
    "MONITORS",
    "SegmentationModule",
    "FinetuneResult",
    "finetune",
    "initialise_model",
    "resolve_imagenet_weights",
    "IMAGENET_RESOURCE",
    "patch_iou",
    "export_lightning_checkpoint",
]

log = logging.getLogger(__name__)
_PAPER = paper_preset().finetune  # the constructor defaults of SegmentationModule

#: File name of the exported best-MDE network (our checkpoint format) inside ``out_dir``.
BEST_MDE_EXPORT = "best_mde.pt"
#: Checkpoint monitors: (metric, mode); ``last.ckpt`` is written as well.
MONITORS: tuple[tuple[str, str], ...] = (("val/mde", "min"), ("val/iou_patch", "max"))

#: on a CPU, the validation computes the per-window losses for this many logits per call at most (about 4 MB of
#: float32: one 512 px window of 4 classes, or a whole batch of 16 windows of 128 px)
_CPU_LOSS_ELEMENTS = 2**20
# columns of the per-scene validation table that is all-reduced across ranks
_COLS = ("evaluated", "missing", "sum_m", "sum_sq_m2", "n_distances", "n_gt", "n_pred", "iou", "iou_valid")


# ---------------------------------------------------------------------------------------------------- metrics
def patch_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-patch IoU of the reference's ``val/IoU_img`` (TyrionWrapper.py:260-276).

    Args:
        pred: ``(B, H, W)`` predicted class ids.
        target: ``(B, H, W)`` ground-truth class ids (0 … K−1).
        num_classes: K.

    Returns:
        ``(B,)`` float32: ``Σ_c IoU_c / #classes present in the target``, where ``IoU_c = |P_c ∩ G_c| / |P_c ∪ G_c|``
        (0 when the union is empty); classes absent from the target therefore contribute 0 to the sum.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"pred and target must both be (B, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    k = int(num_classes)
    b = pred.shape[0]
    idx = (target.long() * k + pred.long()).reshape(b, -1)
    idx = idx + torch.arange(b, device=idx.device)[:, None] * (k * k)
    cm = torch.bincount(idx.reshape(-1), minlength=b * k * k).reshape(b, k, k).double()
    inter = torch.diagonal(cm, dim1=1, dim2=2)
    gt_count = cm.sum(dim=2)
    union = gt_count + cm.sum(dim=1) - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    present = (gt_count > 0).sum(dim=1).clamp(min=1)
    return (iou.sum(dim=1) / present).float()


@dataclass
class _SceneInfo:
    stem: str
    resolution_m: float
    image_shape: tuple[int, int]
    n_windows: int
    scene: Any  # ssl4sar.data.caffe.CaffeScene


class _ValidationState:
    """Tiles and per-window IoUs of the windows this process validated in one epoch."""

    def __init__(self, scenes: Sequence[_SceneInfo]) -> None:
        self.scenes = list(scenes)
        self.index = {s.stem: i for i, s in enumerate(self.scenes)}
        self.canvases: dict[int, np.ndarray] = {}
        self.window_iou: dict[int, np.ndarray] = {}

    def add(self, stem: str, window: int, centre_origin: tuple[int, int], tile: np.ndarray, iou: float) -> None:
        i = self.index.get(stem)
        if i is None:
            raise DataError(None, f"validation sample of unknown scene {stem!r}")
        info = self.scenes[i]
        h, w = info.image_shape
        canvas = self.canvases.get(i)
        if canvas is None:
            canvas = self.canvases[i] = np.zeros((h, w), dtype=np.uint8)
            self.window_iou[i] = np.full(info.n_windows, -1.0, dtype=np.float64)
        t = tile.shape[-1]
        r0, c0 = int(centre_origin[0]), int(centre_origin[1])
        rs, cs = max(r0, 0), max(c0, 0)
        re, ce = min(r0 + t, h), min(c0 + t, w)
        if re > rs and ce > cs:
            canvas[rs:re, cs:ce] = tile[rs - r0:re - r0, cs - c0:ce - c0].astype(np.uint8) + 1
        self.window_iou[i][int(window)] = float(iou)

    def canvas(self, i: int) -> np.ndarray:
        c = self.canvases.get(i)
        return c if c is not None else np.zeros(self.scenes[i].image_shape, dtype=np.uint8)

    def ious(self, i: int) -> np.ndarray:
        v = self.window_iou.get(i)
        return v if v is not None else np.full(self.scenes[i].n_windows, -1.0, dtype=np.float64)


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


# ---------------------------------------------------------------------------------------------------- module
class SegmentationModule(pl.LightningModule):
    """TYRION fine-tuning (spec §6) as a LightningModule; the network is :attr:`model`.

    Args:
        model_config: :class:`Tyrion` constructor arguments (a preset's ``model`` section; saved in full).
        lr, momentum, weight_decay: SGD settings (constant learning rate, weight decay on all parameters).
        label_smoothing: ε of the label-smoothed cross-entropy (ε/(K−1) on the other classes).
        loss_weights: weights of the four loss parts (keys :data:`ssl4sar.losses.LOSS_PARTS`).
        min_front_length_m: post-processing threshold for the full-image validation (metres).
        zone_absent: ``"nan"`` (project default) or ``"zero"`` (reference) for classes absent from both maps in
            ``val/iou_image`` (:func:`ssl4sar.metrics.zone_metrics`).
        channels_last: use the channels-last memory format on CUDA.
        compile: run the training forward through ``torch.compile`` (:class:`~ssl4sar.models.fast.CompiledCall`;
            validation and inference stay eager).
        init: provenance of the initial weights (recorded only; weights are loaded by :meth:`initialise`).

    Batches follow ARCHITECTURE.md: ``image_context`` (B, 1, C, C) in [0, 1], ``mask_context`` (B, C, C) int64;
    validation batches also carry ``mask`` (B, T, T), ``stem``, ``window`` and ``centre_origin`` (B, 2).
    """

    def __init__(self, model_config: Mapping[str, Any], lr: float = _PAPER.lr, momentum: float = _PAPER.momentum,
                 weight_decay: float = _PAPER.weight_decay, label_smoothing: float = _PAPER.label_smoothing,
                 loss_weights: Mapping[str, float] | None = None,
                 min_front_length_m: float = DEFAULT_MIN_FRONT_LENGTH_M, zone_absent: str = _PAPER.zone_absent,
                 channels_last: bool = True, compile: bool = False, init: str = "scratch") -> None:
        super().__init__()
        self.model = Tyrion.from_config(model_config).set_fused_attention(True)  # same numbers, faster (models.fast)
        # validation reuses the attention bias between its batches; Lightning's eval()/train() switches around it
        # drop the bias after every optimiser step (models.fast.cache_attention_bias)
        cache_attention_bias(self.model)
        weights = dict(DEFAULT_LOSS_WEIGHTS if loss_weights is None else loss_weights)
        if set(weights) != set(LOSS_PARTS):
            raise ValueError(f"loss_weights must have exactly the keys {list(LOSS_PARTS)}, got {sorted(weights)}")
        if zone_absent not in ("nan", "zero"):
            raise ValueError(f"zone_absent must be 'nan' or 'zero', got {zone_absent!r}")
        self.save_hyperparameters({
            "model_config": dict(self.model.config), "lr": float(lr), "momentum": float(momentum),
            "weight_decay": float(weight_decay), "label_smoothing": float(label_smoothing),
            "loss_weights": {k: float(v) for k, v in weights.items()},
            "min_front_length_m": float(min_front_length_m), "zone_absent": zone_absent,
            "channels_last": bool(channels_last), "compile": bool(compile), "init": str(init),
        })
        self._channels_last = False
        # kept out of the module tree (no second copy of the weights in the state dict); made in setup()
        self.__dict__["_compiled_model"] = None
        self._val: _ValidationState | None = None
        self._val_warned = False
        self._gt_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        #: per-scene table of the latest full-image validation (stem, resolution_m, missing, mean_m, iou, …)
        self.last_validation: pd.DataFrame | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], init: str | None = None) -> SegmentationModule:
        """Build from a preset (dict or :class:`ssl4sar.config.Preset`; ``model``, ``finetune``, ``postprocess``)."""
        preset = as_preset(cfg)
        ft = preset.finetune
        return cls(
            model_config=preset.model.to_dict(), lr=ft.lr, momentum=ft.momentum, weight_decay=ft.weight_decay,
            label_smoothing=ft.label_smoothing, loss_weights=ft.loss_weights.to_dict(),
            min_front_length_m=preset.postprocess.min_front_length_m, zone_absent=ft.zone_absent,
            compile=ft.compile, init=str(init if init is not None else ft.init),
        )

    def initialise(self, init: str | Path | None = None, imagenet_weights: str | Path | None = None,
                   *, trusted: bool = False) -> str:
        """Load the initial weights (:func:`initialise_model`; default: the recorded ``init``) and record them."""
        desc = initialise_model(self.model, self.hparams["init"] if init is None else init, imagenet_weights,
                                trusted=trusted)
        self.hparams["init"] = desc
        return desc

    # ------------------------------------------------------------------ forward / optimiser
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """SAR context (B, 1, C, C) in [0, 1] → logits (B, K, C, C)."""
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def setup(self, stage: str) -> None:
        # before Lightning moves the model to its device and wraps it in DDP (so the gradient buckets match)
        if self.hparams["channels_last"] and self.trainer.strategy.root_device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
            self._channels_last = True
        if self.hparams.get("compile") and self.__dict__["_compiled_model"] is None:
            self.__dict__["_compiled_model"] = CompiledCall(self.model)

    def forward_train(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for the training step: through the compiled model when ``compile`` is on."""
        compiled = self.__dict__["_compiled_model"]
        if compiled is None:
            return self(x)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return compiled(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"], momentum=self.hparams["momentum"],
                               weight_decay=self.hparams["weight_decay"])

    def _loss(self, logits: torch.Tensor, mask: torch.Tensor, per_sample: bool = False
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return tyrion_loss(logits.float(), mask, weights=self.hparams["loss_weights"],
                           label_smoothing=self.hparams["label_smoothing"], per_sample=per_sample)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        x, y = batch["image_context"], batch["mask_context"]
        logits = self.forward_train(x)
        loss, parts = self._loss(logits, y)
        b = x.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=b)
        for name, value in parts.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, sync_dist=True, batch_size=b)
        return loss

    # ------------------------------------------------------------------ validation
    def _val_dataset(self) -> Any:
        dls = self.trainer.val_dataloaders
        if isinstance(dls, Sequence):
            dls = dls[0] if dls else None
        return getattr(dls, "dataset", None)

    def on_validation_epoch_start(self) -> None:
        ds = self._val_dataset()
        if ds is None or not hasattr(ds, "scenes") or not hasattr(ds, "grid"):
            if not self._val_warned:
                log.warning("validation dataset %s has no scene list: full-image validation (val/mde …) disabled",
                            type(ds).__name__)
                self._val_warned = True
            self._val = None
            return
        scenes = []
        for i, scene in enumerate(ds.scenes):
            grid = ds.grid(i)
            scenes.append(_SceneInfo(stem=scene.stem, resolution_m=float(scene.meta.resolution_m),
                                     image_shape=tuple(int(v) for v in grid.image_shape), n_windows=len(grid),
                                     scene=scene))
        self._val = _ValidationState(scenes)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        x, y = batch["image_context"], batch["mask_context"]
        logits = self(x).float()
        b = x.shape[0]
        totals, parts = self._window_losses(logits, y)
        self.log("val/loss", totals.mean(), on_epoch=True, sync_dist=True, batch_size=b)
        for name in LOSS_PARTS:
            self.log(f"val/{name}", parts[name].mean(), on_epoch=True, sync_dist=True, batch_size=b)
        target = batch["mask"]
        pred = center_crop(logits, target.shape[-1]).argmax(dim=1)
        ious = patch_iou(pred, target, logits.shape[1])
        if self._val is None:
            self.log("val/iou_patch", ious.mean(), on_epoch=True, sync_dist=True, batch_size=b)
            return
        tiles = pred.to(torch.uint8).cpu().numpy()
        origins = batch["centre_origin"].cpu().numpy()
        windows = batch["window"]
        windows = windows.tolist() if isinstance(windows, torch.Tensor) else list(windows)
        ious_np = ious.cpu().numpy()
        for i in range(b):
            self._val.add(batch["stem"][i], int(windows[i]), (int(origins[i][0]), int(origins[i][1])), tiles[i],
                          float(ious_np[i]))

    def _window_losses(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each window's loss as a batch of one, like the reference's validation batch size of 1: shape (B,).

        On a GPU one call computes the whole batch (fewer kernels and host syncs). On a CPU, calls of at most
        :data:`_CPU_LOSS_ELEMENTS` logits each: larger temporaries fall out of the caches and cost more than the
        calls save (16 windows of 512 px: 0.54 s in one call, 0.25 s one by one; 8 of 128 px: 5 ms against 9 ms).
        """
        per_window = int(logits[0].numel())
        step = len(logits) if logits.device.type != "cpu" else max(1, _CPU_LOSS_ELEMENTS // max(per_window, 1))
        chunks = [self._loss(logits[i:i + step], y[i:i + step], per_sample=True) for i in range(0, len(logits), step)]
        return (torch.cat([t for t, _ in chunks]),
                {name: torch.cat([p[name] for _, p in chunks]) for name in LOSS_PARTS})

    def _ground_truth(self, i: int, info: _SceneInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        cached = self._gt_cache.get(i)
        if cached is None:
            from ssl4sar.data.caffe import load_scene

            data = load_scene(info.scene, with_front=True, with_bbox=True)
            if data["zones"].shape != info.image_shape:
                raise DataError(info.scene.zones_path, f"zone mask is {data['zones'].shape} but the validation "
                                f"windows were built for {info.image_shape}")
            keep = data["bbox"].keep_mask() if data["bbox"] is not None else None
            cached = self._gt_cache[i] = (data["zones"], data["front"], keep)
        return cached

    def _evaluate_scene(self, i: int, info: _SceneInfo, class_map: np.ndarray) -> np.ndarray:
        zones, front, keep = self._ground_truth(i, info)
        pred_front = extract_front(class_map, info.resolution_m, bounding_box=keep,
                                   min_front_length_m=self.hparams["min_front_length_m"])
        fr = front_result(info.stem, pred_front, front, info.resolution_m)
        zm = zone_metrics(class_map, zones, num_classes=self.model.num_classes, absent=self.hparams["zone_absent"])
        iou = zm.macro()["iou"]
        row = np.zeros(len(_COLS), dtype=np.float64)
        row[_COLS.index("evaluated")] = 1.0
        row[_COLS.index("missing")] = float(fr.missing)
        if not fr.missing:
            d = fr.distances_m
            row[_COLS.index("sum_m")] = float(d.sum())
            row[_COLS.index("sum_sq_m2")] = float(np.square(d).sum())
            row[_COLS.index("n_distances")] = float(d.size)
        row[_COLS.index("n_gt")] = float(fr.n_gt)
        row[_COLS.index("n_pred")] = float(fr.n_pred)
        if math.isfinite(iou):
            row[_COLS.index("iou")] = iou
            row[_COLS.index("iou_valid")] = 1.0
        return row

    def on_validation_epoch_end(self) -> None:
        state, self._val = self._val, None
        if state is None:
            self._log_image_metrics(None, 0)
            return
        sanity = bool(self.trainer.sanity_checking)
        distributed = _dist_on()
        world = dist.get_world_size() if distributed else 1
        rank = dist.get_rank() if distributed else 0
        rows = np.zeros((len(state.scenes), len(_COLS)), dtype=np.float64)
        window_ious = []
        incomplete = []
        for i, info in enumerate(state.scenes):
            ious = state.ious(i)
            owner = i % world
            if distributed:
                t = torch.from_numpy(ious).to(self.device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                ious = t.cpu().numpy()
            window_ious.append(ious[ious >= 0])
            if sanity:
                continue
            canvas = state.canvas(i)
            if distributed:
                t = torch.from_numpy(canvas).to(self.device)
                dist.reduce(t, dst=owner, op=dist.ReduceOp.MAX)
                canvas = t.cpu().numpy()
            if owner != rank:
                continue
            if canvas.min() == 0:
                incomplete.append(info.stem)
                continue
            rows[i] = self._evaluate_scene(i, info, canvas - 1)
        if distributed:
            t = torch.from_numpy(rows).to(self.device)
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            rows = t.cpu().numpy()
        if incomplete:
            log.warning("full-image validation skipped %d scene(s) not fully covered by the validated windows "
                        "(limit_val_batches?): %s", len(incomplete), ", ".join(incomplete[:5]))
        all_ious = np.concatenate(window_ious) if window_ious else np.zeros(0)
        if all_ious.size:
            self.log("val/iou_patch", float(all_ious.mean()), on_epoch=True, sync_dist=True)
        table = pd.DataFrame(rows, columns=list(_COLS))
        table.insert(0, "stem", [s.stem for s in state.scenes])
        table.insert(1, "resolution_m", [s.resolution_m for s in state.scenes])
        table = table[table["evaluated"] > 0].reset_index(drop=True)
        if sanity:
            self._log_image_metrics(None, 0)
            return
        self.last_validation = self._per_image_table(table)
        self._log_image_metrics(table, len(table))

    @staticmethod
    def _per_image_table(table: pd.DataFrame) -> pd.DataFrame:
        out = table[["stem", "resolution_m", "n_pred", "n_gt", "n_distances", "sum_m", "sum_sq_m2"]].copy()
        out["missing"] = table["missing"] > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean_m"] = np.where(out["missing"], np.nan, table["sum_m"] / table["n_distances"].clip(lower=1))
        out["iou"] = np.where(table["iou_valid"] > 0, table["iou"], np.nan)
        for col in ("n_pred", "n_gt", "n_distances"):
            out[col] = out[col].astype(np.int64)
        return out

    def _log_image_metrics(self, table: pd.DataFrame | None, n_images: int) -> None:
        mde = picture = flen = MDE_UNDEFINED_M
        missing = 0
        iou_image = float("nan")
        if table is not None and n_images:
            summ = mde_summary(pd.DataFrame({
                "sum_m": table["sum_m"], "sum_sq_m2": table["sum_sq_m2"],
                "n_distances": table["n_distances"].astype(np.int64), "n_gt": table["n_gt"].astype(np.int64),
                "missing": table["missing"] > 0}))
            missing = summ.missing_fronts
            if summ.n_distances:
                mde, picture = summ.pooled_mde_m, summ.picture_normalised_mde_m
                flen = summ.front_length_normalised_mde_m
                flen = flen if math.isfinite(flen) else MDE_UNDEFINED_M
            valid = table["iou_valid"] > 0
            if valid.any():
                iou_image = float(table.loc[valid, "iou"].mean())
        values = {"val/mde": mde, "val/mde_picture": picture, "val/mde_front_length": flen,
                  "val/missing_fronts": float(missing), "val/iou_image": iou_image, "val/images": float(n_images)}
        for name, value in values.items():
            self.log(name, float(value), on_epoch=True, sync_dist=True, prog_bar=name in ("val/mde",))


# ---------------------------------------------------------------------------------------------------- entry point
@dataclass
class FinetuneResult:
    """What :func:`finetune` produced (paths are ``None`` when the file was not written)."""

    out_dir: Path
    last_checkpoint: Path | None
    best_mde_checkpoint: Path | None
    best_iou_checkpoint: Path | None
    best_mde_export: Path | None
    metrics_csv: Path
    final_metrics: dict[str, float] = field(default_factory=dict)
    best_mde_m: float | None = None
    best_iou_patch: float | None = None
    epochs: int = 0
    global_step: int = 0
    resumed_from: Path | None = None
    init: str = "scratch"
    plan: TrainingPlan | None = None


#: Order among fine-tuned models that tie on validation (the paper's best initialisation first).
INIT_PREFERENCE = ("opttranslator", "optsimmim", "imagenet", "scratch")


def rank_finetuned_models(finetune_dir: str | Path) -> pd.DataFrame:
    """The exported models ``finetune_dir/<init>/best_mde.pt`` ranked best first, using validation data only.

    The validation MDE leaves out images without a predicted front, so the rank is: fewest validation images
    without a front at the exported epoch (from the run's ``metrics.csv``), then the lowest validation MDE
    (``MDE_UNDEFINED_M`` = no front at all counts as none), then :data:`INIT_PREFERENCE`. Columns: ``init``,
    ``val MDE (m)``, ``val images without front``, ``selected by``, ``epoch``, ``checkpoint``.
    Raises ``FileNotFoundError`` when there is no exported model.
    """
    from ssl4sar.metrics_log import epoch_table
    from ssl4sar.models.convert import load_checkpoint

    paths = sorted(Path(finetune_dir).glob(f"*/{BEST_MDE_EXPORT}"))
    if not paths:
        raise FileNotFoundError(f"no fine-tuned model: {finetune_dir}/<init>/{BEST_MDE_EXPORT} does not exist")
    rows = []
    for path in paths:
        _, meta = load_checkpoint(path)
        val, epoch, missing = meta.get("val/mde"), meta.get("epoch"), math.nan
        metrics_csv = path.parent / "metrics.csv"
        if metrics_csv.is_file() and epoch is not None:
            per_epoch = epoch_table(metrics_csv)
            if int(epoch) in per_epoch.index and "val/missing_fronts" in per_epoch:
                missing = float(per_epoch.loc[int(epoch), "val/missing_fronts"])
        rows.append({"init": path.parent.name, "val MDE (m)": float(val) if val is not None else math.nan,
                     "val images without front": missing, "selected by": meta.get("selected_by"),
                     "epoch": epoch, "checkpoint": str(path)})
    table = pd.DataFrame(rows)
    mde = table["val MDE (m)"].where(table["val MDE (m)"] < MDE_UNDEFINED_M)
    preference = [INIT_PREFERENCE.index(i) if i in INIT_PREFERENCE else len(INIT_PREFERENCE) for i in table["init"]]
    keys = table.assign(_missing=table["val images without front"].fillna(math.inf), _mde=mde.fillna(math.inf),
                        _preference=preference)
    order = keys.sort_values(["_missing", "_mde", "_preference"], kind="stable").index
    return table.loc[order].reset_index(drop=True)


def finetune(cfg: Mapping[str, Any] | str, data_dir: str | Path, out_dir: str | Path, init: str | Path | None = None,
             seed: int | None = None, devices: int | str | Sequence[int] = "auto", resume: bool = True,
             max_steps: int | None = None, *, num_nodes: int | None = None, max_epochs: int | None = None,
             precision: str | None = None, accelerator: str = "auto", imagenet_weights: str | Path | None = None,
             callbacks: Sequence[Callback] = (), progress: bool = True,
             trainer_kwargs: Mapping[str, Any] | None = None, trust_checkpoint: bool = False) -> FinetuneResult:
    """Fine-tune TYRION on the CaFFe-layout data in ``data_dir``, writing everything under ``out_dir``.

    Args:
        cfg: a preset dict or a preset name / YAML path (:func:`ssl4sar.config.load_preset`).
        data_dir: CaFFe-layout root (``sar_images/``, ``zones/``, ``fronts/``, ``bounding_boxes/``).
        out_dir: run folder (checkpoints, logs, ``config.yaml``, ``best_mde.pt``).
        init: ``scratch`` | ``imagenet`` | checkpoint path (default: ``finetune.init`` of the preset).
        seed: global seed (default: the preset's ``seed``, else 0).
        devices: processes per node (``"auto"``: all GPUs, or 1 CPU process), or a list of GPU indices (``[1]``:
            GPU 1; see :func:`ssl4sar.training.single_device_hardware`).
        resume: continue from ``out_dir/checkpoints/last.ckpt`` (or a SLURM requeue checkpoint) when present.
        max_steps: stop after this many optimiser steps (``None`` or -1: run ``max_epochs``).
        num_nodes: nodes (``None``: from the launch environment, else 1).
        max_epochs: overrides ``finetune.max_epochs``; -1: no epoch limit (needs ``max_steps``).
        precision: ``"32-true"`` or ``"bf16-mixed"`` (overrides ``finetune.precision``).
        accelerator: ``"auto"``, ``"cpu"`` or ``"gpu"``.
        imagenet_weights: path of ``swinv2_tiny_patch4_window16_256.pth`` for ``init="imagenet"``.
        callbacks: extra Lightning callbacks.
        progress: show Lightning's progress bar and model summary.
        trainer_kwargs: extra :class:`lightning.pytorch.Trainer` arguments (e.g. ``limit_val_batches``).
        trust_checkpoint: load the ``init`` and resume checkpoints with the full unpickler, which runs code from
            the file (default: tensors and plain values only, see :func:`ssl4sar.models.convert.read_checkpoint_file`).

    Raises:
        SettingError: a seed, ``max_epochs`` or ``max_steps`` outside its range, before anything is read or written.
        DataError: bad data, an unwritable ``out_dir``, a refused / non-finite / mismatched checkpoint (named).
        TrainingDiverged: the loss or the weights became NaN / infinite; names the last good checkpoint.
    """
    cfg = as_preset(cfg).to_dict()  # validated and complete: the values below all come from the preset
    spec = RunSpec(
        section="finetune", label="fine-tuning", samples_per_epoch="data.samples_per_epoch", monitors=MONITORS,
        data_hint="pass the CaFFe-layout root (sar_images/, zones/, fronts/); synthetic data: ssl4sar data synth",
        export_name=BEST_MDE_EXPORT, make_datamodule=_caffe_datamodule,
        make_module=lambda c, init_choice, _seed: SegmentationModule.from_config(c, init=init_choice),
        default_init=str(cfg["finetune"]["init"]),
        check_val_every_n_epoch=int(cfg["finetune"]["val_every_n_epochs"]))
    trained = run_training(spec, cfg, data_dir, out_dir, init=init, seed=seed, devices=devices, resume=resume,
                       max_steps=max_steps, num_nodes=num_nodes, max_epochs=max_epochs, precision=precision,
                       accelerator=accelerator, imagenet_weights=imagenet_weights, callbacks=callbacks,
                       progress=progress, trainer_kwargs=trainer_kwargs, trust_checkpoint=trust_checkpoint)
    best_mde_ckpt, best_mde = trained.best("val/mde")
    best_iou_ckpt, best_iou = trained.best("val/iou_patch")
    return FinetuneResult(
        out_dir=trained.out_dir, last_checkpoint=trained.last_checkpoint, best_mde_checkpoint=best_mde_ckpt,
        best_iou_checkpoint=best_iou_ckpt, best_mde_export=trained.export, metrics_csv=trained.metrics_csv,
        final_metrics=trained.final_metrics, best_mde_m=best_mde, best_iou_patch=best_iou, epochs=trained.epochs,
        global_step=trained.global_step, resumed_from=trained.resumed_from, init=trained.init, plan=trained.plan)


def _caffe_datamodule(data_dir: Path, cfg: dict[str, Any], seed: int) -> Any:
    from ssl4sar.data.datamodules import CaffeDataModule

    return CaffeDataModule(data_dir, cfg, seed=seed)
