#include "support/synth.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>

#include "upframe/error.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace upframe::test::synth {

namespace {

uint32_t mix(uint32_t v) {
  v ^= v >> 16;
  v *= 0x7feb352dU;
  v ^= v >> 15;
  v *= 0x846ca68bU;
  v ^= v >> 16;
  return v;
}

// Uniform in [-1, 1] for an integer lattice point.
double lattice_noise(uint32_t seed, int64_t x, int64_t y) {
  const uint32_t h = mix(static_cast<uint32_t>(x) * 0x9E3779B1U ^
                         mix(static_cast<uint32_t>(y) + 0x85EBCA77U * seed));
  return static_cast<double>(h) / 2147483647.5 - 1.0;
}

double smooth_noise(uint32_t seed, double x, double y, double cell) {
  const double gx = x / cell, gy = y / cell;
  const double fx = std::floor(gx), fy = std::floor(gy);
  const double tx = gx - fx, ty = gy - fy;
  const auto ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy);
  const double sx = tx * tx * (3 - 2 * tx), sy = ty * ty * (3 - 2 * ty);
  const double top = lattice_noise(seed, ix, iy) * (1 - sx) + lattice_noise(seed, ix + 1, iy) * sx;
  const double bottom =
      lattice_noise(seed, ix, iy + 1) * (1 - sx) + lattice_noise(seed, ix + 1, iy + 1) * sx;
  return top * (1 - sy) + bottom * sy;
}

double clamp_level(double v) { return std::clamp(v, 16.0, 235.0); }

// A shape drawn over the scene: brighter on dark ground, darker on bright ground.
double over(double ground, double contrast) {
  return ground < 128 ? ground + contrast : ground - contrast;
}

void write_sample(AVFrame* f, const AVComponentDescriptor& c, int x, int y, uint32_t value) {
  uint8_t* p = f->data[c.plane] + static_cast<ptrdiff_t>(y) * f->linesize[c.plane] +
               static_cast<ptrdiff_t>(x) * c.step + c.offset;
  value <<= c.shift;
  if (c.depth + c.shift > 8) {
    p[0] = static_cast<uint8_t>(value & 0xff);
    p[1] = static_cast<uint8_t>(value >> 8);
  } else {
    p[0] = static_cast<uint8_t>(value);
  }
}

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what, int err) {
  throw std::runtime_error(path.string() + ": " + what + ": " + av_error_string(err));
}

void check(const std::filesystem::path& path, const std::string& what, int err) {
  if (err < 0) fail(path, what, err);
}

}  // namespace

std::vector<double> still_scene(const ClipSpec& spec) {
  std::vector<double> scene(static_cast<size_t>(spec.width) * spec.height);
  for (int y = 0; y < spec.height; ++y)
    for (int x = 0; x < spec.width; ++x)
      scene[static_cast<size_t>(y) * spec.width + x] = scene_luma(spec.seed, x, y);
  return scene;
}

double scene_luma(uint32_t seed, double x, double y) {
  const double phase = (seed % 97) * 0.37;
  double v = 130 + 55 * std::sin(0.011 * x + phase) + 25 * std::cos(0.017 * y + 2 * phase);
  v += 14 * smooth_noise(seed, x, y, 16.0);
  v += 5 * lattice_noise(seed + 1000, static_cast<int64_t>(std::floor(x)),
                         static_cast<int64_t>(std::floor(y)));
  for (int d = 0; d < 3; ++d) {  // discs, fixed in the scene
    const uint32_t h = mix(seed * 31 + d);
    const double cx = 40 + (h % 400), cy = 20 + ((h >> 9) % 140), r = 10 + ((h >> 18) % 20);
    const double dist = std::hypot(x - cx, y - cy);
    if (dist < r + 1) v += (d % 2 ? -35 : 35) * std::clamp(r + 1 - dist, 0.0, 1.0);
  }
  return clamp_level(v);
}

Frame render_frame(int width, int height, AVPixelFormat pix_fmt,
                   const std::function<double(int x, int y)>& luma) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(pix_fmt);
  if (!desc || (desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BE |
                               AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_FLOAT)))
    throw std::invalid_argument("render_frame: unsupported pixel format");
  Frame frame = Frame::allocate(width, height, pix_fmt);
  AVFrame* f = frame.av();
  const AVComponentDescriptor& y_comp = desc->comp[0];
  const double luma_scale = std::ldexp(1.0, y_comp.depth - 8);
  const double luma_max = std::ldexp(1.0, y_comp.depth) - 1;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const double v = std::clamp(std::round(luma(x, y) * luma_scale), 0.0, luma_max);
      write_sample(f, y_comp, x, y, static_cast<uint32_t>(v));
    }
  // Chroma: gentle gradients around neutral, so the clip is colour video.
  const int chroma_w = AV_CEIL_RSHIFT(width, desc->log2_chroma_w);
  const int chroma_h = AV_CEIL_RSHIFT(height, desc->log2_chroma_h);
  for (int c = 1; c < std::min<int>(desc->nb_components, 3); ++c) {
    const AVComponentDescriptor& comp = desc->comp[c];
    const double scale = std::ldexp(1.0, comp.depth - 8);
    for (int y = 0; y < chroma_h; ++y)
      for (int x = 0; x < chroma_w; ++x) {
        const double v = c == 1 ? 128 + 30.0 * x / chroma_w - 15 : 128 + 20.0 * y / chroma_h - 10;
        write_sample(f, comp, x, y, static_cast<uint32_t>(std::round(v * scale)));
      }
  }
  return frame;
}

std::vector<Frame> render_clip(const ClipSpec& spec, const LumaFunction& luma) {
  std::vector<Frame> frames;
  frames.reserve(spec.frames);
  for (int i = 0; i < spec.frames; ++i)
    frames.push_back(render_frame(spec.width, spec.height, spec.pix_fmt,
                                  [&](int x, int y) { return luma(i, x, y); }));
  return frames;
}

std::vector<Frame> pan_clip(const ClipSpec& spec, int pixels_per_frame) {
  return render_clip(spec, [&](int i, int x, int y) {
    return scene_luma(spec.seed, x + static_cast<double>(i) * pixels_per_frame, y);
  });
}

std::vector<Frame> fade_clip(const ClipSpec& spec, double levels_per_frame) {
  return render_clip(spec, [&](int i, int x, int y) {
    return std::max(0.0, scene_luma(spec.seed, x, y) - i * levels_per_frame);
  });
}

std::vector<Frame> on_twos_clip(const ClipSpec& spec, int hold) {
  return render_clip(spec, [&](int i, int x, int y) {
    const int drawing = i / hold;
    double v = scene_luma(spec.seed, x + drawing, y);
    // The character: a head (disc) and a body (box) walking right.
    const double cx = 0.2 * spec.width + 5.0 * drawing;
    const double cy = 0.45 * spec.height + 3 * std::sin(drawing * 0.9);
    if (std::hypot(x - cx, y - cy) < 12) v = over(v, 70);
    if (std::abs(x - cx) < 8 && y > cy + 12 && y < cy + 40) v = over(v, 50);
    return clamp_level(v);
  });
}

std::vector<Frame> moving_object_clip(const ClipSpec& spec, int size, int step, double contrast) {
  const std::vector<double> scene = still_scene(spec);
  return render_clip(spec, [&](int i, int x, int y) {
    const double v = scene[static_cast<size_t>(y) * spec.width + x];
    const int travel = std::max(1, spec.width - 2 * size - 16);
    const int ox = 8 + (i * step) % travel, oy = spec.height / 3;
    if (x >= ox && x < ox + size && y >= oy && y < oy + size) return over(v, contrast);
    return v;
  });
}

std::vector<Frame> blinking_square_clip(const ClipSpec& spec, int size, double contrast) {
  return render_clip(spec, [&](int i, int x, int y) {
    const double v = scene_luma(spec.seed, x, y);
    const int ox = spec.width / 2 + 3, oy = spec.height / 2 + 5;  // not block-aligned
    if (i % 2 == 0 && x >= ox && x < ox + size && y >= oy && y < oy + size)
      return over(v, contrast);
    return v;
  });
}

std::vector<Frame> particles_clip(const ClipSpec& spec, int count, int size, int step,
                                  double contrast) {
  struct Particle {
    int x, y;
  };
  std::vector<Particle> particles;
  for (int k = 0; k < count; ++k) {
    const uint32_t h = mix(spec.seed * 7919 + static_cast<uint32_t>(k));
    particles.push_back({static_cast<int>(h % static_cast<uint32_t>(spec.width - size)),
                         static_cast<int>((h >> 12) % static_cast<uint32_t>(spec.height))});
  }
  const std::vector<double> scene = still_scene(spec);
  // Where the particles are in the frame being rendered (frames render in order).
  std::vector<uint8_t> covered(scene.size());
  int covered_frame = -1;
  return render_clip(spec, [&](int i, int x, int y) {
    if (i != covered_frame) {
      std::fill(covered.begin(), covered.end(), uint8_t{0});
      for (const Particle& p : particles)
        for (int dy = 0; dy < size; ++dy)
          for (int dx = 0; dx < size; ++dx)
            covered[static_cast<size_t>((p.y + i * step + dy) % spec.height) * spec.width + p.x +
                    dx] = 1;
      covered_frame = i;
    }
    const size_t at = static_cast<size_t>(y) * spec.width + x;
    return covered[at] ? over(scene[at], contrast) : scene[at];
  });
}

std::vector<Frame> push_in_clip(const ClipSpec& spec, double rate) {
  // The scene on a half-pixel grid once (with a border for the box filter); frames sample it
  // bilinearly at the four quarter-pixel points of each pixel.
  const int grid_w = 2 * spec.width + 4, grid_h = 2 * spec.height + 4;
  std::vector<double> grid(static_cast<size_t>(grid_w) * grid_h);
  for (int j = 0; j < grid_h; ++j)
    for (int i = 0; i < grid_w; ++i)
      grid[static_cast<size_t>(j) * grid_w + i] = scene_luma(spec.seed, 0.5 * i - 1, 0.5 * j - 1);
  const auto scene = [&](double x, double y) {  // bilinear, scene coordinates
    const double gx = std::clamp(2 * (x + 1), 0.0, grid_w - 1.001);
    const double gy = std::clamp(2 * (y + 1), 0.0, grid_h - 1.001);
    const int ix = static_cast<int>(gx), iy = static_cast<int>(gy);
    const double tx = gx - ix, ty = gy - iy;
    const double* r0 = &grid[static_cast<size_t>(iy) * grid_w + ix];
    const double* r1 = r0 + grid_w;
    return (r0[0] * (1 - tx) + r0[1] * tx) * (1 - ty) + (r1[0] * (1 - tx) + r1[1] * tx) * ty;
  };
  const double cx = spec.width / 2.0, cy = spec.height / 2.0;
  return render_clip(spec, [&](int i, int x, int y) {
    const double zoom = std::pow(1 + rate, i);
    double sum = 0;
    for (const double oy : {0.25, 0.75})
      for (const double ox : {0.25, 0.75})
        sum += scene(cx + (x + ox - cx) / zoom, cy + (y + oy - cy) / zoom);
    return sum / 4;
  });
}

std::vector<Frame> mouth_flap_clip(const ClipSpec& spec, int hold) {
  const double s = spec.height / 180.0;
  const double cx = spec.width * 0.5, cy = spec.height * 0.5, face = 60 * s;
  static constexpr double kMouthHeights[] = {1.0, 5.0, 3.0, 1.0, 6.0, 2.0};  // one per drawing
  return render_clip(spec, [&](int i, int x, int y) {
    double v = 0.6 * scene_luma(spec.seed, x, y) + 40;  // a muted still background
    const double dx = x - cx, dy = y - cy;
    if (std::hypot(dx, dy * 0.85) < face) {
      v = 190 + 6 * std::sin(0.05 * x) * std::cos(0.04 * y);  // skin, gently shaded
      for (const double ex : {-22.0, 22.0})
        if (std::hypot(dx - ex * s, dy + 15 * s) < 6 * s) v = 40;  // eyes
      const double mouth = kMouthHeights[(i / hold) % 6] * s;
      if (std::abs(dx) < 14 * s && std::abs(dy - 25 * s) < mouth / 2 + 0.5) v = 60;
    }
    return clamp_level(v);
  });
}

std::vector<Frame> screen_recording_clip(const ClipSpec& spec) {
  const double s = spec.height / 180.0;
  // Where the pointer's tip is at frame i: moves 3 px a frame over frames 6..11, 1 px a frame
  // over frames 30..35, and rests elsewhere.
  const auto pointer_at = [&](int i) {
    double px = 0.6 * spec.width, py = 0.5 * spec.height;
    for (int f = 1; f <= i; ++f) {
      if (f >= 6 && f < 12) px += 3, py += 1;
      if (f >= 30 && f < 36) px -= 1;
    }
    return std::pair<double, double>(px, py);
  };
  const int text_lines = 6;
  const double line_h = 14 * s, left = 20 * s, top = 30 * s;
  return render_clip(spec, [&](int i, int x, int y) {
    double v = 232;          // window background
    if (y < 16 * s) v = 70;  // title bar
    // Text: glyph-like strokes (2 px wide, 9 px tall) at pseudo-random cells of each line.
    const int line = static_cast<int>((y - top) / line_h);
    if (y >= top && line < text_lines) {
      const double in_line = y - top - line * line_h;
      const int cell = static_cast<int>((x - left) / (7 * s));
      const double in_cell = x - left - cell * 7 * s;
      const int cells = static_cast<int>((0.7 - 0.08 * line) * spec.width / (7 * s));
      if (x >= left && cell < cells && in_line < 9 * s &&
          (mix(spec.seed * 131 + line * 977 + cell) & 3) != 0 && in_cell < 2 * s)
        v = 35;
      if (x >= left && cell < cells && in_line >= 4 * s && in_line < 5.5 * s && in_cell < 5 * s &&
          (mix(spec.seed + line * 31 + cell) & 1))
        v = 35;
    }
    // The caret after the last line, visible for 12 frames, hidden for 12.
    const double caret_x = left + 0.3 * spec.width, caret_y = top + text_lines * line_h;
    if ((i / 12) % 2 == 0 && x >= caret_x && x < caret_x + 2 * s && y >= caret_y &&
        y < caret_y + 12 * s)
      v = 20;
    // The pointer: a dark arrow with a light outline.
    const auto [px, py] = pointer_at(i);
    const double ax = x - px, ay = y - py;
    if (ay >= 0 && ay < 16 * s && ax >= 0 && ax <= ay * 0.6) v = ax >= ay * 0.6 - 1.5 ? 250 : 10;
    return v;
  });
}

std::vector<Frame> grainy_on_twos_clip(const ClipSpec& spec, int hold, double grain) {
  const std::vector<Frame> clean = on_twos_clip(spec, hold);
  const uint32_t seed = spec.seed;
  std::vector<Frame> frames;
  for (int i = 0; i < spec.frames; ++i) {
    const Frame& base = clean[i];
    const LumaFunction noisy = [&](int, int x, int y) {
      const AVFrame* f = base.av();
      const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(base.format());
      const int depth = desc->comp[0].depth;
      double sample = 0;
      if (depth > 8)
        sample = reinterpret_cast<const uint16_t*>(f->data[0] + y * f->linesize[0])[x] /
                 std::ldexp(1.0, depth - 8);
      else
        sample = f->data[0][y * f->linesize[0] + x];
      const uint32_t drawing = static_cast<uint32_t>(i / hold);
      return clamp_level(sample + grain * lattice_noise(seed + 5000 + drawing, x, y));
    };
    ClipSpec one = spec;
    one.frames = 1;
    frames.push_back(std::move(render_clip(one, noisy).front()));
  }
  return frames;
}

std::vector<Frame> textured_object_clip(const ClipSpec& spec, Texture texture, double strength,
                                        int size, int step, double level) {
  const uint32_t seed = spec.seed + 300;
  const auto texture_at = [&](int x, int y) {
    switch (texture) {
      case Texture::kFoliage:  // leaves: blotches of 2 to 6 px, some finer detail
        return 0.65 * smooth_noise(seed, x, y, 3.0) + 0.35 * smooth_noise(seed + 1, x, y, 1.5);
      case Texture::kGrain:
        return lattice_noise(seed, x, y);
      case Texture::kWall: {  // bricks 24 x 10 px, staggered, dark mortar, a rough surface
        const int row = y / 10;
        const int in_row = y % 10, in_brick = (x + (row % 2) * 12) % 24;
        if (in_row < 2 || in_brick < 2) return -1.0;
        const int brick = (x + (row % 2) * 12) / 24;
        return 0.4 * lattice_noise(seed + 2, brick, row) + 0.4 * lattice_noise(seed + 3, x, y) +
               0.2;
      }
    }
    return 0.0;
  };
  std::vector<double> ground(static_cast<size_t>(spec.width) * spec.height);
  for (int y = 0; y < spec.height; ++y)
    for (int x = 0; x < spec.width; ++x)
      ground[static_cast<size_t>(y) * spec.width + x] =
          clamp_level(0.6 * scene_luma(spec.seed, x, y) + 30 + strength * texture_at(x, y));
  return render_clip(spec, [&](int i, int x, int y) {
    const double v = ground[static_cast<size_t>(y) * spec.width + x];
    const int travel = std::max(1, spec.width - 2 * size - 16);
    const int ox = 8 + (i * step) % travel, oy = spec.height / 3 + 1;
    if (x >= ox && x < ox + size && y >= oy && y < oy + size) return level;
    return v;
  });
}

std::vector<Frame> rain_clip(const ClipSpec& spec, int streaks, int hold, bool subtitle) {
  const double s = spec.height / 1080.0;  // streak sizes follow the frame height
  std::vector<double> ground(static_cast<size_t>(spec.width) * spec.height);
  for (int y = 0; y < spec.height; ++y)
    for (int x = 0; x < spec.width; ++x)
      ground[static_cast<size_t>(y) * spec.width + x] =
          std::clamp(0.18 * scene_luma(spec.seed, x / (2 * s), y / (2 * s)) + 12 +
                         1.2 * lattice_noise(spec.seed + 77, x, y),
                     0.0, 255.0);
  struct Streak {
    double x0, y0, dx, dy;  // from (x0, y0) along the unit direction (dx, dy) ...
    double length, width, contrast;
  };
  // Streak k of drawing d is born at drawing (k + d) - age, ages 0..lifetime-1.
  const auto streaks_of = [&](int drawing) {
    std::vector<Streak> out;
    for (int born = drawing - 2; born <= drawing; ++born)
      for (int k = 0; k < streaks; ++k) {
        const uint32_t h = mix(spec.seed * 7717 + static_cast<uint32_t>(born + 1000) * 131 + k);
        const int lifetime = 1 + static_cast<int>(h % 3);
        const int age = drawing - born;
        if (born < 0 || age >= lifetime) continue;
        const uint32_t g = mix(h);
        const double angle = 0.15 + 0.2 * ((g & 255) / 255.0);  // from the vertical
        Streak st;
        st.dx = std::sin(angle);
        st.dy = std::cos(angle);
        st.length = (50 + static_cast<double>((g >> 8) % 151)) * s;
        st.width = 1 + static_cast<double>((g >> 16) & 1);
        st.contrast = 10 + static_cast<double>((g >> 17) % 16);
        const double fall = (6 + static_cast<double>((g >> 21) % 15)) * s * age;
        st.x0 = static_cast<double>(h >> 8) / (1 << 24) * spec.width + fall * st.dx;
        st.y0 = static_cast<double>(g >> 25) / 128.0 * (spec.height - st.length) + fall * st.dy;
        out.push_back(st);
      }
    return out;
  };
  const auto glyph = [&](int line, int cell) {  // subtitle glyph strokes, as in a font
    return mix(spec.seed * 977 + static_cast<uint32_t>(line) * 131 + static_cast<uint32_t>(cell));
  };
  const double text_h = 40 * s, text_top = spec.height - 90 * s, cell_w = 22 * s;
  const int cells = static_cast<int>(0.6 * spec.width / cell_w);
  const double text_left = 0.2 * spec.width;
  // 1 on a glyph's stroke, 0 off it: vertical and horizontal strokes of each cell.
  const auto on_text = [&](int line, double x, double y) {
    if (y < text_top || y >= text_top + text_h || x < text_left) return false;
    const int cell = static_cast<int>((x - text_left) / cell_w);
    if (cell >= cells) return false;
    const uint32_t g = glyph(line, cell);
    if ((g & 7) == 0) return false;  // a space
    const double cx = x - text_left - cell * cell_w, cy = y - text_top;
    const double stroke = 4 * s + 1;
    if ((g & 8) && cx >= 3 * s && cx < 3 * s + stroke) return true;
    if ((g & 16) && cx >= 13 * s && cx < 13 * s + stroke) return true;
    if ((g & 32) && cy >= 2 * s && cy < 2 * s + stroke && cx < 18 * s) return true;
    if ((g & 64) && cy >= 18 * s && cy < 18 * s + stroke && cx < 18 * s) return true;
    return (g & 128) && cy >= 34 * s && cy < 34 * s + stroke && cx < 18 * s;
  };
  std::vector<Frame> frames;
  for (int i = 0; i < spec.frames; ++i) {
    const int drawing = i / std::max(1, hold);
    if (i > 0 && drawing == (i - 1) / std::max(1, hold)) {  // a held drawing: an exact repeat
      frames.push_back(frames.back().ref());
      continue;
    }
    const std::vector<Streak> now = streaks_of(drawing);
    const int line = drawing / 12;
    frames.push_back(render_frame(spec.width, spec.height, spec.pix_fmt, [&](int x, int y) {
      double v = ground[static_cast<size_t>(y) * spec.width + x];
      for (const Streak& st : now) {
        // Distance across the streak and position along it; 1 px of anti-aliasing at the sides.
        const double rx = x + 0.5 - st.x0, ry = y + 0.5 - st.y0;
        const double along = rx * st.dx + ry * st.dy;
        if (along < 0 || along > st.length) continue;
        const double across = std::fabs(rx * st.dy - ry * st.dx);
        const double cover = std::clamp(st.width / 2 + 0.5 - across, 0.0, 1.0);
        v += st.contrast * cover;
      }
      if (subtitle) {
        if (on_text(line, x, y)) return 235.0;
        for (const auto& [ox, oy] : {std::pair{-2.0, 0.0}, {2.0, 0.0}, {0.0, -2.0}, {0.0, 2.0}})
          if (on_text(line, x + ox * s * 1.5, y + oy * s * 1.5)) return 16.0;  // the outline
      }
      return std::clamp(v, 0.0, 255.0);
    }));
  }
  return frames;
}

std::vector<Frame> distinct_clip(const ClipSpec& spec) {
  return render_clip(spec, [&](int i, int x, int y) {
    return scene_luma(spec.seed + 1 + static_cast<uint32_t>(i), x, y);
  });
}

std::vector<Frame> pattern_clip(const ClipSpec& spec, const std::vector<bool>& repeats_previous) {
  std::vector<Frame> frames;
  int picture = 0;
  for (size_t i = 0; i < repeats_previous.size(); ++i) {
    if (i > 0 && repeats_previous[i]) {
      frames.push_back(frames.back().ref());
      continue;
    }
    const int p = picture++;
    frames.push_back(render_frame(spec.width, spec.height, spec.pix_fmt, [&](int x, int y) {
      double v = scene_luma(spec.seed, x + 2.0 * p, y);
      const double cx = 20 + 4.0 * p, cy = spec.height / 2.0;
      if (std::hypot(x - cx, y - cy) < 10) v = over(v, 60);
      return v;
    }));
  }
  return frames;
}

std::vector<bool> duplicate_pattern(int frames, double fraction, uint32_t seed) {
  std::vector<bool> pattern(std::max(frames, 0), false);
  if (frames < 2) return pattern;
  const int repeats = static_cast<int>(std::lround(fraction * (frames - 1)));
  std::vector<int> positions(frames - 1);
  std::iota(positions.begin(), positions.end(), 1);
  std::shuffle(positions.begin(), positions.end(), std::mt19937(seed));
  for (int k = 0; k < std::clamp(repeats, 0, frames - 1); ++k) pattern[positions[k]] = true;
  return pattern;
}

void encode_clip(const std::filesystem::path& path, int frame_count,
                 const std::function<Frame(int index)>& generator, const EncodeOptions& options) {
  if (frame_count <= 0) throw std::invalid_argument("encode_clip: no frames");
  if (av_log_get_level() > AV_LOG_WARNING) av_log_set_level(AV_LOG_WARNING);  // no x264 banners
  if (!options.pts.empty() && static_cast<int>(options.pts.size()) != frame_count)
    throw std::invalid_argument("encode_clip: pts list size differs from the frame count");
  const AVRational time_base =
      options.time_base.num > 0 ? options.time_base : av_inv_q(options.fps);
  Frame first = generator(0);
  const AVPixelFormat pix_fmt =
      options.pix_fmt != AV_PIX_FMT_NONE ? options.pix_fmt : first.format();

  const AVCodec* codec = avcodec_find_encoder_by_name(options.codec.c_str());
  if (!codec) throw std::runtime_error(path.string() + ": no encoder " + options.codec);
  AVFormatContext* oc_raw = nullptr;
  check(path, "cannot pick a container",
        avformat_alloc_output_context2(&oc_raw, nullptr, nullptr, path.c_str()));
  std::unique_ptr<AVFormatContext, void (*)(AVFormatContext*)> oc(oc_raw, [](AVFormatContext* c) {
    if (c->pb) avio_closep(&c->pb);
    avformat_free_context(c);
  });
  std::unique_ptr<AVCodecContext, void (*)(AVCodecContext*)> ctx(
      avcodec_alloc_context3(codec), [](AVCodecContext* c) { avcodec_free_context(&c); });
  ctx->width = first.width();
  ctx->height = first.height();
  ctx->pix_fmt = pix_fmt;
  ctx->time_base = time_base;
  ctx->framerate = options.fps;
  ctx->gop_size = options.gop;
  ctx->keyint_min = options.gop;
  ctx->thread_count = 1;  // reproducible output, and the test machines are small
  if (oc->oformat->flags & AVFMT_GLOBALHEADER) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary* opts = nullptr;
  if (av_opt_find(ctx->priv_data, "crf", nullptr, 0, 0))
    av_dict_set_int(&opts, "crf", options.crf, 0);
  if (av_opt_find(ctx->priv_data, "preset", nullptr, 0, 0))
    av_dict_set(&opts, "preset", options.preset.c_str(), 0);
  // Keyframes exactly where asked: no scene-cut keyframes.
  if (options.codec == "libx264") av_dict_set(&opts, "x264-params", "scenecut=0", 0);
  if (options.codec == "libx265")
    av_dict_set(&opts, "x265-params", "scenecut=0:log-level=error:pools=1:frame-threads=1", 0);
  const int open_err = avcodec_open2(ctx.get(), codec, &opts);
  av_dict_free(&opts);
  check(path, "cannot open encoder " + options.codec, open_err);

  AVStream* stream = avformat_new_stream(oc.get(), nullptr);
  if (!stream) throw std::runtime_error(path.string() + ": cannot add a stream");
  stream->time_base = time_base;
  check(path, "codec parameters", avcodec_parameters_from_context(stream->codecpar, ctx.get()));
  if (!(oc->oformat->flags & AVFMT_NOFILE))
    check(path, "cannot create the file", avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE));
  check(path, "cannot write the header", avformat_write_header(oc.get(), nullptr));

  std::unique_ptr<AVPacket, void (*)(AVPacket*)> packet(av_packet_alloc(),
                                                        [](AVPacket* p) { av_packet_free(&p); });
  // Every packet gets its frame's duration (the gap to the next frame; the last repeats the
  // gap before it). Without it mp4's edit list ends at the last frame's start and demuxers
  // drop that frame.
  std::map<int64_t, int64_t> duration_of_pts;
  for (int i = 0; i < frame_count; ++i) {
    if (options.pts.empty()) break;
    const int n = int(options.pts.size());
    duration_of_pts[options.pts[i]] = i + 1 < n ? options.pts[i + 1] - options.pts[i]
                                      : n > 1   ? options.pts[n - 1] - options.pts[n - 2]
                                                : 1;
  }
  auto drain = [&]() {
    for (;;) {
      const int err = avcodec_receive_packet(ctx.get(), packet.get());
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
      check(path, "encoding failed", err);
      if (packet->duration <= 0) {
        auto it = duration_of_pts.find(packet->pts);
        packet->duration = options.pts.empty() ? 1 : it != duration_of_pts.end() ? it->second : 0;
      }
      av_packet_rescale_ts(packet.get(), ctx->time_base, stream->time_base);
      packet->stream_index = stream->index;
      check(path, "cannot write a packet", av_interleaved_write_frame(oc.get(), packet.get()));
    }
  };

  SwsContext* sws = nullptr;
  for (int i = 0; i < frame_count; ++i) {
    Frame source = i == 0 ? first : generator(i);
    if (source.width() != ctx->width || source.height() != ctx->height)
      throw std::invalid_argument("encode_clip: frames differ in size");
    Frame input;
    if (source.format() != pix_fmt) {
      input = Frame::allocate(ctx->width, ctx->height, pix_fmt);
      sws = sws_getCachedContext(sws, ctx->width, ctx->height, source.format(), ctx->width,
                                 ctx->height, pix_fmt, SWS_BICUBIC, nullptr, nullptr, nullptr);
      if (!sws) throw std::runtime_error(path.string() + ": cannot convert the frames");
      sws_scale(sws, source.av()->data, source.av()->linesize, 0, ctx->height, input.av()->data,
                input.av()->linesize);
    } else {
      input = source.ref();  // own properties (pts, picture type), shared pixels
    }
    input.av()->pts = options.pts.empty() ? i : options.pts[i];
    input.av()->pict_type = i % options.gop == 0 ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    input.av()->key_frame = i % options.gop == 0;
    check(path, "encoding failed", avcodec_send_frame(ctx.get(), input.av()));
    drain();
  }
  sws_freeContext(sws);
  check(path, "flushing the encoder", avcodec_send_frame(ctx.get(), nullptr));
  drain();
  check(path, "cannot finish the file", av_write_trailer(oc.get()));
}

void encode_clip(const std::filesystem::path& path, const std::vector<Frame>& frames,
                 const EncodeOptions& options) {
  encode_clip(
      path, static_cast<int>(frames.size()), [&](int i) { return frames[i]; }, options);
}

std::vector<Frame> decode_file(const std::filesystem::path& path, int threads) {
  AVFormatContext* fc_raw = nullptr;
  check(path, "cannot open", avformat_open_input(&fc_raw, path.c_str(), nullptr, nullptr));
  std::unique_ptr<AVFormatContext, void (*)(AVFormatContext*)> fc(
      fc_raw, [](AVFormatContext* c) { avformat_close_input(&c); });
  check(path, "cannot read stream info", avformat_find_stream_info(fc.get(), nullptr));
  const AVCodec* codec = nullptr;
  const int stream_index = av_find_best_stream(fc.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  check(path, "no video stream", stream_index);
  std::unique_ptr<AVCodecContext, void (*)(AVCodecContext*)> ctx(
      avcodec_alloc_context3(codec), [](AVCodecContext* c) { avcodec_free_context(&c); });
  check(path, "codec parameters",
        avcodec_parameters_to_context(ctx.get(), fc->streams[stream_index]->codecpar));
  ctx->thread_count = threads;
  check(path, "cannot open the decoder", avcodec_open2(ctx.get(), codec, nullptr));

  std::vector<Frame> frames;
  std::unique_ptr<AVPacket, void (*)(AVPacket*)> packet(av_packet_alloc(),
                                                        [](AVPacket* p) { av_packet_free(&p); });
  auto receive = [&]() {
    for (;;) {
      AVFrame* frame = av_frame_alloc();
      const int err = avcodec_receive_frame(ctx.get(), frame);
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) {
        av_frame_free(&frame);
        return;
      }
      if (err < 0) av_frame_free(&frame);
      check(path, "decoding failed", err);
      frame->pts = frame->best_effort_timestamp;
      frames.push_back(Frame::adopt(frame));
    }
  };
  for (;;) {
    const int err = av_read_frame(fc.get(), packet.get());
    if (err == AVERROR_EOF) break;
    check(path, "cannot read", err);
    if (packet->stream_index == stream_index) {
      const int send_err = avcodec_send_packet(ctx.get(), packet.get());
      av_packet_unref(packet.get());
      check(path, "decoding failed", send_err);
      receive();
    } else {
      av_packet_unref(packet.get());
    }
  }
  check(path, "flushing the decoder", avcodec_send_packet(ctx.get(), nullptr));
  receive();
  return frames;
}

std::vector<Frame> round_trip(const std::filesystem::path& path, const std::vector<Frame>& frames,
                              const EncodeOptions& options) {
  encode_clip(path, frames, options);
  return decode_file(path);
}

bool same_yuv420p_pixels(const Frame& a, const Frame& b) {
  if (a.width() != b.width() || a.height() != b.height() || a.format() != b.format()) return false;
  for (int p = 0; p < 3; ++p) {
    const int rows = p == 0 ? a.height() : (a.height() + 1) / 2;
    const int bytes = p == 0 ? a.width() : (a.width() + 1) / 2;
    for (int y = 0; y < rows; ++y)
      if (std::memcmp(a.av()->data[p] + y * a.av()->linesize[p],
                      b.av()->data[p] + y * b.av()->linesize[p], bytes) != 0)
        return false;
  }
  return true;
}

}  // namespace upframe::test::synth
