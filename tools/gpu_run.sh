#!/usr/bin/env bash
# The GPU measurements of record, in one command (issues 13 and 15), run on a machine with one CUDA GPU:
#   1. (PROTOCOL_S > 0) `ssl4sar protocol --preset gpu`: the book's experiments with the paper network (data, both
#      pretrainings, 5 seeds x 3 initialisations, the paper's tests, ensembles) -> $OUT/results.tar.gz
#   2. (unless BENCH=off) for each batch size in BENCH_BATCHES: `python -m ssl4sar.bench --quick` on the fast vs
#      reference path (and the torch.compile'd fast path with COMPILE=on; on CUDA also the fast-contiguous
#      ablation, and for training steps the fast-polyphase and fast-no-cudnn-autotuning ones), % of the measured
#      bf16 peak, and the attention kernel PyTorch picks for each block (bench.json attention_backends: every block
#      should name a fused kernel, none `math`) -> bench-b<N>/;
#      with PROFILE=on (default) the first batch size also writes the torch.profiler tables (profile.txt,
#      profile-compile.txt, profile-sliding-window.txt: is inference, at 3.5 % of the H200 peak, waiting on the
#      host?); then (ROOFLINE_S > 0) `python -m ssl4sar.bench.roofline --measure`: the training step's roofline
#      bounds from this device's measured peak and bandwidth, and its compute kernels timed alone
#      -> bench-b<N>/roofline/
#   3. (PREDICT_S > 0) `tools/predict_timing.py`: `predict` of a PREDICT_SIDE px scene (default 3162: 10 MP) with
#      the PRESET network, one map and TTA x4: seconds in the windows (GPU) against the outputs (CPU)
#      -> predict/predict_timing.json
#   4. (FINETUNE_STEPS > 0) `ssl4sar finetune` on synthetic data of FINETUNE_PRESET (default demo) for that many
#      steps in bf16-mixed, once eager and once with finetune.compile=true: does the compiled training forward run
#      inside Lightning on this device, and how long do both take -> finetune-{eager,compile}/ and their logs
#   5. (PRETRAIN_STEPS > 0) the same for `ssl4sar pretrain --method optsimmim` (pretrain.compile), on synthetic
#      SSL4SAR-layout data of FINETUNE_PRESET -> pretrain-{eager,compile}.log
# What comes back: the device tool returns at most 8 files from $OUT, so every result above is written to a scratch
# folder (RESULTS, default $TMPDIR/ssl4sar_gpu_<TAG>) and packed after each step into $OUT/<TAG>.tar.gz (renamed
# into place: a run killed at its time limit keeps every finished step), without rasters, checkpoints or PNGs;
# $OUT/gpu.txt gets one line per step, appended (several calls can share one $OUT).
# Time: each step has its own limit (BENCH_S per bench call, ROOFLINE_S, PREDICT_S, SYNTH_S, TRAIN_S per training
# run), so their sum must fit the device call's own limit (600 s at most).
# Packages: the GPU image has torch, timm and lightning but no rasterio, pyproj, shapely or pooch: run
# tools/gpu_wheels.sh here first and name .whl in the call's `carry`; the wheels are installed into /tmp/site, and
# the script stops at once (exit 3, the missing modules in gpu.txt) when something it imports is missing.
# Usage (repository root): OUT=DIR [TAG=run] [PROTOCOL_S=0] [BENCH_S=240] [BENCH_BATCHES="16 64"]
#   [BENCH_ONLY="matmul_peak finetune_step sliding_window"] [COMPILE=on|off] [PROFILE=on|off] [ROOFLINE_S=120]
#   [DEVICE=cuda] [PRESET=paper] [PREDICT_S=0] [PREDICT_SIDE=3162] [FINETUNE_STEPS=0] [PRETRAIN_STEPS=0]
#   [FINETUNE_PRESET=demo] [TRAIN_MODES="eager compile"] [TRAIN_S=240] [SYNTH_S=180] [BENCH=on|off]
#   tools/gpu_run.sh
# The measurements still owed to issue 15, for one H200 (device run: kind nvidia-h200, carry [".whl"]):
#   OUT=$OUT TAG=bench BENCH_S=420 BENCH_BATCHES=64 BENCH_ONLY="matmul_peak finetune_step" COMPILE=on PROFILE=off \
#     ROOFLINE_S=90 tools/gpu_run.sh                                                        (one call, timeout_s 590)
#   OUT=$OUT TAG=predict BENCH=off PREDICT_S=200 FINETUNE_STEPS=200 TRAIN_MODES=eager TRAIN_S=150 tools/gpu_run.sh
# (on an H100 the batch-64 reference path, 106 GB, runs out of memory: its row says so and the fast rows, which hold
# the % of peak, are measured; at BENCH_BATCHES=32 it would need about half, not measured)
# Try it on the CPU first: PY=.venv/bin/python OUT=/tmp/g DEVICE=cpu PRESET=smoke COMPILE=off BENCH_BATCHES=2 tools/gpu_run.sh
# (tests/test_gpu_run.py runs it so, with one eager training step of each kind)
# Without an installed ssl4sar it runs from the checkout.
set -uo pipefail
OUT=${OUT:?set OUT to the output folder}
TAG=${TAG:-run}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
PRESET=${PRESET:-paper}
SCRATCH=${TMPDIR:-/tmp}  # generated data and training runs that are not results
RES=${RESULTS:-$SCRATCH/ssl4sar_gpu_$TAG}  # this call's results, packed into $OUT/$TAG.tar.gz
mkdir -p "$OUT"
rm -rf "$RES"
mkdir -p "$RES"
summary() { echo "$*" | tee -a "$OUT/gpu.txt"; }
# pack: the results so far -> $OUT/$TAG.tar.gz, renamed into place (a kill while packing keeps the previous one)
pack() {
  cp "$OUT/gpu.txt" "$RES/gpu.txt"
  tar czf "$OUT/$TAG.tar.gz.part" -C "$RES" --exclude='*.tif' --exclude='*.pt' --exclude='*.ckpt' \
    --exclude='*.npz' --exclude='*.png' . && mv -f "$OUT/$TAG.tar.gz.part" "$OUT/$TAG.tar.gz"
}
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
summary "== $TAG $(date -u +%Y-%m-%dT%H:%M:%SZ) =="
export PYTHONPATH="${PYTHONPATH:-$PWD}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >> "$OUT/gpu.txt" 2>&1
# missing_modules: every module a step imports that cannot be imported, with why (empty when all can): checked
# before the first step, so a missing package costs seconds, not a failed step after minutes
missing_modules() {
  "$PY" - <<'PYEOF'
import importlib
bad = []
for name in ("torch", "timm", "lightning", "rasterio", "pyproj", "shapely", "pooch", "ssl4sar.cli", "ssl4sar.bench",
             "ssl4sar.bench.roofline", "ssl4sar.predict", "ssl4sar.pretrain"):
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any failure to import is reported
        bad.append(f"{name} ({type(exc).__name__}: {exc})")
print("; ".join(bad))
PYEOF
}
missing=$(missing_modules)
WHEELS=${WHEELS:-.whl}  # carried wheels (tools/gpu_wheels.sh), installed only where something is missing
if [ -n "$missing" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl >> "$OUT/gpu.txt" 2>&1 || { summary "installing $WHEELS/ failed"; pack; exit 3; }
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
  missing=$(missing_modules)
fi
if [ -n "$missing" ]; then
  summary "cannot import: $missing -- run tools/gpu_wheels.sh and carry .whl"
  pack
  exit 3
fi
"$PY" -c "import torch, ssl4sar; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" | tee -a "$OUT/gpu.txt"
pack
if [ "${PROTOCOL_S:-0}" -gt 0 ]; then
  work="$SCRATCH/ssl4sar_gpu_work"
  t0=$(date +%s)
  timeout "$PROTOCOL_S" "$PY" -m ssl4sar.cli -v protocol --preset gpu --work-dir "$work" --device "$DEVICE" \
    --inits scratch optsimmim opttranslator --gpu-workers 3 --data-workers "$(( $(nproc) - 2 ))" \
    > "$RES/protocol.log" 2>&1
  summary "protocol rc=$? wall=$(( $(date +%s) - t0 ))s"
  (cd "$work" && tar czf "$OUT/results.tar.gz.part" --exclude='*.pt' --exclude='*.ckpt' --exclude='*.png' \
    --exclude='*.tif' --exclude='*.npz' --exclude='data' --exclude='*.geojson' --exclude='*.gpkg' . 2>/dev/null \
    && mv -f "$OUT/results.tar.gz.part" "$OUT/results.tar.gz")
  pack
fi
profile=$([ "${PROFILE:-on}" = on ] && echo --profile)
batches=${BENCH_BATCHES:-16 64}
[ "${BENCH:-on}" = off ] && batches=""  # BENCH=off: only the other steps (e.g. PREDICT_S in a second call)
for batch in $batches; do
  t0=$(date +%s)
  # shellcheck disable=SC2086  # BENCH_ONLY is a list of benchmark names
  timeout "${BENCH_S:-240}" "$PY" -m ssl4sar.bench --device "$DEVICE" --preset "$PRESET" --quick $profile \
    --compile "${COMPILE:-on}" --batch-size "$batch" --only ${BENCH_ONLY:-matmul_peak finetune_step sliding_window} \
    --out "$RES/bench-b$batch" > "$RES/bench-b$batch.log" 2>&1
  summary "bench batch $batch rc=$? wall=$(( $(date +%s) - t0 ))s"
  tail -4 "$RES/bench-b$batch.log"
  profile=
  pack
  if [ "${ROOFLINE_S:-120}" -gt 0 ]; then
    # the step's roofline bounds with this device's measured peak and bandwidth, and its compute kernels timed alone
    timeout "${ROOFLINE_S:-120}" "$PY" -m ssl4sar.bench.roofline --device "$DEVICE" --preset "$PRESET" --measure \
      --batch-size "$batch" --out "$RES/bench-b$batch/roofline" > "$RES/roofline-b$batch.log" 2>&1
    summary "roofline batch $batch rc=$?"
    pack
  fi
done
if [ "${PREDICT_S:-0}" -gt 0 ]; then
  t0=$(date +%s)
  timeout "$PREDICT_S" "$PY" tools/predict_timing.py --out "$RES/predict" --device "$DEVICE" --preset "$PRESET" \
    --side "${PREDICT_SIDE:-3162}" > "$RES/predict.log" 2>&1
  summary "predict timing rc=$? wall=$(( $(date +%s) - t0 ))s"
  rm -rf "$RES/predict/scenes"
  pack
fi
fp=${FINETUNE_PRESET:-demo}
accel=$([ "$DEVICE" = cpu ] && echo cpu || echo gpu)
# train_each_mode KIND STEPS OUT_PREFIX ARGS...: `ssl4sar KIND ARGS` for STEPS steps in bf16-mixed on preset $fp,
# once per entry of TRAIN_MODES (eager: KIND.compile=false, compile: true) into OUT_PREFIX-<mode>, each timed (at
# most TRAIN_S seconds) and logged to $RES/KIND-<mode>.log; checkpoints are deleted (they are not results)
train_each_mode() {
  local kind=$1 steps=$2 prefix=$3 mode t0
  shift 3
  for mode in ${TRAIN_MODES:-eager compile}; do
    t0=$(date +%s)
    timeout "${TRAIN_S:-240}" "$PY" -m ssl4sar.cli -v "$kind" "$@" --preset "$fp" --out "$prefix-$mode" \
      --accelerator "$accel" --precision bf16-mixed --max-steps "$steps" --seed 0 --no-progress \
      --set "$kind.compile=$([ "$mode" = compile ] && echo true || echo false)" > "$RES/$kind-$mode.log" 2>&1
    summary "$kind $mode rc=$? wall=$(( $(date +%s) - t0 ))s"
    rm -rf "$prefix-$mode/checkpoints" "$prefix-$mode"/*.pt
    pack
  done
}
# synth LAYOUT DIR LOG: synthetic data of preset $fp in LAYOUT under DIR (regenerated, at most SYNTH_S seconds)
synth() {
  timeout "${SYNTH_S:-180}" "$PY" -m ssl4sar.cli data synth --out "$2" --preset "$fp" --layouts "$1" --no-progress \
    --force > "$3" 2>&1 || summary "synthetic $1 data failed"
}
if [ "${FINETUNE_STEPS:-0}" -gt 0 ]; then
  synth caffe "$SCRATCH/ssl4sar_ft_data" "$RES/finetune-data.log"
  train_each_mode finetune "$FINETUNE_STEPS" "$RES/finetune" --data "$SCRATCH/ssl4sar_ft_data/caffe"
fi
if [ "${PRETRAIN_STEPS:-0}" -gt 0 ]; then
  synth ssl4sar "$SCRATCH/ssl4sar_pt_data" "$RES/pretrain-data.log"
  train_each_mode pretrain "$PRETRAIN_STEPS" "$SCRATCH/ssl4sar_pt" --method optsimmim \
    --ssl4sar "$SCRATCH/ssl4sar_pt_data/ssl4sar" --no-resume
fi
pack
