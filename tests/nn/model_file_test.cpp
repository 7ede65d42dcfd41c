// PyTorch and safetensors models (tools/make_model_fixtures.py) recognised from their keys and
// run by the CPU executor: each output against PyTorch's own fp32 output on a real image
// (>= 50 dB and at most 2 levels), the scale read from the file, bf16 within 40 dB.
#include "nn/nn_test_util.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model_file.hpp"
#include "upframe/nn/tiling.hpp"

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
    ::testing::Values(ModelFileCase{"compact-x2.pth", "input_64x36.png", 2, "Compact"},
                      ModelFileCase{"compact-x4.safetensors", "input_64x36.png", 4, "Compact"},
                      ModelFileCase{"esrgan-x4.pth", "input_64x36.png", 4, "ESRGAN"},
                      ModelFileCase{"esrgan-old-x2.pth", "input_64x36.png", 2, "ESRGAN"},
                      ModelFileCase{"esrgan-old-x8.safetensors", "input_32x18.png", 8, "ESRGAN"},
                      // Pixel-unshuffled input, on an odd-sized image (reflect padding, crop).
                      ModelFileCase{"esrgan-unshuffle-x2.pth", "input_63x35.png", 2, "ESRGAN"},
                      ModelFileCase{"esrgan-unshuffle-x1.safetensors", "input_63x35.png", 1,
                                    "ESRGAN"},
                      // ONNX exports of the same networks (torch.onnx, dynamic H/W).
                      ModelFileCase{"compact-x2.onnx", "input_64x36.png", 2, "ONNX graph",
                                    "compact-x2.pth.ref.png"},
                      ModelFileCase{"esrgan-x4.onnx", "input_64x36.png", 4, "ONNX graph",
                                    "esrgan-x4.pth.ref.png"},
                      ModelFileCase{"compact-x2-fp16.onnx", "input_64x36.png", 2, "ONNX graph",
                                    "compact-x2.pth.ref.png", true},
                      ModelFileCase{"realesr-animevideov3-x4.pth",
                                    "tests/golden/testsrc2_160x90.png", 4, "Compact"},
                      // RealPLKSR: GroupNorm blocks (x2, 17x17 kernel), LayerNorm blocks (x4,
                      // 13x13), LayerNorm without the EA attention (x2, 9x9), the DySample
                      // upsampler (x4: 4 groups, x3: 3 groups).
                      ModelFileCase{"realplksr-x2.pth", "input_64x36.png", 2, "RealPLKSR"},
                      ModelFileCase{"realplksr-layernorm-x4.safetensors", "input_32x18.png", 4,
                                    "RealPLKSR"},
                      ModelFileCase{"realplksr-layernorm-noea-x2.pth", "input_64x36.png", 2,
                                    "RealPLKSR"},
                      ModelFileCase{"realplksr-dysample-x4.pth", "input_32x18.png", 4,
                                    "RealPLKSR"},
                      ModelFileCase{"realplksr-dysample-x3.safetensors", "input_32x18.png", 3,
                                    "RealPLKSR"}),
    case_name);

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
            "Real-CUGAN network: Real-CUGAN .pth files are not supported yet (its ncnn files "
            "are)");
  EXPECT_NE(family_error("some.other.weight").find("unknown architecture"), std::string::npos);
}

TEST(ModelFileErrors, OnnxOpOutsideTheSetIsNamedWithItsNode) {
  try {
    nn::load_model_file(fixture("unsupported-op.onnx"));
    ADD_FAILURE() << "an ONNX graph with Softmax loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_EQ(e.problem(),
              "ONNX: node 'channel_softmax' (Softmax): op not supported (docs/MODELS.md lists what "
              "is supported)");
  }
  // Not ONNX at all.
  const fs::path dir = scratch_dir("model_file_not_onnx");
  write_file(dir / "x.onnx", "this is not a protobuf");
  EXPECT_THROW(nn::load_model_file(dir / "x.onnx"), Error);
}

}  // namespace
}  // namespace upframe::test
