// The CUDA executor against the CPU (oneDNN) executor and the golden references: each op on a
// small hand-made graph (fp32 within 1e-4, fp16 within a tolerance for fp16 storage), the
// shipped models on the golden inputs (fp16 >= 40 dB, fp32 >= 50 dB PSNR), tiled against
// untiled, the device entry point, and device out-of-memory. Every test skips without a device.
#include <cuda_runtime_api.h>

#include <random>
#include <set>
#include <sstream>

#include "nn/nn_test_util.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/cuda_executor.hpp"
#include "upframe/nn/model.hpp"
#include "upframe/nn/model_file.hpp"
#include "upframe/nn/tiling.hpp"
#include "upframe/tile_mask.hpp"

namespace upframe::test {
namespace {

using nn::Tensor;

#define SKIP_WITHOUT_DEVICE()                       \
  do {                                              \
    auto dev = upframe::cuda_device_info();         \
    if (!dev.available) GTEST_SKIP() << dev.reason; \
  } while (0)

// fp16 storage rounds each stored value to 11 significant bits (relative 2^-11 ~ 5e-4); errors
// add up over a few layers of values of order 1.
constexpr float kFp32Tolerance = 1e-4f;
constexpr float kFp16Tolerance = 2e-2f;

float max_difference(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.channels, b.channels);
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.width, b.width);
  if (a.data.size() != b.data.size()) return INFINITY;
  float worst = 0;
  for (size_t i = 0; i < a.data.size(); ++i)
    worst = std::max(worst, std::abs(a.data[i] - b.data[i]));
  return worst;
}

// Runs the graph on the CPU (fp32) and on CUDA in fp32 and fp16; checks both CUDA results.
void expect_backends_agree(const std::string& name, const std::vector<std::string>& layers,
                           const std::string& bin, const Tensor& input,
                           float fp16_tolerance = kFp16Tolerance) {
  SCOPED_TRACE(name);
  auto model = write_model("nn-cuda-" + name, layers, bin);
  Tensor cpu = nn::make_cpu_executor(model, nn::Precision::kFp32)->run(input);
  Tensor fp32 = nn::make_cuda_executor(model, nn::Precision::kFp32)->run(input);
  EXPECT_LE(max_difference(fp32, cpu), kFp32Tolerance) << "fp32";
  Tensor fp16 = nn::make_cuda_executor(model, nn::Precision::kFp16)->run(input);
  EXPECT_LE(max_difference(fp16, cpu), fp16_tolerance) << "fp16";
}

TEST(NnCuda, ConvolutionStrideDilationSamePaddingGroupsActivations) {
  SKIP_WITHOUT_DEVICE();
  Tensor in = random_tensor(4, 11, 14);
  auto w = random_values(8 * 4 * 9, 21), b = random_values(8, 22);
  std::string bin = flag_fp32() + floats(w) + floats(b);
  // SAME_UPPER with stride 2: asymmetric padding (the padded-copy path).
  expect_backends_agree(
      "conv-same",
      {"Input in 0 1 data", "Convolution c 1 1 data out 0=8 1=3 3=2 4=-233 5=1 6=288 9=1"}, bin,
      in);
  expect_backends_agree("conv-dilated-clip",
                        {"Input in 0 1 data",
                         "Convolution c 1 1 data out 0=8 1=3 2=2 4=2 5=1 6=288 9=3 "
                         "-23310=2,-1.000000e-01,2.000000e-01"},
                        bin, in);
  expect_backends_agree(
      "conv-leaky-sigmoid",
      {"Input in 0 1 data",
       "Convolution c 1 1 data a 0=8 1=3 4=1 5=1 6=288 9=2 "
       "-23310=1,1.000000e-01",
       "Convolution c2 1 1 a out 0=8 1=3 4=1 5=1 6=576 9=4"},
      bin + flag_fp32() + floats(random_values(8 * 8 * 9, 24)) + floats(random_values(8, 25)), in);
  auto wg = random_values(8 * 2 * 9, 23);
  expect_backends_agree(
      "conv-groups",
      {"Input in 0 1 data", "ConvolutionDepthWise c 1 1 data out 0=8 1=3 4=1 6=144 7=2"},
      flag_fp32() + floats(wg), in);
}

TEST(NnCuda, Deconvolution) {
  SKIP_WITHOUT_DEVICE();
  Tensor in = random_tensor(4, 7, 9);
  auto w = random_values(3 * 4 * 16, 11), b = random_values(3, 12);
  expect_backends_agree(
      "deconv4", {"Input in 0 1 data", "Deconvolution dc 1 1 data out 0=3 1=4 3=2 4=3 5=1 6=192"},
      flag_fp32() + floats(w) + floats(b), in);
  auto w2 = random_values(8 * 4 * 4, 13);
  expect_backends_agree(
      "deconv2", {"Input in 0 1 data", "Deconvolution dc 1 1 data out 0=8 1=2 3=2 6=128 9=1"},
      flag_fp32() + floats(w2), in);
  // Grouped, with output padding (18=1: one extra row and column).
  auto w3 = random_values(8 * 2 * 9, 14);
  expect_backends_agree(
      "deconv-groups",
      {"Input in 0 1 data", "DeconvolutionDepthWise dc 1 1 data out 0=4 1=3 3=2 4=1 6=72 7=2 18=1"},
      flag_fp32() + floats(w3), in);
}

TEST(NnCuda, ConcatEltwisePReLUPadding) {
  SKIP_WITHOUT_DEVICE();
  Tensor in = random_tensor(3, 9, 10);
  auto w = random_values(16 * 27, 31), slopes = random_values(16, 32, 1.f);
  expect_backends_agree(
      "concat",
      {"Input in 0 1 data", "Split sp 1 3 data d1 d2 d3",
       "Convolution c 1 1 d1 c1 0=16 1=3 4=1 6=432", "PReLU p 1 1 c1 c2 0=16",
       "Concat cat 2 1 d2 c2 cat 0=0", "Convolution c3 1 1 d3 e 0=19 1=1 6=57",
       "Eltwise sum 2 1 cat e s 0=1 -23301=2,2.000000e-01,1.0",
       "Padding pad 1 1 s out 0=1 1=2 2=3 3=1 4=2"},
      flag_fp32() + floats(w) + floats(slopes) + flag_fp32() + floats(std::vector<float>(57, 0.5f)),
      in);
  // Standalone activation layers (PReLU not after a convolution), Eltwise product and max,
  // constant and replicate padding.
  expect_backends_agree(
      "activations",
      {"Input in 0 1 data", "Split sp 1 4 data a b c d", "ReLU r 1 1 a ra",
       "ReLU lr 1 1 b rb 0=2.000000e-01", "Sigmoid s 1 1 c rc", "PReLU p 1 1 d rd 0=3",
       "Eltwise prod 2 1 ra rb e1 0=0", "Eltwise mx 3 1 e1 rc rd e2 0=2",
       "Padding pad 1 1 e2 p1 0=2 1=1 2=0 3=3 4=0 5=2.500000e-01",
       "Padding pad2 1 1 p1 out 0=1 1=2 2=2 3=1 4=1"},
      floats({0.1f, -0.5f, 2.f}), in);
}

TEST(NnCuda, PixelShuffleBothModesAndBinaryOps) {
  SKIP_WITHOUT_DEVICE();
  Tensor in = random_tensor(8, 5, 6);
  for (int mode : {0, 1})
    expect_backends_agree(
        "pixelshuffle" + std::to_string(mode),
        {"Input in 0 1 data 2=8", "PixelShuffle ps 1 1 data p 0=2 1=" + std::to_string(mode),
         "BinaryOp sc 1 1 p out 0=7 1=1 2=1.5"},
        "", in);
  // Every kind, same-shape and with a scalar (inputs kept positive for pow and div).
  Tensor positive = in;
  for (float& v : positive.data) v = 0.5f + std::abs(v);
  for (int kind = 0; kind <= 8; ++kind) {
    const std::string k = std::to_string(kind);
    expect_backends_agree(
        "binary" + k,
        {"Input in 0 1 data 2=8", "Split sp 1 2 data a b", "BinaryOp sq 1 1 b c 0=2 1=1 2=1.25",
         "BinaryOp op 2 1 a c d 0=" + k, "BinaryOp sc 1 1 d out 0=" + k + " 1=1 2=0.75"},
        "", positive);
  }
}

// A squeeze-excitation block: global pooling, InnerProduct, per-channel broadcast, crops.
TEST(NnCuda, SqueezeExcitationBroadcastAndCrop) {
  SKIP_WITHOUT_DEVICE();
  const int C = 16, H = 13, W = 17;
  Tensor in = random_tensor(3, H, W);
  auto w0 = random_values(C * 3 * 9, 1), b0 = random_values(C, 2);
  auto w1 = random_values(4 * C, 3), b1 = random_values(4, 4);
  auto w2 = random_values(C * 4, 5), b2 = random_values(C, 6);
  std::string bin = flag_fp32() + floats(w0) + floats(b0) + flag_fp32() + floats(w1) + floats(b1) +
                    flag_fp32() + floats(w2) + floats(b2);
  expect_backends_agree(
      "se",
      {"Input in 0 1 data",
       "Convolution conv 1 1 data a 0=16 1=3 4=1 5=1 6=432 9=2 -23310=1,1.000000e-01",
       "Split sp 1 3 a a1 a2 a3", "Pooling gap 1 1 a1 g 0=1 4=1",
       "InnerProduct fc1 1 1 g f1 0=4 1=1 2=64 9=1", "InnerProduct fc2 1 1 f1 f2 0=16 1=1 2=64 9=4",
       "BinaryOp mul 2 1 a2 f2 m 0=2",
       "Crop crop 1 1 a3 c -23309=2,2,1 -23310=2,-2,-3 -23311=2,-2,-1",
       "Crop crop2 1 1 m d -23309=2,2,1 -23310=2,-2,-3 -23311=2,-2,-1",
       "BinaryOp add 2 1 c d out 0=0"},
      bin, in);
}

TEST(NnCuda, InterpNearestBilinearBicubic) {
  SKIP_WITHOUT_DEVICE();
  Tensor in = random_tensor(5, 9, 13);
  expect_backends_agree("interp-nearest",
                        {"Input in 0 1 data 2=5", "Interp up 1 1 data out 0=1 1=2.0 2=2.0"}, "",
                        in);
  expect_backends_agree("interp-bilinear",
                        {"Input in 0 1 data 2=5", "Interp up 1 1 data out 0=2 3=20 4=31"}, "", in);
  expect_backends_agree("interp-bicubic",
                        {"Input in 0 1 data 2=5", "Interp up 1 1 data out 0=3 1=3.0 2=3.0"}, "",
                        in);
}

TEST(NnCuda, Bf16IsAUsageError) {
  // No device needed: the precision is refused before the device is touched.
  auto model = write_model("nn-cuda-bf16", {"Input in 0 1 data", "Sigmoid s 1 1 data out"}, "");
  EXPECT_THROW(nn::make_cuda_executor(model, nn::Precision::kBf16), UsageError);
}

class NnCudaGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(NnCudaGolden, Fp16And32MatchReference) {
  SKIP_WITHOUT_DEVICE();
  const GoldenCase& gc = GetParam();
  auto model = source_model(gc.model_param);
  Rgb8 input = read_png_rgb(source_dir() / "tests/golden" / gc.input);
  Rgb8 reference = read_png_rgb(source_dir() / "tests/golden" / gc.reference);
  for (nn::Precision precision : {nn::Precision::kFp32, nn::Precision::kFp16}) {
    SCOPED_TRACE(nn::precision_name(precision));
    auto exec = nn::make_cuda_executor(model, precision);
    Tensor out = exec->run(to_tensor(input));
    ASSERT_EQ(out.width, reference.width);
    ASSERT_EQ(out.height, reference.height);
    Comparison c = compare(to_rgb8(out), reference);
    std::printf("CUDA %s %s on %s: PSNR %.2f dB, max difference %d\n",
                nn::precision_name(precision), gc.model_param.c_str(), gc.input.c_str(), c.psnr,
                c.max_difference);
    if (precision == nn::Precision::kFp32) {
      EXPECT_GE(c.psnr, 50.0);
      EXPECT_LE(c.max_difference, 2);
    } else {
      EXPECT_GE(c.psnr, 40.0);
    }
    // The cached plan gives the same result again.
    Tensor again = exec->run(to_tensor(input));
    EXPECT_EQ(again.data, out.data);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Golden, NnCudaGolden,
    ::testing::Values(GoldenCase{"models/realesr-animevideov3-x2.param", "mandel_256x144.png",
                                 "mandel_256x144.animevideov3-x2.png"},
                      GoldenCase{"tests/models/realesrgan-x4plus-anime.param",
                                 "testsrc2_160x90.png", "testsrc2_160x90.x4plus-anime.png"}),
    golden_case_name);

// Real-CUGAN up2x (Deconvolution, Crop, Pooling, InnerProduct, broadcast BinaryOp): CUDA
// against the CPU executor on the same padded input.
TEST(NnCuda, RealCuganMatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  auto model = source_model("tests/models/realcugan/up2x-no-denoise.param");
  Tensor in = to_tensor(read_png_rgb(source_dir() / "tests/golden/testsrc2_160x90.png"));
  const Tensor padded = reflect_padded(in, 18);
  Rgb8 cpu = to_rgb8(nn::make_cpu_executor(model, nn::Precision::kFp32)->run(padded));
  for (nn::Precision precision : {nn::Precision::kFp32, nn::Precision::kFp16}) {
    Comparison c = compare(to_rgb8(nn::make_cuda_executor(model, precision)->run(padded)), cpu);
    std::printf("CUDA %s realcugan up2x vs CPU: PSNR %.2f dB\n", nn::precision_name(precision),
                c.psnr);
    EXPECT_GE(c.psnr, precision == nn::Precision::kFp32 ? 50.0 : 40.0);
  }
}

// Users' SPAN and Real-CUGAN files (tests/models/pytorch) built as ncnn graphs: CUDA against
// the CPU executor (SPAN's SiLU and attention, Real-CUGAN's in-graph reflection padding, crops
// to a reference blob and the pro input/output transform).
// Each model file of tests/models/pytorch on CUDA, fp32 and fp16, against the CPU's fp32 output
// on input_63x35.png.
void expect_model_files_match_cpu(std::initializer_list<const char*> files) {
  const fs::path dir = source_dir() / "tests/models/pytorch";
  for (const char* file : files) {
    SCOPED_TRACE(file);
    auto model = nn::load_model_file(dir / file);
    Tensor in = to_tensor(read_png_rgb(dir / "input_63x35.png"));
    Rgb8 cpu = to_rgb8(nn::make_cpu_executor(model, nn::Precision::kFp32)->run(in));
    for (nn::Precision precision : {nn::Precision::kFp32, nn::Precision::kFp16}) {
      Comparison c = compare(to_rgb8(nn::make_cuda_executor(model, precision)->run(in)), cpu);
      std::printf("CUDA %s %s vs CPU: PSNR %.2f dB\n", nn::precision_name(precision), file, c.psnr);
      EXPECT_GE(c.psnr, precision == nn::Precision::kFp32 ? 50.0 : 40.0);
    }
  }
}

TEST(NnCuda, SpanAndRealCuganModelFilesMatchCpu) {
  SKIP_WITHOUT_DEVICE();
  expect_model_files_match_cpu(
      {"span-x2.pth", "span-x4.safetensors", "realcugan-x3.pth", "realcugan-pro-x4.safetensors"});
}

// RealPLKSR: Mish fused into the convolutions, the channel crop and concat, GroupNorm,
// LayerNorm and DySample on the device.
TEST(NnCuda, RealPlksrModelFilesMatchCpu) {
  SKIP_WITHOUT_DEVICE();
  expect_model_files_match_cpu({"realplksr-x2.pth", "realplksr-layernorm-x4.safetensors",
                                "realplksr-layernorm-noea-x2.pth", "realplksr-dysample-x4.pth",
                                "realplksr-dysample-x3.safetensors"});
}

TEST(NnCuda, TiledEqualsUntiled) {
  SKIP_WITHOUT_DEVICE();
  auto model = source_model("models/realesr-animevideov3-x2.param");
  Tensor input = to_tensor(read_png_rgb(source_dir() / "tests/golden/mandel_256x144.png"));
  const nn::ModelInfo& info = model->info();
  for (nn::Precision precision : {nn::Precision::kFp32, nn::Precision::kFp16}) {
    SCOPED_TRACE(nn::precision_name(precision));
    auto exec = nn::make_cuda_executor(model, precision);
    Tensor whole = exec->run(input);
    Tensor tiled =
        nn::run_tiled(*exec, input, 64, info.receptive_radius, info.scale, info.tile_alignment);
    // Tiles may get other cuDNN algorithms than the whole image: reassociation only in fp32;
    // in fp16 the stored intermediate values may round the other way.
    if (precision == nn::Precision::kFp32) {
      EXPECT_LE(max_difference(tiled, whole), 1e-3f);
    } else {
      EXPECT_GE(compare(to_rgb8(tiled), to_rgb8(whole)).psnr, 50.0);
    }
  }
}

// Tile reuse on CUDA: every other tile of 64 computed in the windows the pipeline's workers
// run, the others taken from the whole-image result (as the save stage takes the previous
// frame's): equal to the whole image, no seam.
TEST(NnCuda, ReuseWindowsEqualUntiled) {
  SKIP_WITHOUT_DEVICE();
  auto model = source_model("models/realesr-animevideov3-x2.param");
  Tensor input = to_tensor(read_png_rgb(source_dir() / "tests/golden/mandel_256x144.png"));
  const nn::ModelInfo& info = model->info();
  TileMask mask(input.width, input.height, 64);
  for (size_t t = 0; t < mask.changed.size(); ++t) mask.changed[t] = t % 2 == 0;
  for (nn::Precision precision : {nn::Precision::kFp32, nn::Precision::kFp16}) {
    SCOPED_TRACE(nn::precision_name(precision));
    auto exec = nn::make_cuda_executor(model, precision);
    const Tensor whole = exec->run(input);
    Tensor reused = whole;
    nn::run_reuse_windows(*exec, input,
                          reuse_windows(mask, info.receptive_radius + kReuseExtraMargin, 8), 0,
                          info.receptive_radius, info.scale, kReuseExtraMargin, reused);
    if (precision == nn::Precision::kFp32) {
      EXPECT_LE(max_difference(reused, whole), 1e-3f);
    } else {
      EXPECT_GE(compare(to_rgb8(reused), to_rgb8(whole)).psnr, 50.0);
    }
  }
}

// The device entry point gives what run() gives.
TEST(NnCuda, RunDeviceMatchesRun) {
  SKIP_WITHOUT_DEVICE();
  auto model = source_model("models/realesr-animevideov3-x2.param");
  Tensor input = random_tensor(3, 40, 56, 99);
  for (float& v : input.data) v = 0.5f + 0.5f * v;
  nn::cuda::CudaExecutor exec(model, nn::Precision::kFp16, 0);
  Tensor expected = exec.run(input);
  nn::cuda::ImageShape out = exec.output_shape(3, 40, 56);
  ASSERT_EQ(out.channels, expected.channels);
  ASSERT_EQ(out.height, expected.height);
  ASSERT_EQ(out.width, expected.width);
  const size_t in_bytes = input.data.size() * sizeof(float);
  const size_t out_bytes = expected.data.size() * sizeof(float);
  void *d_in = nullptr, *d_out = nullptr;
  ASSERT_EQ(cudaMalloc(&d_in, in_bytes), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_out, out_bytes), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(d_in, input.data.data(), in_bytes, cudaMemcpyHostToDevice), cudaSuccess);
  exec.run_device(static_cast<const float*>(d_in), 3, 40, 56, static_cast<float*>(d_out));
  ASSERT_EQ(cudaStreamSynchronize(exec.stream()), cudaSuccess);
  std::vector<float> got(expected.data.size());
  ASSERT_EQ(cudaMemcpy(got.data(), d_out, out_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  cudaFree(d_in);
  cudaFree(d_out);
  EXPECT_EQ(got, expected.data);
}

// A plan far beyond any card's memory (two 64 GiB activation buffers in fp32) fails with
// CudaOutOfMemory, and the executor still works afterwards at a size that fits.
TEST(NnCuda, OutOfMemoryIsReportedAndRecoverable) {
  SKIP_WITHOUT_DEVICE();
  auto model = source_model("models/realesr-animevideov3-x2.param");
  nn::cuda::CudaExecutor exec(model, nn::Precision::kFp32, 0);
  try {
    exec.output_shape(3, 16384, 16384);
    FAIL() << "no CudaOutOfMemory for a 16384x16384 input";
  } catch (const nn::CudaOutOfMemory& e) {
    std::printf("as expected: %s\n", e.what());
    EXPECT_GT(e.bytes(), size_t(1) << 30);
  }
  Tensor small = random_tensor(3, 16, 16);
  Tensor out = exec.run(small);
  EXPECT_EQ(out.width, 32);
}

TEST(NnCuda, BytesPerInputPixelCoversAPlan) {
  // No device needed: arithmetic on the graph.
  auto model = source_model("models/realesr-animevideov3-x2.param");
  size_t fp32 = nn::cuda_bytes_per_input_pixel(*model, nn::Precision::kFp32);
  size_t fp16 = nn::cuda_bytes_per_input_pixel(*model, nn::Precision::kFp16);
  EXPECT_GT(fp32, fp16);
  // At least the buffer plan's activations (fp32 ones are model_bytes_per_input_pixel).
  EXPECT_GE(fp32, nn::model_bytes_per_input_pixel(*model));
}

}  // namespace
}  // namespace upframe::test
