#include "upframe/upscale/factory.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "support/test_support.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe {
namespace {

namespace fs = std::filesystem;

fs::path shipped(const std::string& file) { return test::source_dir() / "models" / file; }

// The error message of `options`, which must throw an E.
template <typename E>
E error_of(const UpscalerOptions& options) {
  try {
    make_upscaler(options);
  } catch (const E& e) {
    return e;
  }
  ADD_FAILURE() << "no error for model " << options.model;
  return E({}, "none");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Factory, SwscaleMethods) {
  UpscalerOptions options;
  options.model = "lanczos";
  auto lanczos = make_upscaler(options);
  EXPECT_EQ(lanczos->name(), "lanczos");
  EXPECT_EQ(lanczos->scale(), 2);  // the default
  options.model = "bicubic";
  options.scale = 3;
  EXPECT_EQ(make_upscaler(options)->scale(), 3);
}

TEST(Factory, ShippedModelByNameAndScale) {
  UpscalerOptions options;  // realesr-animevideov3, scale 2 by default
  auto x2 = make_upscaler(options);
  EXPECT_EQ(x2->name(), "realesr-animevideov3-x2");
  EXPECT_EQ(x2->scale(), 2);
  EXPECT_EQ(x2->backend(), "cpu");
  EXPECT_EQ(x2->precision(), "fp32");
  EXPECT_EQ(x2->preferred_workers(), 1);
  EXPECT_GE(x2->tile(), 32);  // auto
  options.scale = 4;
  options.tile = 0;
  auto x4 = make_upscaler(options);
  EXPECT_EQ(x4->name(), "realesr-animevideov3-x4");
  EXPECT_EQ(x4->scale(), 4);
  EXPECT_EQ(x4->tile(), 0);
}

TEST(Factory, ScaleTheModelCannotGive) {
  UpscalerOptions options;
  options.scale = 5;
  const UsageError e = error_of<UsageError>(options);
  EXPECT_TRUE(contains(e.what(), "x2, x3, x4")) << e.what();
  EXPECT_EQ(e.code(), ExitCode::kUsage);
}

TEST(Factory, UnknownModelListsWhatExists) {
  UpscalerOptions options;
  options.model = "no-such-model";
  const UsageError e = error_of<UsageError>(options);
  EXPECT_TRUE(contains(e.what(), "no-such-model")) << e.what();
  EXPECT_TRUE(contains(e.what(), "realesr-animevideov3 (x2, x3, x4)")) << e.what();
  EXPECT_TRUE(contains(e.what(), "lanczos")) << e.what();
}

TEST(Factory, ModelByPath) {
  const fs::path dir = test::scratch_dir("factory-path");
  const fs::path param = dir / "net.param";
  fs::copy_file(shipped("realesr-animevideov3-x4.param"), param);
  UpscalerOptions options;
  options.model = param.string();
  // No .bin beside it: the error names the .bin.
  const Error missing = error_of<Error>(options);
  EXPECT_EQ(missing.file(), (dir / "net.bin").string());
  fs::copy_file(shipped("realesr-animevideov3-x4.bin"), dir / "net.bin");
  auto net = make_upscaler(options);  // scale read from the graph
  EXPECT_EQ(net->scale(), 4);
  EXPECT_EQ(net->name(), "net");
  options.scale = 2;  // the graph gives x4
  const UsageError wrong_scale = error_of<UsageError>(options);
  EXPECT_EQ(wrong_scale.file(), param.string());
  EXPECT_TRUE(contains(wrong_scale.what(), "x4")) << wrong_scale.what();
  options.model = (dir / "absent.param").string();
  options.scale = 0;
  EXPECT_EQ(error_of<Error>(options).file(), (dir / "absent.param").string());
}

TEST(Factory, CorruptModelNamesTheFile) {
  const fs::path dir = test::scratch_dir("factory-corrupt");
  std::ofstream(dir / "bad.param") << "7767517\n3 3\nNotALayer x 0 1 data\n";
  fs::copy_file(shipped("realesr-animevideov3-x2.bin"), dir / "bad.bin");
  UpscalerOptions options;
  options.model = (dir / "bad.param").string();
  const Error e = error_of<Error>(options);
  EXPECT_TRUE(contains(e.what(), "bad.param")) << e.what();
}

TEST(Factory, ModelsDirFromEnvironmentComesFirst) {
  const fs::path dir = test::scratch_dir("factory-env");
  fs::copy_file(shipped("realesr-animevideov3-x4.param"), dir / "mine.param");
  fs::copy_file(shipped("realesr-animevideov3-x4.bin"), dir / "mine.bin");
  setenv("UPFRAME_MODELS_DIR", dir.c_str(), 1);
  UpscalerOptions options;
  options.model = "mine";
  std::unique_ptr<Upscaler> mine;
  EXPECT_NO_THROW(mine = make_upscaler(options));
  const auto dirs = model_search_dirs();
  unsetenv("UPFRAME_MODELS_DIR");
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->scale(), 4);  // a NAME without -xN variants: the graph's scale
  ASSERT_FALSE(dirs.empty());
  EXPECT_EQ(dirs.front(), fs::weakly_canonical(dir));
}

TEST(Factory, DeviceAndPrecisionErrors) {
  UpscalerOptions options;
  options.device = "cuda";
  const CudaDeviceInfo gpu = cuda_device_info();
  if (!gpu.available) {  // the reason reaches the user: no driver, or a build without CUDA
    EXPECT_TRUE(contains(error_of<UsageError>(options).what(), gpu.reason));
  }
  options.model = "lanczos";  // no CUDA resampler
  EXPECT_THROW(make_upscaler(options), UsageError);
  options.model = "realesr-animevideov3";
  options.device = "tpu";
  EXPECT_TRUE(contains(error_of<UsageError>(options).what(), "tpu"));
  options.device = "cpu";
  options.precision = "fp16";
  EXPECT_TRUE(contains(error_of<UsageError>(options).what(), "fp16"));
  options.precision = "int3";
  EXPECT_TRUE(contains(error_of<UsageError>(options).what(), "int3"));
  options.precision = "bf16";
  if (nn::cpu_supports_bf16()) {
    EXPECT_EQ(make_upscaler(options)->precision(), "bf16");
  } else {
    EXPECT_TRUE(contains(error_of<UsageError>(options).what(), "avx512_bf16"));
  }
  // auto: bf16 where the CPU has it, else fp32 (with a log line), never an error.
  options.precision = "auto";
  EXPECT_EQ(make_upscaler(options)->precision(), nn::cpu_supports_bf16() ? "bf16" : "fp32");
  options.precision = "";
  options.tile = -2;
  EXPECT_THROW(make_upscaler(options), UsageError);
}

}  // namespace
}  // namespace upframe
