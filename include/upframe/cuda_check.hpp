// CUDA runtime failures as upframe::Error, and whether a kernel can read a pointer: shared by
// the stages' CUDA code (src/*/cuda) and the device-check kit, so public (a stage sees only
// another's public headers). Only for builds with UPFRAME_HAVE_CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "upframe/error.hpp"

namespace upframe {

// Throws "`subsystem`: `what` failed: <CUDA's message>" with `stage` when `err` is an error,
// after clearing it (a non-sticky error must not poison later calls).
inline void check_cuda(cudaError_t err, const char* subsystem, const char* what,
                       const char* stage) {
  if (err == cudaSuccess) return;
  cudaGetLastError();
  throw Error({}, std::string(subsystem) + ": " + what + " failed: " + cudaGetErrorString(err),
              ExitCode::kProcessingFailed, stage);
}

// True when `pointer` is device (or managed) memory that kernels in this thread's CUDA context
// can address. Host memory is not; nor is memory of another context (e.g. one FFmpeg created
// for NVDEC without AV_CUDA_USE_PRIMARY_CONTEXT), which would fault a kernel (a sticky error)
// rather than fail cleanly.
inline bool kernel_addressable(const void* pointer, const char* subsystem, const char* stage) {
  cudaPointerAttributes attributes{};
  check_cuda(cudaPointerGetAttributes(&attributes, pointer), subsystem, "cudaPointerGetAttributes",
             stage);
  return (attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged) &&
         attributes.devicePointer != nullptr;
}

}  // namespace upframe
