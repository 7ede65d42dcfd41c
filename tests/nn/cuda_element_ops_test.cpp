// The CUDA kernels' per-output functions (src/nn/cuda/element_ops.hpp) run on the host with
// fp32 storage, against the CPU executor on small graphs: the index arithmetic of deconvolution,
// pixel shuffle, interpolation, crop, padding and eltwise is checked here without a device.
// (The kernels are grid-stride loops writing out[idx] = these functions of idx.)
#include <random>
#include <set>
#include <sstream>

#include "../../src/nn/cuda/element_ops.hpp"
#include "../../src/nn/graph.hpp"
#include "nn/nn_test_util.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::test {
namespace {

using nn::Tensor;
namespace cuda = nn::cuda;

// A model of `layers` whose last op is the one under test; its CPU result on `input`.
struct Case {
  std::shared_ptr<const nn::Model> model;
  Tensor cpu;
  std::vector<nn::Shape> shapes;
  const nn::Op& last() const { return model->graph().ops.back(); }
  const nn::Shape& in_shape() const { return shapes[last().inputs[0]]; }
  const nn::Shape& out_shape() const { return shapes[last().outputs[0]]; }
};

Case run_case(const std::string& name, const std::vector<std::string>& layers,
              const std::string& bin, const Tensor& input) {
  Case c;
  c.model = write_model("nn-element-" + name, layers, bin);
  c.cpu = nn::make_cpu_executor(c.model, nn::Precision::kFp32)->run(input);
  c.shapes = c.model->graph().infer_shapes({3, input.channels, input.height, input.width});
  return c;
}

// Runs `element(idx)` for every output index and compares with the CPU result.
template <typename F>
void expect_elements(const Case& c, F element, float tolerance) {
  const nn::Shape& out = c.out_shape();
  ASSERT_EQ(c.cpu.channels, out.c);
  ASSERT_EQ(c.cpu.height, out.h);
  ASSERT_EQ(c.cpu.width, out.w);
  float worst = 0;
  for (size_t idx = 0; idx < out.elements(); ++idx)
    worst = std::max(worst, std::abs(element(idx) - c.cpu.data[idx]));
  EXPECT_LE(worst, tolerance);
}

TEST(NnCudaElementOps, Deconvolution) {
  Tensor in = random_tensor(4, 7, 9, 1);
  struct Config {
    std::string layer;
    std::vector<float> weights, bias;
  };
  std::vector<Config> configs = {
      {"Deconvolution dc 1 1 data out 0=3 1=4 3=2 4=3 5=1 6=192", random_values(192, 2),
       random_values(3, 3)},
      {"Deconvolution dc 1 1 data out 0=8 1=2 3=2 6=128 9=1", random_values(128, 4), {}},
      {"DeconvolutionDepthWise dc 1 1 data out 0=4 1=3 3=2 4=1 6=72 7=2 18=1",
       random_values(72, 5),
       {}},
      {"Deconvolution dc 1 1 data out 0=2 1=3 2=2 3=3 4=2 5=1 6=72 9=2 -23310=1,2.000000e-01",
       random_values(72, 6), random_values(2, 7)},
  };
  for (const Config& config : configs) {
    SCOPED_TRACE(config.layer);
    Case c = run_case("deconv", {"Input in 0 1 data", config.layer},
                      flag_fp32() + floats(config.weights) + floats(config.bias), in);
    const nn::ConvParams& conv = c.last().get<nn::ConvParams>();
    const cuda::DeconvGeometry g = cuda::deconv_geometry(conv, c.in_shape(), c.out_shape());
    const nn::math::ActivationArgs act = nn::math::activation_args(conv.activation);
    const float* bias = conv.bias_term ? conv.bias.data() : nullptr;
    expect_elements(
        c,
        [&](size_t idx) {
          return cuda::deconv_element(in.data.data(), conv.weights.data(), bias, act, g, idx);
        },
        1e-5f);
  }
}

TEST(NnCudaElementOps, PixelShuffleBothModes) {
  Tensor in = random_tensor(18, 4, 5, 8);
  for (int mode : {0, 1}) {
    SCOPED_TRACE(mode);
    Case c = run_case(
        "pixelshuffle",
        {"Input in 0 1 data 2=18", "PixelShuffle ps 1 1 data out 0=3 1=" + std::to_string(mode)},
        "", in);
    const nn::Shape& s = c.in_shape();
    expect_elements(
        c,
        [&](size_t idx) {
          return in.data[cuda::pixelshuffle_source(idx, c.out_shape().c, s.h, s.w, 3,
                                                   nn::PixelShuffleMode(mode))];
        },
        0.f);
  }
}

TEST(NnCudaElementOps, InterpNearestBilinearBicubic) {
  Tensor in = random_tensor(3, 9, 13, 9);
  for (std::string layer :
       {"Interp up 1 1 data out 0=1 1=2.0 2=2.0", "Interp up 1 1 data out 0=1 3=20 4=7",
        "Interp up 1 1 data out 0=2 3=20 4=31", "Interp up 1 1 data out 0=3 1=3.0 2=3.0"}) {
    SCOPED_TRACE(layer);
    Case c = run_case("interp", {"Input in 0 1 data", layer}, "", in);
    const auto [xt, yt] =
        cuda::interp_taps(c.last().get<nn::InterpParams>(), c.in_shape(), c.out_shape());
    const cuda::ResampleTaps taps{xt.index.data(), xt.weight.data(), xt.count,
                                  yt.index.data(), yt.weight.data(), yt.count};
    expect_elements(
        c,
        [&](size_t idx) {
          return cuda::resample_element(in.data.data(), in.height, in.width, c.out_shape().h,
                                        c.out_shape().w, taps, idx);
        },
        1e-5f);
  }
}

TEST(NnCudaElementOps, CropAndPadding) {
  Tensor in = random_tensor(5, 11, 12, 10);
  {
    Case c = run_case(
        "crop", {"Input in 0 1 data 2=5", "Crop crop 1 1 data out -23309=3,1,2,1 -23310=3,4,-2,-3"},
        "", in);
    const nn::CropRegion r =
        nn::resolve_crop(c.last().get<nn::CropParams>(), c.in_shape(), nullptr);
    expect_elements(
        c,
        [&](size_t idx) {
          return in.data[cuda::crop_source(idx, in.height, in.width, r.coffset, r.hoffset,
                                           r.woffset, c.out_shape().h, c.out_shape().w)];
        },
        0.f);
  }
  for (int type : {0, 1, 2}) {
    SCOPED_TRACE(type);
    Case c = run_case("padding",
                      {"Input in 0 1 data 2=5", "Padding pad 1 1 data out 0=2 1=3 2=4 3=1 4=" +
                                                    std::to_string(type) + " 5=2.500000e-01"},
                      "", in);
    const nn::PaddingParams& p = c.last().get<nn::PaddingParams>();
    expect_elements(
        c,
        [&](size_t idx) {
          long long src = cuda::padding_source_index(idx, in.height, in.width, p.top, p.left,
                                                     p.type, c.out_shape().h, c.out_shape().w);
          return src < 0 ? p.value : in.data[src];
        },
        0.f);
  }
}

TEST(NnCudaElementOps, Eltwise) {
  Tensor in = random_tensor(4, 6, 7, 11);
  // Three different inputs: the image, its sigmoid and its ReLU (computed here the same way).
  std::vector<float> sig(in.data.size()), relu(in.data.size());
  for (size_t i = 0; i < in.data.size(); ++i) {
    sig[i] = 1.f / (1.f + std::exp(-in.data[i]));
    relu[i] = in.data[i] > 0.f ? in.data[i] : 0.f;
  }
  for (std::string args : {"0=0", "0=1 -23301=3,5.000000e-01,-2.0,1.5", "0=1", "0=2"}) {
    SCOPED_TRACE(args);
    Case c = run_case("eltwise",
                      {"Input in 0 1 data 2=4", "Split sp 1 3 data a b d", "Sigmoid s 1 1 b sb",
                       "ReLU r 1 1 d rd", "Eltwise e 3 1 a sb rd out " + args},
                      "", in);
    const nn::EltwiseParams& p = c.last().get<nn::EltwiseParams>();
    cuda::EltwiseInputs<float> ins{};
    ins.count = 3;
    const float* data[3] = {in.data.data(), sig.data(), relu.data()};
    for (int k = 0; k < 3; ++k) {
      ins.data[k] = data[k];
      ins.coefficient[k] = p.coefficients.empty() ? 1.f : p.coefficients[k];
    }
    expect_elements(
        c, [&](size_t idx) { return cuda::eltwise_element(ins, p.kind, idx); }, 1e-6f);
  }
}

}  // namespace
}  // namespace upframe::test
