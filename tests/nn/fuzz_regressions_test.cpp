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

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Writes the two halves of a fuzz input as NAME.param / NAME.bin in `dir`.
fs::path split_input(const fs::path& input, const fs::path& dir) {
  std::string bytes = read_bytes(input);
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
      if (expected != kExpectedProblem.end())
        EXPECT_NE(e.problem().find(expected->second), std::string::npos) << e.problem();
    }
  }
  EXPECT_GE(inputs, int(kExpectedProblem.size()));
}

}  // namespace
}  // namespace upframe::test
