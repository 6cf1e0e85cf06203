#pragma once
/// \file
/// The ONNX exporters of the built-in layers (every type in BuiltinLayers<T>), in inference
/// form, and DefaultOnnxExporters<T>(), the registry that holds them.
///
/// | layer                | ONNX (opset 17)                                                    |
/// |----------------------|--------------------------------------------------------------------|
/// | Linear               | Gemm(x, weight [out, in], bias, transB = 1); x flattened first      |
/// | Conv2D               | Conv(x, weight [C_out, C_in, kh, kw], bias when it has one)         |
/// | MaxPool2D, AvgPool2D | MaxPool, AveragePool (no padding, ceil_mode 0: torch's floor rule)  |
/// | GlobalAvgPool        | GlobalAveragePool, then Flatten: {C} flat                          |
/// | BatchNorm1D/2D       | BatchNormalization(x, weight, bias, running_mean, running_var),     |
/// |                      | epsilon, training_mode 0 (on [N, C] or [N, C, H, W])               |
/// | ReLU, LeakyReLU,     | Relu, LeakyRelu(alpha), Sigmoid, Tanh                              |
/// | Sigmoid, Tanh        |                                                                    |
/// | Dropout              | nothing (the identity at inference)                                |
/// | Sequential           | its layers, in order                                               |
/// | Residual             | body and shortcut (or the input), Add, then the activation's node  |
/// | Concat               | its branches on the same input, Concat(axis 1)                     |
///
/// Every exporter reads the layer's options (GetOptions()) and its state, and the list is
/// checked at compile time: a type added to BuiltinLayers without an exporter here does not
/// compile (DefaultOnnxExporters).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/builtin_layers.hpp"
#include "dlb/model/concat.hpp"
#include "dlb/model/residual.hpp"
#include "dlb/model/sequential.hpp"
#include "dlb/onnx/onnx_layer_writer.hpp"

namespace dlb {

namespace internal {

/// ONNX's {height, width} pair.
inline std::vector<std::int64_t> OnnxPair(const Size2D& size) { return {size.height, size.width}; }

/// The ONNX operator of each activation function: its op_type and attributes.
struct OnnxActivation {
  std::string op_type;
  std::vector<OnnxAttribute> attributes;
};
template <Scalar T>
OnnxActivation OnnxActivationOf(const ReluFunction<T>& /*f*/) {
  return {"Relu", {}};
}
template <Scalar T>
OnnxActivation OnnxActivationOf(const LeakyReluFunction<T>& f) {
  // The layer computes with alpha as a T; a float model's alpha is that float exactly.
  return {"LeakyRelu", {OnnxAttribute::Float("alpha", static_cast<float>(f.alpha))}};
}
template <Scalar T>
OnnxActivation OnnxActivationOf(const SigmoidFunction<T>& /*f*/) {
  return {"Sigmoid", {}};
}
template <Scalar T>
OnnxActivation OnnxActivationOf(const TanhFunction<T>& /*f*/) {
  return {"Tanh", {}};
}

/// The node of `activation` (a Residual block's, after its sum) on `x`, named by the
/// activation ("layer1.0:relu"); x itself for Activation::None.
template <Scalar T>
OnnxValue WriteActivation(OnnxLayerWriter<T>& writer, Activation activation, const OnnxValue& x) {
  OnnxActivation op;
  switch (activation) {
    case Activation::None: return x;
    case Activation::ReLU: op = OnnxActivationOf(ReluFunction<T>({})); break;
    // The block computes with LeakyReLUOptions' default slope (Residual::WithActivation).
    case Activation::LeakyReLU: op = OnnxActivationOf(LeakyReluFunction<T>(LeakyReLUOptions{})); break;
    case Activation::Sigmoid: op = OnnxActivationOf(SigmoidFunction<T>({})); break;
    case Activation::Tanh: op = OnnxActivationOf(TanhFunction<T>({})); break;
  }
  return writer.Node(ActivationName(activation), op.op_type, {x.name}, std::move(op.attributes),
                     x.shape, x.layout);
}

// One overload per built-in layer type: OnnxValue ExportBuiltin(writer, layer, input).

/// Gemm: y [N, out] = x [N, in] weight^T + bias; a C x H x W input is flattened channel-major
/// first, as Linear reads it.
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, Linear<T>& /*layer*/, const OnnxValue& input) {
  const OnnxValue x = writer.Flat(input);
  std::string weight = writer.State("weight");
  std::string bias = writer.State("bias");
  return writer.Node("", "Gemm", {x.name, std::move(weight), std::move(bias)},
                     {OnnxAttribute::Int("transB", 1)}, writer.OutputShape(), OnnxLayout::kFlat);
}

/// Conv with the options' kernel, stride and symmetric padding (pads: top, left, bottom,
/// right), dilation 1, one group; the bias input only when the layer has a bias.
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, Conv2D<T>& layer, const OnnxValue& input) {
  const Conv2DOptions& options = layer.GetOptions();
  const OnnxValue x = writer.Image(input);
  std::vector<std::string> inputs = {x.name, writer.State("weight")};
  if (options.bias) inputs.push_back(writer.State("bias"));
  const Size2D& pad = options.padding;
  return writer.Node("", "Conv", std::move(inputs),
                     {OnnxAttribute::Ints("kernel_shape", OnnxPair(options.kernel)),
                      OnnxAttribute::Ints("strides", OnnxPair(options.stride)),
                      OnnxAttribute::Ints("pads", {pad.height, pad.width, pad.height, pad.width}),
                      OnnxAttribute::Ints("dilations", {1, 1}), OnnxAttribute::Int("group", 1)},
                     writer.OutputShape(), OnnxLayout::kImage);
}

/// MaxPool or AveragePool (`op_type`) without padding, floor rule (ceil_mode 0).
template <Scalar T, class Kind>
OnnxValue ExportPool(OnnxLayerWriter<T>& writer, const Pool2DOptions<Kind>& options,
                     const char* op_type, const OnnxValue& input) {
  const OnnxValue x = writer.Image(input);
  return writer.Node("", op_type, {x.name},
                     {OnnxAttribute::Ints("kernel_shape", OnnxPair(options.kernel)),
                      OnnxAttribute::Ints("strides", OnnxPair(options.stride)),
                      OnnxAttribute::Ints("pads", {0, 0, 0, 0}), OnnxAttribute::Int("ceil_mode", 0)},
                     writer.OutputShape(), OnnxLayout::kImage);
}
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, MaxPool2D<T>& layer, const OnnxValue& input) {
  return ExportPool(writer, layer.GetOptions(), "MaxPool", input);
}
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, AvgPool2D<T>& layer, const OnnxValue& input) {
  return ExportPool(writer, layer.GetOptions(), "AveragePool", input);
}

/// GlobalAveragePool ([N, C, 1, 1]), then Flatten: the flat {C} the layer gives.
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, GlobalAvgPool<T>& /*layer*/, const OnnxValue& input) {
  const OnnxValue x = writer.Image(input);
  const OnnxValue pooled = writer.Node("", "GlobalAveragePool", {x.name}, {}, writer.OutputShape(),
                                       OnnxLayout::kImage);
  return writer.Flat(pooled);
}

/// BatchNormalization in inference form (training_mode 0): the running statistics, the
/// options' eps. Axis 1 holds the features or channels in either layout ([N, C] is valid for
/// ONNX's operator, which normalises axis 1 of any rank >= 2).
template <Scalar T, NormalizeOver kOver>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, BatchNorm<T, kOver>& layer, const OnnxValue& input) {
  std::string weight = writer.State("weight");
  std::string bias = writer.State("bias");
  std::string mean = writer.State("running_mean");
  std::string var = writer.State("running_var");
  return writer.Node("", "BatchNormalization",
                     {input.name, std::move(weight), std::move(bias), std::move(mean), std::move(var)},
                     {OnnxAttribute::Float("epsilon", static_cast<float>(layer.GetOptions().eps)),
                      OnnxAttribute::Int("training_mode", 0)},
                     input.shape, input.layout);
}

/// The activation's operator, on either layout.
template <Scalar T, class Function>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, ElementwiseActivation<T, Function>& layer,
                        const OnnxValue& input) {
  OnnxActivation op = OnnxActivationOf(layer.Formula());
  return writer.Node("", op.op_type, {input.name}, std::move(op.attributes), input.shape, input.layout);
}

/// Nothing: dropout is the identity at inference.
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& /*writer*/, Dropout<T>& /*layer*/, const OnnxValue& input) {
  return input;
}

/// Its layers in order (the input itself for an empty Sequential).
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, Sequential<T>& layer, const OnnxValue& input) {
  OnnxValue value = input;
  for (const Child<T>& child : layer.Children()) value = writer.Child(*child.layer, child.name, value);
  return value;
}

/// act(body(x) + shortcut(x)): the body's layers in order, the shortcut (the child named
/// like the options' shortcut, when the block has one) on the input, both in the layout of
/// the output, Add ("path:add"), then the activation ("path:relu").
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, Residual<T>& layer, const OnnxValue& input) {
  const ResidualOptions& options = layer.GetOptions();
  OnnxValue body = input;
  OnnxValue shortcut = input;
  for (const Child<T>& child : layer.Children()) {
    if (layer.HasShortcut() && child.name == options.shortcut) {
      shortcut = writer.Child(*child.layer, child.name, input);
    } else {
      body = writer.Child(*child.layer, child.name, body);
    }
  }
  const OnnxLayout layout = OnnxLayerWriter<T>::LayoutFor(writer.OutputShape());
  body = writer.InLayout(body, layout);
  shortcut = writer.InLayout(shortcut, layout);
  const OnnxValue sum =
      writer.Node("add", "Add", {body.name, shortcut.name}, {}, writer.OutputShape(), layout);
  return WriteActivation(writer, options.activation, sum);
}

/// Each branch on the input, all in the layout of the output, then Concat along axis 1 (the
/// channels, or the features of flat outputs) as "path:concat".
template <Scalar T>
OnnxValue ExportBuiltin(OnnxLayerWriter<T>& writer, Concat<T>& layer, const OnnxValue& input) {
  const OnnxLayout layout = OnnxLayerWriter<T>::LayoutFor(writer.OutputShape());
  std::vector<OnnxValue> branches;
  for (const Child<T>& child : layer.Children()) {
    branches.push_back(writer.Child(*child.layer, child.name, input));
  }
  std::vector<std::string> names;
  for (const OnnxValue& branch : branches) names.push_back(writer.InLayout(branch, layout).name);
  return writer.Node("concat", "Concat", std::move(names), {OnnxAttribute::Int("axis", 1)},
                     writer.OutputShape(), layout);
}

template <Scalar T, class... Layers>
void RegisterBuiltinExporters(OnnxExporterRegistry<T>& registry, LayerList<Layers...> /*list*/) {
  (registry.template Register<Layers>(
       [](OnnxLayerWriter<T>& writer, Layers& layer, const OnnxValue& input) {
         return ExportBuiltin(writer, layer, input);
       }),
   ...);
}

}  // namespace internal

/// A registry with the exporter of every built-in layer type (BuiltinLayers<T>). Copy it and
/// Register your own layer types to export models that hold them.
template <Scalar T>
OnnxExporterRegistry<T> DefaultOnnxExporters() {
  OnnxExporterRegistry<T> registry;
  internal::RegisterBuiltinExporters(registry, BuiltinLayers<T>{});
  return registry;
}

}  // namespace dlb
