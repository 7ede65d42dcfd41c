// What every executor shares, whatever runs the ops: the plan cache keyed by input shape, the
// input checks and their messages, the build sequence (infer shapes -> each op's prepare
// function -> buffer plan -> allocate -> bind), the "not supported" error and step profiling.
// A backend (src/nn/cpu, src/nn/cuda) supplies a Backend: a table of prepare_<op> functions
// indexed by OpType, its storage, and supports_op.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "nn/graph.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::nn {

// One input shape's plan: the blob shapes and the steps that run the ops, each labelled with
// the op it belongs to (for profiling). A backend derives its own, with its buffers.
struct PlanBase {
  virtual ~PlanBase() = default;
  std::vector<Shape> shapes;
  std::vector<std::function<void()>> steps;
  std::vector<std::string> step_labels;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Names the backend in messages: "... is not supported on <name>".
  virtual const char* name() const = 0;
  // Whether this backend runs `op`: its type has a prepare function and its parameters are
  // within what that function handles (where not, `why`, if given, may say which limit).
  virtual bool supports_op(const Op& op, std::string* why) const = 0;
  // An empty plan for blobs of `shapes` (Graph::infer_shapes).
  virtual std::unique_ptr<PlanBase> new_plan(const std::vector<Shape>& shapes) = 0;
  // Adds the steps of op `op_index` (the prepare function of its type).
  virtual void prepare_op(PlanBase& plan, int op_index) = 0;
  // After the last op: steps that bring the output blob into the form the executor returns.
  virtual void finish_plan(PlanBase&) {}
  // Bytes blob `b` takes in this backend's storage once every op is prepared (0: none).
  virtual size_t blob_bytes(const PlanBase& plan, int b) const = 0;
  // One buffer of the buffer plan, owned by `plan`; `what` names it in errors.
  virtual void* allocate_buffer(PlanBase& plan, size_t bytes, const std::string& what) = 0;
  // Blob `b` lives at `data` (a buffer allocate_buffer returned).
  virtual void bind_blob(PlanBase& plan, int b, void* data) = 0;
  // Waits until the queued steps are done (before timing a step or freeing plans).
  virtual void synchronize() {}
  // Frees memory held beside the plans (CUDA's convolution workspace) when the plans are freed
  // to make room; returns whether there was any.
  virtual bool release_shared_memory() { return false; }
};

class GraphRunner {
 public:
  // `model` and `backend` outlive the runner.
  GraphRunner(const Model& model, Backend& backend);

  // Throws upframe::Error naming the model for an input the model cannot take: not
  // info().input_channels channels, an empty size, or `values` other than c * h * w.
  void check_input(int c, int h, int w, size_t values) const;
  // The plan for a c x h x w input, built on first use and cached (a few shapes: tiling gives
  // up to four per frame size). Where building runs out of device memory (CudaOutOfMemory),
  // the other plans and the backend's shared memory are freed and it is built once more.
  PlanBase& plan_for(int c, int h, int w);
  // Runs the plan's steps in order; UPFRAME_NN_PROFILE=1 logs each op's time (the backend
  // synchronised after each step).
  void run_steps(PlanBase& plan);
  // Frees every cached plan (the backend's queued work must be done).
  void clear_plans() { plans_.clear(); }

  const Graph& graph() const { return graph_; }

 private:
  std::unique_ptr<PlanBase> build(const Shape& input);

  const Model& model_;
  const Graph& graph_;
  Backend& backend_;
  std::map<std::tuple<int, int, int>, std::unique_ptr<PlanBase>> plans_;
  bool profile_;
};

}  // namespace upframe::nn
