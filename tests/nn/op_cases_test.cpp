// The op catalogue (op_cases.hpp) on the CPU: each case against its formula, with the op
// reading the plain input and a convolution's output (the layouts oneDNN picks), and with the
// stride-1 convolutions run whole, in one-row bands and in the default bands.
#include <cstdlib>
#include <set>

#include "../../src/nn/graph.hpp"
#include "nn/op_cases.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::test {
namespace {

using op_cases::OpCase;

// UPFRAME_NN_BAND_BYTES for one executor: "" the default bands, "0" none, "1" one row a band.
nn::Tensor run_cpu(const std::shared_ptr<const nn::Model>& model, const nn::Tensor& input,
                   const std::string& band_bytes) {
  if (!band_bytes.empty()) setenv("UPFRAME_NN_BAND_BYTES", band_bytes.c_str(), 1);
  auto executor = nn::make_cpu_executor(model, nn::Precision::kFp32);
  unsetenv("UPFRAME_NN_BAND_BYTES");
  return executor->run(input);
}

TEST(NnOpCases, CpuMatchesFormulaInEveryLayoutAndBanding) {
  for (const OpCase& base : op_cases::all_cases())
    for (const OpCase& c : {base, op_cases::through_identity_convolution(base)}) {
      SCOPED_TRACE(c.name);
      auto model = write_model("nn-case-" + c.name, c.layers, c.bin);
      const nn::Tensor want = c.formula(c.input);
      for (const char* bands : {"", "0", "1"}) {
        SCOPED_TRACE(std::string("band bytes ") + (*bands ? bands : "default"));
        const nn::Tensor got = run_cpu(model, c.input, bands);
        ASSERT_EQ(got.channels, want.channels);
        ASSERT_EQ(got.height, want.height);
        ASSERT_EQ(got.width, want.width);
        EXPECT_LE(max_abs_difference(got, want), c.tolerance);
      }
    }
}

// A new op type needs a case: the catalogue holds every type the reader produces (Split is
// removed by Graph::simplify and Input starts every case).
TEST(NnOpCases, CoverEveryOpType) {
  std::set<nn::OpType> seen;
  for (const OpCase& c : op_cases::all_cases()) {
    auto model = write_model("nn-case-types", c.layers, c.bin);
    for (const nn::Op& op : model->graph().ops) seen.insert(op.type);
  }
  for (int t = 0; t < nn::kOpTypeCount; ++t) {
    const auto type = nn::OpType(t);
    if (type == nn::OpType::kSplit) continue;
    // PReLU, ReLU and Sigmoid after a convolution are folded into it; the cases also run
    // them standalone.
    EXPECT_TRUE(seen.count(type)) << nn::op_type_name(type) << " has no case in op_cases.hpp";
  }
}

}  // namespace
}  // namespace upframe::test
