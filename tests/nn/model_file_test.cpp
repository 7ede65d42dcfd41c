// PyTorch and safetensors models (tools/make_model_fixtures.py) recognised from their keys and
// run by the CPU executor: each output against PyTorch's own fp32 output on a real image
// (>= 50 dB and at most 2 levels), the scale read from the file, bf16 within 40 dB.
#include "upframe/nn/model_file.hpp"
#include "../../src/nn/graph.hpp"
#include "nn/nn_test_util.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/tiling.hpp"
#include "upframe/weights/architecture.hpp"

namespace upframe::test {
namespace {

struct ModelFileCase {
  std::string file;
  std::string input;
  int scale;
  std::string family;
  std::string reference = {};  // default: FILE.ref.png
  bool fp16_weights = false;   // then >= 40 dB (the weights were rounded to fp16)
};

// What GoogleTest prints for a case (not its bytes).
void PrintTo(const ModelFileCase& c, std::ostream* out) { *out << c.file << " on " << c.input; }

std::string case_name(const ::testing::TestParamInfo<ModelFileCase>& info) {
  std::string name = info.param.file;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

// An x2 ONNX fixture NET-OPSET.onnx (NET.onnx without an opset) against NET.ref.png.
ModelFileCase onnx_case(const std::string& net, int opset = 0) {
  const std::string file = net + (opset ? "-" + std::to_string(opset) : "") + ".onnx";
  return {file, "input_64x36.png", 2, "ONNX graph", net + ".ref.png"};
}

fs::path fixture(const std::string& name) { return source_dir() / "tests/models/pytorch" / name; }

class ModelFile : public ::testing::TestWithParam<ModelFileCase> {};

TEST_P(ModelFile, MatchesPyTorchFp32) {
  const ModelFileCase& c = GetParam();
  auto model = nn::load_model_file(fixture(c.file));
  EXPECT_EQ(model->info().scale, c.scale);
  EXPECT_EQ(model->info().input_channels, 3);
  const nn::ModelFileInfo info = nn::describe_model_file(fixture(c.file));
  EXPECT_EQ(info.family, c.family);
  EXPECT_EQ(info.scale, c.scale);
  Rgb8 input = read_png_rgb(c.input.find('/') == std::string::npos ? fixture(c.input)
                                                                   : source_dir() / c.input);
  Rgb8 reference = read_png_rgb(fixture(c.reference.empty() ? c.file + ".ref.png" : c.reference));
  nn::Tensor out = nn::make_cpu_executor(model, nn::Precision::kFp32)->run(to_tensor(input));
  ASSERT_EQ(out.width, input.width * c.scale);
  ASSERT_EQ(out.height, input.height * c.scale);
  Comparison cmp = compare(to_rgb8(out), reference);
  std::printf("%s: PSNR %.2f dB, max difference %d\n", c.file.c_str(), cmp.psnr,
              cmp.max_difference);
  if (c.fp16_weights) {
    EXPECT_GE(cmp.psnr, 40.0);
  } else {
    EXPECT_GE(cmp.psnr, 50.0);
    EXPECT_LE(cmp.max_difference, 2);
  }
  if (nn::cpu_supports_bf16()) {
    nn::Tensor bf16 = nn::make_cpu_executor(model, nn::Precision::kBf16)->run(to_tensor(input));
    EXPECT_GE(compare(to_rgb8(bf16), reference).psnr, 40.0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    PyTorch, ModelFile,
    ::testing::Values(
        ModelFileCase{"compact-x2.pth", "input_64x36.png", 2, "Compact"},
        ModelFileCase{"compact-x4.safetensors", "input_64x36.png", 4, "Compact"},
        ModelFileCase{"esrgan-x4.pth", "input_64x36.png", 4, "ESRGAN"},
        ModelFileCase{"esrgan-old-x2.pth", "input_64x36.png", 2, "ESRGAN"},
        ModelFileCase{"esrgan-old-x8.safetensors", "input_32x18.png", 8, "ESRGAN"},
        // Pixel-unshuffled input, on an odd-sized image (reflect padding, crop).
        ModelFileCase{"esrgan-unshuffle-x2.pth", "input_63x35.png", 2, "ESRGAN"},
        ModelFileCase{"esrgan-unshuffle-x1.safetensors", "input_63x35.png", 1, "ESRGAN"},
        // ONNX exports of the same networks (torch.onnx, dynamic H/W).
        ModelFileCase{"compact-x2.onnx", "input_64x36.png", 2, "ONNX graph",
                      "compact-x2.pth.ref.png"},
        ModelFileCase{"esrgan-x4.onnx", "input_64x36.png", 4, "ONNX graph",
                      "esrgan-x4.pth.ref.png"},
        ModelFileCase{"compact-x2-fp16.onnx", "input_64x36.png", 2, "ONNX graph",
                      "compact-x2.pth.ref.png", true},
        // The importer's layout and shape ops, torch.onnx at opsets 11 and 17.
        onnx_case("onnx-deconv", 11), onnx_case("onnx-deconv", 17), onnx_case("onnx-shuffle", 11),
        onnx_case("onnx-shuffle", 17), onnx_case("onnx-shuffle-view", 11),
        onnx_case("onnx-shuffle-view", 17), onnx_case("onnx-dcr-view", 11),
        onnx_case("onnx-dcr-view", 17), onnx_case("onnx-se", 11), onnx_case("onnx-se", 17),
        onnx_case("onnx-depth-ops"), onnx_case("onnx-opset18"),
        // SPAN: Conv3XC layers folded at load time (stale eval_conv weights in
        // the files), fp16 .pth with the mean-normalised input, no_norm x4.
        ModelFileCase{"span-x2.pth", "tests/golden/testsrc2_160x90.png", 2, "SPAN"},
        ModelFileCase{"span-x4.safetensors", "input_63x35.png", 4, "SPAN"},
        // Real-CUGAN (widths / 8): reflection padding to a multiple of 2 (4 for
        // x3) on an odd-sized image, x4 "pro" with its input/output transform.
        ModelFileCase{"realcugan-x2.pth", "input_63x35.png", 2, "Real-CUGAN"},
        ModelFileCase{"realcugan-x3.pth", "input_63x35.png", 3, "Real-CUGAN"},
        ModelFileCase{"realcugan-pro-x4.safetensors", "input_64x36.png", 4, "Real-CUGAN"},
        ModelFileCase{"realesr-animevideov3-x4.pth", "tests/golden/testsrc2_160x90.png", 4,
                      "Compact"},
        // RealPLKSR: GroupNorm blocks (x2, 17x17 kernel), LayerNorm blocks (x4, 13x13),
        // LayerNorm without the EA attention (x2, 9x9), the DySample upsampler (x4: 4
        // groups, x3: 3 groups).
        ModelFileCase{"realplksr-x2.pth", "input_64x36.png", 2, "RealPLKSR"},
        ModelFileCase{"realplksr-layernorm-x4.safetensors", "input_32x18.png", 4, "RealPLKSR"},
        ModelFileCase{"realplksr-layernorm-noea-x2.pth", "input_64x36.png", 2, "RealPLKSR"},
        ModelFileCase{"realplksr-dysample-x4.pth", "input_32x18.png", 4, "RealPLKSR"},
        ModelFileCase{"realplksr-dysample-x3.safetensors", "input_32x18.png", 3, "RealPLKSR"}),
    case_name);

// The imported layout ops keep tiles exact: in 16-pixel tiles with the model's receptive radius
// as overlap, the stitched output equals the whole-image one (the unshuffling models need the
// radius rounded to their factor of 2: an odd overlap shifts the unshuffle's phase). onnx-se
// pools globally, so it says so and is not tiled.
TEST(ModelFileTiles, OnnxLayoutOpsTiledEqualUntiled) {
  const Rgb8 input = read_png_rgb(fixture("input_64x36.png"));
  for (const char* file :
       {"onnx-deconv-17.onnx", "onnx-shuffle-11.onnx", "onnx-shuffle-view-17.onnx",
        "onnx-dcr-view-11.onnx", "onnx-depth-ops.onnx"}) {
    SCOPED_TRACE(file);
    auto model = nn::load_model_file(fixture(file));
    const nn::ModelInfo& info = model->info();
    EXPECT_FALSE(info.global_context);
    auto executor = nn::make_cpu_executor(model, nn::Precision::kFp32);
    const nn::Tensor whole = executor->run(to_tensor(input));
    const nn::Tensor tiled = nn::run_tiled(*executor, to_tensor(input), 16, info.receptive_radius,
                                           info.scale, info.tile_alignment);
    EXPECT_LT(max_abs_difference(whole, tiled), 1e-4f) << "radius " << info.receptive_radius;
  }
  EXPECT_TRUE(nn::load_model_file(fixture("onnx-se-17.onnx"))->info().global_context);
}

// A network that pixel-unshuffles its input by f (Real-ESRGAN x2plus / x1 style) gives the
// whole image's pixels only in windows that start on multiples of f. On an odd width the last
// window, shifted against the right edge, used to start off that grid (tiles differed by tens
// of levels from the whole image); windows now start on the model's tile_alignment grid.
TEST(ModelFileTiles, UnshuffledInputTilesOnOddSizesEqualUntiled) {
  const nn::Tensor frame =
      to_tensor(read_png_rgb(source_dir() / "tests/golden/testsrc2_160x90.png"));
  // 319x89: the frame and its mirror, wide enough for several windows of the x1 model's
  // 88-pixel radius.
  nn::Tensor input(3, 89, 319);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < input.height; ++y)
      for (int x = 0; x < input.width; ++x)
        input.at(c, y, x) = frame.at(c, y, x < 160 ? x : 319 - x);
  for (auto [file, factor] :
       {std::pair{"esrgan-unshuffle-x2.pth", 2}, std::pair{"esrgan-unshuffle-x1.safetensors", 4}}) {
    SCOPED_TRACE(file);
    auto model = nn::load_model_file(fixture(file));
    const nn::ModelInfo& info = model->info();
    EXPECT_EQ(info.tile_alignment, factor);
    auto executor = nn::make_cpu_executor(model, nn::Precision::kFp32);
    const nn::Tensor whole = executor->run(input);
    const int tile = 16;
    for (const nn::TileWindow& w :
         nn::tile_windows(input.width, input.height, tile, info.receptive_radius, factor)) {
      EXPECT_EQ(w.win_x % factor, 0);
      EXPECT_EQ(w.win_y % factor, 0);
    }
    const nn::Tensor tiled =
        nn::run_tiled(*executor, input, tile, info.receptive_radius, info.scale, factor);
    EXPECT_LT(max_abs_difference(whole, tiled), 1e-4f);
    // Without the grid the last windows start on odd columns: the test can tell.
    const nn::Tensor off_grid =
        nn::run_tiled(*executor, input, tile, info.receptive_radius, info.scale, 1);
    EXPECT_GT(max_abs_difference(whole, off_grid), 1e-3f);
  }
}

// The shipped model saved as .pth gives what its ncnn twin gives, bit for bit: the same graph.
TEST(ModelFileTwin, ShippedModelAsPthEqualsItsNcnnFiles) {
  auto pth = nn::load_model_file(fixture("realesr-animevideov3-x4.pth"));
  auto ncnn = source_model("models/realesr-animevideov3-x4.param");
  Rgb8 input = read_png_rgb(fixture("input_64x36.png"));
  nn::Tensor a = nn::make_cpu_executor(pth, nn::Precision::kFp32)->run(to_tensor(input));
  nn::Tensor b = nn::make_cpu_executor(ncnn, nn::Precision::kFp32)->run(to_tensor(input));
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(pth->info().receptive_radius, ncnn->info().receptive_radius);
}

// RealPLKSR's large kernel widens the context: the receptive radius counts it (3x3 first conv,
// per block 3x3 + 3x3 + 13x13 + 3x3 EA + 1x1, last 3x3: 1 + 2 * 9 + 1), and tiles with that
// overlap give the untiled result while half of it does not. The GroupNorm variant's statistics
// span the whole image, so it is not tiled by default.
TEST(ModelFileRealPlksr, TilesCarryTheLargeKernelsContext) {
  auto layer_norm = nn::load_model_file(fixture("realplksr-layernorm-x4.safetensors"));
  EXPECT_EQ(layer_norm->info().receptive_radius, 20);
  EXPECT_FALSE(layer_norm->info().global_context);
  const nn::Tensor input =
      to_tensor(read_png_rgb(source_dir() / "tests/golden/testsrc2_160x90.png"));
  auto executor = nn::make_cpu_executor(layer_norm, nn::Precision::kFp32);
  const nn::Tensor whole = executor->run(input);
  const nn::Tensor tiled = nn::run_tiled(*executor, input, 32, 20, 4);
  EXPECT_LE(max_abs_difference(tiled, whole), 1e-4f);
  const nn::Tensor thin = nn::run_tiled(*executor, input, 32, 10, 4);
  EXPECT_GT(max_abs_difference(thin, whole), 1e-3f);

  auto group_norm = nn::load_model_file(fixture("realplksr-x2.pth"));
  EXPECT_TRUE(group_norm->info().global_context);
  EXPECT_EQ(nn::auto_tile_size(*group_norm, size_t(1) << 30), 0);
}

// Tiles overlapping by the receptive radius give PyTorch's whole-image picture (SPAN: local
// ops only; the CLI test tiles span-x2 too). Real-CUGAN's squeeze-excitation blocks average over
// the whole input, so its tiles differ (its automatic tile size is 0: whole frames); only the
// untiled run is held to PyTorch.
TEST(ModelFileTiles, SpanTiledMatchesPyTorch) {
  auto model = nn::load_model_file(fixture("span-x4.safetensors"));
  Rgb8 input = read_png_rgb(fixture("input_63x35.png"));
  const int radius = model->info().receptive_radius;
  ASSERT_GT(radius, 0);
  ASSERT_GT(nn::tile_windows(input.width, input.height, 16, radius).size(), 2u);
  auto executor = nn::make_cpu_executor(model, nn::Precision::kFp32);
  nn::Tensor tiled = nn::run_tiled(*executor, to_tensor(input), 16, radius, 4);
  Comparison cmp = compare(to_rgb8(tiled), read_png_rgb(fixture("span-x4.safetensors.ref.png")));
  std::printf("span-x4.safetensors in 16 px tiles: PSNR %.2f dB, max difference %d\n", cmp.psnr,
              cmp.max_difference);
  EXPECT_GE(cmp.psnr, 50.0);
  EXPECT_LE(cmp.max_difference, 2);
}

// The Real-CUGAN x2 builder writes the graph bilibili's ncnn files hold: the shipped ncnn
// weights (tests/models/realcugan), saved under the PyTorch keys in ncnn's layer order as a
// .safetensors, give exactly what the ncnn graph gives on the input padded by reflection (18 px
// each side, as realcugan-ncnn-vulkan and the authors' forward pad an even-sized image).
TEST(ModelFileTwin, RealCuganFromTheNcnnWeightsEqualsTheNcnnGraph) {
  auto ncnn = source_model("tests/models/realcugan/up2x-no-denoise.param");
  std::vector<std::string> keys;
  for (const std::string net : {"unet1", "unet2"}) {
    const std::vector<std::string> blocks =
        net == "unet1" ? std::vector<std::string>{"conv1", "conv2"}
                       : std::vector<std::string>{"conv1", "conv2", "conv3", "conv4"};
    for (const std::string& b : blocks) {
      keys.push_back(net + "." + b + ".conv.0");
      keys.push_back(net + "." + b + ".conv.2");
      if (b != "conv1") {
        keys.push_back(net + "." + b + ".seblock.conv1");
        keys.push_back(net + "." + b + ".seblock.conv2");
      }
      if (b == "conv1" || (net == "unet2" && b == "conv2")) {
        keys.push_back(net + "." + b + "_down");
      } else {
        keys.push_back(net + "." + b + "_up");
      }
    }
    keys.push_back(net + (net == "unet1" ? ".conv3" : ".conv5"));
    keys.push_back(net + ".conv_bottom");
  }
  // The header and the fp32 data of a .safetensors holding every weighted layer.
  std::string header = "{", data;
  size_t layer = 0;
  auto add = [&](const std::string& key, std::vector<int64_t> shape, const std::vector<float>& v) {
    std::string dims;
    for (int64_t d : shape) {
      if (!dims.empty()) dims += ',';
      dims += std::to_string(d);
    }
    if (header.size() > 1) header += ',';
    header += "\"" + key + "\":{\"dtype\":\"F32\",\"shape\":[" + dims + "],\"data_offsets\":[" +
              std::to_string(data.size()) + "," + std::to_string(data.size() + v.size() * 4) + "]}";
    data.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  };
  for (const nn::Op& op : ncnn->graph().ops) {
    std::vector<float> weights, bias;
    std::vector<int64_t> shape;
    if (op.type == nn::OpType::kInnerProduct) {
      const auto& p = op.get<nn::InnerProductParams>();
      shape = {p.num_output, int64_t(p.weights.size()) / p.num_output, 1, 1};
      weights = p.weights;
      bias = p.bias;
    } else if (op.type == nn::OpType::kConvolution || op.type == nn::OpType::kDeconvolution) {
      const auto& c = op.get<nn::ConvParams>();
      const int64_t k = c.kernel_w, out = c.num_output;
      const int64_t in = int64_t(c.weights.size()) / (out * k * k);
      weights = c.weights;
      bias = c.bias;
      shape = {out, in, k, k};
      if (op.type == nn::OpType::kDeconvolution) {  // ncnn [out][in] -> PyTorch [in][out]
        shape = {in, out, k, k};
        for (int64_t o = 0; o < out; ++o)
          for (int64_t i = 0; i < in; ++i)
            for (int64_t t = 0; t < k * k; ++t)
              weights[(i * out + o) * k * k + t] = c.weights[(o * in + i) * k * k + t];
      }
    } else {
      continue;
    }
    ASSERT_LT(layer, keys.size());
    add(keys[layer] + ".weight", shape, weights);
    add(keys[layer] + ".bias", {int64_t(bias.size())}, bias);
    ++layer;
  }
  ASSERT_EQ(layer, keys.size());
  header += "}";
  header += std::string((8 - header.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  const fs::path file = scratch_dir("model_file_cugan_twin") / "up2x-no-denoise.safetensors";
  write_file(file, bytes + header + data);

  auto pth = nn::load_model_file(file);
  EXPECT_EQ(nn::describe_model_file(file).family, "Real-CUGAN");
  Rgb8 input = read_png_rgb(fixture("input_64x36.png"));
  const nn::Tensor in = to_tensor(input);
  const nn::Tensor padded = reflect_padded(in, 18);
  nn::Tensor a = nn::make_cpu_executor(pth, nn::Precision::kFp32)->run(in);
  nn::Tensor b = nn::make_cpu_executor(ncnn, nn::Precision::kFp32)->run(padded);
  ASSERT_EQ(a.width, b.width);
  ASSERT_EQ(a.height, b.height);
  EXPECT_EQ(a.data, b.data);  // the same ops on the same values
}

// A SPAN file whose layers do not fit is refused naming the layer, not run.
TEST(ModelFileErrors, SpanWithoutItsSixBlocksIsRefused) {
  weights::StateDict d = weights::read_state_dict(fixture("span-x4.safetensors"));
  const weights::Architecture a = weights::recognise_architecture(d);
  EXPECT_TRUE(a.supported);
  EXPECT_EQ(a.blocks, 6);
  EXPECT_EQ(a.features, 6);
  EXPECT_FALSE(a.normalised_input);
  std::erase_if(d.tensors, [](const auto& t) { return t.first.rfind("block_6.", 0) == 0; });
  const weights::Architecture five = weights::recognise_architecture(d);
  EXPECT_FALSE(five.supported);
  EXPECT_EQ(five.unsupported_reason, "5 blocks (the published SPAN has 6)");
}

TEST(ModelFileErrors, RecognisedButUnsupportedFamiliesAreNamed) {
  const fs::path dir = scratch_dir("model_file_families");
  auto keys_error = [&](const std::vector<std::string>& keys) -> std::string {
    // A safetensors file holding one value under each of `keys`.
    std::string header = "{";
    for (size_t i = 0; i < keys.size(); ++i)
      header += (i ? "," : "") + std::string("\"") + keys[i] +
                "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" + std::to_string(4 * i) +
                "," + std::to_string(4 * i + 4) + "]}";
    header += "}";
    std::string bytes(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(bytes.data(), &n, 8);
    bytes += header + std::string(4 * keys.size(), '\0');
    write_file(dir / "m.safetensors", bytes);
    try {
      nn::load_model_file(dir / "m.safetensors");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage) << e.what();
      return e.problem();
    }
    return "loaded";
  };
  auto family_error = [&](const std::string& key) { return keys_error({key}); };
  EXPECT_EQ(keys_error({"feats.0.weight", "feats.1.lk.conv.weight", "to_img.init_pos"}),
            "RealPLKSR network: its feats layers do not form a RealPLKSR");
  EXPECT_EQ(
      keys_error({"feats.0.weight", "feats.1.lk.conv.weight", "feats.1.channe_mixer.0.weight"}),
      "PLKSR network: the original PLKSR is not supported yet (RealPLKSR is)");
  EXPECT_EQ(family_error("layers.0.residual_group.blocks.0.attn.relative_position_bias_table"),
            "SwinIR network: transformer networks are not supported");
  EXPECT_EQ(family_error("unet1.conv1.conv.0.weight"),
            "Real-CUGAN network: its unet1.conv_bottom does not match UpCunet2x, 3x or 4x");
  EXPECT_NE(family_error("some.other.weight").find("unknown architecture"), std::string::npos);
}

TEST(ModelFileErrors, OnnxOpOutsideTheSetIsNamedWithItsNode) {
  auto refusal = [](const std::string& file) -> std::string {
    try {
      nn::load_model_file(fixture(file));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage) << e.what();
      return e.problem();
    }
    return "loaded";
  };
  EXPECT_EQ(refusal("unsupported-op.onnx"),
            "ONNX: node 'channel_softmax' (Softmax): op not supported (docs/MODELS.md lists what "
            "is supported)");
  // A layout change that is not a pixel (un)shuffle (height and width swapped): its node named.
  EXPECT_EQ(refusal("unsupported-transpose.onnx"),
            "ONNX: node '/Transpose' (Transpose): a reshape and transpose that is not a pixel "
            "shuffle or unshuffle (docs/MODELS.md lists what is supported)");
  // Not ONNX at all.
  const fs::path dir = scratch_dir("model_file_not_onnx");
  write_file(dir / "x.onnx", "this is not a protobuf");
  EXPECT_THROW(nn::load_model_file(dir / "x.onnx"), Error);
}

}  // namespace
}  // namespace upframe::test
