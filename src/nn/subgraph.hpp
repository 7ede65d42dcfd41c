// Parts of a graph run on their own. The device-check kit (tools/device-check) compares every
// op of the shipped models on CUDA with the CPU executor's result one op at a time, so a wrong
// kernel shows as the op it is, not as an error spread over everything after it.
#pragma once

#include <vector>

#include "graph.hpp"  // relative: tests include this header by path

namespace upframe::nn {

// The ops `blob` depends on, in the graph's order, with `blob` as the output.
Graph prefix_graph(const Graph& graph, int blob);

// Op `op_index` of `graph` alone. Its inputs come packed along the channels of one input
// blob, in the op's input order (a blob read twice is packed twice), and Crop layers cut them
// apart again, so any op can run through an executor's one-input interface. `shapes` are the
// graph's blob shapes (Graph::infer_shapes). Throws upframe::Error for an Input op, or inputs
// that cannot be packed (vectors, or heights and widths that differ).
Graph single_op_graph(const Graph& graph, int op_index, const std::vector<Shape>& shapes);

// Channels of single_op_graph's packed input (the sum of the op's input channels).
int packed_input_channels(const Graph& graph, int op_index, const std::vector<Shape>& shapes);

}  // namespace upframe::nn
