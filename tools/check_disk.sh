#!/usr/bin/env bash
# Usage: tools/check_disk.sh NEED_GIB PATH...
# Prints the free space of the file system of each PATH and exits 1, naming the path, for each one with less than
# NEED_GIB GiB free. Paths on one file system share its space: this is a floor, not a sum. .ci/run calls it.
set -euo pipefail
[ "$#" -ge 2 ] && [[ "$1" =~ ^[0-9]+$ ]] || { echo "usage: check_disk.sh NEED_GIB PATH..." >&2; exit 2; }
need_gib=$1
shift
status=0
for path in "$@"; do
  free_kib=$(df -Pk "$path" | awk 'NR == 2 {print $4}')
  free_gib=$((free_kib / 1048576))
  echo "free disk space at $path: $free_gib GiB (this run needs about $need_gib GiB)"
  if [ "$free_gib" -lt "$need_gib" ]; then
    echo "error: $path has $free_gib GiB free, less than the $need_gib GiB this run needs; free some space first" >&2
    status=1
  fi
done
exit "$status"
