// The CPU's element-wise ops (activations, BinaryOp, Eltwise) and the reductions (global
// Pooling, InnerProduct, GroupNorm, LayerNorm): OpenMP loops over blobs in any of the backend's
// layouts.
#include <algorithm>
#include <cmath>

#include "nn/cpu/cpu_backend.hpp"
#include "nn/op_math.hpp"

namespace upframe::nn::cpu {

void prepare_activation(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  Blob in = plan.blobs[op.inputs[0]];
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, in.block);
  const ActivationSpec a = activation_of(op);
  plan.steps.push_back([in, out, a]() {
    const math::ActivationArgs args = math::activation_args(a);
    if (in.shape.dims != 3) {
      for (int i = 0; i < in.shape.w; ++i) out.data()[i] = math::activate(args, in.data()[i], i);
      return;
    }
    Blocked s = view(in), d = view(out);
#pragma omp parallel for collapse(2)
    for (int c = 0; c < s.channels; ++c)
      for (int y = 0; y < s.height; ++y)
        for (int x = 0; x < s.width; ++x) d.at(c, y, x) = math::activate(args, s.at(c, y, x), c);
    zero_channel_padding(d);
  });
}

void prepare_eltwise(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  Blob first = plan.blobs[op.inputs[0]];
  std::vector<Blob> ins;
  for (int b : op.inputs) ins.push_back(cpu.in_layout(plan, b, first.block));
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, first.block);
  EltwiseParams p = op.get<EltwiseParams>();
  plan.steps.push_back([ins, out, p]() {
    size_t n = out.mem.get_desc().get_size() / sizeof(float);
    float* d = out.data();
    auto coeff = [&](size_t k) { return p.coefficients.empty() ? 1.f : p.coefficients[k]; };
#pragma omp parallel for
    for (size_t i = 0; i < n; ++i) {
      float v = math::eltwise_first(p.kind, ins[0].data()[i], coeff(0));
      for (size_t k = 1; k < ins.size(); ++k)
        v = math::eltwise_fold(p.kind, v, ins[k].data()[i], coeff(k));
      d[i] = v;
    }
  });
}

void prepare_pooling(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  Blob in = plan.blobs[op.inputs[0]];
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, 0);
  const bool average = op.get<PoolingParams>().kind == PoolingKind::kAverage;
  plan.steps.push_back([in, out, average]() {
    Blocked s = view(in);
    float* d = out.data();
#pragma omp parallel for
    for (int c = 0; c < s.channels; ++c) {
      double sum = 0;
      float best = -INFINITY;
      for (int y = 0; y < s.height; ++y)
        for (int x = 0; x < s.width; ++x) {
          float v = s.at(c, y, x);
          sum += v;
          best = std::max(best, v);
        }
      d[c] = average ? float(sum / (double(s.height) * s.width)) : best;
    }
  });
}

void prepare_innerproduct(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  Blob in = cpu.in_layout(plan, op.inputs[0], 1);
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, 0);
  const InnerProductParams* p = &op.get<InnerProductParams>();
  plan.steps.push_back([in, out, p]() {
    const math::ActivationArgs args = math::activation_args(p->activation);
    size_t n = in.shape.elements();
    const float* x = in.data();
#pragma omp parallel for
    for (int o = 0; o < p->num_output; ++o) {
      const float* w = p->weights.data() + size_t(o) * n;
      float acc = p->bias_term ? p->bias[o] : 0.f;
      for (size_t i = 0; i < n; ++i) acc += w[i] * x[i];
      out.data()[o] = math::activate(args, acc, o);
    }
  });
}

namespace {

// GroupNorm: sums per (channel, row) in double, then per group the mean, then the biased
// variance from the deviations (two passes, as exact as the data allows).
void group_norm(const Blocked& s, const Blocked& d, const NormParams& p) {
  const math::NormWeights w = math::norm_weights(p);
  const int per_group = s.channels / p.groups;
  std::vector<double> row_sums(size_t(s.channels) * s.height);
  auto group_sum = [&](int g) {
    double sum = 0;
    for (int c = g * per_group; c < (g + 1) * per_group; ++c)
      for (int y = 0; y < s.height; ++y) sum += row_sums[size_t(c) * s.height + y];
    return sum;
  };
  const double count = double(per_group) * s.height * s.width;
  std::vector<float> mean(p.groups), inv_std(p.groups);
#pragma omp parallel for collapse(2)
  for (int c = 0; c < s.channels; ++c)
    for (int y = 0; y < s.height; ++y) {
      double sum = 0;
      for (int x = 0; x < s.width; ++x) sum += s.at(c, y, x);
      row_sums[size_t(c) * s.height + y] = sum;
    }
  for (int g = 0; g < p.groups; ++g) mean[g] = float(group_sum(g) / count);
#pragma omp parallel for collapse(2)
  for (int c = 0; c < s.channels; ++c)
    for (int y = 0; y < s.height; ++y) {
      const double m = mean[c / per_group];
      double sum = 0;
      for (int x = 0; x < s.width; ++x) sum += (s.at(c, y, x) - m) * (s.at(c, y, x) - m);
      row_sums[size_t(c) * s.height + y] = sum;
    }
  for (int g = 0; g < p.groups; ++g)
    inv_std[g] = float(1 / std::sqrt(group_sum(g) / count + double(p.eps)));
#pragma omp parallel for collapse(2)
  for (int c = 0; c < s.channels; ++c)
    for (int y = 0; y < s.height; ++y) {
      const int g = c / per_group;
      for (int x = 0; x < s.width; ++x)
        d.at(c, y, x) = math::normalize(s.at(c, y, x), mean[g], inv_std[g], w, c);
    }
}

// LayerNorm over the channels of each pixel, in fp32 as PyTorch's channels-first LayerNorm.
void channel_layer_norm(const Blocked& s, const Blocked& d, const NormParams& p) {
  const math::NormWeights w = math::norm_weights(p);
#pragma omp parallel for collapse(2)
  for (int y = 0; y < s.height; ++y)
    for (int x = 0; x < s.width; ++x) {
      float sum = 0;
      for (int c = 0; c < s.channels; ++c) sum += s.at(c, y, x);
      const float mean = sum / float(s.channels);
      float squares = 0;
      for (int c = 0; c < s.channels; ++c)
        squares += (s.at(c, y, x) - mean) * (s.at(c, y, x) - mean);
      const float inv_std = 1.f / std::sqrt(squares / float(s.channels) + p.eps);
      for (int c = 0; c < s.channels; ++c)
        d.at(c, y, x) = math::normalize(s.at(c, y, x), mean, inv_std, w, c);
    }
}

}  // namespace

void prepare_norm(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  Blob in = plan.blobs[op.inputs[0]];
  Blob out = cpu.new_blob(plan, op.outputs[0], plan.shapes[op.outputs[0]], in.block);
  const NormParams* p = &op.get<NormParams>();
  const bool groups = op.type == OpType::kGroupNorm;
  plan.steps.push_back([in, out, p, groups]() {
    (groups ? group_norm : channel_layer_norm)(view(in), view(out), *p);
    zero_channel_padding(view(out));
  });
}

void prepare_binaryop(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const Shape& out_shape = plan.shapes[op.outputs[0]];
  const BinaryParams p = op.get<BinaryParams>();
  Blob a = plan.blobs[op.inputs[0]];
  if (p.with_scalar) {
    Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, a.block);
    plan.steps.push_back([a, out, p]() {
      size_t n = a.mem.get_desc().get_size() / sizeof(float);
#pragma omp parallel for
      for (size_t i = 0; i < n; ++i) out.data()[i] = math::binary(p.kind, a.data()[i], p.scalar);
      if (out.shape.dims == 3) zero_channel_padding(view(out));
    });
    return;
  }
  Blob b = plan.blobs[op.inputs[1]];
  if (a.shape == b.shape) {
    b = cpu.in_layout(plan, op.inputs[1], a.block);
    Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, a.block);
    plan.steps.push_back([a, b, out, p]() {
      size_t n = a.mem.get_desc().get_size() / sizeof(float);
      const float *x = a.data(), *y = b.data();
      float* d = out.data();
      if (p.kind == BinaryKind::kAdd) {
#pragma omp parallel for simd
        for (size_t i = 0; i < n; ++i) d[i] = x[i] + y[i];
      } else {
#pragma omp parallel for
        for (size_t i = 0; i < n; ++i) d[i] = math::binary(p.kind, x[i], y[i]);
      }
      if (out.shape.dims == 3) zero_channel_padding(view(out));
    });
    return;
  }
  // Broadcast: one image and one value per channel (or a single value).
  bool image_first = a.shape.elements() >= b.shape.elements();
  Blob image = image_first ? a : b;
  Blob small = image_first ? b : a;
  if (small.shape.dims == 3)
    small = cpu.in_layout(plan, image_first ? op.inputs[1] : op.inputs[0], 1);
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, image.block);
  plan.steps.push_back([image, small, out, p, image_first]() {
    Blocked s = view(image), d = view(out);
    const float* v = small.data();
    bool single = small.shape.elements() == 1;
#pragma omp parallel for collapse(2)
    for (int c = 0; c < s.channels; ++c)
      for (int y = 0; y < s.height; ++y) {
        float k = v[single ? 0 : c];
        for (int x = 0; x < s.width; ++x) {
          float e = s.at(c, y, x);
          d.at(c, y, x) = image_first ? math::binary(p.kind, e, k) : math::binary(p.kind, k, e);
        }
      }
    zero_channel_padding(d);
  });
}

}  // namespace upframe::nn::cpu
