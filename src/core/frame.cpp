#include "upframe/frame.hpp"

#include "core/frame_planes.hpp"
#include "upframe/error.hpp"

extern "C" {
#include <libavutil/hwcontext.h>
#include <libavutil/pixdesc.h>
}

namespace upframe {

Frame Frame::adopt(AVFrame* frame) {
  Frame f;
  f.frame_ = std::shared_ptr<AVFrame>(frame, Deleter{});
  return f;
}

Frame Frame::allocate(int width, int height, AVPixelFormat format) {
  AVFrame* frame = av_frame_alloc();
  if (!frame) throw Error({}, "out of memory allocating a frame");
  frame->width = width;
  frame->height = height;
  frame->format = format;
  int err = av_frame_get_buffer(frame, 32);
  if (err < 0) {
    av_frame_free(&frame);
    throw Error({}, "cannot allocate a " + std::to_string(width) + "x" + std::to_string(height) +
                        " frame: " + av_error_string(err));
  }
  return adopt(frame);
}

Frame Frame::ref() const {
  if (!frame_) return {};
  AVFrame* copy = av_frame_alloc();
  if (!copy || av_frame_ref(copy, frame_.get()) < 0) {
    av_frame_free(&copy);
    throw Error({}, "out of memory referencing a frame");
  }
  Frame out = adopt(copy);
  out.pending_ = pending_;
  return out;
}

Frame Frame::clone() const {
  if (!frame_) return {};
  wait_ready();  // the copy reads the pixels
  Frame out = allocate(width(), height(), format());
  int err = av_frame_copy(out.av(), frame_.get());
  if (err >= 0) err = av_frame_copy_props(out.av(), frame_.get());
  if (err < 0) throw Error({}, "cannot copy a frame: " + av_error_string(err));
  return out;
}

Frame Frame::to_host() const {
  if (!frame_ || !on_device()) return *this;
  // Plane by plane, every visible row (frame_planes.hpp says why not FFmpeg's copy, which is
  // left for frames on a context of FFmpeg's own: the NVDEC fallback to host frames).
  AVFrame* copied = nullptr;
  if (download_device_frame(frame_.get(), &copied, nullptr)) {
    Frame out = adopt(copied);
    if (const int err = av_frame_copy_props(out.av(), frame_.get()); err < 0)
      throw Error({}, "cannot copy a frame from device memory: " + av_error_string(err));
    return out;
  }
  Frame out = adopt(av_frame_alloc());
  if (!out.av()) throw Error({}, "out of memory allocating a frame");
  int err = av_hwframe_transfer_data(out.av(), frame_.get(), 0);
  if (err >= 0) err = av_frame_copy_props(out.av(), frame_.get());
  if (err < 0) throw Error({}, "cannot copy a frame from device memory: " + av_error_string(err));
  return out;
}

AVPixelFormat Frame::data_format() const {
  if (on_device() && frame_->hw_frames_ctx) {
    auto* ctx = reinterpret_cast<AVHWFramesContext*>(frame_->hw_frames_ctx->data);
    return ctx->sw_format;
  }
  return format();
}

int Frame::bit_depth() const { return pixel_format_bit_depth(data_format()); }

int pixel_format_bit_depth(AVPixelFormat format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  return desc ? desc->comp[0].depth : 8;
}

}  // namespace upframe
