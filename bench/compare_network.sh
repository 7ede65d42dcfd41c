#!/bin/bash
# Runs two builds of bench_network alternately (before, after, before, after) in one command,
# so both see the same machine load; each run also measures the raw convolutions beside its
# network, so its ratio is side by side on its own.
# Usage: bench/compare_network.sh BEFORE/bench_network AFTER/bench_network [rounds] [args...]
set -euo pipefail
before=$1 after=$2 rounds=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
isa=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_tile' | tr '\n' ' ')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores, CPU flags: $isa"
for round in $(seq "$rounds"); do
  for which in before after; do
    binary=$before
    [ "$which" = after ] && binary=$after
    echo "== $which, round $round, $(date +%T), load $(cut -d' ' -f1 /proc/loadavg)"
    "$binary" "$@"
  done
done
