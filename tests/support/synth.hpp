// Synthetic test clips: in-memory frame generators with realistic content (smooth gradients,
// a noise texture, shapes), and a real libavcodec/libavformat encoder and decoder for them.
// Depends on upframe_core (FFmpeg) only, so every stage's tests can use it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "upframe/frame.hpp"

extern "C" {
#include <libavutil/rational.h>
}

namespace upframe::test::synth {

struct ClipSpec {
  int width = 320;
  int height = 180;
  int frames = 24;
  // Any planar YUV / gray / NV12 / P010 host format (8 to 16 bits).
  AVPixelFormat pix_fmt = AV_PIX_FMT_YUV420P;
  uint32_t seed = 1;  // picks the scene
};

// The luma of a picture in 8-bit levels (fractions allowed: kept by >8-bit formats),
// for frame `index` at pixel (x, y).
using LumaFunction = std::function<double(int index, int x, int y)>;
// Renders spec.frames frames; chroma gets smooth gradients.
std::vector<Frame> render_clip(const ClipSpec& spec, const LumaFunction& luma);
// One frame of `luma` (index 0) in a given format.
Frame render_frame(int width, int height, AVPixelFormat pix_fmt,
                   const std::function<double(int x, int y)>& luma);

// The textured scene every generator draws: a smooth gradient (about 50..210), a low-frequency
// texture, a fine noise texture and a few discs, at scene coordinates (any real x, y; the
// texture is fixed to the scene so a pan moves it). Deterministic for a seed.
double scene_luma(uint32_t seed, double x, double y);

// scene_luma at every pixel of a spec.width x spec.height frame (row-major), computed once for
// the clips whose background stands still.
std::vector<double> still_scene(const ClipSpec& spec);

// The camera pans `pixels_per_frame` to the right every frame (never a duplicate).
std::vector<Frame> pan_clip(const ClipSpec& spec, int pixels_per_frame = 1);
// The scene darkens `levels_per_frame` every frame (never a duplicate).
std::vector<Frame> fade_clip(const ClipSpec& spec, double levels_per_frame = 1.0);
// Animation "on `hold`s": every drawing is shown `hold` times (frames/hold drawings); between
// drawings the background pans 1 px and a character (disc + box) moves a few px.
std::vector<Frame> on_twos_clip(const ClipSpec& spec, int hold = 2);
// A `size` x `size` square, `contrast` levels brighter than the scene, moves `step` px a
// frame across a still background (never a duplicate).
std::vector<Frame> moving_object_clip(const ClipSpec& spec, int size = 6, int step = 2,
                                      double contrast = 80);
// A cursor-like `size` x `size` square that blinks: visible on even frames only.
std::vector<Frame> blinking_square_clip(const ClipSpec& spec, int size = 6, double contrast = 80);
// Small local motion (issue 9: each must stay unique). `count` particles (snowflakes or rain
// drops), `size` x `size` px, `contrast` levels off the scene, fall `step` px a frame over a
// still background (wrapping at the bottom); positions are fixed for spec.seed.
std::vector<Frame> particles_clip(const ClipSpec& spec, int count = 40, int size = 2, int step = 1,
                                  double contrast = 60);
// The camera pushes in towards the centre by `rate` a frame (0.002: 0.2 %), the scene sampled
// with a 2x2 box filter per pixel (a zoom moves every pixel but the centre by a fraction of a
// pixel).
std::vector<Frame> push_in_clip(const ClipSpec& spec, double rate = 0.002);
// A still face whose mouth changes shape (closed, half open, open) every `hold` frames; the
// frames in between are exact repeats. Sizes follow the frame height (180 px: a 14 px mouth).
std::vector<Frame> mouth_flap_clip(const ClipSpec& spec, int hold = 3);
// A screen recording: a flat window with a title bar and lines of glyph-like strokes, a caret
// that blinks every 12 frames and a pointer that moves on some frames only (3 px, then 1 px a
// frame) and rests on the others. Frames where nothing moved are exact repeats.
std::vector<Frame> screen_recording_clip(const ClipSpec& spec);
// on_twos_clip with film grain (+-`grain` levels) drawn into each drawing: held frames repeat
// the drawing and its grain exactly, a new drawing has new grain.
std::vector<Frame> grainy_on_twos_clip(const ClipSpec& spec, int hold = 2, double grain = 4);
// Issue 22: motion that must never be frozen on real footage.
// The texture under textured_object_clip: foliage (blotches a few px across), grain (per-pixel
// noise) or a wall (bricks with mortar lines and a rough surface).
enum class Texture { kFoliage, kGrain, kWall };
// A muted still scene (levels 60 to 160) with `texture` of +-`strength` levels over all of it,
// and a bright opaque `size` x `size` square (level `level`) moving `step` px a frame across it.
std::vector<Frame> textured_object_clip(const ClipSpec& spec, Texture texture, double strength,
                                        int size = 6, int step = 1, double level = 220);
// A dark still night scene (levels 20 to 50: gradients, blotches, a few shapes, faint grain)
// with `streaks` faint rain streaks a drawing: 1-2 px wide, 50-200 px long (scaled to the
// frame height, 1080 px), slanted, 10-25 levels above the ground. Each streak lives 1 to 3
// drawings and falls 6-20 px a drawing, so every drawing some appear, move and vanish. Every
// drawing is shown `hold` times (exact repeats). `subtitle`: a burnt-in subtitle line (white
// glyphs outlined in black) at the bottom, whose text changes every 12 drawings.
std::vector<Frame> rain_clip(const ClipSpec& spec, int streaks = 5, int hold = 1,
                             bool subtitle = false);
// spec.frames entirely different pictures (scene seed + index).
std::vector<Frame> distinct_clip(const ClipSpec& spec);
// Frame i repeats frame i-1 exactly where repeats_previous[i] (a new reference to the same
// picture); other frames are new pictures of a slowly moving scene. repeats_previous[0] is
// ignored. spec.frames is taken from the pattern's size.
std::vector<Frame> pattern_clip(const ClipSpec& spec, const std::vector<bool>& repeats_previous);
// A pattern of `frames` where round(fraction * (frames - 1)) frames repeat the previous one,
// spread at random (deterministic for a seed).
std::vector<bool> duplicate_pattern(int frames, double fraction, uint32_t seed = 7);

struct EncodeOptions {
  std::string codec = "libx264";  // any libavcodec encoder: libx264, libx265, ffv1, ...
  int crf = 23;                   // ignored by encoders without a "crf" option (ffv1)
  AVRational fps{24, 1};
  // Explicit presentation times (variable frame rate), in `time_base` units; empty: frame i
  // at i / fps.
  std::vector<int64_t> pts;
  AVRational time_base{0, 1};               // default: 1/fps
  AVPixelFormat pix_fmt = AV_PIX_FMT_NONE;  // default: the frames' format (converted if not)
  int gop = 12;                     // a keyframe every `gop` frames (at 0, gop, 2*gop, ...) only
  std::string preset = "veryfast";  // x264/x265 preset
};

// Encodes `frames` into `path` (container from the extension: .mp4, .mkv, ...). Throws
// std::runtime_error on any libav failure.
void encode_clip(const std::filesystem::path& path, const std::vector<Frame>& frames,
                 const EncodeOptions& options = {});
// Same, pulling `frame_count` frames one at a time from `generator` (large clips).
void encode_clip(const std::filesystem::path& path, int frame_count,
                 const std::function<Frame(int index)>& generator,
                 const EncodeOptions& options = {});

// Decodes every frame of the best video stream (host frames, decoded format, presentation
// order). Throws std::runtime_error on failure.
std::vector<Frame> decode_file(const std::filesystem::path& path, int threads = 1);

// Whether two host frames of one 8-bit 4:2:0 format (yuv420p) hold the same pixels, row
// padding aside.
bool same_yuv420p_pixels(const Frame& a, const Frame& b);

// Encode then decode: what a real pipeline sees after lossy coding.
std::vector<Frame> round_trip(const std::filesystem::path& path, const std::vector<Frame>& frames,
                              const EncodeOptions& options = {});

}  // namespace upframe::test::synth
