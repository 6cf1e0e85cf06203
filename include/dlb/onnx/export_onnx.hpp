#pragma once
/// \file
/// ExportOnnx: a model (and its input standardization) as an ONNX file (onnx.ai) that ONNX
/// Runtime and other ONNX tools run, computing the model's inference-mode logits.
///
/// What the file holds (ONNX IR 8, opset 17, see dlb/onnx/onnx_model_builder.hpp):
///  * one graph input, "input", float32 [N, C, H, W] for an image model ({1, 28, 28} ->
///    [N, 1, 28, 28]) or [N, F] for a flat one (784 -> [N, 784]), N a dynamic dimension: the
///    raw samples, as LoadedModel::Predict takes them (Fashion-MNIST: pixels in [0, 1]);
///  * when a standardizer is given: initializers "input_mean" and "input_std" (the sample's
///    shape) and the nodes "standardize:sub" and "standardize:div",
///    x -> (x - mean) / std, as Standardizer::Transform computes it;
///  * the layers' nodes, in the model's order (dlb/onnx/builtin_exporters.hpp), with the
///    weights and buffers as float32 initializers under their state_dict names
///    ("layer1.0.conv1.weight", "fc.bias"; num_batches_tracked is not needed and left out),
///    nodes named by the layer's path ("layer1.0.conv1", "layer1.0:add");
///  * one graph output, "output", float32 [N, classes] (the logits; [N, C, H, W] for a model
///    whose output is an image).
/// A double model is written in float32 (ONNX Runtime's common type): its weights are
/// rounded to float, so its outputs differ from the library's by float rounding.
///
/// Needs only the standard library (the protobuf encoding is the library's own); not included
/// by <dlb/dlb.hpp>: include <dlb/onnx.hpp> (or <dlb/onnx/export_onnx.hpp>).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/version.hpp"
#include "dlb/data/standardize.hpp"
#include "dlb/model/model.hpp"
#include "dlb/onnx/builtin_exporters.hpp"
#include "dlb/onnx/onnx_layer_writer.hpp"
#include "dlb/onnx/onnx_model_builder.hpp"

namespace dlb {

/// How ExportOnnx writes a model.
template <Scalar T>
struct OnnxExportOptions {
  /// The standardization the model's inputs need (LoadedModel::standardizer): written as the
  /// graph's first nodes, so that the file takes raw samples. None: the graph takes the
  /// model's inputs as they are.
  std::optional<Standardizer<T>> standardizer;
  /// The exporters of the layer types (null: DefaultOnnxExporters<T>(), the built-in layers).
  /// Must outlive the call.
  const OnnxExporterRegistry<T>* exporters = nullptr;
  /// GraphProto.name.
  std::string graph_name = "dlblocks_model";
};

/// A written ONNX model: its bytes and what it looks like from outside.
struct OnnxExport {
  std::string bytes;                          ///< the serialized ModelProto
  std::string input_name = "input";           ///< the graph input
  std::vector<OnnxDimension> input_shape;     ///< {"N", C, H, W} or {"N", F}
  std::string output_name = "output";         ///< the graph output
  std::vector<OnnxDimension> output_shape;    ///< {"N", classes} or {"N", C, H, W}
  std::size_t nodes = 0;                      ///< operator nodes
  std::size_t initializers = 0;               ///< constant tensors (weights, buffers ...)
};

/// "N x 1 x 28 x 28": ONNX dimensions for messages.
inline std::string OnnxShapeText(const std::vector<OnnxDimension>& dims) {
  std::string text;
  for (const OnnxDimension& dim : dims) {
    if (!text.empty()) text += " x ";
    text += std::holds_alternative<std::string>(dim) ? std::get<std::string>(dim)
                                                     : std::to_string(std::get<std::int64_t>(dim));
  }
  return text;
}

/// `model` (and `options.standardizer`) as an ONNX model in memory (see the file comment).
/// The model is read, not changed; its mode does not matter (the graph is its inference form).
/// Throws ArgumentError naming the layer (its path and Name()) when a layer's type has no
/// exporter, when a weight is not a finite float32, or when the standardizer is unfitted or
/// fitted for another number of inputs; ShapeError for a model without layers.
template <Scalar T>
OnnxExport ExportOnnxModel(const ModelNN<T>& model, const OnnxExportOptions<T>& options = {}) {
  if (model.NumLayers() == 0) throw ShapeError("ExportOnnx: the model has no layers");
  const OnnxExporterRegistry<T> defaults =
      options.exporters == nullptr ? DefaultOnnxExporters<T>() : OnnxExporterRegistry<T>();
  const OnnxExporterRegistry<T>& registry = options.exporters == nullptr ? defaults : *options.exporters;

  OnnxExport result;
  internal::OnnxGraph graph(options.graph_name, Version());
  // The graph's input and output names are taken first, so no layer's value can claim them.
  graph.values.insert(result.input_name);
  graph.values.insert(result.output_name);

  const Shape& input_shape = model.InputShape();
  OnnxValue value{result.input_name, input_shape,
                  OnnxLayerWriter<T>::LayoutFor(input_shape)};
  result.input_shape = value.Dimensions();
  graph.builder.AddInput(result.input_name, result.input_shape);
  OnnxLayerWriter<T> root(graph, registry, "", nullptr, input_shape, model.OutputShape());

  if (options.standardizer) {
    const Standardizer<T>& standardizer = *options.standardizer;
    if (standardizer.Mean().size() != model.InputSize()) {
      throw ArgumentError("ExportOnnx: the standardizer has " +
                          std::to_string(standardizer.Mean().size()) +
                          " features, the model takes " + std::to_string(model.InputSize()) +
                          " values per sample" +
                          (standardizer.Mean().size() == 0 ? " (it was never fitted)" : ""));
    }
    // The per-feature statistics in the sample's shape ([F] or [C, H, W], channel-major as
    // the features are), broadcast over the batch.
    std::vector<std::int64_t> dims = {input_shape.channels};
    if (!input_shape.IsFlat()) dims = {input_shape.channels, input_shape.height, input_shape.width};
    std::vector<float> mean, stddev;
    for (Index r = 0; r < standardizer.Mean().size(); ++r) {
      mean.push_back(internal::ToOnnxFloat(standardizer.Mean()(r), "the standardizer's mean"));
      stddev.push_back(internal::ToOnnxFloat(standardizer.Stddev()(r), "the standardizer's std"));
    }
    graph.builder.AddFloatInitializer("input_mean", dims, mean);
    graph.builder.AddFloatInitializer("input_std", dims, stddev);
    graph.values.insert("input_mean");
    graph.values.insert("input_std");
    graph.initializers += 2;
    // (x - mean) / std, as Standardizer::Transform computes it (a division, not a product
    // with 1 / std, so that the values are the same floats).
    value = root.Node("standardize:sub", "Sub", {value.name, "input_mean"}, {}, value.shape, value.layout);
    value = root.Node("standardize:div", "Div", {value.name, "input_std"}, {}, value.shape, value.layout);
  }

  // The model's layers, in order (VisitLayers at depth 0; blocks write their own children).
  // Nothing is changed: the const_cast only reaches AllState() and Children(), which are not
  // const because they hand out views that could change state (as ModelNN::Summary does).
  auto& layers = const_cast<ModelNN<T>&>(model);
  layers.VisitLayers([&](const std::string& path, internal::AnyLayer<T>& layer, int depth) {
    if (depth == 0) value = OnnxLayerWriter<T>::WriteOnnxLayer(graph, registry, path, layer, value);
  });

  // The output: flat logits as [N, classes]; the last node's output renamed "output" (no
  // other node reads it: it is the last value computed), or an Identity when the last value
  // is no node's output (a model of Dropout layers only).
  if (value.shape.IsFlat() && value.layout == OnnxLayout::kImage) {
    value = root.Node("output:flatten", "Flatten", {value.name}, {OnnxAttribute::Int("axis", 1)},
                      value.shape, OnnxLayout::kFlat);
  }
  bool renamed = false;
  for (OnnxNode& node : graph.nodes) {
    for (std::string& output : node.outputs) {
      if (output == value.name) {
        output = result.output_name;
        renamed = true;
      }
    }
    for (std::string& input : node.inputs) {
      if (renamed && input == value.name) input = result.output_name;
    }
  }
  if (!renamed) {
    graph.nodes.push_back(OnnxNode{.name = "output:identity",
                                   .op_type = "Identity",
                                   .inputs = {value.name},
                                   .outputs = {result.output_name}});
  }
  for (const OnnxNode& node : graph.nodes) graph.builder.AddNode(node);
  value.name = result.output_name;
  result.output_shape = value.Dimensions();
  graph.builder.AddOutput(result.output_name, result.output_shape);
  result.nodes = graph.nodes.size();
  result.initializers = graph.initializers;
  result.bytes = graph.builder.Serialize();
  return result;
}

/// Writes ExportOnnxModel(model, options) to `path`, atomically (the old file or the whole
/// new one, never a mix), and returns the description of what it wrote. Throws what
/// ExportOnnxModel throws, and FileError when the file cannot be written.
template <Scalar T>
OnnxExport ExportOnnx(const ModelNN<T>& model, const std::string& path,
                      const OnnxExportOptions<T>& options = {}) {
  OnnxExport result = ExportOnnxModel(model, options);
  WriteFileAtomically(path, result.bytes);
  return result;
}

/// DLB_COMPILED_ONNX(EXTERN, T): dlb::compiled's instantiations of this header
/// (src/compiled/files.cpp): the export and, with it, the exporters and the protobuf writer.
#define DLB_COMPILED_ONNX(EXTERN, T)                                                            \
  EXTERN template OnnxExport ExportOnnxModel<T>(const ModelNN<T>&, const OnnxExportOptions<T>&); \
  EXTERN template OnnxExport ExportOnnx<T>(const ModelNN<T>&, const std::string&,              \
                                           const OnnxExportOptions<T>&);
#if defined(DLB_COMPILED) && !defined(DLB_COMPILED_DEFINITIONS)
DLB_COMPILED_ONNX(extern, float)
DLB_COMPILED_ONNX(extern, double)
#endif

}  // namespace dlb
