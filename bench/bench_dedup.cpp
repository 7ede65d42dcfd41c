// Duplicate detection throughput (docs/INTERFACE.md, "Benchmark definitions"): 1000 distinct
// 1920x1080 frames of which half are hash candidates that need the confirmation, single
// thread, from decoded frames. The clip is generated, encoded (libx264) and decoded once,
// outside the timing.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "../src/dedup/dsp.hpp"
#include "support/synth.hpp"
#include "support/test_support.hpp"
#include "upframe/dedup/detector.hpp"

namespace {

using upframe::Frame;
namespace dedup = upframe::dedup;
namespace synth = upframe::test::synth;

constexpr int kWidth = 1920, kHeight = 1080, kFrames = 1000;

// Frame 2k is a crop of a large textured scene at its own offset (so every pair differs
// everywhere); frame 2k+1 is the same crop plus a 6x6 square: the same 8x8 hash, so the
// detector must run the confirmation, which finds the square (a unique frame). A strong
// horizontal ramp whose direction alternates from pair to pair keeps a pair's first frame
// from matching the hash of the frame before it: exactly 500 hash candidates.
const std::vector<Frame>& decoded_frames() {
  static const std::vector<Frame> frames = [] {
    constexpr int kSceneW = kWidth + 25 * 20, kSceneH = kHeight + 5 * 40;
    std::vector<uint8_t> scene(static_cast<size_t>(kSceneW) * kSceneH);
    for (int y = 0; y < kSceneH; ++y)
      for (int x = 0; x < kSceneW; ++x)
        scene[static_cast<size_t>(y) * kSceneW + x] =
            static_cast<uint8_t>(synth::scene_luma(11, x * 0.5, y * 0.5));
    auto generate = [&](int index) {
      // Consecutive pairs alternate between the four flips of their crop, so a pair's first
      // frame never hash-matches the frame before it.
      const int pair = index / 2, flip = pair % 4, crop = pair / 4;
      const int ox = (crop % 25) * 20, oy = (crop / 25) * 40;
      Frame f = Frame::allocate(kWidth, kHeight, AV_PIX_FMT_GRAY8);
      for (int y = 0; y < kHeight; ++y) {
        uint8_t* out = f.av()->data[0] + static_cast<ptrdiff_t>(y) * f.av()->linesize[0];
        const int sy = (flip & 1 ? kHeight - 1 - y : y) + oy;
        const uint8_t* in = &scene[static_cast<size_t>(sy) * kSceneW + ox];
        if (flip & 2)
          for (int x = 0; x < kWidth; ++x) out[x] = in[kWidth - 1 - x];
        else
          std::memcpy(out, in, kWidth);
        for (int x = 0; x < kWidth; ++x) {
          const int ramp = (x - kWidth / 2) * 120 / kWidth;  // -60 .. +60 levels
          out[x] = static_cast<uint8_t>(std::clamp(out[x] + (pair % 2 ? ramp : -ramp), 16, 235));
        }
      }
      if (index % 2 == 1)
        for (int y = 500; y < 506; ++y)
          for (int x = 900; x < 906; ++x) {
            uint8_t& p = f.av()->data[0][static_cast<ptrdiff_t>(y) * f.av()->linesize[0] + x];
            p = static_cast<uint8_t>(p < 128 ? p + 80 : p - 80);
          }
      return f;
    };
    const auto path = upframe::test::scratch_dir("bench-dedup") / "distinct_1080p.mkv";
    synth::EncodeOptions options;
    options.codec = "libx264";
    options.preset = "ultrafast";
    options.crf = 18;
    options.gop = 25;
    synth::encode_clip(path, kFrames, generate, options);
    auto decoded = synth::decode_file(path, 2);
    std::filesystem::remove(path);
    return decoded;
  }();
  return frames;
}

// The pipeline's way: decoded frames, 8-bit ones kept by reference for the window.
void BM_DetectDuplicates1080p(benchmark::State& state) {
  const auto& frames = decoded_frames();
  if (frames.size() != static_cast<size_t>(kFrames)) {
    state.SkipWithError("the generated clip did not decode to 1000 frames");
    return;
  }
  int64_t candidates = 0, duplicates = 0;
  for (auto _ : state) {
    dedup::DuplicateDetector detector(dedup::DetectorOptions{});
    duplicates = 0;
    for (int i = 0; i < kFrames; ++i) duplicates += detector.classify(i, frames[i]).duplicate;
    candidates = detector.hash_candidates();
  }
  state.counters["fps"] = benchmark::Counter(static_cast<double>(state.iterations()) * kFrames,
                                             benchmark::Counter::kIsRate);
  state.counters["hash_candidates"] = static_cast<double>(candidates);
  state.counters["duplicates"] = static_cast<double>(duplicates);
}
BENCHMARK(BM_DetectDuplicates1080p)->Unit(benchmark::kMillisecond)->UseRealTime();

// Planes the caller owns (LumaView): every unique frame's luma is copied.
void BM_DetectDuplicates1080pFromPlanes(benchmark::State& state) {
  const auto& frames = decoded_frames();
  std::vector<dedup::LumaView> lumas;
  for (const Frame& f : frames) lumas.push_back(dedup::luma_of(f));
  int64_t candidates = 0, duplicates = 0;
  for (auto _ : state) {
    dedup::DuplicateDetector detector(dedup::DetectorOptions{});
    duplicates = 0;
    for (int i = 0; i < static_cast<int>(lumas.size()); ++i)
      duplicates += detector.classify(i, lumas[i]).duplicate;
    candidates = detector.hash_candidates();
  }
  state.counters["fps"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(lumas.size()),
      benchmark::Counter::kIsRate);
  state.counters["hash_candidates"] = static_cast<double>(candidates);
  state.counters["duplicates"] = static_cast<double>(duplicates);
}
BENCHMARK(BM_DetectDuplicates1080pFromPlanes)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_AverageHash1080p(benchmark::State& state) {
  const auto& frames = decoded_frames();
  const dedup::LumaView luma = dedup::luma_of(frames[0]);
  for (auto _ : state) benchmark::DoNotOptimize(dedup::average_hash(luma, state.range(0)));
  state.counters["fps"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AverageHash1080p)->Arg(8)->Arg(16)->Arg(32)->UseRealTime();

void BM_MeasureDifference1080p(benchmark::State& state) {
  const auto& frames = decoded_frames();
  const dedup::LumaView a = dedup::luma_of(frames[0]), b = dedup::luma_of(frames[1]);
  for (auto _ : state) benchmark::DoNotOptimize(dedup::measure_difference(a, b));
  state.counters["fps"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MeasureDifference1080p)->UseRealTime();

// A true duplicate (the same picture again): the whole confirmation runs, the motion
// measure included. One iteration: two hashes and one confirmation.
void BM_ConfirmTrueDuplicate1080p(benchmark::State& state) {
  const auto& frames = decoded_frames();
  dedup::DuplicateDetector detector(dedup::DetectorOptions{});
  for (auto _ : state) {
    detector.reset();
    detector.classify(0, frames[0]);
    if (!detector.classify(1, frames[0].ref()).duplicate) {
      state.SkipWithError("the same picture was not called a duplicate");
      return;
    }
  }
  state.counters["pairs_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ConfirmTrueDuplicate1080p)->UseRealTime();

// The DSP table's functions (src/dedup/dsp.hpp) over one 1080p frame pair, per instruction set
// (argument: 0 = the C reference, 1 = SSE2); `--benchmark_filter=BM_Dsp` compares them.
namespace detail = upframe::dedup::detail;

// The table of the instruction set state.range(0) names, and the first two frames' luma.
struct DspCase {
  detail::Dsp table{};
  dedup::LumaView a, b;
};

bool dsp_case(benchmark::State& state, DspCase& c) {
  const auto isa = static_cast<detail::Isa>(state.range(0));
  const auto isas = detail::available_isas();
  if (std::find(isas.begin(), isas.end(), isa) == isas.end()) {
    state.SkipWithError("this CPU lacks the instruction set");
    return false;
  }
  c.table = detail::make_dsp(isa);
  c.a = dedup::luma_of(decoded_frames()[0]);
  c.b = dedup::luma_of(decoded_frames()[1]);
  state.SetLabel(detail::isa_name(isa));
  return true;
}

void BM_DspGroupSums1080p(benchmark::State& state) {
  DspCase c;
  if (!dsp_case(state, c)) return;
  const detail::Dsp& table = c.table;
  const dedup::LumaView& a = c.a;
  std::vector<uint64_t> groups(kWidth / 8);
  for (auto _ : state) {
    for (int y = 0; y < kHeight; y += 8)
      table.group_sums(a.data, a.linesize, kWidth, y, y + 8, nullptr, groups.data());
    benchmark::DoNotOptimize(groups.data());
  }
}
BENCHMARK(BM_DspGroupSums1080p)->Arg(0)->Arg(1)->UseRealTime();

void BM_DspGroupAbsDiff1080p(benchmark::State& state) {
  DspCase c;
  if (!dsp_case(state, c)) return;
  const detail::Dsp& table = c.table;
  const dedup::LumaView &a = c.a, &b = c.b;
  std::vector<uint64_t> groups(kWidth / 8);
  for (auto _ : state) {
    uint64_t sum_a = 0, sum_b = 0;
    for (int y = 0; y < kHeight; y += 8)
      table.group_abs_diff(a.data, a.linesize, b.data, b.linesize, kWidth, y, y + 8, groups.data(),
                           &sum_a, &sum_b);
    benchmark::DoNotOptimize(sum_a);
  }
}
BENCHMARK(BM_DspGroupAbsDiff1080p)->Arg(0)->Arg(1)->UseRealTime();

void BM_DspSobelRow1080p(benchmark::State& state) {
  DspCase c;
  if (!dsp_case(state, c)) return;
  const detail::Dsp& table = c.table;
  const dedup::LumaView &a = c.a, &b = c.b;
  std::vector<int16_t> rows(static_cast<size_t>(kWidth) * 5);
  int16_t* m[3] = {rows.data(), rows.data() + kWidth, rows.data() + 2 * kWidth};
  int16_t* smooth = rows.data() + 3 * kWidth;
  int16_t* diff = rows.data() + 4 * kWidth;
  for (auto _ : state) {
    for (int y = 0; y < kHeight; ++y) {
      table.sobel_row(a.data + static_cast<ptrdiff_t>(y) * a.linesize,
                      b.data + static_cast<ptrdiff_t>(y) * b.linesize, m[0], m[1], m[2], smooth,
                      diff, kWidth);
      std::swap(m[0], m[1]);
      std::swap(m[1], m[2]);
    }
    benchmark::DoNotOptimize(smooth);
  }
}
BENCHMARK(BM_DspSobelRow1080p)->Arg(0)->Arg(1)->UseRealTime();

void BM_DspMotionGroup1080p(benchmark::State& state) {
  DspCase c;
  if (!dsp_case(state, c)) return;
  const detail::Dsp& table = c.table;
  const dedup::LumaView &a = c.a, &b = c.b;
  // One block row's Sobel parts (8 rows), reused for every block row: the arithmetic, not
  // the memory traffic of the whole pass.
  std::vector<int16_t> smooth(static_cast<size_t>(kWidth) * 8), diff(smooth.size());
  for (size_t i = 0; i < smooth.size(); ++i) {
    smooth[i] = static_cast<int16_t>(a.data[i % kWidth] * 4);
    diff[i] = static_cast<int16_t>(b.data[i % kWidth] - a.data[i % kWidth]);
  }
  for (auto _ : state) {
    std::vector<upframe::dedup::math::MotionSums> sums(kWidth / 8);
    for (int y = 0; y + 8 <= kHeight; y += 8) {
      const uint8_t* rows_a[8];
      const uint8_t* rows_b[8];
      for (int k = 0; k < 8; ++k) {
        rows_a[k] = a.data + static_cast<ptrdiff_t>(y + k) * a.linesize;
        rows_b[k] = b.data + static_cast<ptrdiff_t>(y + k) * b.linesize;
      }
      table.motion_groups(smooth.data(), diff.data(), kWidth, rows_a, rows_b, 8, 8, kWidth / 8 - 2,
                          sums.data());
    }
    benchmark::DoNotOptimize(sums.data());
  }
}
BENCHMARK(BM_DspMotionGroup1080p)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
