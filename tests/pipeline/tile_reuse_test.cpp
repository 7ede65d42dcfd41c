// Tile reuse (docs/INTERFACE.md, "Tile reuse") through the real pipeline: real x264 clips
// generated here (a sprite over a still background, a talking head), real decode, the shipped
// realesr-animevideov3-x2 model on the CPU. Every frame written with reuse is held against the
// same frame fully upscaled: its PSNR must be at least the worst one whole-frame duplicate
// reuse accepts on the same clip, and the difference must show no step at the tile borders.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "../../src/pipeline/video_pipeline.hpp"
#include "support/synth.hpp"
#include "support/test_support.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/media/decoder.hpp"
#include "upframe/upscale/factory.hpp"

namespace upframe {
namespace {

namespace synth = test::synth;

constexpr int kTile = 64;

class CollectingSink final : public FrameSink {
 public:
  void write_unique(int64_t index, const Frame& frame, int64_t) override {
    frames[index] = frame.clone();
  }
  void write_duplicate(int64_t index, int64_t source, const Frame& frame, int64_t) override {
    frames[index] = frame.clone();
    sources[index] = source;
  }
  void finish() override {}
  void abort() noexcept override { frames.clear(); }
  std::map<int64_t, Frame> frames;
  std::map<int64_t, int64_t> sources;  // duplicate -> the unique frame it repeats
};

// Every drawing of `drawings` shown twice (a held frame the detector confirms through the
// coding noise), encoded with x264 as a real source is.
std::filesystem::path encode_held(const std::string& name, const std::vector<Frame>& drawings) {
  std::vector<Frame> frames;
  for (const Frame& f : drawings) {
    frames.push_back(f.clone());
    frames.push_back(f.clone());
  }
  const std::filesystem::path path = test::scratch_dir(name) / "clip.mp4";
  synth::EncodeOptions options;
  options.crf = 23;
  options.gop = 8;  // a keyframe re-codes the whole picture on frame 8 (a drawing's first)
  synth::encode_clip(path, frames, options);
  return path;
}

synth::ClipSpec small_spec(int drawings) {
  synth::ClipSpec spec;
  spec.width = 256;
  spec.height = 144;
  spec.frames = drawings;
  return spec;
}

std::unique_ptr<Upscaler> shipped_model() {
  UpscalerOptions options;
  options.model = "realesr-animevideov3";
  options.scale = 2;
  options.device = "cpu";
  return make_upscaler(options);
}

struct PipelineRun {
  CollectingSink sink;
  JobStats stats;
};

std::unique_ptr<PipelineRun> run_pipeline(const std::filesystem::path& clip, Upscaler& upscaler,
                                          bool reuse, bool streamed = false,
                                          std::function<bool(int64_t)> starts_segment = {},
                                          std::function<bool(int64_t)> already_written = {}) {
  auto run = std::make_unique<PipelineRun>();
  pipeline::VideoPipelineConfig config;
  config.streamed = streamed;
  config.workers = streamed ? 2 : 1;
  config.skip_duplicates = true;
  config.reuse_tiles = reuse;
  config.reuse_tile = kTile;
  config.starts_segment = std::move(starts_segment);
  config.already_written = std::move(already_written);
  VideoDecoder decoder(clip);
  pipeline::run_video_pipeline(decoder, upscaler, run->sink, config, run->stats);
  return run;
}

double luma_psnr(const Frame& a, const Frame& b) {
  double sum = 0;
  for (int y = 0; y < a.height(); ++y)
    for (int x = 0; x < a.width(); ++x) {
      const double d = double(a.av()->data[0][y * a.av()->linesize[0] + x]) -
                       double(b.av()->data[0][y * b.av()->linesize[0] + x]);
      sum += d * d;
    }
  const double mse = sum / (double(a.width()) * a.height());
  return mse > 0 ? 10 * std::log10(255.0 * 255.0 / mse) : 99.0;
}

// A seam is a step of the difference image at a tile border: the mean |D(x) - D(x-1)| of the
// sample pairs across the tile borders against the mean over every other pair, D = a - b, in
// plane `plane` (4:2:0: chroma at half the size and the period).
struct Steps {
  double border = 0, inside = 0;
};
Steps difference_steps(const Frame& a, const Frame& b, int plane, int border_period) {
  const int shift = plane == 0 ? 0 : 1;
  const int width = (a.width() + shift) >> shift, height = (a.height() + shift) >> shift;
  const int period = border_period >> shift;
  const auto diff = [&](int x, int y) {
    return double(a.av()->data[plane][y * a.av()->linesize[plane] + x]) -
           double(b.av()->data[plane][y * b.av()->linesize[plane] + x]);
  };
  double border = 0, inside = 0;
  int64_t border_n = 0, inside_n = 0;
  for (int y = 0; y < height; ++y)
    for (int x = 1; x < width; ++x) {
      const double step = std::fabs(diff(x, y) - diff(x - 1, y));
      if (x % period == 0)
        border += step, ++border_n;
      else
        inside += step, ++inside_n;
    }
  for (int y = 1; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const double step = std::fabs(diff(x, y) - diff(x, y - 1));
      if (y % period == 0)
        border += step, ++border_n;
      else
        inside += step, ++inside_n;
    }
  return {border / double(std::max<int64_t>(1, border_n)),
          inside / double(std::max<int64_t>(1, inside_n))};
}

// Runs `clip` with and without tile reuse and holds every frame written with reuse against the
// same frame fully upscaled.
void check_quality_bound(const std::string& name, const std::filesystem::path& clip) {
  std::unique_ptr<Upscaler> upscaler = shipped_model();
  const std::unique_ptr<PipelineRun> reused = run_pipeline(clip, *upscaler, true);
  const std::unique_ptr<PipelineRun> whole = run_pipeline(clip, *upscaler, false);
  const std::vector<Frame> decoded = synth::decode_file(clip);
  ASSERT_EQ(reused->sink.frames.size(), decoded.size());
  ASSERT_EQ(whole->sink.frames.size(), decoded.size());
  EXPECT_TRUE(reused->stats.tile_reuse);
  EXPECT_FALSE(whole->stats.tile_reuse);
  EXPECT_EQ(whole->stats.tiles_reused, 0);
  EXPECT_GT(reused->stats.tiles_reused, 0) << name << ": no tile was reused";
  EXPECT_GT(reused->stats.tiles_computed, 0);

  // Every frame fully upscaled on its own.
  auto worker = upscaler->create_worker();
  std::vector<Frame> full;
  for (const Frame& f : decoded) full.push_back(worker->upscale(f));

  // What whole-frame reuse accepts: a duplicate written as its source's result.
  double worst_duplicate = 99;
  int duplicates = 0;
  for (const auto& [index, source] : whole->sink.sources) {
    worst_duplicate = std::min(worst_duplicate, luma_psnr(full[source], full[index]));
    ++duplicates;
  }
  ASSERT_GT(duplicates, 0) << name << ": the clip needs confirmed duplicates for the baseline";

  double worst_reuse = 99;
  int64_t worst_frame = -1;
  const int period = kTile * upscaler->scale();
  for (const auto& [index, frame] : reused->sink.frames) {
    if (reused->sink.sources.count(index)) continue;  // duplicates: whole-frame reuse
    const double psnr = luma_psnr(frame, full[size_t(index)]);
    if (psnr < worst_reuse) worst_reuse = psnr, worst_frame = index;
    ASSERT_EQ(frame.format(), AV_PIX_FMT_YUV420P);
    for (int plane = 0; plane < 3; ++plane) {
      const Steps steps = difference_steps(frame, full[size_t(index)], plane, period);
      // A seam would put the border steps far above the steps everywhere else.
      EXPECT_LE(steps.border, 2.0 * steps.inside + 0.25)
          << name << " frame " << index << " plane " << plane
          << ": a step of the difference at the tile borders";
    }
  }
  std::printf(
      "[tile reuse] %s: %lld tiles reused, %lld computed; worst PSNR of a frame built with "
      "reuse %.2f dB (frame %lld), worst duplicate whole-frame reuse accepts %.2f dB (%d "
      "duplicates)\n",
      name.c_str(), static_cast<long long>(reused->stats.tiles_reused),
      static_cast<long long>(reused->stats.tiles_computed), worst_reuse,
      static_cast<long long>(worst_frame), worst_duplicate, duplicates);
  EXPECT_GE(worst_reuse, worst_duplicate) << name;
}

TEST(TileReuse, SpriteOverAStillBackgroundStaysWithinTheDuplicateQualityBound) {
  synth::ClipSpec spec = small_spec(6);
  check_quality_bound("sprite",
                      encode_held("tile-reuse-sprite", synth::moving_object_clip(spec, 16, 6, 80)));
}

TEST(TileReuse, TalkingHeadStaysWithinTheDuplicateQualityBound) {
  synth::ClipSpec spec = small_spec(6);
  check_quality_bound("talking head",
                      encode_held("tile-reuse-mouth", synth::mouth_flap_clip(spec, 1)));
}

TEST(TileReuse, ASegmentResumedWithTwoWorkersWritesTheFramesOfOneSequentialRun) {
  synth::ClipSpec spec = small_spec(6);
  const std::filesystem::path clip =
      encode_held("tile-reuse-segments", synth::moving_object_clip(spec, 8, 4, 80));
  std::unique_ptr<Upscaler> upscaler = shipped_model();
  constexpr int64_t kSegment = 8;  // where the clip has a keyframe, as real segments start
  const auto starts = [](int64_t index) { return index % kSegment == 0; };
  // One process, sequential, segments of 8 frames: reuse restarts at each segment's first frame.
  const std::unique_ptr<PipelineRun> one = run_pipeline(clip, *upscaler, true, false, starts);
  // A resumed run: the first segment was written before; the rest by two streamed workers.
  const std::unique_ptr<PipelineRun> resumed = run_pipeline(
      clip, *upscaler, true, true, starts, [](int64_t index) { return index < kSegment; });
  EXPECT_GT(one->stats.tiles_reused, 0);
  EXPECT_GT(resumed->stats.tiles_reused, 0);
  EXPECT_EQ(resumed->stats.resumed_frames, kSegment);
  for (const auto& [index, frame] : one->sink.frames) {
    if (index < kSegment) continue;
    ASSERT_TRUE(resumed->sink.frames.count(index)) << index;
    EXPECT_TRUE(synth::same_yuv420p_pixels(frame, resumed->sink.frames.at(index)))
        << "frame " << index;
  }
}

}  // namespace
}  // namespace upframe
