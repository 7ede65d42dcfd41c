// A video frame: a ref-counted handle on an AVFrame. The planes may live in host memory
// (any libav pixel format) or in device memory (AV_PIX_FMT_CUDA with hw_frames_ctx), so
// decoders, the duplicate detector, upscalers and writers all pass the same type.
#pragma once

#include <cstdint>
#include <memory>

extern "C" {
#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>
}

namespace upframe {

// Work still writing a frame's pixels (a device-to-host copy in flight on a CUDA stream), which
// Frame::wait_ready() waits for. wait() must be idempotent; it throws upframe::Error when the
// work failed. Destroying it without wait() must still let the pixel buffers be freed safely.
class FramePending {
 public:
  virtual ~FramePending() = default;
  virtual void wait() = 0;
};

class Frame {
 public:
  Frame() = default;
  // Takes ownership of `frame` (freed with av_frame_free).
  static Frame adopt(AVFrame* frame);
  // A new host frame with buffers (32-byte aligned linesizes); throws upframe::Error on OOM.
  static Frame allocate(int width, int height, AVPixelFormat format);

  // A new reference to the same buffers (cheap); properties (and any pending work) are copied.
  Frame ref() const;
  // A deep copy into new, writable host buffers.
  Frame clone() const;
  // This frame itself when its planes are in host memory; else a host copy (data_format(),
  // properties and side data copied). Throws upframe::Error when the copy fails.
  Frame to_host() const;

  explicit operator bool() const { return frame_ != nullptr; }
  AVFrame* av() const { return frame_.get(); }
  int width() const { return frame_->width; }
  int height() const { return frame_->height; }
  AVPixelFormat format() const { return static_cast<AVPixelFormat>(frame_->format); }
  bool on_device() const { return format() == AV_PIX_FMT_CUDA; }
  // The pixel format of the data: sw_format of the hw frames context for a device frame.
  AVPixelFormat data_format() const;
  // Bits per luma sample of data_format() (8, 10, 12, 16).
  int bit_depth() const;
  int64_t pts() const { return frame_->pts; }

  // A frame whose pixels are still being written (UpscaleWorker::upscale_started): readers call
  // wait_ready() first. Frames without pending work are ready; wait_ready() is then free.
  void set_pending(std::shared_ptr<FramePending> pending) { pending_ = std::move(pending); }
  void wait_ready() const {
    if (pending_) pending_->wait();
  }

 private:
  struct Deleter {
    void operator()(AVFrame* f) const { av_frame_free(&f); }
  };
  std::shared_ptr<AVFrame> frame_;
  // Declared after frame_, so destroyed before it: the pending work is finished (or waited
  // for) before the pixel buffers can go back to their pool.
  std::shared_ptr<FramePending> pending_;
};

// Bits per component of a pixel format's first component.
int pixel_format_bit_depth(AVPixelFormat format);

}  // namespace upframe
