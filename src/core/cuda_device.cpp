#include "upframe/cuda_device.hpp"

#ifdef UPFRAME_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace upframe {

#ifdef UPFRAME_HAVE_CUDA

bool cuda_built() { return true; }

CudaDeviceInfo cuda_device_info(int index) {
  CudaDeviceInfo info;
  int count = 0;
  // Without a driver this is an error ("CUDA driver version is insufficient"), not 0 devices.
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.reason = std::string("no usable CUDA driver (") + cudaGetErrorString(err) + ")";
    cudaGetLastError();  // clear the sticky error for later calls
    return info;
  }
  if (count <= index) {
    info.reason = count == 0 ? "no CUDA device present"
                             : "CUDA device " + std::to_string(index) + " not present (" +
                                   std::to_string(count) + " found)";
    return info;
  }
  cudaDeviceProp prop{};
  err = cudaGetDeviceProperties(&prop, index);
  if (err == cudaSuccess) err = cudaSetDevice(index);
  if (err == cudaSuccess) err = cudaMemGetInfo(&info.free_bytes, &info.total_bytes);
  if (err != cudaSuccess) {
    info.reason = std::string("CUDA device ") + std::to_string(index) +
                  " cannot be used: " + cudaGetErrorString(err);
    cudaGetLastError();
    return info;
  }
  info.available = true;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  return info;
}

#else

bool cuda_built() { return false; }

CudaDeviceInfo cuda_device_info(int) {
  CudaDeviceInfo info;
  info.reason = "CUDA support not built into this upframe (CMake found no nvcc/cuDNN)";
  return info;
}

#endif

}  // namespace upframe
