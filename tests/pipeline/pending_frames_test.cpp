// The streamed pipeline and frames whose pixels are still in flight (UpscaleWorker::
// upscale_started, the CUDA device path's overlapped download): the save stage waits for each
// before writing it, and a failure found while waiting stops the job naming the frame. The GPU
// cannot run here, so a worker stands in for it: lanczos (the real swscale upscaler) whose
// result's pixels are written only when the pending work is waited for, as a device-to-host
// copy is complete only then. Real decode of a real clip, the real pipeline.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <map>

#include "../../src/pipeline/video_pipeline.hpp"
#include "support/synth.hpp"
#include "support/test_support.hpp"
#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"

extern "C" {
#include <libavutil/imgutils.h>
}

namespace upframe {
namespace {

// Copies the finished pixels into the frame handed out when waited for; until then that frame
// holds zeros.
class LatePixels final : public FramePending {
 public:
  LatePixels(Frame finished, const Frame& handed_out, std::atomic<int>* waits, bool fail)
      : finished_(std::move(finished)), waits_(waits), fail_(fail) {
    for (int p = 0; p < 4; ++p) {
      data_[p] = handed_out.av()->data[p];
      linesize_[p] = handed_out.av()->linesize[p];
    }
  }
  void wait() override {
    if (done_) return;
    done_ = true;
    ++*waits_;
    if (fail_) throw Error({}, "the download failed", ExitCode::kProcessingFailed);
    const AVFrame* f = finished_.av();
    av_image_copy(data_, linesize_, const_cast<const uint8_t**>(f->data), f->linesize,
                  AVPixelFormat(f->format), f->width, f->height);
  }

 private:
  Frame finished_;
  uint8_t* data_[4] = {};
  int linesize_[4] = {};
  std::atomic<int>* waits_;
  bool fail_;
  bool done_ = false;
};

class LateWorker final : public UpscaleWorker {
 public:
  LateWorker(std::unique_ptr<UpscaleWorker> inner, std::atomic<int>* waits, int64_t fail_at)
      : inner_(std::move(inner)), waits_(waits), fail_at_(fail_at) {}
  Frame upscale(const Frame& input) override {
    Frame out = upscale_started(input);
    out.wait_ready();
    return out;
  }
  Frame upscale_started(const Frame& input) override {
    Frame finished = inner_->upscale(input);
    Frame out = Frame::allocate(finished.width(), finished.height(), finished.format());
    for (int p = 0; p < 4 && out.av()->buf[p]; ++p)
      std::memset(out.av()->buf[p]->data, 0, out.av()->buf[p]->size);
    av_frame_copy_props(out.av(), finished.av());
    const bool fail = input.pts() == fail_at_;
    out.set_pending(std::make_shared<LatePixels>(std::move(finished), out, waits_, fail));
    return out;
  }

 private:
  std::unique_ptr<UpscaleWorker> inner_;
  std::atomic<int>* waits_;
  int64_t fail_at_;
};

class LateUpscaler final : public Upscaler {
 public:
  explicit LateUpscaler(int64_t fail_at = -1)
      : inner_(make_swscale_upscaler("lanczos", 2)), fail_at_(fail_at) {}
  std::string name() const override { return "late-lanczos"; }
  int scale() const override { return 2; }
  int preferred_workers() const override { return 2; }
  size_t worker_memory_bytes(int w, int h) const override {
    return inner_->worker_memory_bytes(w, h);
  }
  std::unique_ptr<UpscaleWorker> create_worker() override {
    return std::make_unique<LateWorker>(inner_->create_worker(), &waits, fail_at_);
  }
  std::atomic<int> waits{0};

 private:
  std::unique_ptr<Upscaler> inner_;
  int64_t fail_at_;
};

// Keeps a copy of every frame written, by index.
class CollectingSink final : public FrameSink {
 public:
  void write_unique(int64_t index, const Frame& frame, int64_t) override {
    frames[index] = frame.clone();
  }
  void write_duplicate(int64_t index, int64_t, const Frame& frame, int64_t) override {
    frames[index] = frame.clone();
  }
  void finish() override {}
  void abort() noexcept override { frames.clear(); }
  std::map<int64_t, Frame> frames;
};

std::filesystem::path distinct_clip_file(const std::string& name) {
  const std::filesystem::path path = test::scratch_dir(name) / "clip.mkv";
  test::synth::ClipSpec spec;
  spec.width = 64;
  spec.height = 36;
  spec.frames = 12;
  test::synth::EncodeOptions options;
  options.codec = "ffv1";
  test::synth::encode_clip(path, test::synth::distinct_clip(spec), options);
  return path;
}

pipeline::VideoPipelineConfig streamed_config() {
  pipeline::VideoPipelineConfig config;
  config.streamed = true;
  config.workers = 2;
  config.skip_duplicates = false;
  return config;
}

TEST(PendingFrames, TheSaveStageWaitsForEveryFrameBeforeWritingIt) {
  const std::filesystem::path clip = distinct_clip_file("pending-frames");
  LateUpscaler upscaler;
  CollectingSink sink;
  VideoDecoder decoder(clip);
  JobStats stats;
  pipeline::run_video_pipeline(decoder, upscaler, sink, streamed_config(), stats);

  const std::vector<Frame> decoded = test::synth::decode_file(clip);
  ASSERT_EQ(sink.frames.size(), decoded.size());
  EXPECT_EQ(upscaler.waits.load(), int(decoded.size()));
  auto direct = make_swscale_upscaler("lanczos", 2)->create_worker();
  for (size_t i = 0; i < decoded.size(); ++i)
    EXPECT_TRUE(
        test::synth::same_yuv420p_pixels(sink.frames.at(int64_t(i)), direct->upscale(decoded[i])))
        << "frame " << i << " was written before its pixels arrived";
}

TEST(PendingFrames, AFailureFoundWhileWaitingStopsTheJobNamingTheFrame) {
  const std::filesystem::path clip = distinct_clip_file("pending-frames-fail");
  const std::vector<Frame> decoded = test::synth::decode_file(clip);
  LateUpscaler upscaler(decoded.at(5).pts());
  CollectingSink sink;
  VideoDecoder decoder(clip);
  JobStats stats;
  try {
    pipeline::run_video_pipeline(decoder, upscaler, sink, streamed_config(), stats);
    FAIL() << "the failed download was not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.stage(), "upscale");
    EXPECT_EQ(e.frame_index(), 5);
    EXPECT_NE(e.problem().find("the download failed"), std::string::npos) << e.problem();
  }
}

}  // namespace
}  // namespace upframe
