// ONNX models built with dlb::OnnxModelBuilder, checked by the real tools: ONNX's checker
// (python3-onnx, check_model with full_check) and ONNX Runtime (npm onnxruntime-web, WASM
// backend, under Node.js), whose outputs on fixed inputs must match references computed here
// by hand with plain loops, to 1e-5. Then a property test: random graphs decode with the onnx
// package (protobuf's own parser) into exactly what was added.
//
// The tools are found by tests/onnx/CMakeLists.txt; CTest's setup test installs
// onnxruntime-web once into the build directory. A case whose tool is missing reports
// "[skipped]" (CTest: Skipped). Each check has a negative control: a wrong reference, models
// the checker must reject, a model ONNX Runtime must refuse, a tampered description.

#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "dlb/onnx/onnx_model_builder.hpp"
#include "support/onnx_tools.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb::OnnxAttribute;
using dlb::OnnxModelBuilder;
using dlb_test::NamedTensor;

constexpr double kTolerance = 1e-5;
constexpr const char* kVersion = "0.1.0";

// ---------------------------------------------------------------------------------------
// Reference computations: NCHW tensors, plain loops, double accumulators.

struct Tensor {
  std::vector<std::int64_t> dims;
  std::vector<float> data;

  float& At(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
    return data[static_cast<std::size_t>(((n * dims[1] + c) * dims[2] + h) * dims[3] + w)];
  }
  float At(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) const {
    return data[static_cast<std::size_t>(((n * dims[1] + c) * dims[2] + h) * dims[3] + w)];
  }
};

std::size_t Count(const std::vector<std::int64_t>& dims) {
  std::size_t count = 1;
  for (const std::int64_t d : dims) count *= static_cast<std::size_t>(d);
  return count;
}

/// Values uniform in [lo, hi), the same on every platform (no std distribution).
Tensor Random(std::vector<std::int64_t> dims, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  Tensor t{std::move(dims), {}};
  t.data.resize(Count(t.dims));
  for (float& v : t.data) v = lo + (hi - lo) * static_cast<float>(rng() >> 8) * 0x1p-24f;
  return t;
}

Tensor Map(Tensor x, const std::function<double(double)>& f) {
  for (float& v : x.data) v = static_cast<float>(f(v));
  return x;
}

// y = x w^T + b: x [N, K], w [M, K], b [M] (Gemm with transB = 1).
Tensor Gemm(const Tensor& x, const Tensor& w, const Tensor& b) {
  const std::int64_t n = x.dims[0], k = x.dims[1], m = w.dims[0];
  Tensor y{{n, m}, std::vector<float>(Count({n, m}))};
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < m; ++j) {
      double sum = b.data[j];
      for (std::int64_t l = 0; l < k; ++l) sum += double{x.data[i * k + l]} * w.data[j * k + l];
      y.data[i * m + j] = static_cast<float>(sum);
    }
  }
  return y;
}

// Convolution (cross-correlation) with zero padding `pad` on every side and stride 1;
// `b` empty: no bias.
Tensor Conv(const Tensor& x, const Tensor& w, const Tensor* b, std::int64_t pad) {
  const std::int64_t n = x.dims[0], c = x.dims[1], h = x.dims[2], wd = x.dims[3];
  const std::int64_t o = w.dims[0], kh = w.dims[2], kw = w.dims[3];
  const std::int64_t oh = h + 2 * pad - kh + 1, ow = wd + 2 * pad - kw + 1;
  Tensor y{{n, o, oh, ow}, std::vector<float>(Count({n, o, oh, ow}))};
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t f = 0; f < o; ++f)
      for (std::int64_t r = 0; r < oh; ++r)
        for (std::int64_t s = 0; s < ow; ++s) {
          double sum = b ? b->data[f] : 0.0;
          for (std::int64_t ch = 0; ch < c; ++ch)
            for (std::int64_t p = 0; p < kh; ++p)
              for (std::int64_t q = 0; q < kw; ++q) {
                const std::int64_t rr = r + p - pad, ss = s + q - pad;
                if (rr < 0 || rr >= h || ss < 0 || ss >= wd) continue;
                sum += double{x.At(i, ch, rr, ss)} * w.At(f, ch, p, q);
              }
          y.At(i, f, r, s) = static_cast<float>(sum);
        }
  return y;
}

// Inference-form batch normalization over axis 1 of [N, C, ...].
Tensor BatchNorm(Tensor x, const Tensor& scale, const Tensor& bias, const Tensor& mean,
                 const Tensor& var, double epsilon) {
  const std::int64_t c = x.dims[1];
  const std::size_t inner = Count(x.dims) / static_cast<std::size_t>(x.dims[0] * c);
  for (std::size_t i = 0; i < x.data.size(); ++i) {
    const std::size_t ch = (i / inner) % static_cast<std::size_t>(c);
    x.data[i] = static_cast<float>((x.data[i] - double{mean.data[ch]}) /
                                       std::sqrt(double{var.data[ch]} + epsilon) * scale.data[ch] +
                                   bias.data[ch]);
  }
  return x;
}

// k x k pooling with stride k, no padding, floor of the output size.
Tensor Pool(const Tensor& x, std::int64_t k, bool max) {
  const std::int64_t n = x.dims[0], c = x.dims[1], oh = x.dims[2] / k, ow = x.dims[3] / k;
  Tensor y{{n, c, oh, ow}, std::vector<float>(Count({n, c, oh, ow}))};
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t r = 0; r < oh; ++r)
        for (std::int64_t s = 0; s < ow; ++s) {
          double acc = max ? -INFINITY : 0.0;
          for (std::int64_t p = 0; p < k; ++p)
            for (std::int64_t q = 0; q < k; ++q) {
              const double v = x.At(i, ch, r * k + p, s * k + q);
              acc = max ? std::max(acc, v) : acc + v;
            }
          y.At(i, ch, r, s) = static_cast<float>(max ? acc : acc / static_cast<double>(k * k));
        }
  return y;
}

// GlobalAveragePool then Flatten: [N, C, H, W] -> [N, C].
Tensor GlobalAverageFlat(const Tensor& x) {
  const std::int64_t n = x.dims[0], c = x.dims[1], hw = x.dims[2] * x.dims[3];
  Tensor y{{n, c}, std::vector<float>(Count({n, c}))};
  for (std::int64_t i = 0; i < n * c; ++i) {
    double sum = 0;
    for (std::int64_t j = 0; j < hw; ++j) sum += x.data[i * hw + j];
    y.data[i] = static_cast<float>(sum / static_cast<double>(hw));
  }
  return y;
}

// Concatenation of two [N, C_i, H, W] along the channels.
Tensor ConcatChannels(const Tensor& a, const Tensor& b) {
  const std::int64_t n = a.dims[0], hw = a.dims[2] * a.dims[3];
  Tensor y{{n, a.dims[1] + b.dims[1], a.dims[2], a.dims[3]}, {}};
  for (std::int64_t i = 0; i < n; ++i) {
    const auto part = [&](const Tensor& t) {
      const auto begin = t.data.begin() + i * t.dims[1] * hw;
      y.data.insert(y.data.end(), begin, begin + t.dims[1] * hw);
    };
    part(a);
    part(b);
  }
  return y;
}

double Sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// ---------------------------------------------------------------------------------------
// Running the tools.

NamedTensor Named(std::string name, const Tensor& t) { return {std::move(name), t.dims, t.data}; }

void AddInitializer(OnnxModelBuilder& builder, const std::string& name, const Tensor& t) {
  builder.AddFloatInitializer(name, t.dims, t.data);
}

/// Runs ONNX's checker on `path`; REQUIREs acceptance. False when the checker is missing.
bool CheckAccepted(const std::string& path) {
  if (!dlb_test::HaveOnnxChecker()) {
    WARN("[skipped] ONNX's checker: no python3 with the onnx module (Debian python3-onnx)");
    return false;
  }
  const dlb_test::CommandResult result = dlb_test::RunOnnxChecker(path);
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  return true;
}

struct Run {
  std::vector<NamedTensor> inputs;
  std::vector<NamedTensor> expected;
};

/// Runs the model file with ONNX Runtime once per run; returns each run's outputs, or nothing
/// when ONNX Runtime is not installed. REQUIREs that it ran.
std::optional<std::vector<std::vector<NamedTensor>>> RunOnnxRuntime(
    const dlb_test::TempDir& dir, const std::string& model, const std::vector<Run>& runs) {
  if (!dlb_test::HaveOnnxRuntime()) {
    WARN("[skipped] ONNX Runtime: onnxruntime-web is not installed in "
         << dlb_test::kOnnxRuntimePrefix
         << " (node: " << (dlb_test::kNode.empty() ? "not found" : dlb_test::kNode)
         << "); CTest's setup test installs it with npm");
    return std::nullopt;
  }
  std::vector<std::string> command = {dlb_test::kNode, dlb_test::kOnnxToolsDir + "/run_onnxruntime.js",
                                      dlb_test::kOnnxRuntimePrefix, model};
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const std::string in = dir / ("inputs" + std::to_string(r) + ".bin");
    dlb_test::WriteTensorList(in, runs[r].inputs);
    command.push_back(in);
    command.push_back(dir / ("outputs" + std::to_string(r) + ".bin"));
  }
  const dlb_test::CommandResult result = dlb_test::RunCommand(command);
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  std::vector<std::vector<NamedTensor>> outputs;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    outputs.push_back(dlb_test::ReadTensorList(dir / ("outputs" + std::to_string(r) + ".bin")));
  }
  return outputs;
}

/// Saves the model, has the checker accept it and ONNX Runtime reproduce every run's expected
/// outputs to kTolerance. Negative control of the comparison: each reference, moved by
/// 3 * kTolerance at one value, must be reported as a mismatch; and each reference must not
/// be (nearly) constant, so that a model computing nothing useful cannot match by accident.
void Verify(const OnnxModelBuilder& builder, const std::string& name, const std::vector<Run>& runs) {
  for (const Run& run : runs) {
    for (const NamedTensor& expected : run.expected) {
      const auto [lo, hi] = std::minmax_element(expected.data.begin(), expected.data.end());
      INFO("reference " << expected.name << " spans [" << *lo << ", " << *hi << "]");
      REQUIRE(*hi - *lo > 0.1);
    }
  }
  dlb_test::TempDir dir("dlb_onnx_" + name + "_");
  const std::string model = dir / (name + ".onnx");
  builder.Save(model);
  CheckAccepted(model);
  const auto outputs = RunOnnxRuntime(dir, model, runs);
  if (!outputs) return;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    INFO("run " << r);
    REQUIRE((*outputs)[r].size() == runs[r].expected.size());
    for (std::size_t o = 0; o < runs[r].expected.size(); ++o) {
      CHECK(dlb_test::TensorMismatch((*outputs)[r][o], runs[r].expected[o], kTolerance) == "");
      NamedTensor wrong = runs[r].expected[o];
      wrong.data[wrong.data.size() / 2] +=
          static_cast<float>(3 * kTolerance * std::max(1.0f, std::abs(wrong.data[wrong.data.size() / 2])));
      CHECK_FALSE(dlb_test::TensorMismatch((*outputs)[r][o], wrong, kTolerance).empty());
    }
  }
}

}  // namespace

TEST_CASE("onnx runtime: MLP (Gemm, Relu), dynamic batch dimension: batches of 1 and 3") {
  const Tensor w1 = Random({5, 4}, 1), b1 = Random({5}, 2), w2 = Random({3, 5}, 3), b2 = Random({3}, 4);
  OnnxModelBuilder builder("mlp", kVersion);
  builder.AddInput("input", {dlb::kOnnxBatchDimension, 4});
  AddInitializer(builder, "layers.0.weight", w1);
  AddInitializer(builder, "layers.0.bias", b1);
  AddInitializer(builder, "layers.2.weight", w2);
  AddInitializer(builder, "layers.2.bias", b2);
  builder.AddNode({.name = "layers.0",
                   .op_type = "Gemm",
                   .inputs = {"input", "layers.0.weight", "layers.0.bias"},
                   .outputs = {"layers.0.output"},
                   .attributes = {OnnxAttribute::Int("transB", 1)}});
  builder.AddNode({.name = "layers.1", .op_type = "Relu", .inputs = {"layers.0.output"},
                   .outputs = {"layers.1.output"}});
  builder.AddNode({.name = "layers.2",
                   .op_type = "Gemm",
                   .inputs = {"layers.1.output", "layers.2.weight", "layers.2.bias"},
                   .outputs = {"output"},
                   .attributes = {OnnxAttribute::Int("transB", 1)}});
  builder.AddOutput("output", {dlb::kOnnxBatchDimension, 3});

  std::vector<Run> runs;
  for (const std::int64_t batch : {1, 3}) {
    const Tensor x = Random({batch, 4}, 10 + static_cast<std::uint32_t>(batch), -2.0f, 2.0f);
    const Tensor y = Gemm(Map(Gemm(x, w1, b1), [](double v) { return std::max(v, 0.0); }), w2, b2);
    runs.push_back({{Named("input", x)}, {Named("output", y)}});
  }
  Verify(builder, "mlp", runs);
}

TEST_CASE("onnx runtime: CNN with a standardizer (Sub, Div, Conv, BatchNormalization, Relu, "
          "MaxPool, GlobalAveragePool, Flatten, Gemm)") {
  const Tensor mean{{1, 2, 1, 1}, {0.5f, -0.25f}}, std_dev{{1, 2, 1, 1}, {2.0f, 0.5f}};
  const Tensor conv_w = Random({3, 2, 3, 3}, 20), conv_b = Random({3}, 21);
  const Tensor bn_scale = Random({3}, 22, 0.5f, 1.5f), bn_bias = Random({3}, 23);
  const Tensor bn_mean = Random({3}, 24, -0.2f, 0.2f), bn_var = Random({3}, 25, 0.5f, 2.0f);
  const Tensor fc_w = Random({4, 3}, 26, -2.0f, 2.0f), fc_b = Random({4}, 27);
  const float epsilon = 1e-5f;

  OnnxModelBuilder builder("cnn", kVersion);
  builder.AddInput("input", {dlb::kOnnxBatchDimension, 2, 6, 6});
  AddInitializer(builder, "standardizer.mean", mean);
  AddInitializer(builder, "standardizer.std", std_dev);
  AddInitializer(builder, "layers.0.weight", conv_w);
  AddInitializer(builder, "layers.0.bias", conv_b);
  AddInitializer(builder, "layers.1.weight", bn_scale);
  AddInitializer(builder, "layers.1.bias", bn_bias);
  AddInitializer(builder, "layers.1.running_mean", bn_mean);
  AddInitializer(builder, "layers.1.running_var", bn_var);
  AddInitializer(builder, "layers.6.weight", fc_w);
  AddInitializer(builder, "layers.6.bias", fc_b);
  builder.AddNode({.name = "standardizer.sub", .op_type = "Sub",
                   .inputs = {"input", "standardizer.mean"}, .outputs = {"centered"}});
  builder.AddNode({.name = "standardizer.div", .op_type = "Div",
                   .inputs = {"centered", "standardizer.std"}, .outputs = {"standardized"}});
  builder.AddNode({.name = "layers.0",
                   .op_type = "Conv",
                   .inputs = {"standardized", "layers.0.weight", "layers.0.bias"},
                   .outputs = {"layers.0.output"},
                   .attributes = {OnnxAttribute::String("auto_pad", "NOTSET"),
                                  OnnxAttribute::Ints("dilations", {1, 1}),
                                  OnnxAttribute::Int("group", 1),
                                  OnnxAttribute::Ints("kernel_shape", {3, 3}),
                                  OnnxAttribute::Ints("pads", {1, 1, 1, 1}),
                                  OnnxAttribute::Ints("strides", {1, 1})}});
  builder.AddNode({.name = "layers.1",
                   .op_type = "BatchNormalization",
                   .inputs = {"layers.0.output", "layers.1.weight", "layers.1.bias",
                              "layers.1.running_mean", "layers.1.running_var"},
                   .outputs = {"layers.1.output"},
                   .attributes = {OnnxAttribute::Float("epsilon", epsilon)}});
  builder.AddNode({.name = "layers.2", .op_type = "Relu", .inputs = {"layers.1.output"},
                   .outputs = {"layers.2.output"}});
  builder.AddNode({.name = "layers.3",
                   .op_type = "MaxPool",
                   .inputs = {"layers.2.output"},
                   .outputs = {"layers.3.output"},
                   .attributes = {OnnxAttribute::Ints("kernel_shape", {2, 2}),
                                  OnnxAttribute::Ints("strides", {2, 2})}});
  builder.AddNode({.name = "layers.4", .op_type = "GlobalAveragePool",
                   .inputs = {"layers.3.output"}, .outputs = {"layers.4.output"}});
  builder.AddNode({.name = "layers.5", .op_type = "Flatten", .inputs = {"layers.4.output"},
                   .outputs = {"layers.5.output"},
                   .attributes = {OnnxAttribute::Int("axis", 1)}});
  builder.AddNode({.name = "layers.6",
                   .op_type = "Gemm",
                   .inputs = {"layers.5.output", "layers.6.weight", "layers.6.bias"},
                   .outputs = {"output"},
                   .attributes = {OnnxAttribute::Int("transB", 1)}});
  builder.AddOutput("output", {dlb::kOnnxBatchDimension, 4});

  const Tensor x = Random({2, 2, 6, 6}, 28, -3.0f, 3.0f);
  Tensor standardized = x;
  for (std::size_t i = 0; i < x.data.size(); ++i) {
    const std::size_t c = (i / 36) % 2;
    standardized.data[i] = static_cast<float>((double{x.data[i]} - mean.data[c]) / std_dev.data[c]);
  }
  const Tensor bn = BatchNorm(Conv(standardized, conv_w, &conv_b, 1), bn_scale, bn_bias, bn_mean,
                              bn_var, epsilon);
  const Tensor pooled = Pool(Map(bn, [](double v) { return std::max(v, 0.0); }), 2, true);
  const Tensor y = Gemm(GlobalAverageFlat(pooled), fc_w, fc_b);
  Verify(builder, "cnn", {{{Named("input", x)}, {Named("output", y)}}});
}

TEST_CASE("onnx runtime: residual and concatenation blocks (Conv without bias, Add, LeakyRelu, "
          "Concat, AveragePool, Reshape, BatchNormalization 1D, Sigmoid, Tanh, Constant)") {
  const Tensor conv_w = Random({2, 2, 3, 3}, 30);
  const Tensor bn_scale = Random({16}, 31, 0.5f, 1.5f), bn_bias = Random({16}, 32);
  const Tensor bn_mean = Random({16}, 33, -0.2f, 0.2f), bn_var = Random({16}, 34, 0.5f, 2.0f);
  const Tensor offset = Random({16}, 35);
  const float alpha = 0.1f, epsilon = 1e-3f;

  OnnxModelBuilder builder("blocks", kVersion);
  builder.AddInput("input", {dlb::kOnnxBatchDimension, 2, 4, 4});
  AddInitializer(builder, "block.conv.weight", conv_w);
  builder.AddInt64Initializer("flatten.shape", {2}, std::vector<std::int64_t>{0, -1});
  AddInitializer(builder, "bn.weight", bn_scale);
  AddInitializer(builder, "bn.bias", bn_bias);
  AddInitializer(builder, "bn.running_mean", bn_mean);
  AddInitializer(builder, "bn.running_var", bn_var);
  builder.AddNode({.name = "block.conv",
                   .op_type = "Conv",
                   .inputs = {"input", "block.conv.weight"},
                   .outputs = {"block.conv.output"},
                   .attributes = {OnnxAttribute::Ints("kernel_shape", {3, 3}),
                                  OnnxAttribute::Ints("pads", {1, 1, 1, 1})}});
  builder.AddNode({.name = "block.add", .op_type = "Add", .inputs = {"block.conv.output", "input"},
                   .outputs = {"block.output"}});
  builder.AddNode({.name = "branch.leaky_relu", .op_type = "LeakyRelu", .inputs = {"input"},
                   .outputs = {"branch.output"},
                   .attributes = {OnnxAttribute::Float("alpha", alpha)}});
  builder.AddNode({.name = "concat", .op_type = "Concat",
                   .inputs = {"block.output", "branch.output"}, .outputs = {"concat.output"},
                   .attributes = {OnnxAttribute::Int("axis", 1)}});
  builder.AddNode({.name = "pool", .op_type = "AveragePool", .inputs = {"concat.output"},
                   .outputs = {"pool.output"},
                   .attributes = {OnnxAttribute::Ints("kernel_shape", {2, 2}),
                                  OnnxAttribute::Ints("strides", {2, 2})}});
  builder.AddNode({.name = "flatten", .op_type = "Reshape",
                   .inputs = {"pool.output", "flatten.shape"}, .outputs = {"flatten.output"}});
  builder.AddNode({.name = "bn", .op_type = "BatchNormalization",
                   .inputs = {"flatten.output", "bn.weight", "bn.bias", "bn.running_mean",
                              "bn.running_var"},
                   .outputs = {"bn.output"},
                   .attributes = {OnnxAttribute::Float("epsilon", epsilon)}});
  builder.AddNode({.name = "sigmoid", .op_type = "Sigmoid", .inputs = {"bn.output"},
                   .outputs = {"sigmoid.output"}});
  builder.AddNode({.name = "tanh", .op_type = "Tanh", .inputs = {"sigmoid.output"},
                   .outputs = {"tanh.output"}});
  builder.AddNode({.name = "offset", .op_type = "Constant", .inputs = {}, .outputs = {"offset"},
                   .attributes = {OnnxAttribute::Floats("value_floats", offset.data)}});
  builder.AddNode({.name = "add_offset", .op_type = "Add", .inputs = {"tanh.output", "offset"},
                   .outputs = {"output"}});
  builder.AddOutput("output", {dlb::kOnnxBatchDimension, 16});

  const Tensor x = Random({2, 2, 4, 4}, 36, -2.0f, 2.0f);
  Tensor residual = Conv(x, conv_w, nullptr, 1);
  for (std::size_t i = 0; i < x.data.size(); ++i) residual.data[i] += x.data[i];
  const Tensor branch = Map(x, [alpha](double v) { return v >= 0 ? v : alpha * v; });
  Tensor pooled = Pool(ConcatChannels(residual, branch), 2, false);
  pooled.dims = {2, 16};
  Tensor y = Map(BatchNorm(pooled, bn_scale, bn_bias, bn_mean, bn_var, epsilon),
                 [](double v) { return std::tanh(Sigmoid(v)); });
  for (std::size_t i = 0; i < y.data.size(); ++i) y.data[i] += offset.data[i % 16];
  Verify(builder, "blocks", {{{Named("input", x)}, {Named("output", y)}}});
}

TEST_CASE("onnx runtime: negative controls: the checker and ONNX Runtime refuse broken models") {
  dlb_test::TempDir dir("dlb_onnx_negative_");
  // Each model is valid for the builder (it cannot know every operator) but not for ONNX.
  const auto model = [&](const std::string& name, const std::string& op_type,
                         std::vector<OnnxAttribute> attributes, std::int64_t declared_width) {
    OnnxModelBuilder builder(name, kVersion);
    builder.AddInput("input", {dlb::kOnnxBatchDimension, 3});
    builder.AddNode({.name = "node", .op_type = op_type, .inputs = {"input"},
                     .outputs = {"output"}, .attributes = std::move(attributes)});
    builder.AddOutput("output", {dlb::kOnnxBatchDimension, declared_width});
    const std::string path = dir / (name + ".onnx");
    builder.Save(path);
    return path;
  };
  const std::string good = model("good", "Relu", {}, 3);
  const std::string unknown_op = model("unknown_op", "NoSuchOp", {}, 3);
  const std::string bad_attribute = model("bad_attribute", "Relu", {OnnxAttribute::Float("alpha", 1)}, 3);
  const std::string wrong_shape = model("wrong_shape", "Relu", {}, 4);
  const std::string truncated = dir / "truncated.onnx";
  {
    std::ifstream in(good, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() - 5);
  }

  if (CheckAccepted(good)) {
    // One checker run for all four (python and onnx take about a second to start).
    const dlb_test::CommandResult result = dlb_test::RunCommand(
        {dlb_test::kOnnxPython, "-B", dlb_test::kOnnxToolsDir + "/check_onnx_model.py", unknown_op,
         bad_attribute, wrong_shape, truncated});
    INFO(result.output);
    CHECK(result.exit_code == 1);
    const std::vector<std::pair<std::string, std::string>> rejected = {
        {unknown_op, "No Op registered for NoSuchOp"},
        {bad_attribute, "Unrecognized attribute: alpha"},
        {wrong_shape, "Inferred shape and existing shape differ"},
        {truncated, "DecodeError"},
    };
    for (const auto& [path, message] : rejected) {
      const std::size_t line = result.output.find(path + ": REJECTED");
      CHECK(line != std::string::npos);
      CHECK(result.output.find(message, line) != std::string::npos);
    }
  }

  const Tensor x = Random({2, 3}, 40);
  const std::vector<Run> runs = {{{Named("input", x)}, {}}};
  if (!dlb_test::HaveOnnxRuntime()) {
    WARN("[skipped] ONNX Runtime: onnxruntime-web is not installed in " << dlb_test::kOnnxRuntimePrefix);
    return;
  }
  const auto outputs = RunOnnxRuntime(dir, good, runs);
  REQUIRE(outputs);
  CHECK(dlb_test::TensorMismatch(outputs->at(0).at(0),
                                 Named("output", Map(x, [](double v) { return std::max(v, 0.0); })),
                                 kTolerance) == "");
  for (const std::string& path : {unknown_op}) {
    dlb_test::WriteTensorList(dir / "in.bin", runs[0].inputs);
    const dlb_test::CommandResult result = dlb_test::RunCommand(
        {dlb_test::kNode, dlb_test::kOnnxToolsDir + "/run_onnxruntime.js",
         dlb_test::kOnnxRuntimePrefix, path, dir / "in.bin", dir / "out.bin"});
    INFO(path << ":\n" << result.output);
    CHECK(result.exit_code == 1);
    CHECK(result.output.find("refused the model") != std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------
// Property test: random graphs, decoded by protobuf's own parser.

namespace {

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (b < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", b);
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string JsonHex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : bytes) {
    out += digits[static_cast<unsigned char>(c) >> 4];
    out += digits[static_cast<unsigned char>(c) & 15];
  }
  return out + "\"";
}

template <class T, class F>
std::string JsonList(const std::vector<T>& items, F&& item) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + item(items[i]);
  return out + "]";
}

std::string JsonInt(std::int64_t v) { return std::to_string(v); }

/// Builds one random graph through the builder, saves it as NAME.onnx and its description as
/// NAME.json (see tests/onnx/compare_decoded.py).
class RandomGraph {
 public:
  explicit RandomGraph(std::uint64_t seed) : rng_(seed), builder_("g" + std::to_string(seed), "v" + std::to_string(seed % 7)) {
    graph_name_ = "g" + std::to_string(seed);
    producer_version_ = "v" + std::to_string(seed % 7);
    for (int i = 0, n = Below(3) + 1; i < n; ++i) AddInput();
    for (int i = 0, n = Below(5); i < n; ++i) AddInitializer();
    for (int i = 0, n = Below(6) + 1; i < n; ++i) AddNode();
    for (int i = 0, n = Below(2) + 1; i < n; ++i) AddOutput();
  }

  void Save(const std::string& stem) const {
    builder_.Save(stem + ".onnx");
    std::ofstream json(stem + ".json", std::ios::binary);
    json << "{\"ir_version\": 8, \"producer_name\": \"DLBlocks\", \"producer_version\": "
         << JsonString(producer_version_) << ", \"opsets\": [[\"\", 17]], \"graph_name\": "
         << JsonString(graph_name_) << ",\n \"nodes\": [" << Join(nodes_) << "],\n \"initializers\": ["
         << Join(initializers_) << "],\n \"inputs\": [" << Join(inputs_) << "],\n \"outputs\": ["
         << Join(outputs_) << "]}\n";
  }

 private:
  int Below(int n) { return static_cast<int>(rng_() % static_cast<std::uint64_t>(n)); }

  static std::string Join(const std::vector<std::string>& parts) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? ",\n  " : "") + parts[i];
    return out;
  }

  // Unique names made of awkward pieces: multi-byte UTF-8, quotes, control characters.
  std::string NewName() {
    static const std::vector<std::string> pieces = {
        "x", "layers.0.weight", "é", "中文", "\xf0\x9f\x99\x82", "a b", "q\"uote", "back\\slash",
        "tab\t", "/", "::", "\x7f", "N"};
    std::string name;
    for (int i = 0, n = Below(3) + 1; i < n; ++i) name += pieces[static_cast<std::size_t>(Below(13))];
    return name + "#" + std::to_string(counter_++);
  }

  std::int64_t RandomInt() {
    switch (Below(4)) {
      case 0: return std::numeric_limits<std::int64_t>::min() + Below(2);
      case 1: return std::numeric_limits<std::int64_t>::max() - Below(2);
      case 2: return Below(300) - 150;
      default: return static_cast<std::int64_t>(rng_());
    }
  }

  float RandomFloat() {
    float value = std::bit_cast<float>(static_cast<std::uint32_t>(rng_()));
    if (std::isnan(value)) value = std::bit_cast<float>(0x7fc00000u);  // one quiet NaN
    if (Below(8) == 0) value = -0.0f;
    if (Below(8) == 0) value = std::numeric_limits<float>::infinity();
    if (Below(8) == 0) value = std::numeric_limits<float>::denorm_min();
    return value;
  }

  std::vector<dlb::OnnxDimension> RandomShape(std::string& json) {
    std::vector<dlb::OnnxDimension> shape;
    std::vector<std::string> parts;
    for (int i = 0, rank = Below(5); i < rank; ++i) {
      if (Below(3) == 0) {
        const std::string param = Below(2) ? std::string("N") : NewName();
        shape.emplace_back(param);
        parts.push_back(JsonString(param));
      } else {
        const std::int64_t dim = Below(2) ? Below(10) : (std::int64_t{1} << 40) + Below(1000);
        shape.emplace_back(dim);
        parts.push_back(JsonInt(dim));
      }
    }
    json = JsonList(parts, [](const std::string& s) { return s; });
    return shape;
  }

  void AddInput() {
    const std::string name = NewName();
    const auto type = Below(2) ? dlb::OnnxElementType::kFloat : dlb::OnnxElementType::kInt64;
    std::string shape_json;
    builder_.AddInput(name, RandomShape(shape_json), type);
    inputs_.push_back("{\"name\": " + JsonString(name) + ", \"elem_type\": " +
                      std::to_string(static_cast<int>(type)) + ", \"shape\": " + shape_json + "}");
    values_.push_back(name);
  }

  void AddOutput() {
    const std::string name = values_[static_cast<std::size_t>(Below(static_cast<int>(values_.size())))];
    for (const std::string& used : output_names_) {
      if (used == name) return;  // declared already
    }
    output_names_.push_back(name);
    std::string shape_json;
    builder_.AddOutput(name, RandomShape(shape_json));
    outputs_.push_back("{\"name\": " + JsonString(name) + ", \"elem_type\": 1, \"shape\": " +
                       shape_json + "}");
  }

  void AddInitializer() {
    const std::string name = NewName();
    std::vector<std::int64_t> dims;
    for (int i = 0, rank = Below(4); i < rank; ++i) dims.push_back(Below(4));
    const std::size_t count = Count(dims);
    std::string json = "{\"name\": " + JsonString(name) + ", \"dims\": " + JsonList(dims, JsonInt);
    if (Below(2)) {
      std::vector<float> data(count);
      for (float& v : data) v = RandomFloat();
      builder_.AddFloatInitializer(name, dims, data);
      std::string raw(count * 4, '\0');
      for (std::size_t i = 0; i < count; ++i) {
        const auto bits = std::bit_cast<std::uint32_t>(data[i]);
        for (int b = 0; b < 4; ++b) raw[4 * i + b] = static_cast<char>(bits >> (8 * b));
      }
      json += ", \"data_type\": 1, \"raw_data\": " + JsonHex(raw) + "}";
    } else {
      std::vector<std::int64_t> data(count);
      for (std::int64_t& v : data) v = RandomInt();
      builder_.AddInt64Initializer(name, dims, data);
      json += ", \"data_type\": 7, \"int64_data\": " + JsonList(data, JsonInt) + "}";
    }
    initializers_.push_back(json);
    values_.push_back(name);
  }

  void AddNode() {
    static const std::vector<std::string> ops = {"Op", "Custom_2", "Gemm", "_private", "X"};
    dlb::OnnxNode node{.name = NewName(), .op_type = ops[static_cast<std::size_t>(Below(5))]};
    for (int i = 0, n = Below(4); i < n; ++i) {
      node.inputs.push_back(Below(5) == 0 ? std::string()
                                          : values_[static_cast<std::size_t>(Below(static_cast<int>(values_.size())))]);
    }
    for (int i = 0, n = Below(3) + 1; i < n; ++i) node.outputs.push_back(NewName());
    std::vector<std::string> attributes_json;
    for (int i = 0, n = Below(6); i < n; ++i) {
      const std::string name = NewName();
      std::string json = "{\"name\": " + JsonString(name) + ", \"type\": ";
      switch (Below(5)) {
        case 0: {
          const std::int64_t v = RandomInt();
          node.attributes.push_back(OnnxAttribute::Int(name, v));
          json += "\"INT\", \"value\": " + JsonInt(v);
          break;
        }
        case 1: {
          std::vector<std::int64_t> v(static_cast<std::size_t>(Below(5)));
          for (std::int64_t& e : v) e = RandomInt();
          node.attributes.push_back(OnnxAttribute::Ints(name, v));
          json += "\"INTS\", \"value\": " + JsonList(v, JsonInt);
          break;
        }
        case 2: {
          const float v = RandomFloat();
          node.attributes.push_back(OnnxAttribute::Float(name, v));
          json += "\"FLOAT\", \"value\": " + std::to_string(std::bit_cast<std::uint32_t>(v));
          break;
        }
        case 3: {
          std::vector<float> v(static_cast<std::size_t>(Below(5)));
          for (float& e : v) e = RandomFloat();
          node.attributes.push_back(OnnxAttribute::Floats(name, v));
          json += "\"FLOATS\", \"value\": " + JsonList(v, [](float f) {
                    return std::to_string(std::bit_cast<std::uint32_t>(f));
                  });
          break;
        }
        default: {
          std::string v;
          for (int k = 0, n_bytes = Below(6); k < n_bytes; ++k) v.push_back(static_cast<char>(rng_()));
          node.attributes.push_back(OnnxAttribute::String(name, v));
          json += "\"STRING\", \"value\": " + JsonHex(v);
        }
      }
      attributes_json.push_back(json + "}");
    }
    builder_.AddNode(node);
    nodes_.push_back("{\"name\": " + JsonString(node.name) + ", \"op_type\": " +
                     JsonString(node.op_type) + ", \"inputs\": " + JsonList(node.inputs, JsonString) +
                     ", \"outputs\": " + JsonList(node.outputs, JsonString) + ", \"attributes\": [" +
                     Join(attributes_json) + "]}");
    values_.insert(values_.end(), node.outputs.begin(), node.outputs.end());
  }

  std::mt19937_64 rng_;
  OnnxModelBuilder builder_;
  std::string graph_name_;
  std::string producer_version_;
  int counter_ = 0;
  std::vector<std::string> values_;
  std::vector<std::string> output_names_;
  std::vector<std::string> nodes_, initializers_, inputs_, outputs_;
};

}  // namespace

TEST_CASE("onnx runtime: property: 300 random graphs decode with the onnx package as written") {
  if (!dlb_test::HaveOnnxChecker()) {
    WARN("[skipped] no python3 with the onnx module (Debian python3-onnx)");
    return;
  }
  dlb_test::TempDir dir("dlb_onnx_random_");
  for (std::uint64_t seed = 1; seed <= 300; ++seed) RandomGraph(seed).Save(dir / ("graph" + std::to_string(seed)));
  const std::string script = dlb_test::kOnnxToolsDir + "/compare_decoded.py";
  const dlb_test::CommandResult result =
      dlb_test::RunCommand({dlb_test::kOnnxPython, "-B", script, dir.path.string()});
  INFO(result.output);
  CHECK(result.exit_code == 0);
  CHECK(result.output.find("300 of 300 models decode as written") != std::string::npos);

  // Negative control: a description that differs from its model in one operator type.
  dlb_test::TempDir tampered("dlb_onnx_tampered_");
  RandomGraph(7).Save(tampered / "graph7");
  std::ifstream in(tampered / "graph7.json", std::ios::binary);
  std::string json((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t at = json.find("\"op_type\": \"") + 12;
  json[at] = json[at] == 'x' ? 'y' : 'x';
  std::ofstream(tampered / "graph7.json", std::ios::binary) << json;
  const dlb_test::CommandResult refused =
      dlb_test::RunCommand({dlb_test::kOnnxPython, "-B", script, tampered.path.string()});
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK(refused.output.find("graph7.onnx: model.") != std::string::npos);
}
