// The ncnn reader on the real models and on corrupted copies of them: every problem is one
// upframe::Error naming the file (and the line where there is one) and what is wrong.
#include <regex>

#include "nn/nn_test_util.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::test {
namespace {

fs::path shipped(const std::string& name) { return source_dir() / "models" / name; }
fs::path bin_of(const fs::path& param) { return fs::path(param).replace_extension(".bin"); }

std::shared_ptr<const nn::Model> load(const fs::path& param) {
  return nn::Model::load(param, bin_of(param));
}

TEST(NnReader, ShippedModelsGiveTheirScaleAndRadius) {
  for (int scale : {2, 3, 4}) {
    auto m = load(shipped("realesr-animevideov3-x" + std::to_string(scale) + ".param"));
    const nn::ModelInfo& info = m->info();
    EXPECT_EQ(info.name, "realesr-animevideov3-x" + std::to_string(scale));
    EXPECT_EQ(info.scale, scale);
    EXPECT_EQ(info.input_channels, 3);
    EXPECT_EQ(info.output_channels, 3);
    // 18 3x3 convolutions at input resolution, plus the bicubic support for x2/x3.
    EXPECT_GE(info.receptive_radius, 18);
    EXPECT_LE(info.receptive_radius, 20);
    EXPECT_FALSE(info.global_context);
  }
  auto anime = load(source_dir() / "tests/models/realesrgan-x4plus-anime.param");
  EXPECT_EQ(anime->info().scale, 4);
  EXPECT_GT(anime->info().receptive_radius, 40);  // 6 RRDB blocks of 15 convolutions each
  auto cugan = load(source_dir() / "tests/models/realcugan/up2x-no-denoise.param");
  EXPECT_EQ(cugan->info().scale, 2);
  EXPECT_TRUE(cugan->info().global_context);
}

// A scratch copy of realesr-animevideov3-x4 whose .param/.bin the test then corrupts.
struct Copy {
  fs::path param, bin;
  std::string text, weights;
  explicit Copy(const std::string& name) {
    fs::path dir = scratch_dir("nn-reader-" + name);
    param = dir / "model.param";
    bin = dir / "model.bin";
    text = read_file(shipped("realesr-animevideov3-x4.param"));
    weights = read_file(shipped("realesr-animevideov3-x4.bin"));
  }
  void replace(const std::string& from, const std::string& to) {
    auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  }
  // Loads and returns the error's text (fails the test when loading succeeds).
  std::string error() {
    write_file(param, text);
    write_file(bin, weights);
    try {
      nn::Model::load(param, bin);
    } catch (const Error& e) {
      EXPECT_TRUE(e.file() == param.string() || e.file() == bin.string()) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "corrupt model loaded";
    return {};
  }
};

TEST(NnReader, BadMagic) {
  Copy c("magic");
  c.replace("7767517", "7767518");
  EXPECT_NE(c.error().find("line 1: bad magic"), std::string::npos);
}

TEST(NnReader, WrongCounts) {
  Copy more_layers("layers");
  more_layers.replace("\n40 41\n", "\n44 41\n");
  EXPECT_NE(more_layers.error().find("file ends after 40 layers, the header says 44"),
            std::string::npos);
  Copy blobs("blobs");
  blobs.replace("\n40 41\n", "\n40 45\n");
  EXPECT_NE(blobs.error().find("the header says 45 blobs"), std::string::npos);
}

TEST(NnReader, UnknownOp) {
  Copy c("unknown");
  c.replace("PixelShuffle ", "FooShuffle   ");
  std::string e = c.error();
  EXPECT_NE(e.find("unsupported layer type 'FooShuffle'"), std::string::npos) << e;
  EXPECT_TRUE(std::regex_search(e, std::regex("line [0-9]+: layer DepthToSpace_35"))) << e;
}

TEST(NnReader, UndefinedBlob) {
  Copy c("blob");
  c.replace(" 1 1 56 57 ", " 1 1 5x 57 ");
  EXPECT_NE(c.error().find("input blob '5x' is not produced by an earlier layer"),
            std::string::npos);
}

TEST(NnReader, MalformedParameter) {
  Copy c("param");
  c.replace("0=64 1=3 4=1 5=1 6=36864", "0=64 1=x 4=1 5=1 6=36864");
  EXPECT_NE(c.error().find("bad number in '1=x'"), std::string::npos);
  Copy arr("array");
  arr.replace("0=4", "0=4 -23309=3,1,2");
  EXPECT_NE(arr.error().find("does not hold the count it announces"), std::string::npos);
}

TEST(NnReader, UnsupportedParameterIsRefused) {
  Copy c("int8");
  c.replace("0=64 1=3 4=1 5=1 6=36864", "0=64 1=3 4=1 5=1 6=36864 8=1");
  EXPECT_NE(c.error().find("unsupported int8"), std::string::npos);
}

TEST(NnReader, ShortWeightFile) {
  Copy c("short");
  c.weights.resize(c.weights.size() - 100);
  std::string e = c.error();
  EXPECT_NE(e.find("file ends early: layer Conv_34"), std::string::npos) << e;
}

TEST(NnReader, TrailingBytes) {
  Copy c("trailing");
  c.weights += std::string(8, '\0');
  EXPECT_NE(c.error().find("8 trailing bytes"), std::string::npos);
}

TEST(NnReader, BadShape) {
  Copy c("shape");
  c.replace("PixelShuffle             DepthToSpace_35          1 1 105 106 0=4",
            "PixelShuffle             DepthToSpace_35          1 1 105 106 0=5");
  std::string e = c.error();
  EXPECT_NE(e.find("bad shape: 48 channels do not divide"), std::string::npos) << e;
}

TEST(NnReader, MissingFiles) {
  fs::path dir = scratch_dir("nn-missing");
  try {
    nn::Model::load(dir / "none.param", dir / "none.bin");
    FAIL() << "missing model loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), (dir / "none.param").string());
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos);
  }
}

TEST(NnExecutor, PrecisionTheCpuLacksIsAClearError) {
  auto m = load(shipped("realesr-animevideov3-x2.param"));
  EXPECT_THROW(nn::make_cpu_executor(m, nn::Precision::kFp16), UsageError);
  if (nn::cpu_supports_bf16()) {
    // Not run on the development machine (AMD EPYC, AVX2 only).
    auto exec = nn::make_cpu_executor(m, nn::Precision::kBf16);
    nn::Tensor in(3, 24, 32);
    for (size_t i = 0; i < in.data.size(); ++i) in.data[i] = float(i % 97) / 96.f;
    nn::Tensor bf = exec->run(in);
    nn::Tensor fp = nn::make_cpu_executor(m, nn::Precision::kFp32)->run(in);
    EXPECT_GE(compare(to_rgb8(bf), to_rgb8(fp)).psnr, 40.0);
  } else {
    try {
      nn::make_cpu_executor(m, nn::Precision::kBf16);
      FAIL() << "bf16 accepted on a CPU without it";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("avx512_bf16 or AMX"), std::string::npos);
    }
  }
}

TEST(NnExecutor, WrongInputChannelsIsAnError) {
  auto exec = nn::make_cpu_executor(load(shipped("realesr-animevideov3-x4.param")),
                                    nn::Precision::kFp32, 1);
  EXPECT_THROW(exec->run(nn::Tensor(4, 8, 8)), Error);
}

}  // namespace
}  // namespace upframe::test
