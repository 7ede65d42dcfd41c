// CUDA kernels of duplicate detection on device luma planes (see device_dedup.hpp). Each
// thread's work is a function of device_dedup_math.hpp (tested on the CPU by tests/dedup);
// here are only the launches, the block reductions and 64-bit integer atomics.
#include "device_dedup.hpp"

#include <cuda_runtime_api.h>

#include <string>

#include "device_dedup_math.hpp"
#include "upframe/cuda_check.hpp"
#include "upframe/error.hpp"

namespace upframe::dedup::cuda {

namespace {

using device_math::Plane;
using ull = unsigned long long;

constexpr int kThreads = 256;     // threads per block of the hash, difference, motion kernels
constexpr int kMaxThreads = 512;  // the block-max reduction (one block)

// --- Device side ---------------------------------------------------------------------------

__device__ ull warp_sum(ull v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the thread block (blockDim.x a multiple of 32); the result is valid in thread 0.
// Signed values go through as two's complement: wrapping addition is exact.
__device__ ull block_sum(ull v) {
  __shared__ ull partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // an earlier call's readers are done with `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) / 32;
  v = threadIdx.x < warps ? partial[threadIdx.x] : 0;
  if (warp == 0) v = warp_sum(v);
  return v;
}

struct HashResult {
  uint64_t words[16];
  uint64_t unstable[16];
  uint64_t luma_sum;
};

__global__ void hash_cells_kernel(Plane plane, int n, int slices, ull* cell_sums) {
  const int cx = blockIdx.x, cy = blockIdx.y, slice = blockIdx.z;
  const ull part =
      device_math::hash_cell_part(plane, n, cx, cy, slice, slices, threadIdx.x, blockDim.x);
  const ull total = block_sum(part);
  if (threadIdx.x == 0 && total != 0) atomicAdd(&cell_sums[cy * n + cx], total);
}

// One thread: the same finish as the CPU hash (math::hash_from_cell_sums).
__global__ void hash_finish_kernel(const ull* cell_sums, int width, int height, int n,
                                   HashResult* out) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  HashResult result{};
  const auto* sums = reinterpret_cast<const uint64_t*>(cell_sums);
  math::hash_from_cell_sums(sums, width, height, n, kUnstableMargin, result.words, result.unstable);
  for (int cell = 0; cell < n * n; ++cell) result.luma_sum += sums[cell];
  *out = result;
}

// totals[0] = sum |a-b|, totals[1] = sum (a-b) (two's complement); block_abs[i] per block.
__global__ void difference_kernel(Plane a, Plane b, int blocks_x, int block_total, ull* block_abs,
                                  ull* totals) {
  const int index = blockIdx.x * blockDim.x + threadIdx.x;
  device_math::BlockDifference d;
  if (index < block_total) {
    d = device_math::block_difference(a, b, index % blocks_x, index / blocks_x);
    block_abs[index] = d.abs_sum;
  }
  const ull abs_total = block_sum(d.abs_sum);
  const ull signed_total = block_sum(static_cast<ull>(d.signed_sum));
  if (threadIdx.x == 0) {
    atomicAdd(&totals[0], abs_total);
    atomicAdd(&totals[1], signed_total);
  }
}

// One block of kMaxThreads: the block with the largest mean (device_math::better_block, a total
// order, so the tree's shape does not matter).
__global__ void block_max_kernel(const ull* block_abs, int width, int height, int block_total,
                                 device_math::BlockMax* out) {
  __shared__ ull best_sum[kMaxThreads];
  __shared__ long long best_area[kMaxThreads];
  __shared__ long long best_index[kMaxThreads];
  device_math::BlockMax best;
  for (int i = threadIdx.x; i < block_total; i += blockDim.x) {
    device_math::BlockMax candidate;
    candidate.abs_sum = block_abs[i];
    candidate.area = device_math::block_area(width, height, i);
    candidate.index = i;
    best = device_math::better_block(best, candidate);
  }
  best_sum[threadIdx.x] = best.abs_sum;
  best_area[threadIdx.x] = best.area;
  best_index[threadIdx.x] = best.index;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      device_math::BlockMax x, y;
      x.abs_sum = best_sum[threadIdx.x], x.area = best_area[threadIdx.x];
      x.index = best_index[threadIdx.x];
      y.abs_sum = best_sum[threadIdx.x + stride], y.area = best_area[threadIdx.x + stride];
      y.index = best_index[threadIdx.x + stride];
      const device_math::BlockMax z = device_math::better_block(x, y);
      best_sum[threadIdx.x] = z.abs_sum;
      best_area[threadIdx.x] = z.area;
      best_index[threadIdx.x] = z.index;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    device_math::BlockMax z;
    z.abs_sum = best_sum[0], z.area = best_area[0], z.index = best_index[0];
    *out = device_math::cpu_block_max(z);
  }
}

// One thread per confirmation block: its motion sums (detail::MotionField's blocks).
__global__ void motion_kernel(Plane a, Plane b, int blocks_x, int block_total,
                              math::BlockMotionSums* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < block_total)
    out[i] = math::block_sums_of(device_math::block_motion(a, b, i % blocks_x, i / blocks_x));
}

// --- Host side -----------------------------------------------------------------------------

constexpr const char* kSubsystem = "CUDA duplicate detection";

void check(cudaError_t err, const char* what) { check_cuda(err, kSubsystem, what, "detect"); }

[[noreturn]] void fail(const std::string& problem) {
  throw Error({}, std::string(kSubsystem) + ": " + problem, ExitCode::kProcessingFailed, "detect");
}

// A LumaView that must be a device plane the kernels can read.
Plane device_plane(const LumaView& luma, const char* which) {
  detail::validate(luma);
  if (luma.bit_depth > 8 &&
      (reinterpret_cast<uintptr_t>(luma.data) % 2 != 0 || luma.linesize % 2 != 0))
    fail(std::string(which) + " plane: 16-bit samples need 2-byte aligned data and an even pitch");
  if (!kernel_addressable(luma.data, kSubsystem, "detect"))
    fail(std::string(which) + " plane is not device memory the current CUDA context can address");
  return Plane{luma.data, luma.linesize, luma.width, luma.height, luma.bit_depth};
}

void check_same_size(const LumaView& a, const LumaView& b) {
  if (a.width != b.width || a.height != b.height)
    fail("cannot compare a " + std::to_string(a.width) + "x" + std::to_string(a.height) +
         " luma plane with a " + std::to_string(b.width) + "x" + std::to_string(b.height) + " one");
}

}  // namespace

// Device scratch: the fixed-size results and the per-block sums of the difference pass.
struct DeviceDedup::Buffers {
  ull* cell_sums = nullptr;  // 32 * 32
  HashResult* hash = nullptr;
  ull* totals = nullptr;  // 2
  device_math::BlockMax* block_max = nullptr;
  ull* block_abs = nullptr;
  math::BlockMotionSums* block_motion = nullptr;
  size_t block_capacity = 0;
  void* fixed = nullptr;  // one allocation for all but block_abs

  Buffers() {
    const size_t bytes = 32 * 32 * sizeof(ull) + sizeof(HashResult) + 2 * sizeof(ull) +
                         sizeof(device_math::BlockMax);
    check(cudaMalloc(&fixed, bytes), "allocating scratch memory");
    auto* at = static_cast<unsigned char*>(fixed);  // every part is 8-byte aligned
    cell_sums = reinterpret_cast<ull*>(at);
    at += 32 * 32 * sizeof(ull);
    hash = reinterpret_cast<HashResult*>(at);
    at += sizeof(HashResult);
    totals = reinterpret_cast<ull*>(at);
    at += 2 * sizeof(ull);
    block_max = reinterpret_cast<device_math::BlockMax*>(at);
  }
  ~Buffers() {
    cudaFree(block_abs);
    cudaFree(block_motion);
    cudaFree(fixed);
  }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;

  // Per-block scratch of both passes. The stream is synchronised at the end of every call,
  // so no kernel still uses the memory freed here.
  void reserve_blocks(size_t count) {
    if (count <= block_capacity) return;
    cudaFree(block_abs);
    cudaFree(block_motion);
    block_abs = nullptr;
    block_motion = nullptr;
    block_capacity = 0;
    check(cudaMalloc(reinterpret_cast<void**>(&block_abs), count * sizeof(ull)),
          "allocating the block sums");
    check(
        cudaMalloc(reinterpret_cast<void**>(&block_motion), count * sizeof(math::BlockMotionSums)),
        "allocating the block motion sums");
    block_capacity = count;
  }
};

LumaView device_luma(const void* device_data, int pitch_bytes, int width, int height,
                     LumaSamples samples) {
  LumaView view;
  view.data = static_cast<const uint8_t*>(device_data);
  view.linesize = pitch_bytes;
  view.width = width;
  view.height = height;
  view.bit_depth = samples == LumaSamples::k8Bit ? 8 : samples == LumaSamples::kP010 ? 16 : 10;
  return view;
}

DeviceDedup::DeviceDedup(void* stream) : stream_(stream) {}
DeviceDedup::~DeviceDedup() = default;

DeviceHash DeviceDedup::average_hash(const LumaView& luma, int hash_size) {
  detail::validate_hash_request(luma, hash_size);
  const Plane plane = device_plane(luma, "luma");
  if (!buffers_) buffers_ = std::make_unique<Buffers>();
  const auto stream = static_cast<cudaStream_t>(stream_);
  const int n = hash_size;
  check(cudaMemsetAsync(buffers_->cell_sums, 0, sizeof(ull) * n * n, stream),
        "clearing the cell sums");
  const int slices = device_math::hash_slices(plane.height, n);
  hash_cells_kernel<<<dim3(n, n, slices), kThreads, 0, stream>>>(plane, n, slices,
                                                                 buffers_->cell_sums);
  check(cudaGetLastError(), "launching the hash kernel");
  hash_finish_kernel<<<1, 1, 0, stream>>>(buffers_->cell_sums, plane.width, plane.height, n,
                                          buffers_->hash);
  check(cudaGetLastError(), "launching the hash finish kernel");
  HashResult result{};
  check(cudaMemcpyAsync(&result, buffers_->hash, sizeof result, cudaMemcpyDeviceToHost, stream),
        "copying the hash back");
  check(cudaStreamSynchronize(stream), "running the hash kernels");
  DeviceHash out;
  out.hash.size = n;
  for (int i = 0; i < 16; ++i) {
    out.hash.words[i] = result.words[i];
    out.hash.unstable[i] = result.unstable[i];
  }
  out.luma_sum = result.luma_sum;
  return out;
}

detail::DifferenceSums DeviceDedup::difference_sums(const LumaView& a, const LumaView& b) {
  const Plane pa = device_plane(a, "first");
  const Plane pb = device_plane(b, "second");
  check_same_size(a, b);
  if (!buffers_) buffers_ = std::make_unique<Buffers>();
  const auto stream = static_cast<cudaStream_t>(stream_);
  const int blocks_x = math::block_count(pa.width);
  const int block_total = blocks_x * math::block_count(pa.height);
  buffers_->reserve_blocks(static_cast<size_t>(block_total));
  check(cudaMemsetAsync(buffers_->totals, 0, 2 * sizeof(ull), stream), "clearing the sums");
  difference_kernel<<<(block_total + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      pa, pb, blocks_x, block_total, buffers_->block_abs, buffers_->totals);
  check(cudaGetLastError(), "launching the difference kernel");
  block_max_kernel<<<1, kMaxThreads, 0, stream>>>(buffers_->block_abs, pa.width, pa.height,
                                                  block_total, buffers_->block_max);
  check(cudaGetLastError(), "launching the block maximum kernel");
  ull totals[2] = {0, 0};
  device_math::BlockMax block_max;
  check(cudaMemcpyAsync(totals, buffers_->totals, sizeof totals, cudaMemcpyDeviceToHost, stream),
        "copying the difference sums back");
  check(cudaMemcpyAsync(&block_max, buffers_->block_max, sizeof block_max, cudaMemcpyDeviceToHost,
                        stream),
        "copying the block maximum back");
  check(cudaStreamSynchronize(stream), "running the difference kernels");
  detail::DifferenceSums sums;
  sums.abs_sum = totals[0];
  sums.signed_sum = static_cast<int64_t>(totals[1]);
  sums.pixel_count = static_cast<int64_t>(pa.width) * pa.height;
  sums.max_block_abs_sum = block_max.abs_sum;
  sums.max_block_area = block_max.area;
  return sums;
}

const detail::MotionField& DeviceDedup::motion_field(const LumaView& a, const LumaView& b) {
  const Plane pa = device_plane(a, "first");
  const Plane pb = device_plane(b, "second");
  check_same_size(a, b);
  detail::MotionField& field = field_;
  field.blocks_x = math::block_count(pa.width);
  field.blocks_y = math::block_count(pa.height);
  const int block_total = field.blocks_x * field.blocks_y;
  field.blocks.assign(static_cast<size_t>(block_total), math::BlockMotionSums{});
  field.total = {};
  if (pa.width < 3 || pa.height < 3) return field;  // no interior sample, as on the CPU
  if (!buffers_) buffers_ = std::make_unique<Buffers>();
  buffers_->reserve_blocks(static_cast<size_t>(block_total));
  const auto stream = static_cast<cudaStream_t>(stream_);
  motion_kernel<<<(block_total + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      pa, pb, field.blocks_x, block_total, buffers_->block_motion);
  check(cudaGetLastError(), "launching the motion kernel");
  check(cudaMemcpyAsync(field.blocks.data(), buffers_->block_motion,
                        field.blocks.size() * sizeof(math::BlockMotionSums), cudaMemcpyDeviceToHost,
                        stream),
        "copying the motion sums back");
  check(cudaStreamSynchronize(stream), "running the motion kernel");
  for (const math::BlockMotionSums& s : field.blocks) math::add_motion_sums(field.total, s);
  return field;
}

DifferenceMeasures DeviceDedup::measure_difference(const LumaView& a, const LumaView& b) {
  return detail::measures_from_sums(difference_sums(a, b), motion_field(a, b), a.width, a.height,
                                    default_thresholds());
}

bool DeviceDedup::confirm_duplicate(const LumaView& a, uint64_t sum_a, const LumaView& b,
                                    uint64_t sum_b, const Thresholds& thresholds) {
  check_same_size(a, b);
  return detail::confirm_duplicate(
      sum_a, sum_b, a.width, a.height, thresholds, [&] { return difference_sums(a, b); },
      [&]() -> const detail::MotionField& { return motion_field(a, b); });
}

}  // namespace upframe::dedup::cuda
