"""What the test-split scripts of this folder share (why_the_mde_moves.py, mde_under_weight_dither.py,
which_image_in_the_dither_jumps.py): a demo checkpoint, the CaFFe test scenes and the window settings that
``ssl4sar.bench.accuracy.fast_path_accuracy`` uses; class maps of any model on any path; their scores."""
from dataclasses import dataclass

import torch

from ssl4sar.bench.accuracy import _score, predict_split
from ssl4sar.bench.paths import ExecPath
from ssl4sar.data.caffe import discover
from ssl4sar.evaluate import inference_settings
from ssl4sar.models.convert import load_model


@dataclass
class TestSplit:
    model: torch.nn.Module
    data: str
    scenes: list
    window: dict  # device, stride, sigma, batch size of predict_split

    def maps(self, path: ExecPath, model: torch.nn.Module | None = None) -> dict:
        """Class maps ``{stem: (H, W)}`` of ``model`` (default the checkpoint's) on ``path``."""
        return predict_split(self.model if model is None else model, self.scenes, path, **self.window)[0]

    def score(self, maps: dict, every_piece: bool = False) -> dict:
        """Pooled MDE, missing fronts and per-image fronts; ``every_piece``: no 750 m minimum front length."""
        return _score(maps, self.data, "test", 0.0 if every_piece else None)


def load(ckpt: str, data: str) -> TestSplit:
    model = load_model(ckpt, map_location="cpu", trusted=True).float().eval()
    settings = inference_settings(int(model.img_size), preset="demo")
    window = {"device": torch.device("cpu"), "stride": settings.stride, "sigma": settings.sigma, "batch_size": 8}
    return TestSplit(model, data, discover(data, "test"), window)
