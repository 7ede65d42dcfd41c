#!/bin/bash
# Runs two builds of one benchmark alternately (before, after, before, after) on the same
# machine in one command, for ratios that machine noise does not decide alone.
# Usage: bench/compare_builds.sh BEFORE/bench_X AFTER/bench_X [rounds] [benchmark args...]
# (bench_network: each run also measures the raw convolutions beside its network.)
set -euo pipefail
before=$1 after=$2 rounds=${3:-2}
shift $(($# < 3 ? $# : 3))
isa=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_tile' | tr '\n' ' ')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores, ISA: $isa"
for round in $(seq "$rounds"); do
  for which in before after; do
    binary=$before
    [ "$which" = after ] && binary=$after
    echo "== $which, round $round, $(date +%T), load $(cut -d' ' -f1 /proc/loadavg)"
    UPFRAME_TEST_TMP="${TMPDIR:-/tmp}/bench-compare-$which" "$binary" "$@"
  done
done
