"""Data layer of ssl4sar.

- :mod:`ssl4sar.data.caffe` — the CaFFe labelled layout: stems → :class:`~ssl4sar.data.caffe.SceneMeta`,
  masks → class ids, bounding boxes, the official train / val split, seasons.
- :mod:`ssl4sar.data.unlabeled` — the SSL4SAR pretraining layout: S1 SAR images paired with their
  glacier's 14-band S2 image; pretraining crops.
- :mod:`ssl4sar.data.raster` — georeferenced raster reading / writing (rasterio).
- :mod:`ssl4sar.data.sampling` — padding, random context crops with re-zoom, validation / test windows.
- :mod:`ssl4sar.data.augment` — ocean mix-up, speckle, brightness, gamma, flips and rotations.
- :mod:`ssl4sar.data.datasets`, :mod:`ssl4sar.data.datamodules` — torch Datasets and Lightning DataModules.

Submodules are imported explicitly (``from ssl4sar.data.caffe import discover``) so that importing
``ssl4sar.data`` stays cheap.
"""
