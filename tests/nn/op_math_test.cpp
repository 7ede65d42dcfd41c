// The shared per-element arithmetic (src/nn/op_math.hpp) that the CPU executor runs here and
// the CUDA kernels run on the device: each function against its definition.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "../../src/nn/op_math.hpp"

namespace upframe::nn {
namespace {

TEST(NnOpMath, Activations) {
  ActivationSpec spec;
  auto act = [&](float v, int channel = 0) {
    return math::activate(math::activation_args(spec), v, channel);
  };
  EXPECT_EQ(act(-2.f), -2.f);
  spec.type = Activation::kReLU;
  EXPECT_EQ(act(-2.f), 0.f);
  EXPECT_EQ(act(3.f), 3.f);
  spec.type = Activation::kLeakyReLU;
  spec.alpha = 0.1f;
  EXPECT_FLOAT_EQ(act(-2.f), -0.2f);
  spec.type = Activation::kClip;
  spec.alpha = -0.5f;
  spec.beta = 0.25f;
  EXPECT_EQ(act(-2.f), -0.5f);
  EXPECT_EQ(act(2.f), 0.25f);
  EXPECT_EQ(act(0.1f), 0.1f);
  spec.type = Activation::kSigmoid;
  EXPECT_FLOAT_EQ(act(0.7f), 1.f / (1.f + std::exp(-0.7f)));
  spec.type = Activation::kPReLU;
  spec.prelu_slopes = {0.5f, 0.25f};
  EXPECT_EQ(act(-2.f, 0), -1.f);
  EXPECT_EQ(act(-2.f, 1), -0.5f);
  EXPECT_EQ(act(2.f, 1), 2.f);
  spec.prelu_slopes = {0.5f};  // one slope shared by every channel
  EXPECT_EQ(act(-2.f, 7), -1.f);
}

TEST(NnOpMath, BinaryKinds) {
  const float a = 3.f, b = 2.f;
  EXPECT_EQ(math::binary(BinaryKind::kAdd, a, b), 5.f);
  EXPECT_EQ(math::binary(BinaryKind::kSub, a, b), 1.f);
  EXPECT_EQ(math::binary(BinaryKind::kMul, a, b), 6.f);
  EXPECT_EQ(math::binary(BinaryKind::kDiv, a, b), 1.5f);
  EXPECT_EQ(math::binary(BinaryKind::kMax, a, b), 3.f);
  EXPECT_EQ(math::binary(BinaryKind::kMin, a, b), 2.f);
  EXPECT_EQ(math::binary(BinaryKind::kPow, a, b), 9.f);
  EXPECT_EQ(math::binary(BinaryKind::kRSub, a, b), -1.f);
  EXPECT_FLOAT_EQ(math::binary(BinaryKind::kRDiv, a, b), 2.f / 3.f);
}

TEST(NnOpMath, PaddingSourceAndPixelShuffle) {
  EXPECT_EQ(math::padding_source(2, 5, PaddingType::kConstant), 2);
  EXPECT_EQ(math::padding_source(-1, 5, PaddingType::kConstant), -1);
  EXPECT_EQ(math::padding_source(-2, 5, PaddingType::kReplicate), 0);
  EXPECT_EQ(math::padding_source(6, 5, PaddingType::kReplicate), 4);
  EXPECT_EQ(math::padding_source(-2, 5, PaddingType::kReflect), 2);
  EXPECT_EQ(math::padding_source(6, 5, PaddingType::kReflect), 2);
  // 2 output channels, factor 2: PyTorch order takes channel p*4 + sub, DCR sub*2 + p.
  EXPECT_EQ(math::pixelshuffle_source_channel(1, 1, 0, 2, 2, PixelShuffleMode::kPyTorch), 6);
  EXPECT_EQ(math::pixelshuffle_source_channel(1, 1, 0, 2, 2, PixelShuffleMode::kDepthToSpace), 5);
}

TEST(NnOpMath, TapsStayInRangeAndSumToOne) {
  for (ResizeType type : {ResizeType::kNearest, ResizeType::kBilinear, ResizeType::kBicubic})
    for (auto [in, out] : {std::pair{9, 18}, {13, 20}, {20, 7}, {1, 4}}) {
      SCOPED_TRACE(std::to_string(int(type)) + ": " + std::to_string(in) + " -> " +
                   std::to_string(out));
      math::Taps t = math::make_taps(type, in, out, float(out) / in, true);
      ASSERT_EQ(t.index.size(), size_t(out) * t.count);
      ASSERT_EQ(t.weight.size(), t.index.size());
      for (int i = 0; i < out; ++i) {
        float sum = 0;
        for (int k = 0; k < t.count; ++k) {
          EXPECT_GE(t.index[i * t.count + k], 0);
          EXPECT_LT(t.index[i * t.count + k], in);
          sum += t.weight[i * t.count + k];
        }
        EXPECT_NEAR(sum, 1.f, 1e-5f);
      }
    }
  // Nearest at 2x reads each input sample twice.
  math::Taps nearest = math::make_taps(ResizeType::kNearest, 4, 8, 2.f, false);
  EXPECT_EQ(nearest.index, (std::vector<int>{0, 0, 1, 1, 2, 2, 3, 3}));
}

}  // namespace
}  // namespace upframe::nn
