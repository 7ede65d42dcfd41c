// CUDA kernels of the network's colour conversion (see device_colour.hpp). Each thread's work is
// a function of device_colour_math.hpp (checked on the CPU by tests/upscale); here are only
// the launches and the scratch buffers.
#include "device_colour.hpp"

#include <cuda_runtime_api.h>

#include <string>

#include "device_colour_math.hpp"
#include "upframe/cuda_check.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::colour::cuda {

namespace {

using device_math::YuvPlanes;

const dim3 kBlock(32, 8);

dim3 grid_for(int width, int height) {
  return dim3((width + kBlock.x - 1) / kBlock.x, (height + kBlock.y - 1) / kBlock.y);
}

__global__ void yuv_to_rgb_kernel(YuvPlanes yuv, ColourParams params, float* rgb) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= yuv.width || y >= yuv.height) return;
  const Rgb px = device_math::yuv_pixel_to_rgb(yuv, params, x, y);
  const size_t plane = static_cast<size_t>(yuv.width) * yuv.height;
  const size_t i = static_cast<size_t>(y) * yuv.width + x;
  rgb[i] = px.r;
  rgb[plane + i] = px.g;
  rgb[2 * plane + i] = px.b;
}

// Pass 1: luma codes, and full-resolution Cb/Cr into cb_full / cr_full (width x height).
__global__ void rgb_to_luma_kernel(const float* rgb, YuvPlanes yuv, ColourParams params,
                                   float* cb_full, float* cr_full) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x >= yuv.width || y >= yuv.height) return;
  const size_t plane = static_cast<size_t>(yuv.width) * yuv.height;
  const size_t i = static_cast<size_t>(y) * yuv.width + x;
  const Yuv px =
      device_math::rgb_pixel_to_yuv(yuv, params, x, y, rgb[i], rgb[plane + i], rgb[2 * plane + i]);
  cb_full[i] = px.cb;
  cr_full[i] = px.cr;
}

// Pass 2: horizontal tent, every luma row to chroma width (cb_rows: chroma_width x height).
__global__ void tent_x_kernel(YuvPlanes yuv, ColourParams params, const float* cb_full,
                              const float* cr_full, float* cb_rows, float* cr_rows) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= yuv.chroma_width || y >= yuv.height) return;
  const size_t row = static_cast<size_t>(y) * yuv.width;
  const size_t out = static_cast<size_t>(y) * yuv.chroma_width + i;
  cb_rows[out] = device_math::tent_filter(cb_full + row, 1, i, params.chroma_x, yuv.width);
  cr_rows[out] = device_math::tent_filter(cr_full + row, 1, i, params.chroma_x, yuv.width);
}

// Pass 3: vertical tent to chroma height, rounded to codes.
__global__ void tent_y_kernel(YuvPlanes yuv, ColourParams params, const float* cb_rows,
                              const float* cr_rows) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int j = blockIdx.y * blockDim.y + threadIdx.y;
  if (i >= yuv.chroma_width || j >= yuv.chroma_height) return;
  const Quantisation q = quantisation(yuv.bits, params.full_range);
  const float cb =
      device_math::tent_filter(cb_rows + i, yuv.chroma_width, j, params.chroma_y, yuv.height);
  const float cr =
      device_math::tent_filter(cr_rows + i, yuv.chroma_width, j, params.chroma_y, yuv.height);
  device_math::write_chroma(yuv, 0, i, j, code_from_chroma(cb, q));
  device_math::write_chroma(yuv, 1, i, j, code_from_chroma(cr, q));
}

constexpr const char* kSubsystem = "CUDA colour conversion";

void check(cudaError_t err, const char* what) { check_cuda(err, kSubsystem, what, "upscale"); }

[[noreturn]] void fail(const std::string& problem) {
  throw Error({}, std::string(kSubsystem) + ": " + problem, ExitCode::kProcessingFailed, "upscale");
}

YuvPlanes planes_of(const DeviceYuvFrame& frame, const ColourParams& params) {
  if (frame.width <= 0 || frame.height <= 0)
    fail("empty picture (" + std::to_string(frame.width) + "x" + std::to_string(frame.height) +
         ")");
  if (params.chroma_x.factor != 2 || params.chroma_y.factor != 2)
    fail("the colour parameters are not 4:2:0 (chroma factors " +
         std::to_string(params.chroma_x.factor) + "x" + std::to_string(params.chroma_y.factor) +
         ")");
  YuvPlanes p;
  p.width = frame.width;
  p.height = frame.height;
  p.chroma_width = (frame.width + 1) / 2;
  p.chroma_height = (frame.height + 1) / 2;
  const bool ten_bit =
      frame.format == DeviceYuvFormat::kYuv420p10le || frame.format == DeviceYuvFormat::kP010;
  p.bits = ten_bit ? 10 : 8;
  p.bytes = ten_bit ? 2 : 1;
  p.shift = frame.format == DeviceYuvFormat::kP010 ? 6 : 0;
  p.interleaved = frame.format == DeviceYuvFormat::kNv12 || frame.format == DeviceYuvFormat::kP010;
  const int planes = p.interleaved ? 2 : 3;
  for (int i = 0; i < planes; ++i) {
    const int samples = i == 0 ? p.width : (p.interleaved ? 2 * p.chroma_width : p.chroma_width);
    if (!frame.data[i]) fail("plane " + std::to_string(i) + " is null");
    if (frame.pitch[i] < samples * p.bytes)
      fail("plane " + std::to_string(i) + " pitch " + std::to_string(frame.pitch[i]) +
           " is shorter than its row (" + std::to_string(samples * p.bytes) + " bytes)");
    if (p.bytes == 2 &&
        (reinterpret_cast<uintptr_t>(frame.data[i]) % 2 != 0 || frame.pitch[i] % 2 != 0))
      fail("plane " + std::to_string(i) + ": 16-bit samples need 2-byte aligned rows");
    if (!kernel_addressable(frame.data[i], kSubsystem, "upscale"))
      fail("plane " + std::to_string(i) +
           " is not device memory the current CUDA context can address");
    p.data[i] = static_cast<uint8_t*>(frame.data[i]);
    p.pitch[i] = frame.pitch[i];
  }
  return p;
}

}  // namespace

// Full-resolution Cb/Cr and the horizontally filtered rows of rgb_to_yuv.
struct DeviceColour::Scratch {
  float* memory = nullptr;
  size_t capacity = 0;  // floats
  ~Scratch() { cudaFree(memory); }
  // Calls return with their kernels still queued: wait for the stream before freeing memory an
  // earlier call's kernels may still be using (rather than rely on cudaFree synchronising).
  float* reserve(size_t floats, cudaStream_t stream) {
    if (floats > capacity) {
      if (memory) check(cudaStreamSynchronize(stream), "waiting before growing the scratch memory");
      cudaFree(memory);
      memory = nullptr;
      capacity = 0;
      const cudaError_t err = cudaMalloc(reinterpret_cast<void**>(&memory), floats * sizeof(float));
      if (err == cudaErrorMemoryAllocation) {
        // As the executor's buffers: the upscaler retries with a fresh worker and smaller tiles.
        cudaGetLastError();
        memory = nullptr;
        throw nn::CudaOutOfMemory("the colour conversion's scratch memory", floats * sizeof(float));
      }
      check(err, "allocating scratch memory");
      capacity = floats;
    }
    return memory;
  }
};

DeviceColour::DeviceColour(void* stream) : stream_(stream) {}
DeviceColour::~DeviceColour() = default;

void DeviceColour::yuv_to_rgb(const DeviceYuvFrame& yuv, const ColourParams& params, float* rgb) {
  const YuvPlanes planes = planes_of(yuv, params);
  if (!rgb) fail("the RGB buffer is null");
  yuv_to_rgb_kernel<<<grid_for(planes.width, planes.height), kBlock, 0,
                      static_cast<cudaStream_t>(stream_)>>>(planes, params, rgb);
  check(cudaGetLastError(), "launching the YUV to RGB kernel");
}

void DeviceColour::rgb_to_yuv(const float* rgb, const DeviceYuvFrame& yuv,
                              const ColourParams& params) {
  const YuvPlanes planes = planes_of(yuv, params);
  if (!rgb) fail("the RGB buffer is null");
  if (!scratch_) scratch_ = std::make_unique<Scratch>();
  const size_t full = static_cast<size_t>(planes.width) * planes.height;
  const size_t rows = static_cast<size_t>(planes.chroma_width) * planes.height;
  const auto stream = static_cast<cudaStream_t>(stream_);
  float* memory = scratch_->reserve(2 * full + 2 * rows, stream);
  float* cb_full = memory;
  float* cr_full = memory + full;
  float* cb_rows = memory + 2 * full;
  float* cr_rows = cb_rows + rows;
  rgb_to_luma_kernel<<<grid_for(planes.width, planes.height), kBlock, 0, stream>>>(
      rgb, planes, params, cb_full, cr_full);
  check(cudaGetLastError(), "launching the RGB to luma kernel");
  tent_x_kernel<<<grid_for(planes.chroma_width, planes.height), kBlock, 0, stream>>>(
      planes, params, cb_full, cr_full, cb_rows, cr_rows);
  check(cudaGetLastError(), "launching the horizontal chroma kernel");
  tent_y_kernel<<<grid_for(planes.chroma_width, planes.chroma_height), kBlock, 0, stream>>>(
      planes, params, cb_rows, cr_rows);
  check(cudaGetLastError(), "launching the vertical chroma kernel");
}

void DeviceColour::synchronize() {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "running the colour kernels");
}

}  // namespace upframe::colour::cuda
