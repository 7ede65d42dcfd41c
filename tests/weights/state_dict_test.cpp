// The weight-file readers on files PyTorch itself wrote (tools/make_weight_fixtures.py): every
// tensor's shape, stored type and values as PyTorch had them; wrappers and prefixes taken off;
// the malicious pickles refused without running; damaged copies one upframe::Error each.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_support.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/state_dict.hpp"

namespace upframe::test {
namespace {

fs::path fixture(const std::string& name) {
  return source_dir() / "tests" / "models" / "weights" / name;
}

std::vector<uint8_t> bytes_of(const fs::path& path) {
  const std::string text = read_file(path);
  return {text.begin(), text.end()};
}

const char* const kGoodFiles[] = {"wrapped_zip.pth", "wrapped_legacy.pth", "module_prefix.pth",
                                  "plain.safetensors"};

TEST(WeightFiles, EveryTensorAsPyTorchWroteIt) {
  const auto expected = nlohmann::json::parse(read_file(fixture("expected.json")));
  for (const char* file : kGoodFiles) {
    SCOPED_TRACE(file);
    const weights::StateDict dict = weights::read_state_dict(fixture(file));
    const auto& want = expected.at(file);
    EXPECT_EQ(dict.wrapper, want.at("wrapper").get<std::string>());
    ASSERT_EQ(dict.tensors.size(), want.at("tensors").size());
    for (const auto& [name, w] : want.at("tensors").items()) {
      SCOPED_TRACE(name);
      const weights::Tensor* t = dict.find(name);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->shape, w.at("shape").get<std::vector<int64_t>>());
      EXPECT_EQ(weights::dtype_name(t->stored), w.at("dtype").get<std::string>());
      const auto values = w.at("values").get<std::vector<double>>();
      ASSERT_EQ(t->values.size(), values.size());
      for (size_t i = 0; i < values.size(); ++i)
        ASSERT_EQ(t->values[i], static_cast<float>(values[i])) << "element " << i;
    }
  }
}

TEST(WeightFiles, FormatIsFoundFromTheContentNotTheName) {
  EXPECT_EQ(weights::read_state_dict(fixture("wrapped_zip.pth")).format, "pytorch-zip");
  EXPECT_EQ(weights::read_state_dict(fixture("wrapped_legacy.pth")).format, "pytorch-legacy");
  EXPECT_EQ(weights::read_state_dict(fixture("plain.safetensors")).format, "safetensors");
  // A safetensors file named .pth still reads.
  const fs::path dir = scratch_dir("weights_renamed");
  fs::copy_file(fixture("plain.safetensors"), dir / "model.pth");
  EXPECT_EQ(weights::read_state_dict(dir / "model.pth").format, "safetensors");
  // A header of 0x0a80 bytes: the file starts with 0x80 as a pickle does, and is still read as
  // safetensors (it was taken for a pickle once).
  std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  header.resize(0x0a80, ' ');
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  std::ofstream(dir / "pickle_like.safetensors", std::ios::binary)
      << file << header << std::string(4, '\0');
  ASSERT_EQ(static_cast<uint8_t>(file[0]), 0x80);
  EXPECT_EQ(weights::read_state_dict(dir / "pickle_like.safetensors").format, "safetensors");
}

TEST(WeightFiles, MaliciousPickleRefusedBeforeAnythingRuns) {
  const fs::path marker = "/tmp/upframe-evil-pickle-ran";  // what os.system would create
  for (const char* file : {"evil_zip.pth", "evil_legacy.pth"}) {
    SCOPED_TRACE(file);
    fs::remove(marker);
    try {
      weights::read_state_dict(fixture(file));
      ADD_FAILURE() << "the malicious pickle was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kUsage);
      EXPECT_EQ(e.file(), fixture(file).string());
      EXPECT_NE(e.problem().find("refused pickle GLOBAL 'posix.system'"), std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(fs::exists(marker));
  }
}

// Every prefix of every file, and each with one byte flipped at many places: an upframe::Error
// or a successful read (a flip inside tensor data changes a value only), never a crash or
// another exception type.
TEST(WeightFiles, DamagedCopiesGiveOneErrorEach) {
  for (const char* file : kGoodFiles) {
    SCOPED_TRACE(file);
    const std::vector<uint8_t> good = bytes_of(fixture(file));
    const std::string name = file;
    auto parse = [&](std::span<const uint8_t> bytes) {
      if (name.ends_with(".safetensors")) return weights::parse_safetensors(bytes, name);
      if (name.find("legacy") != std::string::npos) return weights::parse_torch_legacy(bytes, name);
      return weights::parse_torch_zip(bytes, name);
    };
    size_t errors = 0;
    for (size_t cut = 0; cut < good.size(); cut += 1 + good.size() / 97) {
      try {
        parse(std::span(good.data(), cut));
      } catch (const Error& e) {
        EXPECT_EQ(e.file(), name);
        ++errors;
      }
    }
    EXPECT_GT(errors, 0u);
    for (size_t at = 0; at < good.size(); at += 1 + good.size() / 211) {
      std::vector<uint8_t> bad = good;
      bad[at] ^= 0x5a;
      try {
        parse(bad);
      } catch (const Error& e) {
        EXPECT_EQ(e.file(), name);
      }
    }
  }
}

TEST(WeightFiles, SafetensorsBoundsChecked) {
  auto make = [](const std::string& header, size_t data_bytes) {
    std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
    const uint64_t n = header.size();
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, header.data(), header.size());
    return out;
  };
  auto problem = [](const std::vector<uint8_t>& bytes) -> std::string {
    try {
      weights::parse_safetensors(bytes, "x.safetensors");
    } catch (const Error& e) {
      return e.problem();
    }
    return "accepted";
  };
  EXPECT_EQ(problem(make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)),
            "accepted");
  EXPECT_NE(problem(make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8))
                .find("outside the file"),
            std::string::npos);
  EXPECT_NE(problem(make(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8))
                .find("does not match"),
            std::string::npos);
  EXPECT_NE(problem(make(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8))
                .find("unsupported dtype"),
            std::string::npos);
  EXPECT_NE(problem(make(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8))
                .find("shape"),
            std::string::npos);
  EXPECT_NE(problem(make("{not json", 0)).find("not valid JSON"), std::string::npos);
  std::vector<uint8_t> huge = make("{}", 0);
  huge[7] = 0x7f;  // header length far past the end
  EXPECT_NE(problem(huge).find("out of bounds"), std::string::npos);
}

TEST(WeightFiles, OtherFilesAreNamedAsSuch) {
  try {
    weights::read_state_dict(source_dir() / "tests" / "golden" / "mandel_256x144.png");
    ADD_FAILURE() << "a PNG was read as weights";
  } catch (const Error& e) {
    EXPECT_NE(e.problem().find("not a PyTorch (.pth) or safetensors file"), std::string::npos);
  }
  EXPECT_THROW(weights::read_state_dict(source_dir() / "no-such-model.pth"), Error);
}

}  // namespace
}  // namespace upframe::test
