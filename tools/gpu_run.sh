#!/usr/bin/env bash
# The GPU measurements of record, in one command (issues 13 and 15), run on a machine with one CUDA GPU:
#   1. `ssl4sar protocol --preset gpu`: the book's experiments with the paper network (data, both pretrainings,
#      5 seeds x 3 initialisations, the paper's tests, ensembles) -> $OUT/results.tar.gz (tables, protocol.json)
#   2. `python -m ssl4sar.bench --device cuda --quick --profile`: fast vs reference path, % of the measured bf16
#      matmul peak, torch.profiler table -> $OUT/bench/
# Usage (repository root): OUT=DIR [PROTOCOL_S=360] [BENCH_S=180] tools/gpu_run.sh
# Without an installed ssl4sar it runs from the checkout; wheels in .whl/ (rasterio, pyproj, shapely, ...) are
# installed into /tmp/site first when present.
set -uo pipefail
OUT=${OUT:?set OUT to the output folder}
mkdir -p "$OUT/bench"
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, ssl4sar; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
  | tee -a "$OUT/gpu.txt"
work=/tmp/ssl4sar_gpu_work
t0=$(date +%s)
timeout "${PROTOCOL_S:-360}" python3 -m ssl4sar.cli -v protocol --preset gpu --work-dir "$work" --device cuda \
  --inits scratch optsimmim opttranslator --gpu-workers 3 --data-workers "$(( $(nproc) - 2 ))" > "$OUT/protocol.log" 2>&1
echo "protocol rc=$? wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/gpu.txt"
(cd "$work" && tar czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude='*.ckpt' --exclude='*.png' --exclude='*.tif' \
  --exclude='*.npz' --exclude='data' --exclude='*.geojson' --exclude='*.gpkg' . 2>/dev/null)
t0=$(date +%s)
timeout "${BENCH_S:-180}" python3 -m ssl4sar.bench --device cuda --quick --profile \
  --only matmul_peak finetune_step pretrain_step sliding_window --out "$OUT/bench" > "$OUT/bench.log" 2>&1
echo "bench rc=$? wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/gpu.txt"
tail -5 "$OUT/protocol.log" "$OUT/bench.log"
