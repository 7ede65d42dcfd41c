// The CUDA duplicate detection (src/dedup/cuda) against the CPU detector: planes generated on
// the host (pans, fades, on-twos with coding-like noise; 8-bit, P010 and low-bit 10-bit; odd
// sizes and pitches), uploaded, and compared: hash bits and luma sums equal, every sum and
// measure equal, the same duplicate decisions. Every test skips without a device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../../src/dedup/cuda/device_dedup.hpp"
#include "support/synth.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/hash.hpp"
#include "upframe/dedup/luma.hpp"
#include "upframe/error.hpp"

extern "C" {
#include <libavutil/frame.h>
#include <libavutil/hwcontext.h>
#include <libavutil/pixdesc.h>
}

namespace upframe::dedup {
namespace {

namespace synth = upframe::test::synth;
using cuda::LumaSamples;

// A luma plane on the host (with a chosen pitch) and its copy in device memory.
class TestPlane {
 public:
  // `frame`: a yuv420p or yuv420p10le host frame; its luma is stored in `samples`' layout
  // with `pad` extra bytes a row, plus integer `noise` levels (8-bit scale) of seeded noise.
  TestPlane(const Frame& frame, LumaSamples samples, int pad, int noise, uint32_t seed) {
    const int width = frame.width(), height = frame.height();
    const bool wide = samples != LumaSamples::k8Bit;
    const int source_bits = frame.bit_depth();
    pitch_ = width * (wide ? 2 : 1) + pad;
    host_.assign(static_cast<size_t>(pitch_) * height, 0x5A);
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> jitter(-noise, noise);
    for (int y = 0; y < height; ++y) {
      const uint8_t* row =
          frame.av()->data[0] + static_cast<ptrdiff_t>(y) * frame.av()->linesize[0];
      for (int x = 0; x < width; ++x) {
        int v10 = source_bits > 8 ? reinterpret_cast<const uint16_t*>(row)[x] : row[x] << 2;
        if (noise) v10 = std::clamp(v10 + 4 * jitter(rng), 0, 1023);
        uint8_t* at = host_.data() + static_cast<size_t>(y) * pitch_ + x * (wide ? 2 : 1);
        if (!wide) {
          *at = static_cast<uint8_t>(v10 >> 2);
        } else {
          const auto word = static_cast<uint16_t>(samples == LumaSamples::kP010 ? v10 << 6 : v10);
          std::memcpy(at, &word, 2);
        }
      }
    }
    EXPECT_EQ(cudaMalloc(&device_, host_.size()), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(device_, host_.data(), host_.size(), cudaMemcpyHostToDevice), cudaSuccess);
    host_view_ = LumaView{host_.data(), pitch_, width, height,
                          samples == LumaSamples::k8Bit   ? 8
                          : samples == LumaSamples::kP010 ? 16
                                                          : 10};
    device_view_ = cuda::device_luma(device_, pitch_, width, height, samples);
  }
  ~TestPlane() { cudaFree(device_); }
  TestPlane(const TestPlane&) = delete;
  TestPlane& operator=(const TestPlane&) = delete;

  const LumaView& host() const { return host_view_; }
  const LumaView& device() const { return device_view_; }

 private:
  std::vector<uint8_t> host_;
  int pitch_ = 0;
  void* device_ = nullptr;
  LumaView host_view_, device_view_;
};

struct Layout {
  LumaSamples samples;
  int pad;
  const char* name;
};
const Layout kLayouts[] = {{LumaSamples::k8Bit, 0, "8-bit"},
                           {LumaSamples::k8Bit, 13, "8-bit odd pitch"},
                           {LumaSamples::kP010, 6, "p010"},
                           {LumaSamples::k10BitLow, 2, "10-bit low"}};

// Clips of `frames` frames: name and frames (host yuv420p10le, so 10-bit layouts keep 10 bits).
std::vector<std::pair<std::string, std::vector<Frame>>> clips(int width, int height, int frames) {
  synth::ClipSpec spec;
  spec.width = width;
  spec.height = height;
  spec.frames = frames;
  spec.pix_fmt = AV_PIX_FMT_YUV420P10LE;
  return {{"pan 1 px", synth::pan_clip(spec, 1)},
          {"fade 1 level", synth::fade_clip(spec, 1.0)},
          {"on twos", synth::on_twos_clip(spec, 2)},
          {"moving object", synth::moving_object_clip(spec)}};
}

std::vector<std::unique_ptr<TestPlane>> upload(const std::vector<Frame>& frames,
                                               const Layout& layout, int noise) {
  std::vector<std::unique_ptr<TestPlane>> planes;
  for (size_t i = 0; i < frames.size(); ++i)
    planes.push_back(std::make_unique<TestPlane>(frames[i], layout.samples, layout.pad, noise,
                                                 static_cast<uint32_t>(100 + i)));
  return planes;
}

TEST(DedupCuda, HashAndLumaSumEqualTheCpu) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  cuda::DeviceDedup gpu;
  for (const auto& size : {std::pair{97, 61}, std::pair{320, 180}, std::pair{33, 40}})
    for (const auto& [name, frames] : clips(size.first, size.second, 3))
      for (const Layout& layout : kLayouts) {
        const auto planes = upload(frames, layout, 1);
        for (const auto& plane : planes)
          for (const int n : {8, 16, 32}) {
            if (size.first < n || size.second < n) continue;
            uint64_t cpu_sum = 0;
            const AverageHash cpu = detail::hash_and_copy(plane->host(), n, nullptr, &cpu_sum);
            const cuda::DeviceHash got = gpu.average_hash(plane->device(), n);
            EXPECT_EQ(got.hash, cpu) << name << " " << layout.name << " n=" << n;
            EXPECT_EQ(got.luma_sum, cpu_sum) << name << " " << layout.name << " n=" << n;
          }
      }
}

TEST(DedupCuda, SumsAndMeasuresEqualTheCpu) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  cuda::DeviceDedup gpu;
  for (const auto& size : {std::pair{97, 61}, std::pair{320, 180}, std::pair{17, 9}})
    for (const auto& [name, frames] : clips(size.first, size.second, 3))
      for (const Layout& layout : kLayouts) {
        const auto planes = upload(frames, layout, 1);
        for (size_t i = 1; i < planes.size(); ++i) {
          const LumaView& a = planes[i - 1]->host();
          const LumaView& b = planes[i]->host();
          std::vector<uint8_t> a8(size_t(a.width) * a.height), b8(a8.size());
          detail::copy_to_8bit(a, a8.data());
          detail::copy_to_8bit(b, b8.data());
          const detail::DifferenceSums cpu =
              detail::difference_8bit(a8.data(), a.width, b8.data(), b.width, a.width, a.height);
          const detail::DifferenceSums got =
              gpu.difference_sums(planes[i - 1]->device(), planes[i]->device());
          const std::string what = name + " " + layout.name;
          EXPECT_EQ(got.abs_sum, cpu.abs_sum) << what;
          EXPECT_EQ(got.signed_sum, cpu.signed_sum) << what;
          EXPECT_EQ(got.pixel_count, cpu.pixel_count) << what;
          EXPECT_EQ(got.max_block_abs_sum, cpu.max_block_abs_sum) << what;
          EXPECT_EQ(got.max_block_area, cpu.max_block_area) << what;
          detail::MotionField cpu_motion;
          detail::motion_field_8bit(a8.data(), a.width, b8.data(), b.width, a.width, a.height,
                                    cpu_motion);
          const detail::MotionField got_motion =
              gpu.motion_field(planes[i - 1]->device(), planes[i]->device());
          EXPECT_EQ(std::memcmp(&got_motion.total, &cpu_motion.total, sizeof cpu_motion.total), 0)
              << what;
          ASSERT_EQ(got_motion.blocks.size(), cpu_motion.blocks.size()) << what;
          EXPECT_EQ(std::memcmp(got_motion.blocks.data(), cpu_motion.blocks.data(),
                                cpu_motion.blocks.size() * sizeof(math::BlockMotionSums)),
                    0)
              << what;
          const DifferenceMeasures cpu_m = measure_difference(a, b);
          const DifferenceMeasures got_m =
              gpu.measure_difference(planes[i - 1]->device(), planes[i]->device());
          EXPECT_EQ(std::memcmp(&got_m, &cpu_m, sizeof cpu_m), 0) << what;
        }
      }
}

// The CPU detector on the host planes, and the same consecutive-scope loop on the device
// (hash on the device, hamming_distance, DeviceDedup::confirm_duplicate): equal decisions.
TEST(DedupCuda, DecisionsEqualTheCpuDetector) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  cuda::DeviceDedup gpu;
  const DetectorOptions options;
  int duplicates = 0;
  for (const auto& [name, frames] : clips(161, 91, 12))
    for (const Layout& layout : kLayouts)
      for (const int noise : {0, 1}) {
        const auto planes = upload(frames, layout, noise);
        DuplicateDetector cpu(options);
        struct Kept {
          int64_t index;
          AverageHash hash;
          uint64_t sum;
        };
        std::vector<Kept> kept;  // the last unique frame
        for (size_t i = 0; i < planes.size(); ++i) {
          const Decision want = cpu.classify(static_cast<int64_t>(i), planes[i]->host());
          const cuda::DeviceHash h = gpu.average_hash(planes[i]->device(), options.hash_size);
          Decision got;
          if (!kept.empty() &&
              hamming_distance(h.hash, kept.back().hash) <= options.hash_threshold &&
              gpu.confirm_duplicate(planes[kept.back().index]->device(), kept.back().sum,
                                    planes[i]->device(), h.luma_sum, options.thresholds))
            got = Decision{true, kept.back().index};
          else
            kept = {Kept{static_cast<int64_t>(i), h.hash, h.luma_sum}};
          EXPECT_EQ(got.duplicate, want.duplicate)
              << name << " " << layout.name << " noise " << noise << " frame " << i;
          EXPECT_EQ(got.source_index, want.source_index) << name << " frame " << i;
          duplicates += want.duplicate;
        }
      }
  EXPECT_GT(duplicates, 0);  // the on-twos clips gave some, so both outcomes were compared
}

TEST(DedupCuda, DeviceFramesLikeNvdecGivesHashTheCpuGives) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  cuda::DeviceDedup gpu;
  for (const AVPixelFormat format : {AV_PIX_FMT_NV12, AV_PIX_FMT_P010LE, AV_PIX_FMT_YUV420P}) {
    const Frame host = synth::render_frame(
        123, 77, format, [](int x, int y) { return synth::scene_luma(3, x * 0.7, y * 0.9); });
    std::string why;
    const Frame device = upload_to_cuda_frame(host, &why);
    ASSERT_TRUE(device) << why;
    const LumaView view = cuda::device_luma_of(device);
    EXPECT_EQ(view.bit_depth, luma_of(host).bit_depth);
    for (const int n : {8, 16, 32})
      EXPECT_EQ(gpu.average_hash(view, n).hash, average_hash(luma_of(host), n))
          << av_get_pix_fmt_name(format) << " n=" << n;
  }
  const Frame host = synth::render_frame(64, 32, AV_PIX_FMT_YUV420P, [](int, int) { return 9; });
  EXPECT_THROW(cuda::device_luma_of(host), Error);  // a host frame
}

TEST(DedupCuda, RejectsHostPlanesAndMismatchedSizes) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  cuda::DeviceDedup gpu;
  const Frame frame = synth::render_frame(64, 32, AV_PIX_FMT_YUV420P10LE,
                                          [](int x, int y) { return (x + y) % 200; });
  const TestPlane plane(frame, LumaSamples::k8Bit, 0, 0, 1);
  EXPECT_THROW(gpu.average_hash(plane.host(), 8), Error);  // host memory
  const Frame other = synth::render_frame(64, 30, AV_PIX_FMT_YUV420P10LE,
                                          [](int x, int y) { return (x * y) % 200; });
  const TestPlane smaller(other, LumaSamples::k8Bit, 0, 0, 1);
  EXPECT_THROW(gpu.difference_sums(plane.device(), smaller.device()), Error);
  EXPECT_THROW(gpu.average_hash(plane.device(), 12), UsageError);
}

}  // namespace
}  // namespace upframe::dedup
