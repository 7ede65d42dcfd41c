// upframe_device_refs: writes the reference files the device-check kit carries to the GPU
// machine (tools/device-check/refs), or checks that the checked-in ones are what this build
// computes. Everything here runs on the CPU with the full library (FFmpeg decodes the golden
// PNGs, oneDNN runs the reference ops, the CPU detector and colour code give the expected
// results); the kit on the GPU machine has none of these and compares against the files.
//
//   upframe_device_refs OUT_DIR        write ops.ref, golden.ref, dedup.ref, colour.ref, nvdec.ref,
//                                      user_models.ref
//   upframe_device_refs --check DIR    recompute and compare (exit 1 on a difference)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dedup/kernels.hpp"
#include "device-check/op_catalogue.hpp"
#include "device-check/ref_archive.hpp"
#include "device-check/ref_values.hpp"
#include "nn/graph.hpp"
#include "nn/subgraph.hpp"
#include "upframe/dedup/hash.hpp"
#include "upframe/error.hpp"
#include "upframe/frame.hpp"
#include "upframe/media/image_io.hpp"
#include "upframe/nn/model.hpp"
#include "upframe/nn/model_file.hpp"
#include "upframe/upscale/colour.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace fs = std::filesystem;
using upframe::device_check::RefArchive;
using upframe::device_check::RefArray;
using upframe::device_check::RefType;
using namespace upframe::device_check;  // ref_values.hpp: the arrays both ends share
namespace nn = upframe::nn;
namespace dedup = upframe::dedup;

namespace {

const fs::path kSource = UPFRAME_SOURCE_DIR;

// The per-op inputs: a patch of a golden input (real image statistics through the network),
// small so the files stay small, not square and not a power of two.
constexpr int kOpPatchHeight = 6;
constexpr int kOpPatchWidth = 10;
constexpr int kOpPatchY = 60;
constexpr int kOpPatchX = 120;

struct Rgb8 {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // rgb24, rows packed
};

Rgb8 rgb8_of(const nn::Tensor& t) { return {t.width, t.height, tensor_to_rgb8(t)}; }

Rgb8 read_rgb8(const fs::path& png) {
  return rgb8_of(upframe::colour::frame_to_rgb(upframe::read_image(png)));
}

nn::Tensor to_tensor(const Rgb8& img, int y0, int x0, int h, int w) {
  return rgb8_to_tensor(img.pixels, img.width, y0, x0, h, w);
}

void put_tensor(RefArchive& a, const std::string& name, const nn::Tensor& t) {
  a.put(name, t.data, {t.channels, t.height, t.width});
}

void put_string(RefArchive& a, const std::string& name, const std::string& s) {
  a.put(name, std::vector<uint8_t>(s.begin(), s.end()));
}

std::vector<fs::path> shipped_models() {
  std::vector<fs::path> params;
  for (const auto& entry : fs::directory_iterator(kSource / "models"))
    if (entry.path().extension() == ".param") params.push_back(entry.path());
  std::sort(params.begin(), params.end());
  return params;
}

// --- ops.ref: each op of each shipped model alone, and the op catalogue, CPU fp32 ----------

nn::Tensor run_cpu(const nn::Graph& graph, const std::string& name, const nn::Tensor& input) {
  auto model = nn::Model::from_graph(graph, name);
  return nn::make_cpu_executor(model, nn::Precision::kFp32)->run(input);
}

RefArchive make_op_refs(const Rgb8& image) {
  RefArchive a;
  const nn::Tensor patch = to_tensor(image, kOpPatchY, kOpPatchX, kOpPatchHeight, kOpPatchWidth);
  for (const fs::path& param : shipped_models()) {
    auto model = nn::Model::load(param, fs::path(param).replace_extension(".bin"));
    const nn::Graph& g = model->graph();
    const std::string stem = param.stem().string();
    const auto shapes = g.infer_shapes(nn::Shape{3, 3, kOpPatchHeight, kOpPatchWidth});
    // Every blob the ops read, as the CPU computes it from the patch.
    std::vector<nn::Tensor> blobs(g.blob_names.size());
    blobs[g.input_blob] = patch;
    int count = 0;
    for (size_t k = 0; k < g.ops.size(); ++k) {
      const nn::Op& op = g.ops[k];
      if (op.type == nn::OpType::kInput) continue;
      const int channels = nn::packed_input_channels(g, int(k), shapes);
      nn::Tensor packed(channels, shapes[op.inputs[0]].h, shapes[op.inputs[0]].w);
      size_t at = 0;
      for (int in : op.inputs) {
        if (blobs[in].data.empty()) blobs[in] = run_cpu(nn::prefix_graph(g, in), stem, patch);
        std::copy(blobs[in].data.begin(), blobs[in].data.end(), packed.data.begin() + long(at));
        at += blobs[in].data.size();
      }
      const nn::Tensor out = run_cpu(nn::single_op_graph(g, int(k), shapes), stem, packed);
      char index[24];
      std::snprintf(index, sizeof index, "%03zu", k);
      const std::string prefix = "ops/" + stem + "/" + index + "/";
      put_tensor(a, prefix + "in", packed);
      put_tensor(a, prefix + "out", out);
      put_string(a, prefix + "layer", std::string(nn::op_type_name(op.type)) + " " + op.name);
      ++count;
    }
    a.put("models/" + stem + "/op_count", std::vector<int64_t>{count});
    a.put("models/" + stem + "/patch", std::vector<int64_t>{kOpPatchHeight, kOpPatchWidth});
    put_string(a, "models/" + stem + "/param", "models/" + param.filename().string());
  }
  // The op catalogue: every case's input and CPU fp32 output.
  for (const upframe::test::op_cases::OpCase& c : upframe::test::op_cases::all_cases()) {
    put_tensor(a, op_case_key(c, "in"), c.input);
    put_tensor(a, op_case_key(c, "out"),
               nn::make_cpu_executor(op_case_model(c), nn::Precision::kFp32)->run(c.input));
  }
  return a;
}

// --- golden.ref: the golden inputs and outputs as raw RGB ------------------------------------

struct GoldenCase {
  std::string name;
  std::string param;      // relative to the source tree
  std::string input;      // tests/golden/...
  std::string reference;  // tests/golden/... (PyTorch fp32), or empty: the CPU executor's output
};

RefArchive make_golden_refs() {
  const std::vector<GoldenCase> cases = {
      {"animevideov3-x2", "models/realesr-animevideov3-x2.param", "mandel_256x144.png",
       "mandel_256x144.animevideov3-x2.png"},
      {"animevideov3-x3", "models/realesr-animevideov3-x3.param", "mandel_256x144.png", ""},
      {"animevideov3-x4", "models/realesr-animevideov3-x4.param", "testsrc2_160x90.png",
       "testsrc2_160x90.animevideov3-x4.png"},
      {"x4plus-anime", "tests/models/realesrgan-x4plus-anime.param", "testsrc2_160x90.png",
       "testsrc2_160x90.x4plus-anime.png"},
  };
  RefArchive a;
  for (const GoldenCase& c : cases) {
    const Rgb8 in = read_rgb8(kSource / "tests/golden" / c.input);
    Rgb8 ref;
    if (!c.reference.empty()) {
      ref = read_rgb8(kSource / "tests/golden" / c.reference);
    } else {
      // No PyTorch output for this model: the CPU executor's (which is held to the PyTorch
      // references at >= 50 dB by test_nn) stands in, and the kit says so.
      auto model =
          nn::Model::load(kSource / c.param, fs::path(kSource / c.param).replace_extension(".bin"));
      ref = rgb8_of(nn::make_cpu_executor(model, nn::Precision::kFp32)
                        ->run(to_tensor(in, 0, 0, in.height, in.width)));
    }
    const std::string prefix = "golden/" + c.name + "/";
    put_string(a, prefix + "param", c.param);
    put_string(a, prefix + "reference_kind", c.reference.empty() ? "cpu-fp32" : "pytorch-fp32");
    a.put(prefix + "input", in.pixels, {in.height, in.width, 3});
    a.put(prefix + "reference", ref.pixels, {ref.height, ref.width, 3});
  }
  return a;
}

// --- user_models.ref: the model files of tests/models/pytorch as the ncnn networks built ------
// from them (the kit has neither the weight readers nor the ONNX importer), a small input, and
// the CPU executor's fp32 output.

RefArchive make_user_model_refs() {
  const fs::path folder = kSource / "tests/models/pytorch";
  const Rgb8 small = read_rgb8(folder / "input_32x18.png");
  // Real-CUGAN pads by reflection (14 to 19 pixels before its U-Net): wider than 18 rows.
  const Rgb8 larger = read_rgb8(folder / "input_64x36.png");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder))
    if (nn::is_weight_file_extension(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  RefArchive a;
  for (const fs::path& file : files) {
    if (file.filename() == "realesr-animevideov3-x4.pth") {
      // 2.4 MB of weights: the shipped x4 model, whose ncnn twin the ops and golden sections run
      // on the device (test_nn holds this .pth's CPU output bit-identical to the twin's).
      std::printf("user_models.ref: %s left out, the shipped model's weights\n",
                  file.filename().c_str());
      continue;
    }
    nn::NcnnFiles ncnn;
    try {
      ncnn = nn::convert_to_ncnn(file);
    } catch (const upframe::Error& e) {
      // A fixture of a refusal (unsupported-op.onnx): nothing to run on a device.
      std::printf("user_models.ref: %s left out, the CPU refuses it too: %s\n",
                  file.filename().c_str(), e.problem().c_str());
      continue;
    }
    const auto model = nn::load_model_file(file);
    const Rgb8& in = file.filename().string().starts_with("realcugan") ? larger : small;
    const nn::Tensor input = to_tensor(in, 0, 0, in.height, in.width);
    const std::string prefix = "user_models/" + file.filename().string() + "/";
    put_string(a, prefix + "param", ncnn.param_text);
    put_string(a, prefix + "bin", ncnn.bin);
    a.put(prefix + "scale", std::vector<int64_t>{model->info().scale});
    a.put(prefix + "input", in.pixels, {in.height, in.width, 3});
    put_tensor(a, prefix + "reference",
               nn::make_cpu_executor(model, nn::Precision::kFp32)->run(input));
  }
  return a;
}

// --- dedup.ref: luma plane pairs and the CPU detector's sums, measures and decisions --------

// The planes: a crop of the golden input (not a multiple of the 8x8 blocks, so partial blocks
// at the right and bottom edges are covered), as studio-range luma.
constexpr int kDedupX = 60, kDedupY = 30, kDedupWidth = 132, kDedupHeight = 90;

std::vector<uint8_t> luma_of_rgb(const Rgb8& img) {
  std::vector<uint8_t> y(size_t(kDedupWidth) * kDedupHeight);
  for (int row = 0; row < kDedupHeight; ++row)
    for (int col = 0; col < kDedupWidth; ++col) {
      const uint8_t* p = &img.pixels[(size_t(row + kDedupY) * img.width + col + kDedupX) * 3];
      y[size_t(row) * kDedupWidth + col] =
          uint8_t((66 * p[0] + 129 * p[1] + 25 * p[2] + 128) / 256 + 16);
    }
  return y;
}

struct PlanePair {
  std::string name;
  std::vector<uint8_t> a, b;
};

std::vector<PlanePair> plane_pairs(const std::vector<uint8_t>& base, int w, int h) {
  std::mt19937 rng(20261205);
  auto at = [&](std::vector<uint8_t>& p, int x, int y) -> uint8_t& { return p[size_t(y) * w + x]; };
  std::vector<PlanePair> pairs;
  pairs.push_back({"identical", base, base});
  {
    PlanePair p{"coding-noise", base, base};
    for (uint8_t& v : p.b)
      if (rng() % 3 == 0) v = uint8_t(std::clamp(int(v) + int(rng() % 3) - 1, 0, 255));
    pairs.push_back(p);
  }
  {
    PlanePair p{"pan-1px", base, base};
    for (int y = 0; y < h; ++y)
      for (int x = w - 1; x > 0; --x) at(p.b, x, y) = at(p.a, x - 1, y);
    pairs.push_back(p);
  }
  {
    PlanePair p{"fade-1-level", base, base};
    for (uint8_t& v : p.b) v = uint8_t(std::max(0, int(v) - 1));
    pairs.push_back(p);
  }
  {
    PlanePair p{"small-object", base, base};
    for (int y = 40; y < 48; ++y)
      for (int x = 100; x < 108; ++x) at(p.b, x, y) = uint8_t(std::min(255, at(p.a, x, y) + 40));
    pairs.push_back(p);
  }
  {
    PlanePair p{"cursor-blink", base, base};
    for (int y = 20; y < 30; ++y)
      for (int x = 120; x < 122; ++x) at(p.b, x, y) = 235;
    pairs.push_back(p);
  }
  {
    PlanePair p{"different", base, base};
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) at(p.b, x, y) = at(p.a, w - 1 - x, h - 1 - y);
    pairs.push_back(p);
  }
  return pairs;
}

// The three storages of a luma plane the device detector reads (device_dedup.hpp).
enum class Storage { k8Bit, kP010, k10BitLow };
const char* storage_name(Storage s) {
  return s == Storage::k8Bit ? "8bit" : s == Storage::kP010 ? "p010" : "10bit-low";
}

// 8-bit samples widened: 10-bit = v * 4 + low bits (dither, so the 8-bit scaling matters).
std::vector<uint16_t> widen(const std::vector<uint8_t>& v, Storage s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const int ten = v[i] * 4 + int(rng() % 4);
    out[i] = uint16_t(s == Storage::kP010 ? ten << 6 : ten);
  }
  return out;
}

RefArchive make_dedup_refs(const Rgb8& image) {
  RefArchive a;
  const int w = kDedupWidth, h = kDedupHeight;
  const std::vector<uint8_t> base = luma_of_rgb(image);
  uint32_t seed = 1;
  for (const PlanePair& pair : plane_pairs(base, w, h)) {
    for (Storage storage : {Storage::k8Bit, Storage::kP010, Storage::k10BitLow}) {
      const std::string prefix = "dedup/" + pair.name + "/" + storage_name(storage) + "/";
      std::vector<uint16_t> wide_a, wide_b;
      dedup::LumaView va{pair.a.data(), w, w, h, 8}, vb{pair.b.data(), w, w, h, 8};
      if (storage == Storage::k8Bit) {
        a.put(prefix + "a", pair.a, {h, w});
        a.put(prefix + "b", pair.b, {h, w});
      } else {
        wide_a = widen(pair.a, storage, seed++);
        wide_b = pair.name == "identical" ? wide_a : widen(pair.b, storage, seed++);
        const int depth = storage == Storage::kP010 ? 16 : 10;
        va = {reinterpret_cast<const uint8_t*>(wide_a.data()), 2 * w, w, h, depth};
        vb = {reinterpret_cast<const uint8_t*>(wide_b.data()), 2 * w, w, h, depth};
        a.put(prefix + "a", wide_a, {h, w});
        a.put(prefix + "b", wide_b, {h, w});
      }
      std::vector<uint8_t> copy_a(size_t(w) * h), copy_b(size_t(w) * h);
      uint64_t sum_a = 0, sum_b = 0;
      a.put(prefix + "hash8_a",
            hash_values(dedup::detail::hash_and_copy(va, 8, copy_a.data(), &sum_a)));
      a.put(prefix + "hash8_b",
            hash_values(dedup::detail::hash_and_copy(vb, 8, copy_b.data(), &sum_b)));
      a.put(prefix + "hash16_b", hash_values(dedup::average_hash(vb, 16)));
      a.put(prefix + "luma_sums", std::vector<int64_t>{int64_t(sum_a), int64_t(sum_b)});
      const auto d = dedup::detail::difference_8bit(copy_a.data(), w, copy_b.data(), w, w, h);
      a.put(prefix + "difference_sums", difference_values(d));
      dedup::detail::MotionField field;
      dedup::detail::motion_field_8bit(copy_a.data(), w, copy_b.data(), w, w, h, field);
      a.put(prefix + "motion_blocks", block_values(field), {field.blocks_y, field.blocks_x, 6});
      a.put(prefix + "motion_total", motion_values(field.total));
      a.put(prefix + "measures", measure_values(dedup::measure_difference(va, vb)));
      const bool dup_default = dedup::detail::confirm_duplicate_8bit(
          copy_a.data(), w, copy_b.data(), w, w, h, sum_a, sum_b, dedup::default_thresholds());
      const bool dup_exact = dedup::detail::confirm_duplicate_8bit(
          copy_a.data(), w, copy_b.data(), w, w, h, sum_a, sum_b, dedup::exact_thresholds());
      a.put(prefix + "decisions", std::vector<int64_t>{dup_default, dup_exact});
    }
  }
  return a;
}

// --- colour.ref: YUV frames, the CPU reference's RGB and its YUV codes back ------------------

struct ColourCase {
  std::string name;
  AVPixelFormat format;
  AVColorSpace space;
  AVColorRange range;
  AVChromaLocation siting;
};

// The planes of a host 4:2:0 frame, rows packed: Y, then Cb and Cr (planar) or CbCr pairs.
template <class Sample>
std::vector<Sample> packed_planes(const upframe::Frame& f, bool semi_planar) {
  const int cw = (f.width() + 1) / 2, ch = (f.height() + 1) / 2;
  std::vector<Sample> out;
  auto copy_plane = [&](int plane, int samples_per_row, int rows) {
    for (int y = 0; y < rows; ++y) {
      const auto* row = reinterpret_cast<const Sample*>(f.av()->data[plane] +
                                                        ptrdiff_t(y) * f.av()->linesize[plane]);
      out.insert(out.end(), row, row + samples_per_row);
    }
  };
  copy_plane(0, f.width(), f.height());
  if (semi_planar) {
    copy_plane(1, 2 * cw, ch);
  } else {
    copy_plane(1, cw, ch);
    copy_plane(2, cw, ch);
  }
  return out;
}

RefArchive make_colour_refs() {
  const std::vector<ColourCase> cases = {
      {"yuv420p-bt601-limited-left", AV_PIX_FMT_YUV420P, AVCOL_SPC_SMPTE170M, AVCOL_RANGE_MPEG,
       AVCHROMA_LOC_LEFT},
      {"yuv420p10le-bt2020-limited-topleft", AV_PIX_FMT_YUV420P10LE, AVCOL_SPC_BT2020_NCL,
       AVCOL_RANGE_MPEG, AVCHROMA_LOC_TOPLEFT},
      {"nv12-bt709-full-center", AV_PIX_FMT_NV12, AVCOL_SPC_BT709, AVCOL_RANGE_JPEG,
       AVCHROMA_LOC_CENTER},
      {"p010-bt709-limited-left", AV_PIX_FMT_P010LE, AVCOL_SPC_BT709, AVCOL_RANGE_MPEG,
       AVCHROMA_LOC_LEFT},
      {"yuv420p-bt709-full-bottom", AV_PIX_FMT_YUV420P, AVCOL_SPC_BT709, AVCOL_RANGE_JPEG,
       AVCHROMA_LOC_BOTTOM},
  };
  constexpr int kWidth = 61, kHeight = 35;  // odd: the last chroma sample covers one column/row
  RefArchive a;
  std::mt19937 rng(7);
  for (const ColourCase& c : cases) {
    upframe::Frame frame = upframe::Frame::allocate(kWidth, kHeight, c.format);
    AVFrame* av = frame.av();
    av->colorspace = c.space;
    av->color_range = c.range;
    av->chroma_location = c.siting;
    const bool semi = c.format == AV_PIX_FMT_NV12 || c.format == AV_PIX_FMT_P010LE;
    const int bits = upframe::pixel_format_bit_depth(c.format);
    const int shift = c.format == AV_PIX_FMT_P010LE ? 6 : 0;
    const int max_code = (1 << bits) - 1;
    // Smooth ramps with noise over the whole code range (super-black and -white included).
    auto code = [&](int x, int y, int plane) {
      const double ramp = plane == 0 ? double(x + y) / (kWidth + kHeight) : double(y) / kHeight;
      const int v = int(ramp * max_code) + int(rng() % 33) - 16;
      return std::clamp(v, 0, max_code) << shift;
    };
    const int cw = (kWidth + 1) / 2, ch = (kHeight + 1) / 2;
    for (int plane = 0; plane < (semi ? 2 : 3); ++plane) {
      const int rows = plane == 0 ? kHeight : ch;
      const int cols = plane == 0 ? kWidth : semi ? 2 * cw : cw;
      for (int y = 0; y < rows; ++y)
        for (int x = 0; x < cols; ++x) {
          uint8_t* row = av->data[plane] + ptrdiff_t(y) * av->linesize[plane];
          if (bits > 8)
            reinterpret_cast<uint16_t*>(row)[x] = uint16_t(code(x, y, plane));
          else
            row[x] = uint8_t(code(x, y, plane));
        }
    }
    const upframe::colour::ColourParams params = upframe::colour::colour_params(av);
    const nn::Tensor rgb = upframe::colour::frame_to_rgb(frame);
    const upframe::Frame back = upframe::colour::rgb_to_frame(rgb, frame);
    const std::string prefix = "colour/" + c.name + "/";
    a.put(prefix + "size", std::vector<int64_t>{kWidth, kHeight, bits, semi, shift});
    a.put(prefix + "params",
          std::vector<double>{double(params.matrix), double(params.full_range),
                              double(params.chroma_x.factor), params.chroma_x.offset,
                              double(params.chroma_y.factor), params.chroma_y.offset});
    if (bits > 8) {
      a.put(prefix + "yuv", packed_planes<uint16_t>(frame, semi));
      a.put(prefix + "yuv_back", packed_planes<uint16_t>(back, semi));
    } else {
      a.put(prefix + "yuv", packed_planes<uint8_t>(frame, semi));
      a.put(prefix + "yuv_back", packed_planes<uint8_t>(back, semi));
    }
    put_tensor(a, prefix + "rgb", rgb);
  }
  return a;
}

// --- nvdec.ref: elementary streams and the frames libavcodec decodes from them ---------------

struct NvdecCase {
  std::string name;
  const char* encoder;
  AVCodecID codec;
  AVPixelFormat format;  // the encoder's input and the software decoder's output
  int width, height, frames;
};

[[noreturn]] void av_fail(const std::string& what, int err) {
  throw upframe::Error({}, what + ": " + upframe::av_error_string(err));
}

// A moving pattern with B-frames and two keyframes, so the decoder reorders and restarts.
std::vector<uint8_t> encode_stream(const NvdecCase& c, int w, int h, int frames) {
  const AVCodec* codec = avcodec_find_encoder_by_name(c.encoder);
  if (!codec) throw upframe::Error({}, std::string("no encoder ") + c.encoder);
  AVCodecContext* enc = avcodec_alloc_context3(codec);
  enc->width = w;
  enc->height = h;
  enc->pix_fmt = c.format;
  enc->time_base = {1, 25};
  enc->gop_size = 8;
  enc->max_b_frames = 2;
  enc->thread_count = 1;
  av_opt_set(enc->priv_data, "preset", "fast", 0);
  if (c.codec == AV_CODEC_ID_HEVC) av_opt_set(enc->priv_data, "x265-params", "log-level=error", 0);
  if (int err = avcodec_open2(enc, codec, nullptr); err < 0) av_fail("opening the encoder", err);
  std::vector<uint8_t> stream;
  AVPacket* pkt = av_packet_alloc();
  auto drain = [&] {
    while (avcodec_receive_packet(enc, pkt) == 0) {
      stream.insert(stream.end(), pkt->data, pkt->data + pkt->size);
      av_packet_unref(pkt);
    }
  };
  const bool wide = upframe::pixel_format_bit_depth(c.format) > 8;
  for (int i = 0; i < frames; ++i) {
    upframe::Frame f = upframe::Frame::allocate(w, h, c.format);
    for (int plane = 0; plane < 3; ++plane) {
      const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(c.format);
      const int pw = plane ? AV_CEIL_RSHIFT(w, desc->log2_chroma_w) : w;
      const int ph = plane ? AV_CEIL_RSHIFT(h, desc->log2_chroma_h) : h;
      for (int y = 0; y < ph; ++y)
        for (int x = 0; x < pw; ++x) {
          const int v = plane ? 96 + (x + i) % 64 : 16 + (x * 3 + y * 2 + i * 5) % 200;
          uint8_t* row = f.av()->data[plane] + ptrdiff_t(y) * f.av()->linesize[plane];
          if (wide)
            reinterpret_cast<uint16_t*>(row)[x] = uint16_t(v * 4 + (x & 3));
          else
            row[x] = uint8_t(v);
        }
    }
    f.av()->pts = i;
    if (int err = avcodec_send_frame(enc, f.av()); err < 0) av_fail("encoding", err);
    drain();
  }
  avcodec_send_frame(enc, nullptr);
  drain();
  av_packet_free(&pkt);
  avcodec_free_context(&enc);
  return stream;
}

// The stream decoded by FFmpeg's software decoder, laid out as NVDEC's surfaces are (every
// visible row and column): 4:2:0 as NV12 (8-bit) or P016 (the bits in the high bits): Y rows,
// then (h+1)/2 rows of (w+1)/2 interleaved CbCr pairs; 4:4:4 as three full planes.
template <class Sample>
std::vector<Sample> decode_stream(const std::vector<uint8_t>& stream, AVCodecID id, int* count) {
  const AVCodec* codec = avcodec_find_decoder(id);
  AVCodecContext* dec = avcodec_alloc_context3(codec);
  dec->thread_count = 1;
  if (int err = avcodec_open2(dec, codec, nullptr); err < 0) av_fail("opening the decoder", err);
  AVCodecParserContext* parser = av_parser_init(int(id));
  AVPacket* pkt = av_packet_alloc();
  AVFrame* frame = av_frame_alloc();
  std::vector<Sample> out;
  *count = 0;
  auto receive = [&] {
    while (avcodec_receive_frame(dec, frame) == 0) {
      const auto format = AVPixelFormat(frame->format);
      const int shift = sizeof(Sample) == 2 ? 16 - upframe::pixel_format_bit_depth(format) : 0;
      const bool chroma444 = av_pix_fmt_desc_get(format)->log2_chroma_w == 0;
      const int w = frame->width, h = frame->height;
      auto sample = [&](int plane, int x, int y) {
        const auto* row = reinterpret_cast<const Sample*>(frame->data[plane] +
                                                          ptrdiff_t(y) * frame->linesize[plane]);
        return Sample(row[x] << shift);
      };
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) out.push_back(sample(0, x, y));
      if (chroma444) {
        for (int plane = 1; plane < 3; ++plane)
          for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) out.push_back(sample(plane, x, y));
      } else {
        for (int y = 0; y < (h + 1) / 2; ++y)
          for (int x = 0; x < (w + 1) / 2; ++x) {
            out.push_back(sample(1, x, y));
            out.push_back(sample(2, x, y));
          }
      }
      ++*count;
      av_frame_unref(frame);
    }
  };
  // The elementary stream is cut into packets by FFmpeg's parser, as a demuxer would.
  const uint8_t* data = stream.data();
  int left = int(stream.size());
  for (bool flushed = false; !flushed;) {
    flushed = left == 0;
    const int used = av_parser_parse2(parser, dec, &pkt->data, &pkt->size, flushed ? nullptr : data,
                                      left, AV_NOPTS_VALUE, AV_NOPTS_VALUE, 0);
    if (used < 0) av_fail("parsing", used);
    data += used;
    left -= used;
    if (pkt->size && avcodec_send_packet(dec, pkt) == 0) receive();
  }
  avcodec_send_packet(dec, nullptr);
  receive();
  av_frame_free(&frame);
  av_packet_free(&pkt);
  av_parser_close(parser);
  avcodec_free_context(&dec);
  return out;
}

// `existing`: the checked-in archive, whose streams are decoded again (check mode: an encoder
// need not give the same bytes on every machine; a decoder must give the same frames).
RefArchive make_nvdec_refs(const RefArchive* existing) {
  // 4:4:4 and 12-bit are what upframe converts on the host (the device colour code takes 4:2:0
  // at 8 and 10 bits); the 4:4:4 stream has an odd size (4:2:0 H.264/HEVC cannot), so the
  // readers' last row and column are checked. HEVC on NVDEC: 144x144 at least.
  const std::vector<NvdecCase> cases = {
      {"h264-8bit", "libx264", AV_CODEC_ID_H264, AV_PIX_FMT_YUV420P, 176, 144, 12},
      {"hevc-10bit", "libx265", AV_CODEC_ID_HEVC, AV_PIX_FMT_YUV420P10LE, 176, 144, 12},
      {"hevc-12bit", "libx265", AV_CODEC_ID_HEVC, AV_PIX_FMT_YUV420P12LE, 144, 144, 4},
      {"hevc-444-odd", "libx265", AV_CODEC_ID_HEVC, AV_PIX_FMT_YUV444P, 145, 145, 4}};
  RefArchive a;
  for (const NvdecCase& c : cases) {
    const std::string prefix = "nvdec/" + c.name + "/";
    const bool carried = existing && existing->arrays().count(prefix + "stream");
    const std::vector<uint8_t> stream = carried ? existing->get<uint8_t>(prefix + "stream")
                                                : encode_stream(c, c.width, c.height, c.frames);
    const int bits = upframe::pixel_format_bit_depth(c.format);
    const bool chroma444 = av_pix_fmt_desc_get(c.format)->log2_chroma_w == 0;
    const int64_t rows = chroma444 ? 3 * c.height : c.height + (c.height + 1) / 2;
    const int64_t row = chroma444 || c.width % 2 == 0 ? c.width : c.width + 1;
    int count = 0;
    a.put(prefix + "stream", stream);
    if (bits > 8)
      a.put(prefix + "frames", decode_stream<uint16_t>(stream, c.codec, &count),
            {count, rows, row});
    else
      a.put(prefix + "frames", decode_stream<uint8_t>(stream, c.codec, &count), {count, rows, row});
    if (count < 1) throw upframe::Error({}, c.name + ": decoded no frames");
    a.put(prefix + "size",
          std::vector<int64_t>{c.width, c.height, bits, count, c.codec == AV_CODEC_ID_H264 ? 0 : 1,
                               chroma444 ? 1 : 0});
  }
  return a;
}

// --- check mode ----------------------------------------------------------------------------

// Values that come from oneDNN (ops, op cases, user models' outputs, the CPU-made golden) differ
// between CPUs and kernels (AVX2, AVX-512, banded or not sum in other orders: 3e-5 after four
// layers was seen), and the op inputs carry that through up to 17 layers; a model or generator
// change moves them by far more than 1e-3. Everything else must be equal.
bool same_array(const std::string& name, const RefArray& want, const RefArray& got,
                std::string* why) {
  if (want.type != got.type || want.dims != got.dims || want.bytes.size() != got.bytes.size()) {
    *why = "type, shape or size differs";
    return false;
  }
  if (want.type == RefType::kF32 && (name.rfind("ops/", 0) == 0 || name.rfind("cases/", 0) == 0 ||
                                     name.rfind("user_models/", 0) == 0)) {
    const auto a = want.values<float>(), b = got.values<float>();
    for (size_t i = 0; i < a.size(); ++i)
      if (std::abs(a[i] - b[i]) > 1e-3f * std::max(1.f, std::abs(a[i]))) {
        *why = "value " + std::to_string(i) + ": " + std::to_string(a[i]) + " vs " +
               std::to_string(b[i]);
        return false;
      }
    return true;
  }
  if (name.rfind("golden/animevideov3-x3/reference", 0) == 0) {
    for (size_t i = 0; i < want.bytes.size(); ++i)
      if (std::abs(int(want.bytes[i]) - int(got.bytes[i])) > 1) {
        *why = "value " + std::to_string(i) + " differs by more than 1 level";
        return false;
      }
    return true;
  }
  if (want.bytes != got.bytes) {
    *why = "values differ";
    return false;
  }
  return true;
}

int check(const fs::path& dir, const std::string& file, const RefArchive& fresh) {
  const RefArchive old = RefArchive::load((dir / file).string());
  int problems = 0;
  for (const auto& [name, array] : fresh.arrays()) {
    std::string why;
    if (!old.has(name)) {
      why = "missing from the checked-in file";
    } else if (same_array(name, old.at(name), array, &why)) {
      continue;
    }
    if (++problems <= 5)
      std::fprintf(stderr, "%s: %s: %s\n", file.c_str(), name.c_str(), why.c_str());
  }
  for (const auto& [name, array] : old.arrays())
    if (!fresh.has(name) && ++problems <= 5)
      std::fprintf(stderr, "%s: %s: no longer produced\n", file.c_str(), name.c_str());
  std::printf("%s: %zu arrays, %s\n", file.c_str(), fresh.arrays().size(),
              problems ? "OUT OF DATE" : "up to date");
  return problems;
}

}  // namespace

int main(int argc, char** argv) {
  const bool check_mode = argc == 3 && std::string(argv[1]) == "--check";
  if (!(argc == 2 && argv[1][0] != '-') && !check_mode) {
    std::fprintf(stderr,
                 "usage: upframe_device_refs OUT_DIR | upframe_device_refs --check DIR\n"
                 "Writes (or checks) the device-check kit's reference files.\n");
    return 2;
  }
  const fs::path dir = argv[argc - 1];
  av_log_set_level(AV_LOG_ERROR);  // no encoder banners
  try {
    const Rgb8 mandel = read_rgb8(kSource / "tests/golden/mandel_256x144.png");
    // Check mode decodes the checked-in streams again rather than encoding new ones.
    std::unique_ptr<RefArchive> old_nvdec;
    if (check_mode && fs::exists(dir / "nvdec.ref"))
      old_nvdec = std::make_unique<RefArchive>(RefArchive::load((dir / "nvdec.ref").string()));
    const std::vector<std::pair<std::string, RefArchive>> files = {
        {"ops.ref", make_op_refs(mandel)},
        {"golden.ref", make_golden_refs()},
        {"dedup.ref", make_dedup_refs(mandel)},
        {"colour.ref", make_colour_refs()},
        {"nvdec.ref", make_nvdec_refs(old_nvdec.get())},
        {"user_models.ref", make_user_model_refs()},
    };
    int problems = 0;
    for (const auto& [file, archive] : files) {
      if (check_mode) {
        problems += check(dir, file, archive);
      } else {
        fs::create_directories(dir);
        archive.save((dir / file).string());
        std::printf("%s: %zu arrays, %ju bytes\n", (dir / file).c_str(), archive.arrays().size(),
                    uintmax_t(fs::file_size(dir / file)));
      }
    }
    if (problems) {
      std::fprintf(stderr,
                   "upframe_device_refs: the reference files in %s are out of date; regenerate "
                   "them with: build/upframe_device_refs tools/device-check/refs\n",
                   dir.c_str());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "upframe_device_refs: error: %s\n", e.what());
    return 1;
  }
}
