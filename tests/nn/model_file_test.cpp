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
                      // The importer's layout and shape ops, torch.onnx at opsets 11 and 17.
                      onnx_case("onnx-deconv", 11), onnx_case("onnx-deconv", 17),
                      onnx_case("onnx-shuffle", 11), onnx_case("onnx-shuffle", 17),
                      onnx_case("onnx-shuffle-view", 11), onnx_case("onnx-shuffle-view", 17),
                      onnx_case("onnx-dcr-view", 11), onnx_case("onnx-dcr-view", 17),
                      onnx_case("onnx-se", 11), onnx_case("onnx-se", 17),
                      onnx_case("onnx-depth-ops"), onnx_case("onnx-opset18"),
                      ModelFileCase{"realesr-animevideov3-x4.pth",
                                    "tests/golden/testsrc2_160x90.png", 4, "Compact"}),
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
    const nn::Tensor tiled =
        nn::run_tiled(*executor, to_tensor(input), 16, info.receptive_radius, info.scale);
    EXPECT_LT(max_abs_difference(whole, tiled), 1e-4f) << "radius " << info.receptive_radius;
  }
  EXPECT_TRUE(nn::load_model_file(fixture("onnx-se-17.onnx"))->info().global_context);
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

TEST(ModelFileErrors, RecognisedButUnsupportedFamiliesAreNamed) {
  const fs::path dir = scratch_dir("model_file_families");
  auto family_error = [&](const std::string& key) -> std::string {
    // A safetensors file holding one tensor under `key`.
    const std::string header = "{\"" + key + "\":{\"dtype\":\"F32\",\"shape\":[1],"
                               "\"data_offsets\":[0,4]}}";
    std::string bytes(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(bytes.data(), &n, 8);
    bytes += header + std::string(4, '\0');
    write_file(dir / "m.safetensors", bytes);
    try {
      nn::load_model_file(dir / "m.safetensors");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage) << e.what();
      return e.problem();
    }
    return "loaded";
  };
  EXPECT_EQ(family_error("layers.0.residual_group.blocks.0.attn.relative_position_bias_table"),
            "SwinIR network: transformer networks are not supported");
  EXPECT_EQ(family_error("unet1.conv1.conv.0.weight"),
            "Real-CUGAN network: Real-CUGAN .pth files are not supported yet (its ncnn files "
            "are)");
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
