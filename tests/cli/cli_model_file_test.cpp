// A user's own model file through the real CLI: `--model FILE.pth` (or .safetensors, or a NAME
// found in a models folder) with no --scale upscales by the model's own scale and gives
// PyTorch's picture; a pickle that would run a command is refused without running it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "nn/nn_test_util.hpp"
#include "support/test_support.hpp"

namespace upframe::test {
namespace {

fs::path fixture(const std::string& name) { return source_dir() / "tests/models/pytorch" / name; }

// `upframe INPUT --model MODEL` (fixtures) with no --scale, once per tile size: each output
// WIDTH x HEIGHT (the model's own scale) and within 50 dB and 2 levels of MODEL.ref.png.
void expect_cli_matches_pytorch(const std::string& test, const std::string& model,
                                const std::string& input, std::initializer_list<const char*> tiles,
                                int width, int height) {
  const fs::path dir = scratch_dir(test);
  const Rgb8 reference = read_png_rgb(fixture(model + ".ref.png"));
  for (const char* tile : tiles) {
    SCOPED_TRACE(std::string("tile ") + tile);
    const fs::path out = dir / (std::string("out_tile") + tile + ".png");
    const CommandResult r =
        run_cli(quote(fixture(input).string()) + " -o " + quote(out.string()) + " --model " +
                quote(fixture(model).string()) + " --precision fp32 --device cpu --tile " + tile);
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
    const Rgb8 got = read_png_rgb(out);
    ASSERT_EQ(got.width, width);
    ASSERT_EQ(got.height, height);
    const Comparison c = compare(got, reference);
    std::printf("%s tile %s: PSNR %.2f dB, max difference %d\n", model.c_str(), tile, c.psnr,
                c.max_difference);
    EXPECT_GE(c.psnr, 50.0);
    EXPECT_LE(c.max_difference, 2);
  }
}

TEST(CliModelFile, PthWithoutScaleMatchesPyTorchTiledAndUntiled) {
  expect_cli_matches_pytorch("cli_model_file_pth", "esrgan-x4.pth", "input_64x36.png", {"0", "32"},
                             256, 144);  // x4, read from the model
}

// An x2 model that pixel-unshuffles its input, on an odd-sized image, whole and in tiles.
TEST(CliModelFile, UnshuffledInputTiledAndUntiled) {
  expect_cli_matches_pytorch("cli_model_file_unshuffle", "esrgan-unshuffle-x2.pth",
                             "input_63x35.png", {"0", "32"}, 126, 70);
}

// RealPLKSR (LayerNorm blocks, 13x13 large kernel, x4 read from the file), whole and in tiles
// thinner than its receptive radius (20 px), and what model-info says of it.
TEST(CliModelFile, RealPlksrWithoutScaleTiledAndUntiled) {
  expect_cli_matches_pytorch("cli_model_file_realplksr", "realplksr-layernorm-x4.safetensors",
                             "input_32x18.png", {"0", "16"}, 128, 72);
  const fs::path model = fixture("realplksr-layernorm-x4.safetensors");
  const CommandResult info = run_cli("model-info --json " + quote(model.string()));
  ASSERT_EQ(info.exit_status, 0) << info.stderr_text;
  const auto json = nlohmann::json::parse(info.stdout_text);
  EXPECT_EQ(json.at("family"), "RealPLKSR");
  EXPECT_EQ(json.at("details"), "2 blocks, 16 features, 13x13 kernel on 4 channels, LayerNorm, EA");
  EXPECT_EQ(json.at("receptive_radius"), 20);
  EXPECT_EQ(json.at("whole_image"), false);
  EXPECT_EQ(json.at("ops").at("LayerNorm"), 2);
  // The GroupNorm form's statistics span the whole image.
  const CommandResult group_norm =
      run_cli("model-info " + quote(fixture("realplksr-x2.pth").string()));
  ASSERT_EQ(group_norm.exit_status, 0) << group_norm.stderr_text;
  EXPECT_NE(group_norm.stdout_text.find(
                "receptive radius: 24 px and the whole image (tiles change the output)"),
            std::string::npos)
      << group_norm.stdout_text;
}

// SPAN (whole and in tiles) and Real-CUGAN (whole frames: its SE blocks see the whole
// input) from their state dicts, the scale read from the file, against PyTorch.
TEST(CliModelFile, SpanAndRealCuganWithoutScaleMatchPyTorch) {
  const fs::path dir = scratch_dir("cli_model_file_span_cugan");
  struct Case {
    std::string model, input, tile;
    int width, height;
  };
  const fs::path full = source_dir() / "tests/golden/testsrc2_160x90.png";
  for (const Case& c :
       {Case{"span-x2.pth", full.string(), "0", 320, 180},
        Case{"span-x2.pth", full.string(), "32", 320, 180},
        Case{"realcugan-x3.pth", fixture("input_63x35.png").string(), "0", 189, 105}}) {
    SCOPED_TRACE(c.model + " tile " + c.tile);
    const fs::path out = dir / (c.model + "_tile" + c.tile + ".png");
    const CommandResult r = run_cli(quote(c.input) + " -o " + quote(out.string()) + " --model " +
                                    quote(fixture(c.model).string()) +
                                    " --precision fp32 --device cpu --tile " + c.tile);
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
    const Rgb8 got = read_png_rgb(out);
    ASSERT_EQ(got.width, c.width);
    ASSERT_EQ(got.height, c.height);
    const Comparison cmp = compare(got, read_png_rgb(fixture(c.model + ".ref.png")));
    std::printf("%s tile %s: PSNR %.2f dB, max difference %d\n", c.model.c_str(), c.tile.c_str(),
                cmp.psnr, cmp.max_difference);
    EXPECT_GE(cmp.psnr, 50.0);
    EXPECT_LE(cmp.max_difference, 2);
  }
}

TEST(CliModelFile, ScaleTheModelCannotGiveIsRefused) {
  const fs::path dir = scratch_dir("cli_model_file_scale");
  const fs::path out = dir / "out.png";
  const CommandResult r = run_cli(quote(fixture("input_64x36.png").string()) + " -o " +
                                  quote(out.string()) + " --scale 2 --model " +
                                  quote(fixture("compact-x4.safetensors").string()));
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("cannot give --scale 2"), std::string::npos) << r.stderr_text;
  EXPECT_FALSE(fs::exists(out));
}

// An ONNX layout change that is not a pixel (un)shuffle: one line naming the node, exit 2.
TEST(CliModelFile, OnnxReshapeOutsideTheSetIsRefusedNamingItsNode) {
  const fs::path dir = scratch_dir("cli_model_file_onnx_reshape");
  const fs::path model = fixture("unsupported-transpose.onnx");
  const fs::path out = dir / "out.png";
  const CommandResult r =
      run_cli(quote(fixture("input_64x36.png").string()) + " -o " + quote(out.string()) +
              " --device cpu --precision fp32 --model " + quote(model.string()));
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_EQ(r.stderr_text, "upframe: error: " + model.string() +
                               ": ONNX: node '/Transpose' (Transpose): a reshape and transpose "
                               "that is not a pixel shuffle or unshuffle (docs/MODELS.md lists "
                               "what is supported)\n");
  EXPECT_FALSE(fs::exists(out));
}

TEST(CliModelFile, MaliciousPickleRefusedWithOneLineAndNothingRun) {
  const fs::path dir = scratch_dir("cli_model_file_evil");
  const fs::path marker = "/tmp/upframe-evil-pickle-ran";
  fs::remove(marker);
  const fs::path evil = source_dir() / "tests/models/weights/evil_zip.pth";
  const fs::path out = dir / "out.png";
  const CommandResult r = run_cli(quote(fixture("input_64x36.png").string()) + " -o " +
                                  quote(out.string()) + " --device cpu --precision fp32 --model " +
                                  quote(evil.string()));
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_EQ(r.stderr_text, "upframe: error: " + evil.string() +
                               ": refused pickle GLOBAL 'posix.system': only tensors and "
                               "containers are loaded from PyTorch files\n");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(marker));
}

TEST(CliModelFile, NameFoundInTheUserModelsFolder) {
  const fs::path dir = scratch_dir("cli_model_file_name");
  const fs::path models = dir / "data" / "upframe" / "models";
  fs::create_directories(models);
  fs::copy_file(fixture("compact-x2.pth"), models / "mine.pth");
  const fs::path out = dir / "out.png";
  const CommandResult r = run_command(
      "XDG_DATA_HOME=" + quote((dir / "data").string()) + " " + quote(cli_path().string()) +
      " " + quote(fixture("input_64x36.png").string()) + " -o " + quote(out.string()) +
      " --model mine --precision fp32 --device cpu");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const Comparison c = compare(read_png_rgb(out), read_png_rgb(fixture("compact-x2.pth.ref.png")));
  EXPECT_GE(c.psnr, 50.0);
  EXPECT_LE(c.max_difference, 2);
}

TEST(CliModelFile, NameFoundInTheModelsDirFlag) {
  const fs::path dir = scratch_dir("cli_model_file_models_dir");
  fs::create_directories(dir / "mine");
  fs::copy_file(fixture("compact-x4.safetensors"), dir / "mine" / "photo.safetensors");
  const fs::path out = dir / "out.png";
  const CommandResult r =
      run_cli(quote(fixture("input_64x36.png").string()) + " -o " + quote(out.string()) +
              " --models-dir " + quote((dir / "mine").string()) +
              " --model photo --precision fp32 --device cpu");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(read_png_rgb(out).width, 256);  // x4, the model's own
  const CommandResult missing =
      run_cli(quote(fixture("input_64x36.png").string()) + " -o " +
              quote((dir / "out2.png").string()) + " --models-dir " +
              quote((dir / "nowhere").string()) + " --model photo --device cpu");
  EXPECT_EQ(missing.exit_status, 2);
  EXPECT_NE(missing.stderr_text.find("models folder not found"), std::string::npos)
      << missing.stderr_text;
  EXPECT_FALSE(fs::exists(dir / "out2.png"));
}

TEST(CliModelFile, ModelInfoDescribesTheFile) {
  const CommandResult r =
      run_cli("model-info --json " + quote(fixture("esrgan-old-x2.pth").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const auto info = nlohmann::json::parse(r.stdout_text);
  EXPECT_EQ(info.at("format"), "pytorch-legacy");
  EXPECT_EQ(info.at("family"), "ESRGAN");
  EXPECT_EQ(info.at("scale"), 2);
  EXPECT_EQ(info.at("input_channels"), 3);
  EXPECT_EQ(info.at("weight_precision"), "fp32");
  EXPECT_GT(info.at("parameters").get<int64_t>(), 0);
  EXPECT_EQ(info.at("ops").at("Interp"), 1);  // one x2 upsampling
  const CommandResult bad = run_cli("model-info " + quote(fixture("input_64x36.png").string()));
  EXPECT_NE(bad.exit_status, 0);
  EXPECT_NE(bad.stderr_text.find("upframe: error: "), std::string::npos);
}

}  // namespace
}  // namespace upframe::test
