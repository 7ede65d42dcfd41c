#!/bin/bash
# The one-shot GPU check (docs/GPU.md, "The device-check kit"). On a machine with an NVIDIA GPU,
# nvcc, cuDNN and CMake (no FFmpeg, oneDNN or spdlog needed), from the repository root:
#
#   tools/device-check.sh                 build the kit, run every check, write the report
#   tools/device-check.sh --cpu-dry-run   the same without a GPU: builds the kit (with this
#                                         machine's FFmpeg/oneDNN/spdlog headers shadowed by
#                                         errors), runs its CPU halves, checks the bundle size
#   tools/device-check.sh --bundle-size   only: what travels to the GPU machine is < 64 MiB
#
# Options: --out DIR (default $OUT, else ./device-check-out), --build-dir DIR (default
# build-kit), --arch LIST (CUDA architectures; default native on a GPU, 90 for a dry run),
# --seconds S (per throughput configuration, default 1), --sections a,b (see the kit's usage),
# --prebuilt BIN (run a kit built elsewhere, e.g. here with --arch 90 and carried, instead of
# building; it needs the GPU machine's CUDA 13 runtime and cuDNN 9 libraries).
# Writes DIR/device-check.json (the kit's report), DIR/device-check.log (everything printed).
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=0
bundle_only=0
out_dir="${OUT:-device-check-out}"
build_dir=build-kit
arch=""
prebuilt=""
kit_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) dry_run=1 ;;
    --bundle-size) bundle_only=1 ;;
    --out) out_dir="$2"; shift ;;
    --build-dir) build_dir="$2"; shift ;;
    --arch) arch="$2"; shift ;;
    --prebuilt) prebuilt="$2"; shift ;;
    --seconds|--sections|--max-streams) kit_args+=("$1" "$2"); shift ;;
    *) echo "device-check: unknown option $1 (see the top of $0)" >&2; exit 2 ;;
  esac
  shift
done

# What the device tool carries: tracked files and untracked ones git does not ignore (64 MiB
# at most, shared/ and carried paths included; this repository carries nothing else).
bundle_check() {
  local bytes limit=$((64 * 1024 * 1024))
  if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "bundle: not a git checkout, cannot tell what travels" >&2
    return 1
  fi
  bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null |
          awk '{s += $1} END {print s + 0}')
  awk -v b="$bytes" 'BEGIN {printf "bundle: %d bytes (%.1f MiB) travel to the GPU machine; limit 64 MiB\n", b, b / 1048576}'
  if [ "$bytes" -ge "$limit" ]; then
    echo "bundle: over the 64 MiB a device call carries" >&2
    return 1
  fi
}

if [ "$bundle_only" = 1 ]; then
  bundle_check
  exit $?
fi

mkdir -p "$out_dir"
log="$out_dir/device-check.log"
exec > >(tee "$log") 2>&1
start=$(date +%s)
status=0

echo "== environment"
echo "date: $(date -u +%FT%TZ)"
uname -srm
grep -m1 'model name' /proc/cpuinfo || true
command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,compute_cap --format=csv
nvcc_bin=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
[ -n "$nvcc_bin" ] && "$nvcc_bin" --version | tail -2
cmake --version | head -1
c++ --version | head -1

# cuDNN: the toolkit's, the system's, or the one PyTorch's wheels bring (site-packages/nvidia/cudnn).
# The first libcudnn.so* under a cuDNN root's lib folders.
cudnn_library() {
  local f
  for f in "$1"/lib*/libcudnn.so* "$1"/lib/*/libcudnn.so*; do
    [ -e "$f" ] && { echo "$f"; return 0; }
  done
  return 1
}
cudnn_root=""
candidates=("${CUDNN_ROOT:-}" /usr/local/cuda /usr/local/cuda/targets/x86_64-linux /usr)
for py in python3 /opt/torch/.venv/bin/python3; do
  d=$("$py" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null) && candidates+=("$d")
done
for d in "${candidates[@]}"; do
  [ -n "$d" ] || continue
  if [ -f "$d/include/cudnn.h" ] && cudnn_library "$d" >/dev/null; then
    cudnn_root=$d
    break
  fi
done
echo "cuDNN: ${cudnn_root:-not found}"
if [ -n "$cudnn_root" ]; then
  grep -m3 -E '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL)' "$cudnn_root"/include/cudnn_version.h 2>/dev/null |
    awk '{printf "%s=%s ", $2, $3} END {print ""}'
  LD_LIBRARY_PATH="$(dirname "$(cudnn_library "$cudnn_root")")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
fi

if [ "$dry_run" = 1 ]; then
  echo "== bundle"
  bundle_check || status=1
fi

kit="$build_dir/upframe_device_check"
if [ -n "$prebuilt" ]; then
  echo "== prebuilt kit: $prebuilt (not built here)"
  kit=$prebuilt
else
echo "== build (CUDA-only kit: -DUPFRAME_DEVICE_KIT=ON)"
if [ -z "$arch" ]; then
  if [ "$dry_run" = 1 ]; then arch=90; else arch=native; fi
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake_args=(-S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DUPFRAME_DEVICE_KIT=ON
            -DCMAKE_CUDA_ARCHITECTURES="$arch")
[ -n "$cudnn_root" ] && cmake_args+=(-DCUDNN_ROOT="$cudnn_root")
[ -n "$nvcc_bin" ] && cmake_args+=(-DCMAKE_CUDA_COMPILER="$nvcc_bin")
command -v ccache >/dev/null && cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
build_start=$(date +%s)
if ! cmake "${cmake_args[@]}" || ! cmake --build "$build_dir" --target upframe_device_check -j "$(nproc)"; then
  echo "FAIL build: the kit did not build (see above)"
  exit 1
fi
echo "built in $(( $(date +%s) - build_start )) s: $(stat -c %s "$kit") bytes"
fi

echo "== checks"
run_args=(--source . --json "$out_dir/device-check.json" "${kit_args[@]}")
[ "$dry_run" = 1 ] && run_args+=(--cpu-dry-run)
"$kit" "${run_args[@]}" || status=1

echo "== done in $(( $(date +%s) - start )) s, status $status; report: $out_dir/device-check.json"
exit $status
