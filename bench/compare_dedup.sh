#!/bin/bash
# Runs two builds of bench_dedup alternately (before, after, before, after) on the same
# machine in one command, for ratios that machine noise does not decide alone.
# Usage: bench/compare_dedup.sh BEFORE/bench_dedup AFTER/bench_dedup [rounds]
set -euo pipefail
before=$1 after=$2 rounds=${3:-2}
filter='BM_DetectDuplicates1080p/|BM_MeasureDifference1080p|BM_ConfirmTrueDuplicate1080p'
isa=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_tile' | tr '\n' ' ')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores, ISA: $isa"
for round in $(seq "$rounds"); do
  for which in before after; do
    binary=$before
    [ "$which" = after ] && binary=$after
    echo "== $which, round $round, $(date +%T), load $(cut -d' ' -f1 /proc/loadavg)"
    UPFRAME_TEST_TMP="${TMPDIR:-/tmp}/bench-dedup-$which" "$binary" --benchmark_min_time=2 \
      --benchmark_filter="$filter" 2>&1 | grep -E '^BM_'
  done
done
