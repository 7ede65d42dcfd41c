// Counts the values of a device float buffer that are not finite. cuDNN's fp16 convolutions
// store their result in fp16 before the bias and activation run in fp32: a value above 65504
// becomes inf, and NaN after the next layer. The upscaler counts its network's output and, on
// any, runs that frame and the rest in fp32 (neural_upscaler.cpp).
#pragma once

#include <cstddef>

namespace upframe::upscale_cuda {

class NonFiniteCounter {
 public:
  NonFiniteCounter();
  ~NonFiniteCounter();
  NonFiniteCounter(const NonFiniteCounter&) = delete;
  NonFiniteCounter& operator=(const NonFiniteCounter&) = delete;

  // Queues the count of `data[0..n)` on `stream` (a cudaStream_t), waits for it and returns it.
  // Throws upframe::Error (stage "upscale") when a CUDA call fails.
  unsigned long long count(const float* data, size_t n, void* stream);

 private:
  unsigned long long* device_count_ = nullptr;
  unsigned long long* host_count_ = nullptr;  // page-locked
};

}  // namespace upframe::upscale_cuda
