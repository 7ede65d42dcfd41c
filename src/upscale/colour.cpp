#include "upframe/upscale/colour.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "upframe/error.hpp"

extern "C" {
#include <libavutil/hwcontext.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace upframe::colour {

namespace {

std::string format_name(AVPixelFormat format) {
  const char* name = av_get_pix_fmt_name(format);
  return name ? name : "unknown";
}

bool is_yuvj(AVPixelFormat format) {
  switch (format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P:
      return true;
    default:
      return false;
  }
}

// Planar/packed integer components up to 16 bits that av_read_image_line2 reads generically.
bool readable(const AVPixFmtDescriptor* desc) {
  constexpr uint64_t kUnsupported = AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BITSTREAM |
                                    AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_FLOAT |
                                    AV_PIX_FMT_FLAG_BAYER;
  if (!desc || (desc->flags & kUnsupported) || desc->nb_components < 1) return false;
  if (std::strncmp(desc->name, "xyz", 3) == 0) return false;
  for (int c = 0; c < desc->nb_components; ++c)
    if (desc->comp[c].depth > 16) return false;
  return true;
}

bool is_rgb(const AVPixFmtDescriptor* desc) { return desc->flags & AV_PIX_FMT_FLAG_RGB; }
bool is_gray(const AVPixFmtDescriptor* desc) { return !is_rgb(desc) && desc->nb_components <= 2; }
bool has_alpha(const AVPixFmtDescriptor* desc) { return desc->flags & AV_PIX_FMT_FLAG_ALPHA; }
int alpha_component(const AVPixFmtDescriptor* desc) { return desc->nb_components - 1; }

// A host frame in a pixel format this file reads: device frames are downloaded, palette and
// 1-bit formats converted with swscale.
Frame readable_host_frame(const Frame& frame) {
  const Frame host = frame.to_host();
  const AVPixelFormat format = host.format();
  const AVPixelFormat target = output_format_for(format);
  if (target == format) return host;
  Frame converted = Frame::allocate(host.width(), host.height(), target);
  SwsContext* sws = sws_getContext(host.width(), host.height(), format, host.width(), host.height(),
                                   target, SWS_POINT, nullptr, nullptr, nullptr);
  if (!sws) throw Error({}, "cannot convert pixel format " + format_name(format));
  sws_scale(sws, host.av()->data, host.av()->linesize, 0, host.height(), converted.av()->data,
            converted.av()->linesize);
  sws_freeContext(sws);
  av_frame_copy_props(converted.av(), host.av());
  return converted;
}

// One component of a frame as 16-bit codes, at that component's resolution.
struct ComponentPlane {
  int width = 0;
  int height = 0;
  std::vector<uint16_t> codes;
  uint16_t at(int x, int y) const { return codes[size_t(y) * width + x]; }
};

ComponentPlane read_component(const AVFrame* frame, const AVPixFmtDescriptor* desc, int c,
                              int width, int height) {
  ComponentPlane plane{width, height, std::vector<uint16_t>(size_t(width) * height)};
  const uint8_t* data[4] = {frame->data[0], frame->data[1], frame->data[2], frame->data[3]};
  for (int y = 0; y < height; ++y)
    av_read_image_line2(plane.codes.data() + size_t(y) * width, data, frame->linesize, desc, 0, y,
                        c, width, 0, 2);
  return plane;
}

void write_component(AVFrame* frame, const AVPixFmtDescriptor* desc, int c, int width, int height,
                     const std::vector<uint16_t>& codes) {
  for (int y = 0; y < height; ++y)
    av_write_image_line2(codes.data() + size_t(y) * width, frame->data, frame->linesize, desc, 0, y,
                         c, width, 2);
}

bool is_chroma(const AVPixFmtDescriptor* desc, int c) {
  return !is_rgb(desc) && desc->nb_components >= 3 && (c == 1 || c == 2);
}
int component_width(const AVPixFmtDescriptor* desc, int c, int width) {
  return is_chroma(desc, c) ? AV_CEIL_RSHIFT(width, desc->log2_chroma_w) : width;
}
int component_height(const AVPixFmtDescriptor* desc, int c, int height) {
  return is_chroma(desc, c) ? AV_CEIL_RSHIFT(height, desc->log2_chroma_h) : height;
}

// Siting offsets (in luma samples) of an AVChromaLocation, for subsampling factors fx, fy.
void chroma_siting(AVChromaLocation location, int fx, int fy, float& offset_x, float& offset_y) {
  const float centre_x = (fx - 1) / 2.0f, centre_y = (fy - 1) / 2.0f;
  switch (location) {
    case AVCHROMA_LOC_CENTER:
      offset_x = centre_x, offset_y = centre_y;
      break;
    case AVCHROMA_LOC_TOPLEFT:
      offset_x = 0, offset_y = 0;
      break;
    case AVCHROMA_LOC_TOP:
      offset_x = centre_x, offset_y = 0;
      break;
    case AVCHROMA_LOC_BOTTOMLEFT:
      offset_x = 0, offset_y = float(fy - 1);
      break;
    case AVCHROMA_LOC_BOTTOM:
      offset_x = centre_x, offset_y = float(fy - 1);
      break;
    case AVCHROMA_LOC_LEFT:
    default:
      offset_x = 0, offset_y = centre_y;
      break;
  }
}

// Alpha of `source` as a frame of width x height (bicubic swscale), in 16-bit codes of
// `bits` bits.
std::vector<uint16_t> scaled_alpha(const AVFrame* source, const AVPixFmtDescriptor* desc, int width,
                                   int height) {
  const int c = alpha_component(desc);
  const int bits = desc->comp[c].depth;
  ComponentPlane alpha = read_component(source, desc, c, source->width, source->height);
  // swscale works on gray8/gray16 planes; 9..15-bit codes are scaled up to 16 bits and back.
  const bool wide = bits > 8;
  const AVPixelFormat gray = wide ? AV_PIX_FMT_GRAY16 : AV_PIX_FMT_GRAY8;
  Frame in = Frame::allocate(source->width, source->height, gray);
  for (int y = 0; y < alpha.height; ++y) {
    uint8_t* row = in.av()->data[0] + size_t(y) * in.av()->linesize[0];
    for (int x = 0; x < alpha.width; ++x) {
      if (wide)
        reinterpret_cast<uint16_t*>(row)[x] = uint16_t(alpha.at(x, y) << (16 - bits));
      else
        row[x] = uint8_t(alpha.at(x, y));
    }
  }
  Frame out = Frame::allocate(width, height, gray);
  SwsContext* sws = sws_getContext(source->width, source->height, gray, width, height, gray,
                                   SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
  if (!sws) throw Error({}, "cannot create a swscale context for the alpha plane");
  sws_scale(sws, in.av()->data, in.av()->linesize, 0, source->height, out.av()->data,
            out.av()->linesize);
  sws_freeContext(sws);
  std::vector<uint16_t> codes(size_t(width) * height);
  const int max_code = (1 << bits) - 1;
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = out.av()->data[0] + size_t(y) * out.av()->linesize[0];
    for (int x = 0; x < width; ++x) {
      int v = wide ? (reinterpret_cast<const uint16_t*>(row)[x] + (1 << (15 - bits))) >> (16 - bits)
                   : row[x];
      codes[size_t(y) * width + x] = uint16_t(v > max_code ? max_code : v);
    }
  }
  return codes;
}

// The tent filter's taps along one axis, normalised per chroma sample (the clamped image edge
// drops taps, so each sample's weights are divided by their own sum).
struct TentTaps {
  std::vector<int> first, count;
  std::vector<float> weights;  // max_taps per chroma sample
  int max_taps = 0;
  TentTaps() = default;
  TentTaps(const ChromaAxis& axis, int chroma_size, int luma_size)
      : first(chroma_size), count(chroma_size), max_taps(2 * axis.factor + 1) {
    weights.assign(size_t(chroma_size) * max_taps, 0.0f);
    for (int i = 0; i < chroma_size; ++i) {
      first[i] = tent_first(i, axis);
      const int last = tent_last(i, axis, luma_size);
      count[i] = std::max(0, last - first[i] + 1);
      float sum = 0;
      for (int t = 0; t < count[i]; ++t) sum += tent_weight(first[i] + t, i, axis);
      for (int t = 0; t < count[i]; ++t)
        weights[size_t(i) * max_taps + t] = tent_weight(first[i] + t, i, axis) / sum;
    }
  }
  const float* weights_of(int i) const { return &weights[size_t(i) * max_taps]; }
};

}  // namespace

ColourParams colour_params(const AVFrame* frame) {
  ColourParams params;
  switch (frame->colorspace) {
    case AVCOL_SPC_BT709:
      params.matrix = Matrix::kBt709;
      break;
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M:
      params.matrix = Matrix::kBt601;
      break;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL:
      params.matrix = Matrix::kBt2020;
      break;
    case AVCOL_SPC_SMPTE240M:
      params.matrix = Matrix::kSmpte240m;
      break;
    case AVCOL_SPC_FCC:
      params.matrix = Matrix::kFcc;
      break;
    case AVCOL_SPC_UNSPECIFIED:
    case AVCOL_SPC_RESERVED:
    case AVCOL_SPC_RGB:  // RGB formats ignore the matrix; a mis-tagged YUV frame gets a guess
      params.matrix = frame->height < 720 ? Matrix::kBt601 : Matrix::kBt709;
      break;
    default:
      throw Error({}, std::string("colour matrix ") + av_color_space_name(frame->colorspace) +
                          " is not supported for RGB conversion");
  }
  AVPixelFormat format = static_cast<AVPixelFormat>(frame->format);
  if (format == AV_PIX_FMT_CUDA && frame->hw_frames_ctx)  // a device frame: its data's format
    format = reinterpret_cast<const AVHWFramesContext*>(frame->hw_frames_ctx->data)->sw_format;
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (frame->color_range == AVCOL_RANGE_JPEG || is_yuvj(format))
    params.full_range = true;
  else if (frame->color_range == AVCOL_RANGE_MPEG)
    params.full_range = false;
  else
    params.full_range = desc && (is_rgb(desc) || is_gray(desc));
  if (desc && !is_rgb(desc) && desc->nb_components >= 3) {
    params.chroma_x.factor = 1 << desc->log2_chroma_w;
    params.chroma_y.factor = 1 << desc->log2_chroma_h;
    AVChromaLocation location = frame->chroma_location;
    if (location == AVCHROMA_LOC_UNSPECIFIED && is_yuvj(format)) location = AVCHROMA_LOC_CENTER;
    chroma_siting(location, params.chroma_x.factor, params.chroma_y.factor, params.chroma_x.offset,
                  params.chroma_y.offset);
  }
  return params;
}

void tag_resolved_colour(AVFrame* frame, const ColourParams& params) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(frame->format));
  if (!desc || is_rgb(desc)) return;
  if (frame->colorspace == AVCOL_SPC_UNSPECIFIED || frame->colorspace == AVCOL_SPC_RESERVED)
    frame->colorspace = params.matrix == Matrix::kBt709 ? AVCOL_SPC_BT709 : AVCOL_SPC_SMPTE170M;
  if (frame->color_range == AVCOL_RANGE_UNSPECIFIED)
    frame->color_range = params.full_range ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
}

bool is_supported_format(AVPixelFormat format) { return readable(av_pix_fmt_desc_get(format)); }

AVPixelFormat output_format_for(AVPixelFormat format) {
  switch (format) {
    case AV_PIX_FMT_PAL8:
      return AV_PIX_FMT_RGBA;
    case AV_PIX_FMT_MONOBLACK:
    case AV_PIX_FMT_MONOWHITE:
      return AV_PIX_FMT_GRAY8;
    default:
      return format;
  }
}

nn::Tensor frame_to_rgb(const Frame& input) {
  const Frame frame = readable_host_frame(input);
  const AVFrame* av = frame.av();
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(frame.format());
  if (!readable(desc))
    throw Error(
        {}, "pixel format " + format_name(frame.format()) + " is not supported for RGB conversion");
  const int width = frame.width(), height = frame.height();
  nn::Tensor rgb(3, height, width);
  float* r = rgb.plane(0);
  float* g = rgb.plane(1);
  float* b = rgb.plane(2);
  const size_t pixels = size_t(width) * height;

  if (is_rgb(desc)) {
    for (int c = 0; c < 3; ++c) {
      const ComponentPlane plane = read_component(av, desc, c, width, height);
      const float inv_max = 1.0f / float((1 << desc->comp[c].depth) - 1);
      float* out = rgb.plane(c);
      for (size_t i = 0; i < pixels; ++i) out[i] = float(plane.codes[i]) * inv_max;
    }
    return rgb;
  }

  const ColourParams params = colour_params(av);
  const Quantisation q = quantisation(desc->comp[0].depth, params.full_range);
  const ComponentPlane luma = read_component(av, desc, 0, width, height);
  if (is_gray(desc)) {
    for (size_t i = 0; i < pixels; ++i)
      r[i] = g[i] = b[i] = clamp01(luma_from_code(luma.codes[i], q));
    return rgb;
  }

  const LumaCoefficients k = luma_coefficients(params.matrix);
  const Quantisation qc = quantisation(desc->comp[1].depth, params.full_range);
  const ComponentPlane cb = read_component(av, desc, 1, component_width(desc, 1, width),
                                           component_height(desc, 1, height));
  const ComponentPlane cr = read_component(av, desc, 2, component_width(desc, 2, width),
                                           component_height(desc, 2, height));
  std::vector<BilinearTap> taps_x(width);
  for (int x = 0; x < width; ++x) taps_x[x] = chroma_tap(x, params.chroma_x, cb.width);
  for (int y = 0; y < height; ++y) {
    const BilinearTap ty = chroma_tap(y, params.chroma_y, cb.height);
    for (int x = 0; x < width; ++x) {
      const BilinearTap& tx = taps_x[x];
      auto sample = [&](const ComponentPlane& p) {
        const float top = p.at(tx.i0, ty.i0) + tx.w1 * (p.at(tx.i1, ty.i0) - p.at(tx.i0, ty.i0));
        const float bottom = p.at(tx.i0, ty.i1) + tx.w1 * (p.at(tx.i1, ty.i1) - p.at(tx.i0, ty.i1));
        return top + ty.w1 * (bottom - top);
      };
      const size_t i = size_t(y) * width + x;
      const Yuv yuv{luma_from_code(luma.codes[i], q), chroma_from_code(sample(cb), qc),
                    chroma_from_code(sample(cr), qc)};
      const Rgb px = yuv_to_rgb(yuv, k);
      r[i] = clamp01(px.r);
      g[i] = clamp01(px.g);
      b[i] = clamp01(px.b);
    }
  }
  return rgb;
}

Frame rgb_to_frame(const nn::Tensor& rgb, const Frame& like) {
  if (rgb.channels != 3) throw Error({}, "expected a 3-channel RGB tensor");
  const AVPixelFormat format =
      output_format_for(like.on_device() ? like.data_format() : like.format());
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (!readable(desc))
    throw Error({}, "pixel format " + format_name(format) + " is not supported for RGB conversion");
  const int width = rgb.width, height = rgb.height;
  Frame out = Frame::allocate(width, height, format);
  AVFrame* av = out.av();
  // Padding components (rgb0, x2rgb10...) are not written: start from zeros, deterministically.
  for (AVBufferRef* buf : av->buf)
    if (buf) std::memset(buf->data, 0, buf->size);
  int err = av_frame_copy_props(av, like.av());
  if (err < 0) throw Error({}, "cannot copy frame properties: " + av_error_string(err));

  const float* r = rgb.plane(0);
  const float* g = rgb.plane(1);
  const float* b = rgb.plane(2);
  const size_t pixels = size_t(width) * height;
  std::vector<uint16_t> codes(pixels);

  if (is_rgb(desc)) {
    for (int c = 0; c < 3; ++c) {
      const float* in = rgb.plane(c);
      const int max_code = (1 << desc->comp[c].depth) - 1;
      for (size_t i = 0; i < pixels; ++i) codes[i] = uint16_t(code_from_unit(in[i], max_code));
      write_component(av, desc, c, width, height, codes);
    }
  } else {
    // Resolve with the source's height: the matrix is a property of the source, not the size.
    const ColourParams params = colour_params(like.av());
    tag_resolved_colour(av, params);
    const LumaCoefficients k = luma_coefficients(params.matrix);
    const Quantisation q = quantisation(desc->comp[0].depth, params.full_range);
    const bool colour = !is_gray(desc);
    const int cw = colour ? component_width(desc, 1, width) : 0;
    const int ch = colour ? component_height(desc, 1, height) : 0;
    const TentTaps taps_x = colour ? TentTaps(params.chroma_x, cw, width) : TentTaps();
    // Tent filter, horizontal pass: each row's chroma at chroma width, computed row by row so
    // no full-resolution chroma plane is ever stored.
    std::vector<float> cb_rows(size_t(cw) * height), cr_rows(size_t(cw) * height);
    std::vector<float> cb_line(colour ? width : 0), cr_line(colour ? width : 0);
    for (int y = 0; y < height; ++y) {
      const size_t row = size_t(y) * width;
      for (int x = 0; x < width; ++x) {
        const size_t i = row + x;
        const Yuv yuv = rgb_to_yuv({clamp01(r[i]), clamp01(g[i]), clamp01(b[i])}, k);
        codes[i] = uint16_t(code_from_luma(yuv.y, q));
        if (colour) cb_line[x] = yuv.cb, cr_line[x] = yuv.cr;
      }
      for (int i = 0; i < cw; ++i) {
        float sum_cb = 0, sum_cr = 0;
        const float* w = taps_x.weights_of(i);
        for (int t = 0, x = taps_x.first[i]; t < taps_x.count[i]; ++t, ++x) {
          sum_cb += w[t] * cb_line[x];
          sum_cr += w[t] * cr_line[x];
        }
        cb_rows[size_t(y) * cw + i] = sum_cb;
        cr_rows[size_t(y) * cw + i] = sum_cr;
      }
    }
    write_component(av, desc, 0, width, height, codes);
    if (colour) {
      const Quantisation qc = quantisation(desc->comp[1].depth, params.full_range);
      const TentTaps taps_y(params.chroma_y, ch, height);
      std::vector<uint16_t> cb_codes(size_t(cw) * ch), cr_codes(size_t(cw) * ch);
      std::vector<float> cb_sum(cw), cr_sum(cw);
      // Vertical pass, whole chroma rows at a time.
      for (int j = 0; j < ch; ++j) {
        std::fill(cb_sum.begin(), cb_sum.end(), 0.0f);
        std::fill(cr_sum.begin(), cr_sum.end(), 0.0f);
        const float* w = taps_y.weights_of(j);
        for (int t = 0, y = taps_y.first[j]; t < taps_y.count[j]; ++t, ++y) {
          const float* cb_row = &cb_rows[size_t(y) * cw];
          const float* cr_row = &cr_rows[size_t(y) * cw];
          for (int i = 0; i < cw; ++i) {
            cb_sum[i] += w[t] * cb_row[i];
            cr_sum[i] += w[t] * cr_row[i];
          }
        }
        for (int i = 0; i < cw; ++i) {
          cb_codes[size_t(j) * cw + i] = uint16_t(code_from_chroma(cb_sum[i], qc));
          cr_codes[size_t(j) * cw + i] = uint16_t(code_from_chroma(cr_sum[i], qc));
        }
      }
      write_component(av, desc, 1, cw, ch, cb_codes);
      write_component(av, desc, 2, cw, ch, cr_codes);
    }
  }

  if (has_alpha(desc)) {
    const int c = alpha_component(desc);
    const Frame source = readable_host_frame(like);
    const AVPixFmtDescriptor* source_desc = av_pix_fmt_desc_get(source.format());
    if (has_alpha(source_desc) &&
        source_desc->comp[alpha_component(source_desc)].depth == desc->comp[c].depth) {
      write_component(av, desc, c, width, height,
                      scaled_alpha(source.av(), source_desc, width, height));
    } else {
      std::fill(codes.begin(), codes.end(), uint16_t((1 << desc->comp[c].depth) - 1));
      write_component(av, desc, c, width, height, codes);
    }
  }
  return out;
}

}  // namespace upframe::colour
