"""Figures of the book and the CLI; each function draws what the library computed and returns the ``Figure``.

Arrays are ``(H, W)`` (``(K, H, W)`` for per-class maps); zones are class ids (0 NA, 1 rock, 2 glacier, 3 ocean);
fronts are non-zero on the front. Keep figure modules free of computation (call the library for numbers).

- :mod:`~ssl4sar.viz.layers`: colours, one layer per call on an ``Axes`` (SAR, zones, front, search box), the
  prediction and uncertainty figures, :func:`save_figure` (atomic).
- :mod:`~ssl4sar.viz.pretraining`: one pretraining sample (SAR, masked input, predicted and true optical bands).
- :mod:`~ssl4sar.viz.maps`: glacier overview map (offline Natural Earth), fronts in map / geographic coordinates,
  front positions over time.
- :mod:`~ssl4sar.viz.dataset`: data-chapter figures (gallery, timeline, SAR + optical, co-registration, realism).
- :mod:`~ssl4sar.viz.training_curves`: per-epoch curves of pretraining and fine-tuning runs.
- :mod:`~ssl4sar.viz.evaluation`: annotator comparison, predicted vs true fronts, uncertainty examples, run MDEs.

:func:`epoch_table` lives in :mod:`ssl4sar.metrics_log` and is re-exported here for existing callers.
"""

from ssl4sar.metrics_log import epoch_table
from ssl4sar.viz.dataset import (
    plot_acquisition_timeline,
    plot_coregistration,
    plot_realism,
    plot_sar_optical,
    plot_scene_gallery,
)
from ssl4sar.viz.evaluation import (
    HUMAN_COLOR,
    plot_annotator_comparison,
    plot_annotator_fronts,
    plot_front_overlays,
    plot_run_mdes,
    plot_uncertainty_examples,
)
from ssl4sar.viz.layers import (
    AGREE_COLOR,
    BBOX_COLOR,
    CLASS_NAMES,
    GT_FRONT_COLOR,
    PRED_FRONT_COLOR,
    SPLIT_COLORS,
    plot_prediction,
    plot_uncertainty,
    save_figure,
    scene_axes,
    show_bounding_box,
    show_front,
    show_sar,
    show_zones,
    zone_cmap,
)
from ssl4sar.viz.maps import (
    glacier_map,
    glacier_map_caption,
    natural_earth_path,
    plot_front_map,
    plot_front_positions,
    plot_geographic_fronts,
    plot_positions_by_method,
    plot_predicted_and_true_fronts,
    plot_scene_fronts_map,
)
from ssl4sar.viz.pretraining import (
    OPTICAL_TARGET_BANDS,
    optical_rgb,
    plot_pretrain_batch,
)
from ssl4sar.viz.training_curves import (
    LEARNING_CURVE_PANELS,
    plot_learning_curves,
    plot_pretrain_curves,
)

__all__ = [
    "AGREE_COLOR",
    "BBOX_COLOR",
    "CLASS_NAMES",
    "GT_FRONT_COLOR",
    "HUMAN_COLOR",
    "LEARNING_CURVE_PANELS",
    "OPTICAL_TARGET_BANDS",
    "PRED_FRONT_COLOR",
    "SPLIT_COLORS",
    "epoch_table",
    "glacier_map",
    "glacier_map_caption",
    "plot_positions_by_method",
    "plot_predicted_and_true_fronts",
    "natural_earth_path",
    "optical_rgb",
    "plot_acquisition_timeline",
    "plot_annotator_comparison",
    "plot_annotator_fronts",
    "plot_coregistration",
    "plot_front_map",
    "plot_front_overlays",
    "plot_front_positions",
    "plot_geographic_fronts",
    "plot_learning_curves",
    "plot_prediction",
    "plot_pretrain_batch",
    "plot_pretrain_curves",
    "plot_realism",
    "plot_run_mdes",
    "plot_sar_optical",
    "plot_scene_fronts_map",
    "plot_scene_gallery",
    "plot_uncertainty",
    "plot_uncertainty_examples",
    "save_figure",
    "scene_axes",
    "show_bounding_box",
    "show_front",
    "show_sar",
    "show_zones",
    "zone_cmap",
]
