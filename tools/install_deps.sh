#!/bin/sh
# Installs what upframe needs to build, test and benchmark on Debian 12 (as root).
# ocl-icd-opencl-dev and opencl-c-headers: Debian's oneDNN CMake config requires OpenCL.
# libavfilter-dev: GIF output (palettegen/paletteuse) and audio re-encoding (resampling).
# libwebp-dev: animated WebP input (FFmpeg 5.1 decodes still WebP only).
# libjpeg-dev (libjpeg-turbo): grey JPEG output (FFmpeg 5.1's mjpeg encoder writes YUV only).
# clang-14 and libclang-rt-14-dev (libFuzzer, ASan, UBSan runtimes): the fuzz targets (fuzz/run.sh).
# slurm-wlm and munge: the distributed-job test starts a one-node Slurm cluster (docs/SCALE.md);
# python3-yaml: it reads the Kubernetes manifest (no cluster runs here).
# libzip-dev: PyTorch .pth files are zip archives; libonnx-dev and libprotobuf-dev: ONNX models
# (src/weights).
# libcpp-httplib-dev: the HTTP server of `upframe serve`; chromium and chromium-driver: its
# browser tests (tests/web, headless, through WebDriver); libsqlite3-dev: the file in which
# `upframe serve` keeps its jobs across restarts.
# python3-torch: the PyTorch anchor (bench/torch_anchor.py) is checked against the golden images
# on the CPU (ctest DeviceKit.TorchAnchorMatchesGolden); on the GPU machine it times PyTorch.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config \
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libavfilter-dev ffmpeg \
  libwebp-dev libjpeg-dev \
  libdnnl-dev ocl-icd-opencl-dev opencl-c-headers \
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libspdlog-dev \
  libgtest-dev libbenchmark-dev \
  clang-14 libclang-rt-14-dev \
  slurm-wlm munge python3-yaml \
  libcpp-httplib-dev libsqlite3-dev chromium chromium-driver python3-torch \
  libzip-dev libonnx-dev libprotobuf-dev >/dev/null
