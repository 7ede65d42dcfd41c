// Parts of a graph run alone (src/nn/subgraph.hpp), as the device-check kit runs every op of the
// shipped models on the GPU: on the CPU executor, each op run alone on its packed inputs gives
// what the whole network computes for that op's output, and a prefix gives the network's blob.
#include <gtest/gtest.h>

#include "../../src/nn/graph.hpp"
#include "../../src/nn/subgraph.hpp"
#include "nn/nn_test_util.hpp"
#include "upframe/nn/memory_policy.hpp"

namespace upframe::test {
namespace {

using nn::Tensor;

Tensor run_part(const nn::Graph& part, const Tensor& input) {
  auto model = nn::Model::from_graph(part, "part");
  return nn::make_cpu_executor(model, nn::Precision::kFp32, 1)->run(input);
}

TEST(Subgraph, EachOpAloneGivesTheNetworksBlob) {
  auto model = source_model("models/realesr-animevideov3-x2.param");
  const nn::Graph& g = model->graph();
  const Tensor input = random_tensor(3, 7, 9, 3);
  const auto shapes = g.infer_shapes(nn::Shape{3, 3, 7, 9});
  // The whole network's output, and a prefix up to the output, agree exactly.
  const Tensor whole = nn::make_cpu_executor(model, nn::Precision::kFp32, 1)->run(input);
  EXPECT_EQ(max_abs_difference(run_part(nn::prefix_graph(g, g.output_blob), input), whole), 0.f);
  int checked = 0, multi_input = 0;
  for (size_t k = 0; k < g.ops.size(); ++k) {
    const nn::Op& op = g.ops[k];
    if (op.type == nn::OpType::kInput) continue;
    SCOPED_TRACE(op.name);
    // The op's inputs as the network computes them, packed along channels.
    Tensor packed(nn::packed_input_channels(g, int(k), shapes), shapes[op.inputs[0]].h,
                  shapes[op.inputs[0]].w);
    size_t at = 0;
    for (int in : op.inputs) {
      const Tensor blob = in == g.input_blob ? input : run_part(nn::prefix_graph(g, in), input);
      std::copy(blob.data.begin(), blob.data.end(), packed.data.begin() + long(at));
      at += blob.data.size();
    }
    ASSERT_EQ(at, packed.data.size());
    const Tensor alone = run_part(nn::single_op_graph(g, int(k), shapes), packed);
    const Tensor expected = run_part(nn::prefix_graph(g, op.outputs[0]), input);
    EXPECT_LE(max_abs_difference(alone, expected), 1e-5f);
    ++checked;
    multi_input += op.inputs.size() > 1;
  }
  EXPECT_EQ(checked, int(g.ops.size()) - 1);
  EXPECT_GE(multi_input, 1);  // the final Add of two blobs: unpacked by Crop layers
}

TEST(Subgraph, RefusesOpsWhoseInputsCannotBePacked) {
  auto model = source_model("models/realesr-animevideov3-x2.param");
  const nn::Graph& g = model->graph();
  const auto shapes = g.infer_shapes(nn::Shape{3, 3, 8, 8});
  int input_op = -1;
  for (size_t k = 0; k < g.ops.size(); ++k)
    if (g.ops[k].type == nn::OpType::kInput) input_op = int(k);
  ASSERT_GE(input_op, 0);
  EXPECT_THROW(nn::single_op_graph(g, input_op, shapes), Error);
}

// The out-of-memory policy (upframe/nn/memory_policy.hpp) the upscaler and the device kit share;
// the kit runs it against real CUDA allocations, here its decisions.
TEST(MemoryPolicy, TilesHalveToTheMinimumThenGiveUp) {
  std::vector<int> tiles;
  for (int tile = 0;;) {
    tile = nn::smaller_tile_after_oom(tile, 1920, 1080);
    if (tile == 0) break;
    tiles.push_back(tile);
  }
  EXPECT_EQ(tiles, (std::vector<int>{960, 480, 240, 112, 48, 32}));
  EXPECT_EQ(nn::smaller_tile_after_oom(64, 30, 20), 0);  // the image is below the minimum already
  EXPECT_EQ(nn::smaller_tile_after_oom(64, 50, 40), 32);
  EXPECT_EQ(nn::smaller_tile_after_oom(512, 300, 200), 144);  // from the image, not the tile
}

TEST(MemoryPolicy, KeepsTheWorkersThatFit) {
  int made = 0;
  auto three_fit = [&] {
    if (made == 3) throw nn::CudaOutOfMemory("activation buffer", 1 << 20);
    return ++made;
  };
  EXPECT_EQ(nn::make_workers_fitting(4, three_fit).size(), 3u);
  made = 3;
  EXPECT_THROW(nn::make_workers_fitting(4, three_fit), nn::CudaOutOfMemory);  // not even one
  made = 0;
  EXPECT_EQ(nn::make_workers_fitting(2, three_fit).size(), 2u);
}

}  // namespace
}  // namespace upframe::test
