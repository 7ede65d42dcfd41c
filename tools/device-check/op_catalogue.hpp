// The op catalogue (tests/nn/op_cases.hpp) as both ends of the device check build it: the
// reference generator (make_refs.cpp) runs each case on the CPU executor and writes its input
// and output to ops.ref under "cases/<name>/"; the kit (device_check.cpp) builds the same case
// and runs it on CUDA against that output. The kit has no scratch folder or gtest, so the
// model is read from the case's text in memory.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "nn/graph.hpp"
#include "nn/op_cases.hpp"
#include "nn/reader.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::device_check {

inline std::shared_ptr<const nn::Model> op_case_model(const test::op_cases::OpCase& c) {
  nn::Graph graph = nn::read_ncnn_model_text(test::make_param(c.layers), c.bin, c.name);
  graph.simplify();  // as Model::load does
  return nn::Model::from_graph(std::move(graph), c.name);
}

inline std::string op_case_key(const test::op_cases::OpCase& c, const std::string& part) {
  return "cases/" + c.name + "/" + part;
}

}  // namespace upframe::device_check
