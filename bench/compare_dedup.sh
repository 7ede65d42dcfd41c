#!/bin/bash
# bench_dedup's issue-9 benchmarks, two builds alternated (bench/compare_builds.sh).
# Usage: bench/compare_dedup.sh BEFORE/bench_dedup AFTER/bench_dedup [rounds]
set -euo pipefail
filter='BM_DetectDuplicates1080p/|BM_MeasureDifference1080p|BM_ConfirmTrueDuplicate1080p'
"$(dirname "$0")/compare_builds.sh" "$1" "$2" "${3:-2}" --benchmark_min_time=2 \
  --benchmark_filter="$filter" 2>&1 | grep -E '^(machine|==|BM_)'
