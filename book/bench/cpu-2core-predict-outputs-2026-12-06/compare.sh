#!/usr/bin/env bash
# compare.sh BEFORE_CHECKOUT AFTER_CHECKOUT RESULTS_DIR [ROUNDS]: alternating processes, one JSON per run
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
before=$1 after=$2 res=$3 rounds=${4:-3}
mkdir -p "$res"
for r in $(seq 1 "$rounds"); do
  for tag in before after; do
    tree=$before; [ "$tag" = after ] && tree=$after
    PYTHONPATH="$tree" HF_HUB_OFFLINE=1 python "$here/predict_outputs.py" "$res/$tag-$r.json"
  done
done
