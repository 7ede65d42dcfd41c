#!/bin/bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/ and runs each for its
# share of SECONDS (default 60), starting from the committed seeds in fuzz/corpus/.
# Exits non-zero when a target crashes, leaks, times out or runs out of memory; the input
# that did it is left in build-fuzz/artifacts/. See docs/FUZZING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
# A fixed seed makes a CI run repeat the same mutations (a longer run explores a superset);
# UPFRAME_FUZZ_SEED=0 lets libFuzzer pick one (for long exploratory runs).
seed=${UPFRAME_FUZZ_SEED:-1}
targets=(fuzz_nn_model fuzz_decoder fuzz_weights)
build=${UPFRAME_FUZZ_BUILD:-build-fuzz}

cc=$(command -v clang-14 || command -v clang)
cxx=$(command -v clang++-14 || command -v clang++)
CC=$cc CXX=$cxx cmake -S fuzz -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j2 --target "${targets[@]}"

share=$((seconds / ${#targets[@]}))
((share >= 1)) || share=1
mkdir -p "$build/artifacts"
status=0
for target in "${targets[@]}"; do
  name=${target#fuzz_}
  # New inputs go to a scratch corpus, so a run never edits the committed seeds.
  work="$build/corpus/$name"
  mkdir -p "$work"
  options=(-max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -max_len=65536
           -print_final_stats=1 -seed="$seed" -artifact_prefix="$build/artifacts/$name-")
  [[ -f fuzz/$name.dict ]] && options+=(-dict="fuzz/$name.dict")
  echo "== $target: $share s"
  if ! "$build/$target" "${options[@]}" "$work" "fuzz/corpus/$name" 2> "$build/$name.log"; then
    status=1
    echo "== $target FAILED; its report:"
    grep -v -E '^#[0-9]+' "$build/$name.log" | tail -60
  else
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done' "$build/$name.log" || true
  fi
done
exit $status
