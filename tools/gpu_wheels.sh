#!/usr/bin/env bash
# Wheels of the packages that tools/gpu_run.sh imports and the lent GPU machines' image does not hold (its package
# list: the device tool's KINDS.md; it holds torch, timm, lightning, numpy, scipy, scikit-image, pandas, pyyaml,
# matplotlib, requests, attrs, click, certifi, but no geospatial package), for that image's Python 3.12 on manylinux
# x86-64, at the versions of this machine's venv (the ones the tests ran with) -> .whl/ (git-ignored, 46 MB; with the
# 12 MB working tree it stays under the device tool's 64 MiB a call).
# Run here, where PyPI is reachable; the device call then names .whl in `carry` and gpu_run.sh installs them.
# Usage (repository root): [PY=.venv/bin/python] [PKGS="rasterio affine ..."] tools/gpu_wheels.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
# rasterio needs affine; pooch needs platformdirs; pyproj and shapely need nothing the image lacks
PKGS=${PKGS:-rasterio affine pyproj shapely pooch platformdirs}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
rm -rf .whl.part
mkdir .whl.part
for name in $PKGS; do
  version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl.part "$name==$version"
done
rm -rf .whl
mv .whl.part .whl  # complete or absent: an interrupted download leaves no half-filled .whl
ls -1 .whl
du -sh .whl
