// Classic resamplers ("lanczos", "bicubic") through libswscale, in the frame's own pixel
// format: no RGB round trip, so nothing but the resampling changes the pixels.
#include <algorithm>
#include <thread>

#include "upframe/error.hpp"
#include "upframe/upscale/colour.hpp"
#include "upframe/upscale/upscaler.hpp"

extern "C" {
#include <libavutil/hwcontext.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace upframe {

namespace {

class SwscaleWorker : public UpscaleWorker {
 public:
  SwscaleWorker(int flags, int scale) : flags_(flags), scale_(scale) {}
  ~SwscaleWorker() override { sws_freeContext(context_); }

  Frame upscale(const Frame& input) override {
    const Frame host = input.to_host();
    const AVPixelFormat format = host.format();
    const int out_width = host.width() * scale_, out_height = host.height() * scale_;
    // Cached per worker: recreated only when the input size or format changes.
    context_ = sws_getCachedContext(context_, host.width(), host.height(), format, out_width,
                                    out_height, format, flags_, nullptr, nullptr, nullptr);
    if (!context_) {
      const char* name = av_get_pix_fmt_name(format);
      throw Error({}, std::string("swscale cannot scale pixel format ") + (name ? name : "?"), {},
                  "upscale");
    }
    Frame out = Frame::allocate(out_width, out_height, format);
    sws_scale(context_, host.av()->data, host.av()->linesize, 0, host.height(), out.av()->data,
              out.av()->linesize);
    int err = av_frame_copy_props(out.av(), input.av());
    if (err < 0)
      throw Error({}, "cannot copy frame properties: " + av_error_string(err), {}, "upscale");
    // The guessed matrix of an untagged frame depends on its height: keep the source's guess.
    if (colour::is_supported_format(format))
      colour::tag_resolved_colour(out.av(), colour::colour_params(host.av()));
    return out;
  }

 private:
  int flags_;
  int scale_;
  SwsContext* context_ = nullptr;
};

class SwscaleUpscaler : public Upscaler {
 public:
  SwscaleUpscaler(std::string method, int flags, int scale)
      : method_(std::move(method)), flags_(flags), scale_(scale) {}
  std::string name() const override { return method_; }
  int scale() const override { return scale_; }
  int preferred_workers() const override {
    return std::max(1u, std::thread::hardware_concurrency());
  }
  size_t worker_memory_bytes(int width, int height) const override {
    // The output frame plus swscale's filter buffers (a few rows at the output size, 16 bits).
    const size_t out_bytes =
        av_image_get_buffer_size(AV_PIX_FMT_YUVA444P16, width * scale_, height * scale_, 32);
    return out_bytes + size_t(width) * scale_ * 64 * 8;
  }
  std::unique_ptr<UpscaleWorker> create_worker() override {
    return std::make_unique<SwscaleWorker>(flags_, scale_);
  }

 private:
  std::string method_;
  int flags_;
  int scale_;
};

}  // namespace

std::unique_ptr<Upscaler> make_swscale_upscaler(const std::string& method, int scale) {
  int flags = 0;
  if (method == "lanczos")
    flags = SWS_LANCZOS;
  else if (method == "bicubic")
    flags = SWS_BICUBIC;
  else
    throw UsageError({}, "unknown resampler '" + method + "' (use lanczos or bicubic)");
  if (scale < 1 || scale > 16)
    throw UsageError({}, "scale " + std::to_string(scale) + " is out of range 1..16 for " + method);
  // Accurate rounding; full chroma interpolation matters only where swscale converts to RGB.
  flags |= SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP;
  return std::make_unique<SwscaleUpscaler>(method, flags, scale);
}

}  // namespace upframe
