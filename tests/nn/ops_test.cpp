// Op combinations beyond the one-op cases of the catalogue (op_cases.hpp, op_cases_test.cpp),
// each on a small hand-made graph written as .param text + .bin bytes, checked against a direct
// formula computed here.
#include <random>
#include <set>
#include <sstream>

#include "nn/nn_test_util.hpp"
#include "nn/op_cases.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::test {
namespace {

using nn::Tensor;

Tensor run_graph(const std::string& name, const std::vector<std::string>& layers,
                 const std::string& bin, const Tensor& input, int threads = 0) {
  auto model = write_model("nn-op-" + name, layers, bin);
  return nn::make_cpu_executor(model, nn::Precision::kFp32, threads)->run(input);
}

void expect_near(const Tensor& got, const Tensor& want, float tolerance) {
  ASSERT_EQ(got.channels, want.channels);
  ASSERT_EQ(got.height, want.height);
  ASSERT_EQ(got.width, want.width);
  float worst = 0;
  for (size_t i = 0; i < got.data.size(); ++i)
    worst = std::max(worst, std::abs(got.data[i] - want.data[i]));
  EXPECT_LE(worst, tolerance);
}

using op_cases::ref_conv;
using op_cases::ref_resize;

TEST(NnOps, InterpBicubicMatchesFormula) {
  Tensor in = random_tensor(3, 18, 24);
  for (auto [scale, text] :
       {std::pair{0.5f, "5.000000e-01"}, std::pair{2.f, "2.0"}, std::pair{0.75f, "7.500000e-01"}}) {
    std::string s(text);
    Tensor got = run_graph(
        "bicubic", {"Input in 0 1 data", "Interp up 1 1 data out 0=3 1=" + s + " 2=" + s}, "", in);
    SCOPED_TRACE(scale);
    expect_near(got, ref_resize(in, int(18 * scale), int(24 * scale), true), 2e-5f);
  }
}

// A squeeze-excitation block as in Real-CUGAN, on a 16-channel (oneDNN-blocked) convolution
// output: global average pooling, two InnerProducts, a per-channel broadcast multiply, and a
// numpy-style Crop (-23309/-23310/-23311) added back.
TEST(NnOps, SqueezeExcitationBroadcastAndCrop) {
  const int C = 16, H = 13, W = 17;
  Tensor in = random_tensor(3, H, W);
  auto w0 = random_values(C * 3 * 9, 1), b0 = random_values(C, 2);
  auto w1 = random_values(4 * C, 3), b1 = random_values(4, 4);
  auto w2 = random_values(C * 4, 5), b2 = random_values(C, 6);
  std::string bin = flag_fp32() + floats(w0) + floats(b0) + flag_fp32() + floats(w1) + floats(b1) +
                    flag_fp32() + floats(w2) + floats(b2);
  Tensor got =
      run_graph("se",
                {"Input in 0 1 data",
                 "Convolution conv 1 1 data a 0=16 1=3 4=1 5=1 6=432 9=2 -23310=1,1.000000e-01",
                 "Split sp 1 3 a a1 a2 a3", "Pooling gap 1 1 a1 g 0=1 4=1",
                 "InnerProduct fc1 1 1 g f1 0=4 1=1 2=64 9=1",
                 "InnerProduct fc2 1 1 f1 f2 0=16 1=1 2=64 9=4", "BinaryOp mul 2 1 a2 f2 m 0=2",
                 "Crop crop 1 1 a3 c -23309=2,2,1 -23310=2,-2,-3 -23311=2,-2,-1",
                 "Crop crop2 1 1 m d -23309=2,2,1 -23310=2,-2,-3 -23311=2,-2,-1",
                 "BinaryOp add 2 1 c d out 0=0"},
                bin, in);

  Tensor a = ref_conv(in, w0, b0, C, 3, 1, 1, 1, 1, H, W);
  for (float& v : a.data) v = v > 0 ? v : 0.1f * v;
  std::vector<double> pooled(C), f1(4), f2(C);
  for (int c = 0; c < C; ++c) {
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) pooled[c] += a.at(c, y, x);
    pooled[c] /= H * W;
  }
  for (int o = 0; o < 4; ++o) {
    double acc = b1[o];
    for (int i = 0; i < C; ++i) acc += w1[o * C + i] * pooled[i];
    f1[o] = std::max(acc, 0.0);
  }
  for (int o = 0; o < C; ++o) {
    double acc = b2[o];
    for (int i = 0; i < 4; ++i) acc += w2[o * 4 + i] * f1[i];
    f2[o] = 1 / (1 + std::exp(-acc));
  }
  Tensor want(C, H - 4, W - 4);  // rows 2..H-3, columns 1..W-4
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H - 4; ++y)
      for (int x = 0; x < W - 4; ++x) {
        float v = a.at(c, y + 2, x + 1);
        want.at(c, y, x) = v + float(v * f2[c]);
      }
  expect_near(got, want, 1e-4f);
}

// Concat of a plain 3-channel blob with a blocked 16-channel one, Eltwise with coefficients,
// PReLU folded into a convolution, and Padding.
TEST(NnOps, ConcatEltwisePReLUPadding) {
  Tensor in = random_tensor(3, 9, 10);
  auto w = random_values(16 * 27, 31), slopes = random_values(16, 32, 1.f);
  Tensor got = run_graph(
      "concat",
      {"Input in 0 1 data", "Split sp 1 3 data d1 d2 d3",
       "Convolution c 1 1 d1 c1 0=16 1=3 4=1 6=432", "PReLU p 1 1 c1 c2 0=16",
       "Concat cat 2 1 d2 c2 cat 0=0", "Convolution c3 1 1 d3 e 0=19 1=1 6=57",
       "Eltwise sum 2 1 cat e s 0=1 -23301=2,2.000000e-01,1.0",
       "Padding pad 1 1 s out 0=1 1=2 2=3 3=1 4=2"},
      flag_fp32() + floats(w) + floats(slopes) + flag_fp32() + floats(std::vector<float>(57, 0.5f)),
      in);
  Tensor conv = ref_conv(in, w, {}, 16, 3, 1, 1, 1, 1, 9, 10);
  Tensor want(19, 9 + 3, 10 + 4);
  auto reflect = [](int i, int n) { return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i; };
  for (int c = 0; c < 19; ++c)
    for (int y = 0; y < want.height; ++y)
      for (int x = 0; x < want.width; ++x) {
        int sy = reflect(y - 1, 9), sx = reflect(x - 3, 10);
        float v = c < 3 ? in.at(c, sy, sx) : conv.at(c - 3, sy, sx);
        if (c >= 3 && v < 0) v *= slopes[c - 3];
        float e = 0.5f * (in.at(0, sy, sx) + in.at(1, sy, sx) + in.at(2, sy, sx));
        want.at(c, y, x) = 0.2f * v + e;
      }
  expect_near(got, want, 1e-4f);
}

TEST(NnOps, BroadcastThatDoesNotFitIsABadShape) {
  Tensor in = random_tensor(3, 4, 4);
  try {
    run_graph("badbroadcast",
              {"Input in 0 1 data", "Split sp 1 2 data a b", "Interp up 1 1 b c 0=1 1=2.0 2=2.0",
               "BinaryOp add 2 1 a c out 0=0"},
              "", in);
    FAIL() << "mismatched shapes accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot broadcast 3x64x64 with 3x128x128"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace upframe::test

namespace upframe::test {
namespace {

// The CPU executor runs stride-1 convolutions between nhwc blobs in bands of output rows
// (UPFRAME_NN_BAND_BYTES sets their size; 0: no bands), with the PReLU and, in bf16, the
// conversion applied per band. One-row bands (the top and bottom ones padded, a 5x5 kernel
// reaching two rows out) must give the direct formula, as whole-image convolutions do.
TEST(NnOps, BandedConvolutionsMatchWholeImage) {
  const int h = 11, w = 19, c = 32;
  Tensor in = random_tensor(3, h, w);
  auto w1 = random_values(size_t(c) * 3 * 9, 41), w2 = random_values(size_t(c) * c * 25, 42, 0.1f);
  auto s1 = random_values(c, 43, 1.f), s2 = random_values(c, 44, 1.f);
  auto model = write_model(
      "nn-op-banded",
      {"Input in 0 1 data", "Convolution c1 1 1 data a 0=32 1=3 4=1 6=864", "PReLU p1 1 1 a b 0=32",
       "Convolution c2 1 1 b d 0=32 1=5 4=2 6=25600", "PReLU p2 1 1 d out 0=32"},
      flag_fp32() + floats(w1) + floats(s1) + flag_fp32() + floats(w2) + floats(s2));
  auto prelu = [](Tensor t, const std::vector<float>& slopes) {
    for (int ch = 0; ch < t.channels; ++ch)
      for (int y = 0; y < t.height; ++y)
        for (int x = 0; x < t.width; ++x)
          if (t.at(ch, y, x) < 0) t.at(ch, y, x) *= slopes[ch];
    return t;
  };
  Tensor want = prelu(ref_conv(prelu(ref_conv(in, w1, {}, c, 3, 1, 1, 1, 1, h, w), s1), w2, {}, c,
                               5, 1, 1, 2, 2, h, w),
                      s2);
  auto run = [&](const char* band_bytes, nn::Precision precision) {
    setenv("UPFRAME_NN_BAND_BYTES", band_bytes, 1);
    Tensor out = nn::make_cpu_executor(model, precision)->run(in);
    unsetenv("UPFRAME_NN_BAND_BYTES");
    return out;
  };
  const std::string one_row = std::to_string(w * c * sizeof(float));
  expect_near(run(one_row.c_str(), nn::Precision::kFp32), want, 1e-4f);
  expect_near(run("0", nn::Precision::kFp32), want, 1e-4f);
  if (!nn::cpu_supports_bf16()) {
    std::printf("bf16 part skipped: this CPU (%s) has neither avx512_bf16 nor AMX\n",
                nn::cpu_isa_name().c_str());
    return;
  }
  // bf16: inputs and weights rounded to 8 significant bits, sums over up to 800 products.
  expect_near(run(one_row.c_str(), nn::Precision::kBf16), want, 0.1f);
  expect_near(run(one_row.c_str(), nn::Precision::kBf16), run("0", nn::Precision::kBf16), 0.02f);
}

}  // namespace
}  // namespace upframe::test
