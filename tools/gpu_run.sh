#!/usr/bin/env bash
# The GPU measurements of record, in one command (issues 13 and 15), run on a machine with one CUDA GPU:
#   1. (PROTOCOL_S > 0) `ssl4sar protocol --preset gpu`: the book's experiments with the paper network (data, both
#      pretrainings, 5 seeds x 3 initialisations, the paper's tests, ensembles) -> $OUT/results.tar.gz
#   2. (unless BENCH=off) for each batch size in BENCH_BATCHES: `python -m ssl4sar.bench --quick` on the fast vs
#      reference path (and the torch.compile'd fast path with COMPILE=on; on CUDA also the fast-contiguous
#      ablation, and for training steps the fast-polyphase and fast-no-cudnn-autotuning ones), % of the measured
#      bf16 peak, and the attention kernel PyTorch picks for each block (bench.json attention_backends: every block
#      should name a fused kernel, none `math`) -> $OUT/bench-b<N>/;
#      the first batch size also writes the torch.profiler tables (profile.txt, profile-compile.txt,
#      profile-sliding-window.txt: is inference, at 3.5 % of the H200 peak, waiting on the host?); then
#      `python -m ssl4sar.bench.roofline --measure`: the training step's roofline bounds from this device's measured
#      peak and bandwidth, and its compute kernels timed alone -> $OUT/bench-b<N>/roofline/
#   3. (FINETUNE_STEPS > 0) `ssl4sar finetune` on synthetic data of FINETUNE_PRESET (default demo) for that many
#      steps in bf16-mixed, once eager and once with finetune.compile=true: does the compiled training forward run
#      inside Lightning on this device, and how long do both take -> $OUT/finetune-{eager,compile}/ and their logs
#   4. (PRETRAIN_STEPS > 0) the same for `ssl4sar pretrain --method optsimmim` (pretrain.compile), on synthetic
#      SSL4SAR-layout data of FINETUNE_PRESET -> $OUT/pretrain-{eager,compile}.log
#   5. (PREDICT_S > 0) `tools/predict_timing.py`: `predict` of a PREDICT_SIDE px scene (default 3162: 10 MP) with
#      the PRESET network, one map and TTA x4: seconds in the windows (GPU) against the outputs (CPU)
#      -> $OUT/predict/predict_timing.json
# Usage (repository root): OUT=DIR [PROTOCOL_S=0] [BENCH_S=240 per bench call] [BENCH_BATCHES="16 64"]
#   [BENCH_ONLY="matmul_peak finetune_step sliding_window"] [COMPILE=on|off] [DEVICE=cuda] [PRESET=paper]
#   [FINETUNE_STEPS=0] [PRETRAIN_STEPS=0] [FINETUNE_PRESET=demo] [TRAIN_MODES="eager compile"]
#   [PREDICT_S=0] [PREDICT_SIDE=3162] [BENCH=on|off] tools/gpu_run.sh
# Try it on the CPU first: PY=.venv/bin/python OUT=/tmp/g DEVICE=cpu PRESET=smoke COMPILE=off BENCH_BATCHES=2 tools/gpu_run.sh
# (tests/test_gpu_run.py runs it so, with one eager training step of each kind)
# Without an installed ssl4sar it runs from the checkout; wheels in .whl/ (rasterio, pyproj, shapely, ...) are
# installed into /tmp/site first when present.
set -uo pipefail
OUT=${OUT:?set OUT to the output folder}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
PRESET=${PRESET:-paper}
SCRATCH=${TMPDIR:-/tmp}  # generated data and training runs that are not results
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONHASHSEED=0
if compgen -G ".whl/*.whl" >/dev/null && ! "$PY" -c "import rasterio" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONPATH="${PYTHONPATH:-$PWD}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
"$PY" -c "import torch, ssl4sar; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" | tee -a "$OUT/gpu.txt"
if [ "${PROTOCOL_S:-0}" -gt 0 ]; then
  work="$SCRATCH/ssl4sar_gpu_work"
  t0=$(date +%s)
  timeout "$PROTOCOL_S" "$PY" -m ssl4sar.cli -v protocol --preset gpu --work-dir "$work" --device "$DEVICE" \
    --inits scratch optsimmim opttranslator --gpu-workers 3 --data-workers "$(( $(nproc) - 2 ))" \
    > "$OUT/protocol.log" 2>&1
  echo "protocol rc=$? wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/gpu.txt"
  (cd "$work" && tar czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude='*.ckpt' --exclude='*.png' \
    --exclude='*.tif' --exclude='*.npz' --exclude='data' --exclude='*.geojson' --exclude='*.gpkg' . 2>/dev/null)
fi
profile=--profile
batches=${BENCH_BATCHES:-16 64}
[ "${BENCH:-on}" = off ] && batches=""  # BENCH=off: only the other steps (e.g. PREDICT_S in a second call)
for batch in $batches; do
  t0=$(date +%s)
  # shellcheck disable=SC2086  # BENCH_ONLY is a list of benchmark names
  timeout "${BENCH_S:-240}" "$PY" -m ssl4sar.bench --device "$DEVICE" --preset "$PRESET" --quick $profile \
    --compile "${COMPILE:-on}" --batch-size "$batch" --only ${BENCH_ONLY:-matmul_peak finetune_step sliding_window} \
    --out "$OUT/bench-b$batch" > "$OUT/bench-b$batch.log" 2>&1
  echo "bench batch $batch rc=$? wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/gpu.txt"
  tail -4 "$OUT/bench-b$batch.log"
  profile=
  # the step's roofline bounds with this device's measured peak and bandwidth, and its compute kernels timed alone
  timeout "${BENCH_S:-240}" "$PY" -m ssl4sar.bench.roofline --device "$DEVICE" --preset "$PRESET" --measure \
    --batch-size "$batch" --out "$OUT/bench-b$batch/roofline" > "$OUT/roofline-b$batch.log" 2>&1
  echo "roofline batch $batch rc=$?" | tee -a "$OUT/gpu.txt"
done
fp=${FINETUNE_PRESET:-demo}
accel=$([ "$DEVICE" = cpu ] && echo cpu || echo gpu)
# train_each_mode KIND STEPS OUT_PREFIX ARGS...: `ssl4sar KIND ARGS` for STEPS steps in bf16-mixed on preset $fp,
# once per entry of TRAIN_MODES (eager: KIND.compile=false, compile: true) into OUT_PREFIX-<mode>, each timed and
# logged to $OUT/KIND-<mode>.log; checkpoints are deleted (they are not results)
train_each_mode() {
  local kind=$1 steps=$2 prefix=$3 mode t0
  shift 3
  for mode in ${TRAIN_MODES:-eager compile}; do
    t0=$(date +%s)
    timeout "${BENCH_S:-240}" "$PY" -m ssl4sar.cli -v "$kind" "$@" --preset "$fp" --out "$prefix-$mode" \
      --accelerator "$accel" --precision bf16-mixed --max-steps "$steps" --seed 0 --no-progress \
      --set "$kind.compile=$([ "$mode" = compile ] && echo true || echo false)" > "$OUT/$kind-$mode.log" 2>&1
    echo "$kind $mode rc=$? wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/gpu.txt"
    rm -rf "$prefix-$mode/checkpoints" "$prefix-$mode"/*.pt
  done
}
# synth LAYOUT DIR LOG: synthetic data of preset $fp in LAYOUT under DIR (regenerated)
synth() {
  "$PY" -m ssl4sar.cli data synth --out "$2" --preset "$fp" --layouts "$1" --no-progress --force > "$3" 2>&1 \
    || echo "synthetic $1 data failed" | tee -a "$OUT/gpu.txt"
}
if [ "${FINETUNE_STEPS:-0}" -gt 0 ]; then
  synth caffe "$SCRATCH/ssl4sar_ft_data" "$OUT/finetune-data.log"
  train_each_mode finetune "$FINETUNE_STEPS" "$OUT/finetune" --data "$SCRATCH/ssl4sar_ft_data/caffe"
fi
if [ "${PRETRAIN_STEPS:-0}" -gt 0 ]; then
  synth ssl4sar "$SCRATCH/ssl4sar_pt_data" "$OUT/pretrain-data.log"
  train_each_mode pretrain "$PRETRAIN_STEPS" "$SCRATCH/ssl4sar_pt" --method optsimmim \
    --ssl4sar "$SCRATCH/ssl4sar_pt_data/ssl4sar" --no-resume
fi
if [ "${PREDICT_S:-0}" -gt 0 ]; then
  t0=$(date +%s)
  timeout "$PREDICT_S" "$PY" tools/predict_timing.py --out "$OUT/predict" --device "$DEVICE" --preset "$PRESET" \
    --side "${PREDICT_SIDE:-3162}" > "$OUT/predict.log" 2>&1
  echo "predict timing rc=$? wall=$(( $(date +%s) - t0 ))s" | tee -a "$OUT/gpu.txt"
  rm -rf "$OUT/predict/scenes"
fi
