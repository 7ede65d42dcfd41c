#include <algorithm>

#include <cuda_runtime_api.h>

#include "upframe/cuda_check.hpp"
#include "upscale/cuda/non_finite.hpp"

namespace upframe::upscale_cuda {

namespace {

constexpr int kThreads = 256;

__global__ void count_non_finite_kernel(const float* data, size_t n, unsigned long long* count) {
  unsigned long long local = 0;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    local += !isfinite(data[i]);
  if (local) atomicAdd(count, local);
}

void check(cudaError_t err, const char* what) {
  check_cuda(err, "CUDA upscaling", what, "upscale");
}

}  // namespace

NonFiniteCounter::NonFiniteCounter() {
  check(cudaMalloc(&device_count_, sizeof *device_count_), "allocating a counter");
  check(cudaHostAlloc(&host_count_, sizeof *host_count_, cudaHostAllocDefault),
        "allocating a counter");
}

NonFiniteCounter::~NonFiniteCounter() {
  if (device_count_) cudaFree(device_count_);
  if (host_count_) cudaFreeHost(host_count_);
}

unsigned long long NonFiniteCounter::count(const float* data, size_t n, void* stream_handle) {
  const auto stream = static_cast<cudaStream_t>(stream_handle);
  check(cudaMemsetAsync(device_count_, 0, sizeof *device_count_, stream), "clearing a counter");
  const size_t blocks = std::min<size_t>((n + kThreads - 1) / kThreads, 1024);
  count_non_finite_kernel<<<unsigned(std::max<size_t>(blocks, 1)), kThreads, 0, stream>>>(
      data, n, device_count_);
  check(cudaGetLastError(), "counting non-finite values");
  check(cudaMemcpyAsync(host_count_, device_count_, sizeof *host_count_, cudaMemcpyDeviceToHost,
                        stream),
        "reading a counter");
  check(cudaStreamSynchronize(stream), "counting non-finite values");
  return *host_count_;
}

}  // namespace upframe::upscale_cuda
