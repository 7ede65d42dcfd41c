// The op catalogue (op_cases.hpp) on the CPU: each case against its formula, with the op
// reading the plain input and a convolution's output (the layouts oneDNN picks), and with the
// stride-1 convolutions run whole, in one-row bands and in the default bands.
#include <cstdlib>
#include <set>

#include "../../src/nn/graph.hpp"
#include "nn/nn_test_util.hpp"
#include "nn/op_cases.hpp"
#include "upframe/error.hpp"
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

// The GraphRunner names an op the backend has no prepare function for (Split, which
// Graph::simplify removes from a loaded model, left in a hand-made graph).
TEST(NnGraphRunner, AnOpTheBackendDoesNotRunIsNamed) {
  nn::Graph g;
  g.param_path = "hand-made.param";
  g.blob_names = {"data", "a", "out"};
  nn::Op input, split, sigmoid;
  input.type = nn::OpType::kInput;
  input.name = "in";
  input.outputs = {0};
  input.params = nn::InputParams{3};
  split.type = nn::OpType::kSplit;
  split.name = "sp";
  split.inputs = {0};
  split.outputs = {1};
  split.params = nn::SplitParams{};
  sigmoid.type = nn::OpType::kSigmoid;
  sigmoid.name = "s";
  sigmoid.inputs = {1};
  sigmoid.outputs = {2};
  sigmoid.params = nn::SigmoidParams{};
  g.ops = {input, split, sigmoid};
  g.finalize();
  auto model = nn::Model::from_graph(g, "hand-made");
  try {
    nn::make_cpu_executor(model, nn::Precision::kFp32)->run(random_tensor(3, 4, 5));
    FAIL() << "a Split ran on the CPU";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "hand-made.param");
    EXPECT_EQ(e.problem(), "layer sp: Split is not supported on the CPU");
  }
}

}  // namespace
}  // namespace upframe::test
