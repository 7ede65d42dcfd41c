// Inputs that fuzz_nn_model (fuzz/, docs/FUZZING.md) found to misbehave, kept so they stay
// fixed in the ordinary g++ build: each is loaded with nn::Model::load and must give one
// upframe::Error. Files are in the fuzz input layout: the .param text, a line "@bin", then
// the .bin bytes (no such line: an empty .bin).
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "nn/nn_test_util.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::test {
namespace {

fs::path regressions_dir() { return source_dir() / "tests/fuzz_regressions/nn_model"; }

// Writes the two halves of a fuzz input as NAME.param / NAME.bin in `dir`.
fs::path split_input(const fs::path& input, const fs::path& dir) {
  std::string bytes = read_file(input);
  std::string param = bytes, bin;
  const std::string marker = "\n@bin\n";
  if (size_t at = bytes.find(marker); at != std::string::npos) {
    param = bytes.substr(0, at + 1);
    bin = bytes.substr(at + marker.size());
  }
  fs::path param_path = dir / (input.filename().string() + ".param");
  std::ofstream(param_path, std::ios::binary) << param;
  std::ofstream(fs::path(param_path).replace_extension(".bin"), std::ios::binary) << bin;
  return param_path;
}

// What each error must say (files not listed here only need to give an upframe::Error).
const std::map<std::string, std::string> kExpectedProblem = {
    // Found by fuzzing: a param id beyond int range was converted from double (undefined
    // behaviour; UBSan stopped at reader.cpp).
    {"param-id-out-of-int-range", "parameter id out of range"},
    // Hand-made siblings of that finding, for each other double-to-number conversion.
    {"param-id-int-min", "parameter id out of range"},
    {"int-value-out-of-range", "param 0: integer out of range"},
    {"float-value-out-of-range", "param 1: number out of range"},
    {"array-int-out-of-range", "param 9: integer out of range in the array"},
    {"array-count-out-of-range", "does not hold the count it announces"},
    // Found by fuzzing: 6=2000000000 in a 60-byte .param made the reader allocate 8 GB for
    // the weights before it looked at the .bin (libFuzzer: out-of-memory).
    {"huge-weight-count", "param 6: 2000000000 weights cannot fit in what is left of the .bin"},
    {"huge-prelu-slope-count", "param 0: 2000000000 weights cannot fit"},
    // Found by fuzzing: num_output * kernel_w * kernel_h overflowed int (UBSan).
    {"conv-weight-product-overflow", "is not a multiple of num_output*kernel_w*kernel_h"},
    // Found by fuzzing: shape arithmetic in Graph::infer_shapes overflowed int (UBSan), for
    // graphs the reader accepts: dilation * (kernel - 1), PixelShuffle's r * r (65536^2: in
    // 64 bits 3 channels simply do not divide by it), Interp's int(h * scale) and Padding's sums.
    {"conv-dilation-overflow", "(Convolution): bad shape: kernel extent out of range"},
    {"pixelshuffle-factor-overflow", "(PixelShuffle): bad shape: 3 channels do not divide"},
    {"interp-scale-overflow", "(Interp): bad shape: output size out of range"},
    {"padding-overflow", "(Padding): bad shape: output size out of range"},
    // Hand-made siblings: the same pattern in Deconvolution, Crop and Concat, and two x1e6
    // Interps, whose product overflowed int (the first one's 6.4e7 rows now exceed the limit).
    {"deconv-stride-overflow", "(Deconvolution): bad shape: output size out of range"},
    {"crop-slice-overflow", "(Crop): bad shape: crop region lies outside the input"},
    {"crop-offset-overflow", "(Crop): bad shape: crop region lies outside the input"},
    {"concat-channel-overflow",
     "(Concat): bad shape: output size out of range: input 1048576x64x64 gives 2097152x64x64"},
    {"interp-scale-chain", "line 4: layer a (Interp): bad shape: output size out of range"},
};

TEST(NnFuzzRegressions, EveryInputGivesOneError) {
  fs::path dir = scratch_dir("nn-fuzz-regressions");
  int inputs = 0;
  for (const auto& entry : fs::directory_iterator(regressions_dir())) {
    const std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    ++inputs;
    fs::path param = split_input(entry.path(), dir);
    try {
      nn::Model::load(param, fs::path(param).replace_extension(".bin"));
      ADD_FAILURE() << "loaded without an error";
    } catch (const Error& e) {
      EXPECT_FALSE(e.file().empty());
      auto expected = kExpectedProblem.find(name);
      if (expected != kExpectedProblem.end()) {
        EXPECT_NE(e.problem().find(expected->second), std::string::npos) << e.problem();
      }
    }
  }
  EXPECT_GE(inputs, int(kExpectedProblem.size()));
}

// Every known input is there: a rename or a lost file must not silently shrink the test.
TEST(NnFuzzRegressions, EveryExpectedInputExists) {
  for (const auto& [name, problem] : kExpectedProblem)
    EXPECT_TRUE(fs::is_regular_file(regressions_dir() / name)) << name;
}

// A model that loads is still refused an input beyond the shape limits (a huge tile) with
// one clear error, before any size arithmetic on it.
TEST(NnFuzzRegressions, InputBeyondTheShapeLimitIsAnError) {
  fs::path dir = scratch_dir("nn-fuzz-huge-input");
  write_file(dir / "relu.param", "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 data out\n");
  write_file(dir / "relu.bin", "");
  auto exec = nn::make_cpu_executor(nn::Model::load(dir / "relu.param", dir / "relu.bin"),
                                    nn::Precision::kFp32, 1);
  EXPECT_EQ(exec->run(nn::Tensor(3, 4, 5)).width, 5);
  try {
    exec->run(nn::Tensor(3, (1 << 20) + 1, 1));
    ADD_FAILURE() << "an input 1048577 pixels high was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), (dir / "relu.param").string());
    EXPECT_NE(e.problem().find("(Input): bad shape: output size out of range: input 3x1048577x1"),
              std::string::npos)
        << e.problem();
  }
}

}  // namespace
}  // namespace upframe::test
