#include "nn/subgraph.hpp"

#include <string>

#include "upframe/error.hpp"

namespace upframe::nn {

namespace {

Op input_op(int blob) {
  Op op;
  op.type = OpType::kInput;
  op.name = "input";
  op.outputs = {blob};
  return op;
}

}  // namespace

Graph prefix_graph(const Graph& graph, int blob) {
  std::vector<bool> needed_blob(graph.blob_names.size(), false);
  needed_blob[blob] = true;
  std::vector<bool> keep(graph.ops.size(), false);
  // Ops are in topological order: walking back, an op is kept when it produces a needed blob.
  for (size_t i = graph.ops.size(); i-- > 0;) {
    const Op& op = graph.ops[i];
    for (int out : op.outputs)
      if (needed_blob[out]) keep[i] = true;
    if (keep[i])
      for (int in : op.inputs) needed_blob[in] = true;
  }
  Graph part;
  part.param_path = graph.param_path + " (up to blob " + graph.blob_names[blob] + ")";
  part.blob_names = graph.blob_names;
  for (size_t i = 0; i < graph.ops.size(); ++i)
    if (keep[i]) part.ops.push_back(graph.ops[i]);
  part.input_blob = graph.input_blob;
  part.output_blob = blob;
  return part;
}

int packed_input_channels(const Graph& graph, int op_index, const std::vector<Shape>& shapes) {
  const Op& op = graph.ops.at(op_index);
  const auto fail = [&](const std::string& problem) {
    throw Error(graph.param_path,
                "layer " + op.name + " (" + op_type_name(op.type) + "): " + problem);
  };
  if (op.type == OpType::kInput || op.inputs.empty()) fail("has no input to pack");
  int channels = 0;
  const Shape& first = shapes.at(op.inputs[0]);
  for (int in : op.inputs) {
    const Shape& s = shapes.at(in);
    if (s.dims != 3 || s.h != first.h || s.w != first.w)
      fail("its inputs are not images of one size, so they cannot be packed into one input");
    channels += s.c;
  }
  return channels;
}

Graph single_op_graph(const Graph& graph, int op_index, const std::vector<Shape>& shapes) {
  const int channels = packed_input_channels(graph, op_index, shapes);
  Op op = graph.ops.at(op_index);
  Graph part;
  part.param_path = graph.param_path + " (layer " + op.name + " alone)";
  part.blob_names = {"packed"};
  part.input_blob = 0;
  Op input = input_op(0);
  input.params = InputParams{channels};
  part.ops.push_back(input);
  if (op.inputs.size() == 1) {
    op.inputs = {0};
  } else {
    int first_channel = 0;
    for (size_t k = 0; k < op.inputs.size(); ++k) {
      const int c = shapes.at(op.inputs[k]).c;
      Op crop;
      crop.type = OpType::kCrop;
      crop.name = "unpack" + std::to_string(k);
      crop.inputs = {0};
      crop.outputs = {int(part.blob_names.size())};
      CropParams slice;
      slice.starts = {first_channel};
      slice.ends = {first_channel + c};
      slice.axes = {0};
      crop.params = slice;
      part.blob_names.push_back("input" + std::to_string(k));
      part.ops.push_back(crop);
      op.inputs[k] = crop.outputs[0];
      first_channel += c;
    }
  }
  for (int& out : op.outputs) {
    part.blob_names.push_back(graph.blob_names.at(out));
    out = int(part.blob_names.size()) - 1;
  }
  part.ops.push_back(op);
  // The op's first output is the part's output; a second output (none in ncnn's image ops
  // that upframe runs) would be left unread.
  part.output_blob = op.outputs.at(0);
  return part;
}

}  // namespace upframe::nn
