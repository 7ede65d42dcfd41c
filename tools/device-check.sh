#!/bin/bash
# The one-shot GPU check (docs/GPU.md, "The device-check kit"). On a machine with an NVIDIA GPU,
# nvcc, cuDNN and CMake (no FFmpeg, oneDNN or spdlog needed), from the repository root:
#
#   tools/device-check.sh                 build the kit, run every section, write the report
#   tools/device-check.sh --cpu-dry-run   the same without a GPU: builds the kit (with this
#                                         machine's FFmpeg/oneDNN/spdlog headers shadowed by
#                                         errors), runs its CPU halves, checks the bundle size
#   tools/device-check.sh --bundle-size   only: what travels to the GPU machine is < 64 MiB
#
# Options: --out DIR (default $OUT, else ./device-check-out), --build-dir DIR (default
# build-kit), --arch LIST (CUDA architectures, default 90: sm_90 code and compute_90 PTX),
# --seconds S (per throughput configuration, default 1), --max-streams N, --sections a,b (the
# kit's sections, see its usage; "anchor" is the PyTorch anchor), --prebuilt BIN (run a kit built
# elsewhere instead of building), --fallback BIN (a kit built elsewhere, run when the build here
# fails).
#
# Every section runs as its own process under a deadline (the whole run stays under
# UPFRAME_KIT_DEADLINE seconds, 390 by default: one device call is 600 s at most), its elapsed
# time printed; after every section DIR/device-check.json is rewritten from what finished, so a
# crash, a hang or a kill keeps the sections before it. DIR/device-check.log has everything
# printed. Exit status: 0 every check passed (or was skipped on a dry run), 1 a check failed
# (a missing device on a run meant for one included), 2 bad options, 3 the kit did not build
# (the fallback's results, if any, are in the report all the same).
#
# Test hooks (tests/device_kit): UPFRAME_KIT_FORCE_BUILD_FAILURE=1 breaks the build;
# UPFRAME_KIT_SECTION_SECONDS=N sets every section's deadline to N s; the kit's own
# UPFRAME_KIT_TEST_CRASH / UPFRAME_KIT_TEST_SLEEP (device_check.cpp) crash or hang a section.
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=0
bundle_only=0
out_dir="${OUT:-device-check-out}"
build_dir=build-kit
arch=90
prebuilt=""
fallback=""
sections="device,ops,golden,user_models,dedup,dedup_speed,colour,memory,throughput,nvdec,anchor"
kit_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry-run) dry_run=1 ;;
    --bundle-size) bundle_only=1 ;;
    --out) out_dir="$2"; shift ;;
    --build-dir) build_dir="$2"; shift ;;
    --arch) arch="$2"; shift ;;
    --prebuilt) prebuilt="$2"; shift ;;
    --fallback) fallback="$2"; shift ;;
    --sections) sections="$2"; shift ;;
    --seconds|--max-streams) kit_args+=("$1" "$2"); shift ;;
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
out_dir=$(cd "$out_dir" && pwd)
log="$out_dir/device-check.log"
exec > >(tee "$log") 2>&1
tee_pid=$!
start=$(date +%s)
deadline=${UPFRAME_KIT_DEADLINE:-390}
# Working files (one JSON report per section): outside $OUT, which brings back 8 files at most.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
elapsed() { echo $(( $(date +%s) - start )); }
python_bin=$(command -v python3 || true)

# The combined report from what finished; run after every section.
merge_report() {
  [ -n "$python_bin" ] || { echo "device-check: no python3, the report is per section in the log"; return; }
  "$python_bin" tools/device-check/merge_report.py --work "$work" --out "$out_dir/device-check.json" "$@"
}

echo "== environment"
echo "date: $(date -u +%FT%TZ)"
uname -srm
grep -m1 'model name' /proc/cpuinfo || true
echo "cores: $(nproc)"
command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,compute_cap --format=csv
nvcc_bin=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
[ -n "$nvcc_bin" ] && "$nvcc_bin" --version | tail -2
cmake --version | head -1
c++ --version | head -1

# cuDNN: the header and the library from the same root (a library from one install with a
# header from another was seen to mix). Roots: $CUDNN_ROOT, the toolkit's, the system's (NVIDIA's
# cuDNN 9 Debian packages: /usr/include/<multiarch>, /usr/lib/<multiarch>), PyTorch's wheel
# (site-packages/nvidia/cudnn). Prints "INCLUDE_DIR LIBRARY" for the first root holding both.
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
cudnn_pair() {
  local root=$1 inc lib f
  for inc in "$root/include" "$root/include/$multiarch"; do
    [ -f "$inc/cudnn.h" ] || continue
    for f in "$root"/lib/libcudnn.so* "$root"/lib64/libcudnn.so* "$root/lib/$multiarch"/libcudnn.so* \
             "$root"/targets/x86_64-linux/lib/libcudnn.so*; do
      [ -e "$f" ] || continue
      # libcudnn.so.9 (its soname), else the first name found, in that folder.
      lib=$(dirname "$f")
      [ -e "$lib/libcudnn.so.9" ] && f="$lib/libcudnn.so.9"
      echo "$inc $f"
      return 0
    done
  done
  # A system install in its own sub-folders (packagings differ by cuDNN and CUDA version): a
  # cudnn.h under ROOT/include and a libcudnn.so.9 under ROOT/lib, both under the same ROOT.
  if [ "$root" = /usr ]; then
    inc=$(find /usr/include -maxdepth 3 -name cudnn.h -printf '%h\n' 2>/dev/null | sort | head -1)
    f=$(find /usr/lib -maxdepth 4 -name libcudnn.so.9 2>/dev/null | sort | head -1)
    [ -n "$inc" ] && [ -n "$f" ] && { echo "$inc $f"; return 0; }
  fi
  return 1
}
cudnn_include=""
cudnn_library=""
cudnn_root=""
candidates=("${CUDNN_ROOT:-}" /usr/local/cuda /usr/local/cuda/targets/x86_64-linux /usr)
for py in python3 /opt/torch/.venv/bin/python3; do
  d=$("$py" -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null) && candidates+=("$d")
done
for d in "${candidates[@]}"; do
  [ -n "$d" ] || continue
  if pair=$(cudnn_pair "$d"); then
    cudnn_root=$d
    cudnn_include=${pair% *}
    cudnn_library=${pair#* }
    break
  fi
done
echo "cuDNN: ${cudnn_root:-not found}${cudnn_root:+ (header $cudnn_include/cudnn.h, library $cudnn_library)}"
if [ -n "$cudnn_root" ]; then
  version_header="$cudnn_include/cudnn_version.h"
  [ -f "$version_header" ] || version_header="$cudnn_include/cudnn_version_v9.h"
  grep -h -m3 -E '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$version_header" 2>/dev/null |
    awk '{printf "%s=%s ", $2, $3} END {print ""}'
  # The kit (built here or carried) finds cuDNN there; the CUDA runtime is linked into it.
  LD_LIBRARY_PATH="$(dirname "$cudnn_library")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
fi

if [ "$dry_run" = 1 ]; then
  echo "== bundle"
  bundle_check || echo "FAIL bundle: over the limit" >> "$work/bundle.fail"
fi

# The build: its record goes into the report ("build").
build_failed=0
kit="$build_dir/upframe_device_check"
kit_origin="built here"
write_build_record() {
  printf '{"arch": "%s", "code": "%s", "kit": "%s", "cudnn_include": "%s", "cudnn_library": "%s", "build_failed": %s, "build_seconds": %s}\n' \
    "$arch" "$1" "$kit_origin" "$cudnn_include" "$cudnn_library" \
    "$([ "$build_failed" = 1 ] && echo true || echo false)" "${build_seconds:-null}" > "$work/build.json"
}
# "90" (CMake: sm_90 machine code and compute_90 PTX), "90-real", "90-virtual", lists of them.
describe_arch() {
  local a out=""
  for a in ${1//;/ }; do
    case "$a" in
      native) out+="native (this machine's GPU), " ;;
      *-real) out+="sm_${a%-real} machine code, " ;;
      *-virtual) out+="compute_${a%-virtual} PTX, " ;;
      *) out+="sm_$a machine code + compute_$a PTX, " ;;
    esac
  done
  echo "${out%, }"
}
build_seconds=""
if [ -n "$prebuilt" ]; then
  echo "== prebuilt kit: $prebuilt (not built here)"
  kit=$prebuilt
  kit_origin="prebuilt $prebuilt"
  write_build_record "as built elsewhere"
else
  echo "== build (CUDA-only kit: -DUPFRAME_DEVICE_KIT=ON, architectures $arch: $(describe_arch "$arch"))"
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake_args=(-S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DUPFRAME_DEVICE_KIT=ON
              -DCMAKE_CUDA_ARCHITECTURES="$arch")
  [ -n "$cudnn_root" ] && cmake_args+=(-DCUDNN_ROOT="$cudnn_root" -DCUDNN_INCLUDE_DIR="$cudnn_include"
                                       -DCUDNN_LIBRARY="$cudnn_library")
  [ -n "$nvcc_bin" ] && cmake_args+=(-DCMAKE_CUDA_COMPILER="$nvcc_bin")
  command -v ccache >/dev/null && cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  target=upframe_device_check
  # The test hook asks for a target that does not exist: the build fails, the cache is untouched.
  [ "${UPFRAME_KIT_FORCE_BUILD_FAILURE:-0}" = 1 ] && target=upframe_device_check_forced_to_fail
  build_budget=${UPFRAME_KIT_BUILD_SECONDS:-$(( dry_run ? 900 : 120 ))}
  build_start=$(date +%s)
  if ! timeout -k 5 "$build_budget" cmake "${cmake_args[@]}" ||
     ! timeout -k 5 "$build_budget" cmake --build "$build_dir" --target "$target" -j "$(nproc)"; then
    build_failed=1
    echo "FAIL build: the kit did not build (see above), after $(( $(date +%s) - build_start )) s"
  fi
  build_seconds=$(( $(date +%s) - build_start ))
  if [ "$build_failed" = 0 ]; then
    echo "built in $build_seconds s: $(stat -c %s "$kit") bytes, $(describe_arch "$arch")"
    write_build_record "$(describe_arch "$arch")"
  elif [ -n "$fallback" ] && [ -x "$fallback" ]; then
    echo "== fallback: running the kit built elsewhere, $fallback"
    kit=$fallback
    kit_origin="fallback $fallback (the build here failed)"
    write_build_record "as built elsewhere"
  else
    kit=""
    kit_origin="none (the build failed, no --fallback)"
    write_build_record "none"
  fi
fi

# One section: its own process under its deadline; its outcome recorded for the report.
run_section() {
  local name=$1 budget=$2 left rc t0 outcome
  shift 2
  left=$(( deadline - $(elapsed) - 5 ))
  if [ "$left" -le 0 ]; then
    printf '%s\t%s\t%s\t%s\n' "$name" 0 0 "no time left" >> "$work/sections.tsv"
    echo "== $name: not run, no time left of the $deadline s"
    return
  fi
  [ -n "${UPFRAME_KIT_SECTION_SECONDS:-}" ] && budget=$UPFRAME_KIT_SECTION_SECONDS
  [ "$budget" -gt "$left" ] && budget=$left
  echo "== $name (deadline $budget s, $(elapsed) s elapsed)"
  t0=$(date +%s)
  timeout -k 5 "$budget" "$@"
  rc=$?
  case $rc in
    0) outcome="ok" ;;
    1) outcome="failed (exit 1)" ;;
    124|137) outcome="cut at its deadline of $budget s" ;;
    *) if [ "$rc" -gt 128 ]; then outcome="crashed (signal $((rc - 128)))"; else outcome="exit $rc"; fi ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$outcome" >> "$work/sections.tsv"
  echo "== $name: $outcome in $(( $(date +%s) - t0 )) s"
  merge_report
}

# Budgets (s) on the lent machine (16 cores, H100/H200), estimates (never run there): 265 with
# the build's 120 stay under the deadline; a section over its budget is cut and reported, the
# next one runs; a section is never given more than the time left.
declare -A budget=([device]=10 [ops]=40 [golden]=30 [user_models]=15 [dedup]=10 [dedup_speed]=10 [colour]=10
                   [memory]=25 [throughput]=60 [nvdec]=10 [anchor]=45)
run_args=(--source . "${kit_args[@]}")
[ "$dry_run" = 1 ] && run_args+=(--cpu-dry-run)
for name in ${sections//,/ }; do
  if [ "$name" = anchor ]; then
    torch_python=""
    for py in python3 /opt/torch/.venv/bin/python3; do
      "$py" -c 'import torch' 2>/dev/null && { torch_python=$py; break; }
    done
    if [ "$dry_run" = 1 ]; then
      printf '%s\t%s\t%s\t%s\n' anchor 0 0 "skipped: dry run (the anchor runs on the card; its CPU test is tests/device_kit)" >> "$work/sections.tsv"
    elif [ -z "$torch_python" ]; then
      printf '%s\t%s\t%s\t%s\n' anchor 0 0 "skipped: no python3 with torch here" >> "$work/sections.tsv"
    else
      run_section anchor "${budget[anchor]}" env PYTHONUNBUFFERED=1 "$torch_python" bench/torch_anchor.py \
        --source . --device cuda --json "$work/anchor.json"
    fi
    continue
  fi
  if [ -z "${budget[$name]:-}" ]; then
    echo "device-check: unknown section $name" >&2
    exit 2
  fi
  if [ -z "$kit" ]; then
    printf '%s\t%s\t%s\t%s\n' "$name" 0 0 "not run: no kit (the build failed)" >> "$work/sections.tsv"
    continue
  fi
  run_section "$name" "${budget[$name]}" "$kit" "${run_args[@]}" --sections "$name" --json "$work/kit-$name.json"
done

echo "== report ($(elapsed) s elapsed)"
merge_report --final
status=$?
[ "$status" -gt 1 ] && status=1
[ -f "$work/bundle.fail" ] && status=1
[ -z "$python_bin" ] && status=1
[ "$build_failed" = 1 ] && status=3
echo "== done in $(elapsed) s, status $status; report: $out_dir/device-check.json"
# The log is complete before the call's files are collected.
exec >&- 2>&-
wait "$tee_pid" 2>/dev/null
exit $status
