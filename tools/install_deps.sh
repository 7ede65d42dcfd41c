#!/bin/sh
# Installs what upframe needs to build, test and benchmark on Debian 12 (as root).
# ocl-icd-opencl-dev and opencl-c-headers: Debian's oneDNN CMake config requires OpenCL.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config \
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg \
  libdnnl-dev ocl-icd-opencl-dev opencl-c-headers \
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libspdlog-dev \
  libgtest-dev libbenchmark-dev >/dev/null
