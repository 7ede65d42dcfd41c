// Runs the shipped models on the golden inputs and compares with the PyTorch references
// (tests/golden/README.md): fp32 must agree to >= 50 dB PSNR and at most 2 levels.
#include <spdlog/spdlog.h>

#include "nn/nn_test_util.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::test {
namespace {

class Parity : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(Parity, Fp32MatchesReference) {
  const GoldenCase& pc = GetParam();
  auto model = source_model(pc.model_param);
  auto exec = nn::make_cpu_executor(model, nn::Precision::kFp32);
  Rgb8 input = read_png_rgb(source_dir() / "tests/golden" / pc.input);
  Rgb8 reference = read_png_rgb(source_dir() / "tests/golden" / pc.reference);
  nn::Tensor out = exec->run(to_tensor(input));
  ASSERT_EQ(out.channels, 3);
  ASSERT_EQ(out.width, reference.width);
  ASSERT_EQ(out.height, reference.height);
  ASSERT_EQ(out.width, input.width * model->info().scale);
  Comparison c = compare(to_rgb8(out), reference);
  RecordProperty("psnr", std::to_string(c.psnr));
  std::printf("%s on %s: PSNR %.2f dB, max difference %d\n", pc.model_param.c_str(),
              pc.input.c_str(), c.psnr, c.max_difference);
  EXPECT_GE(c.psnr, 50.0);
  EXPECT_LE(c.max_difference, 2);

  // A second run reuses the cached plan and buffers and gives the same result (checked on the
  // small network only, to keep the suite fast).
  if (pc.model_param.find("animevideov3-x4") != std::string::npos) {
    nn::Tensor again = exec->run(to_tensor(input));
    EXPECT_EQ(again.data, out.data);
  }
}

// bf16 (docs/INTERFACE.md, "Equality": at least 40 dB) against the fp32 result and the reference, on the CPUs where
// oneDNN runs bf16 (avx512_bf16 or AMX); skipped, saying so, elsewhere.
TEST_P(Parity, Bf16MatchesFp32AndReference) {
  if (!nn::cpu_supports_bf16())
    GTEST_SKIP() << "this CPU (oneDNN ISA " << nn::cpu_isa_name()
                 << ") has neither avx512_bf16 nor AMX: bf16 does not run here";
  const GoldenCase& pc = GetParam();
  auto model = source_model(pc.model_param);
  Rgb8 input = read_png_rgb(source_dir() / "tests/golden" / pc.input);
  Rgb8 reference = read_png_rgb(source_dir() / "tests/golden" / pc.reference);
  auto bf16 = nn::make_cpu_executor(model, nn::Precision::kBf16);
  EXPECT_EQ(bf16->precision(), nn::Precision::kBf16);
  Rgb8 out = to_rgb8(bf16->run(to_tensor(input)));
  Rgb8 fp32 = to_rgb8(nn::make_cpu_executor(model, nn::Precision::kFp32)->run(to_tensor(input)));
  ASSERT_EQ(out.pixels.size(), reference.pixels.size());
  Comparison vs_fp32 = compare(out, fp32), vs_reference = compare(out, reference);
  std::printf(
      "%s on %s, bf16: PSNR %.2f dB against fp32 (max difference %d), %.2f dB against "
      "the reference\n",
      pc.model_param.c_str(), pc.input.c_str(), vs_fp32.psnr, vs_fp32.max_difference,
      vs_reference.psnr);
  EXPECT_GE(vs_fp32.psnr, 40.0);
  EXPECT_GE(vs_reference.psnr, 40.0);
}

INSTANTIATE_TEST_SUITE_P(
    Golden, Parity,
    ::testing::Values(GoldenCase{"models/realesr-animevideov3-x2.param", "mandel_256x144.png",
                                 "mandel_256x144.animevideov3-x2.png"},
                      GoldenCase{"models/realesr-animevideov3-x4.param", "testsrc2_160x90.png",
                                 "testsrc2_160x90.animevideov3-x4.png"},
                      GoldenCase{"tests/models/realesrgan-x4plus-anime.param",
                                 "testsrc2_160x90.png", "testsrc2_160x90.x4plus-anime.png"}),
    golden_case_name);

}  // namespace
}  // namespace upframe::test

namespace upframe::test {
namespace {

// Real-CUGAN up2x (stretch goal, no PyTorch reference here): run as realcugan-ncnn-vulkan does
// (input padded by 18 px each side, the graph trims 36 px at 2x), the result must be a 2x
// image close to a bicubic 2x of the input, far closer than a wrong network would be.
TEST(RealCugan, Up2xGivesAPlausibleImage) {
  auto model = source_model("tests/models/realcugan/up2x-no-denoise.param");
  EXPECT_EQ(model->info().scale, 2);
  Rgb8 input = read_png_rgb(source_dir() / "tests/golden/testsrc2_160x90.png");
  nn::Tensor in = to_tensor(input);
  const nn::Tensor padded = reflect_padded(in, 18);
  nn::Tensor out = nn::make_cpu_executor(model, nn::Precision::kFp32)->run(padded);
  ASSERT_EQ(out.width, 2 * in.width);
  ASSERT_EQ(out.height, 2 * in.height);
  // Compare with a 2x bicubic of the input made by ffmpeg's scaler.
  fs::path dir = scratch_dir("realcugan");
  CommandResult r = run_command(
      "ffmpeg -v error -i " + quote((source_dir() / "tests/golden/testsrc2_160x90.png").string()) +
      " -vf scale=320:180:flags=bicubic " + quote((dir / "bicubic.png").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  Rgb8 result = to_rgb8(out);
  if (std::getenv("UPFRAME_NN_DUMP"))  // for looking at it: raw RGB24 320x180
    write_file(std::getenv("UPFRAME_NN_DUMP"),
               std::string(result.pixels.begin(), result.pixels.end()));
  Comparison c = compare(result, read_png_rgb(dir / "bicubic.png"));
  std::printf("realcugan up2x vs bicubic: PSNR %.2f dB\n", c.psnr);
  EXPECT_GE(c.psnr, 22.0);
}

}  // namespace
}  // namespace upframe::test
