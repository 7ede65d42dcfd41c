#include "nn/graph_runner.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "upframe/error.hpp"
#include "upframe/log.hpp"

namespace upframe::nn {

namespace {

// Tiling gives up to four shapes per frame size (inner, right, bottom, corner tiles).
constexpr size_t kMaxCachedShapes = 8;

std::string dims_text(int c, int h, int w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

}  // namespace

GraphRunner::GraphRunner(const Model& model, Backend& backend)
    : model_(model),
      graph_(model.graph()),
      backend_(backend),
      profile_(std::getenv("UPFRAME_NN_PROFILE") != nullptr) {}

void GraphRunner::check_input(int c, int h, int w, size_t values) const {
  const ModelInfo& info = model_.info();
  if (c != info.input_channels || h <= 0 || w <= 0)
    throw Error(info.name, "input tensor is " + dims_text(c, h, w) + ", the model takes " +
                               std::to_string(info.input_channels) + " channels");
  if (values != size_t(c) * h * w)
    throw Error(info.name,
                "input tensor holds " + std::to_string(values) + " values for its shape");
}

PlanBase& GraphRunner::plan_for(int c, int h, int w) {
  const auto key = std::make_tuple(c, h, w);
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  if (plans_.size() >= kMaxCachedShapes) {  // bounded memory for many shapes
    backend_.synchronize();
    plans_.clear();
  }
  const Shape shape{3, c, h, w};
  std::unique_ptr<PlanBase> plan;
  try {
    plan = build(shape);
  } catch (const CudaOutOfMemory&) {
    // Plans cached for other shapes (and memory sized for them) may hold what this one needs:
    // free them and try once more, so a caller retrying with smaller tiles gets it back.
    backend_.synchronize();
    const bool had_plans = !plans_.empty();
    plans_.clear();
    if (!backend_.release_shared_memory() && !had_plans) throw;
    plan = build(shape);
  }
  return *plans_.emplace(key, std::move(plan)).first->second;
}

std::unique_ptr<PlanBase> GraphRunner::build(const Shape& input) {
  std::vector<Shape> shapes = graph_.infer_shapes(input);
  if (shapes[graph_.output_blob].dims != 3)
    throw Error(graph_.param_path, "the model's output is not an image");
  std::unique_ptr<PlanBase> plan = backend_.new_plan(shapes);
  plan->shapes = std::move(shapes);
  for (size_t i = 0; i < graph_.ops.size(); ++i) {
    const Op& op = graph_.ops[i];
    std::string why;
    if (!backend_.supports_op(op, &why))
      throw Error(graph_.param_path, "layer " + op.name + ": " + op_type_name(op.type) +
                                         (why.empty() ? "" : " of " + why) +
                                         " is not supported on " + backend_.name());
    backend_.prepare_op(*plan, int(i));
    plan->step_labels.resize(plan->steps.size(),
                             std::string(op_type_name(op.type)) + " " + op.name);
  }
  backend_.finish_plan(*plan);
  plan->step_labels.resize(plan->steps.size(), "output");

  // Buffer plan: blobs whose lifetimes do not overlap share a buffer.
  std::vector<size_t> bytes(graph_.blob_names.size());
  for (size_t b = 0; b < bytes.size(); ++b) bytes[b] = backend_.blob_bytes(*plan, int(b));
  const BufferPlan buffers = plan_buffers(graph_, bytes);
  std::vector<void*> data;
  for (size_t s = 0; s < buffers.slot_bytes.size(); ++s)
    data.push_back(backend_.allocate_buffer(*plan, buffers.slot_bytes[s],
                                            "activation buffer " + std::to_string(s) +
                                                " for input " + std::to_string(input.h) + "x" +
                                                std::to_string(input.w)));
  for (size_t b = 0; b < bytes.size(); ++b)
    if (buffers.blob_slot[b] >= 0) backend_.bind_blob(*plan, int(b), data[buffers.blob_slot[b]]);
  log_message(LogLevel::kDebug, std::string("nn plan on ") + backend_.name() + " for " +
                                    dims_text(input.c, input.h, input.w) + ": " +
                                    std::to_string(plan->steps.size()) + " steps, " +
                                    std::to_string(buffers.slot_bytes.size()) + " buffers, " +
                                    std::to_string(buffers.total_bytes() >> 20) + " MiB");
  return plan;
}

void GraphRunner::run_steps(PlanBase& plan) {
  if (!profile_) {
    for (auto& step : plan.steps) step();
    return;
  }
  // Time of each step, summed by op.
  std::map<std::string, double> ms;
  backend_.synchronize();
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    plan.steps[i]();
    backend_.synchronize();
    ms[plan.step_labels[i]] +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  for (const auto& [label, t] : ms) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f ms", t);
    log_message(LogLevel::kInfo,
                std::string("nn profile on ") + backend_.name() + ": " + label + " " + text);
  }
}

}  // namespace upframe::nn
