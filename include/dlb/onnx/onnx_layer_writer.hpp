#pragma once
/// \file
/// How a layer is written into an exported ONNX graph: OnnxValue (a value of the graph and the
/// sample shape it holds), OnnxLayerWriter (what an exporter calls to add the operators of one
/// layer) and OnnxExporterRegistry (which exporter writes which layer type).
///
/// An exporter is a function `OnnxValue(OnnxLayerWriter<T>& writer, L& layer, const OnnxValue&
/// input)`: it adds the nodes that compute the layer's inference-mode output from `input` and
/// returns the value that holds it. It finds what the layer is from the layer itself (its
/// options, GetOptions(), for the attributes; its state, through writer.State("weight"), for
/// the initializers), never from a type name; the registry picks the exporter by the layer's
/// concrete type (AnyLayer::Type()). Built-in layers: dlb/onnx/builtin_exporters.hpp; a user's
/// layer type: OnnxExporterRegistry::Register<L>.
///
/// Names in the graph (see OnnxLayerWriter): initializers take the state_dict names
/// ("layer1.0.conv1.weight"); a layer's main node and its output take the layer's path
/// ("layer1.0.conv1"); helper nodes (Flatten, Unsqueeze, a residual block's Add ...) take the
/// path, a colon and their role ("fc:flatten", "layer1.0:add"). Layer names hold only letters,
/// digits, '_' and '-', so a colon never clashes with a path.

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/model/sequential.hpp"  // internal::AnyLayer, the type-erased layers of a model
#include "dlb/onnx/onnx_model_builder.hpp"

namespace dlb {

/// How a value of an exported graph holds a batch: kFlat as [N, C] (flat samples: Linear's
/// output, a flat model's input), kImage as [N, C, H, W] (NCHW, what ONNX's convolution and
/// pooling operators take). A flat sample {C} (C x 1 x 1) may be held either way; the writer
/// converts with Flatten and Unsqueeze where an operator needs the other (OnnxLayerWriter::Flat,
/// Image).
enum class OnnxLayout { kFlat, kImage };

/// A value of the graph being written.
///
/// Represents: the ONNX value `name`, a batch of samples of the library's shape `shape`, laid
/// out as `layout`. Invariant: kFlat only for a flat shape (shape.IsFlat()).
struct OnnxValue {
  std::string name;
  Shape shape;
  OnnxLayout layout = OnnxLayout::kImage;

  /// The ONNX dimensions: {"N", C} (kFlat) or {"N", C, H, W} (kImage), N the dynamic batch.
  std::vector<OnnxDimension> Dimensions() const {
    std::vector<OnnxDimension> dims = {std::string(kOnnxBatchDimension), std::int64_t{shape.channels}};
    if (layout == OnnxLayout::kImage) {
      dims.emplace_back(std::int64_t{shape.height});
      dims.emplace_back(std::int64_t{shape.width});
    }
    return dims;
  }
};

template <Scalar T>
class OnnxLayerWriter;

/// Which exporter writes which layer type (see the file comment).
///
/// Represents: a map from concrete layer types (std::type_index of AnyLayer::Type()) to
/// exporters. Copyable: extend a copy of DefaultOnnxExporters<T>() with your own layers.
template <Scalar T>
class OnnxExporterRegistry {
 public:
  /// An exporter of any layer type, on the type-erased layer.
  using Exporter =
      std::function<OnnxValue(OnnxLayerWriter<T>&, internal::AnyLayer<T>&, const OnnxValue&)>;

  /// Makes `exporter`, a callable `OnnxValue(OnnxLayerWriter<T>&, L&, const OnnxValue&)`, the
  /// exporter of layer type L (replacing an earlier one). L is the exact type the model holds:
  /// a type derived from L is not covered.
  template <Layer L, class F>
  void Register(F exporter) {
    static_assert(std::is_same_v<typename L::Scalar, T>,
                  "OnnxExporterRegistry::Register: the layer's Scalar type differs from the registry's");
    static_assert(std::is_invocable_r_v<OnnxValue, F&, OnnxLayerWriter<T>&, L&, const OnnxValue&>,
                  "OnnxExporterRegistry::Register<L>: the exporter must be callable as "
                  "OnnxValue(OnnxLayerWriter<T>&, L&, const OnnxValue&)");
    exporters_[std::type_index(typeid(L))] =
        [f = std::move(exporter)](OnnxLayerWriter<T>& writer, internal::AnyLayer<T>& layer,
                                  const OnnxValue& input) mutable {
          return f(writer, *static_cast<L*>(layer.Concrete()), input);
        };
  }

  /// The exporter of layer type `type`, or nullptr when none is registered.
  const Exporter* Find(const std::type_info& type) const {
    const auto found = exporters_.find(std::type_index(type));
    return found == exporters_.end() ? nullptr : &found->second;
  }

  /// Whether layer type L has an exporter.
  template <Layer L>
  bool Has() const {
    return Find(typeid(L)) != nullptr;
  }

 private:
  std::unordered_map<std::type_index, Exporter> exporters_;
};

namespace internal {

/// What the writers of one export share: the builder (which takes the graph input and the
/// initializers at once), the nodes (kept until the end, so that the last value can be
/// renamed to the graph's output name), and every name taken.
struct OnnxGraph {
  OnnxGraph(std::string graph_name, std::string producer_version)
      : builder(std::move(graph_name), std::move(producer_version)) {}

  OnnxModelBuilder builder;
  std::vector<OnnxNode> nodes;
  std::unordered_set<std::string> values;      ///< value names taken (and reserved)
  std::unordered_set<std::string> node_names;  ///< node names taken
  std::size_t initializers = 0;
  std::string unsqueeze_axes;  ///< the int64 initializer {2, 3}, once made

  /// `base`, or `base:1`, `base:2` ... when taken: the first free name in `taken`.
  static std::string Unique(const std::unordered_set<std::string>& taken, const std::string& base) {
    if (taken.count(base) == 0) return base;
    for (std::size_t k = 1;; ++k) {
      std::string name = base + ":" + std::to_string(k);
      if (taken.count(name) == 0) return name;
    }
  }
};

/// "layer 3" for a top-level layer named by its index (ModelNN's wording), the path otherwise.
inline std::string DescribeLayerPath(const std::string& path) {
  const bool index = !path.empty() && path.find_first_not_of("0123456789") == std::string::npos;
  return index ? "layer " + path : path;
}

/// `value` as a float32, or ArgumentError naming `what` when it is not finite or a float
/// cannot hold it (a double model's weight of 1e300 would become an infinity in the file).
template <Scalar T>
float ToOnnxFloat(T value, const std::string& what) {
  const auto single = static_cast<float>(value);
  if (!std::isfinite(value) || !std::isfinite(single)) {
    throw ArgumentError("ExportOnnx: " + what + " holds " + std::to_string(static_cast<double>(value)) +
                        ", which is not a finite float32");
  }
  return single;
}

}  // namespace internal

/// What an exporter calls to write one layer: initializers from the layer's state, nodes, the
/// layout conversions, and (for a block) its children.
///
/// Represents: the layer at Path() of the model being exported, whose input is a value of
/// shape InputShape() and whose inference output has shape OutputShape(), and the graph it
/// is written into. The writer checks what the exporter returns: a value of OutputShape() in
/// a layout that can hold it (Error otherwise, naming the layer), so that a faulty exporter
/// fails the export instead of writing a graph that computes something else.
template <Scalar T>
class OnnxLayerWriter {
 public:
  /// A writer for `layer` at `path` (ExportOnnx makes them; `layer` null: the model itself,
  /// for the nodes before and after its layers).
  OnnxLayerWriter(internal::OnnxGraph& graph, const OnnxExporterRegistry<T>& registry,
                  std::string path, internal::AnyLayer<T>* layer, Shape input_shape,
                  Shape output_shape)
      : graph_(graph),
        registry_(registry),
        path_(std::move(path)),
        layer_(layer),
        input_shape_(input_shape),
        output_shape_(output_shape) {}

  /// The layer's path in the model: "fc1", "layer1.0.conv1", "3" (the prefix of its state).
  const std::string& Path() const { return path_; }
  /// "layer1.0.conv1 (Conv2D(16 -> 16, 3x3, padding 1, no bias))": for error messages.
  std::string Describe() const {
    if (layer_ == nullptr) return "the model";
    return internal::DescribeLayerPath(path_) + " (" + layer_->Name() + ")";
  }
  /// The shape of one input sample, and of one output sample (the layer's OutputShape).
  const Shape& InputShape() const { return input_shape_; }
  const Shape& OutputShape() const { return output_shape_; }

  /// Adds the layer's floating state `name` ("weight", "running_mean", as its AllState()
  /// names it) as a float32 initializer named Path() + "." + name (the state_dict name), with
  /// PyTorch's shape and row-major values (a Linear weight out x in, a Conv2D weight
  /// C_out x C_in x kh x kw); returns its name. Throws Error when the layer has no such
  /// floating state, ArgumentError for a value that is not a finite float32.
  std::string State(const std::string& name) {
    if (layer_ == nullptr) throw Error("ExportOnnx: the model has no state of its own");
    for (StateRef<T>& ref : layer_->AllState()) {
      if (ref.name != name) continue;
      auto* const* matrix = std::get_if<Matrix<T>*>(&ref.value);
      if (matrix == nullptr) break;
      const Matrix<T>& m = **matrix;
      const std::string full = path_ + "." + name;
      std::vector<float> values;
      values.reserve(static_cast<std::size_t>(m.size()));
      for (Index r = 0; r < m.rows(); ++r) {
        for (Index c = 0; c < m.cols(); ++c) values.push_back(internal::ToOnnxFloat(m(r, c), full));
      }
      AddFloat(full, StateShape(ref), values);
      return full;
    }
    throw Error("ExportOnnx: " + Describe() + " has no floating state named '" + name + "'");
  }

  /// Adds a float32 constant named Path() + ":" + role (made unique) of shape `dims`
  /// holding `values` row-major; returns its name.
  std::string Constant(const std::string& role, const std::vector<std::int64_t>& dims,
                       std::span<const float> values) {
    const std::string name = internal::OnnxGraph::Unique(graph_.values, AuxName(role));
    AddFloat(name, dims, values);
    return name;
  }

  /// Appends a node computing `op_type` of `inputs` with `attributes`, named Path() (role "")
  /// or Path() + ":" + role (made unique); its one output, named like the node, holds
  /// samples of `shape` in `layout`. Returns that value.
  OnnxValue Node(const std::string& role, const std::string& op_type,
                 std::vector<std::string> inputs, std::vector<OnnxAttribute> attributes,
                 const Shape& shape, OnnxLayout layout) {
    if (layout == OnnxLayout::kFlat && !shape.IsFlat()) {
      throw Error("ExportOnnx: " + Describe() + ": a node's output of " + shape.ToString() +
                  " cannot be laid out flat");
    }
    const std::string node_name =
        internal::OnnxGraph::Unique(graph_.node_names, role.empty() ? path_ : AuxName(role));
    const std::string value = internal::OnnxGraph::Unique(graph_.values, node_name);
    graph_.node_names.insert(node_name);
    graph_.values.insert(value);
    graph_.nodes.push_back(OnnxNode{.name = node_name,
                                    .op_type = op_type,
                                    .inputs = std::move(inputs),
                                    .outputs = {value},
                                    .attributes = std::move(attributes)});
    return {value, shape, layout};
  }

  /// `value` as [N, C*H*W]: itself when flat already, else through Flatten(axis 1), which
  /// reads each sample channel-major as the library's layers do.
  OnnxValue Flat(const OnnxValue& value) {
    if (value.layout == OnnxLayout::kFlat) return value;
    return Node("flatten", "Flatten", {value.name}, {OnnxAttribute::Int("axis", 1)},
                Shape(value.shape.Size()), OnnxLayout::kFlat);
  }

  /// `value` as [N, C, H, W]: itself when it is, else [N, C] through Unsqueeze(axes 2, 3) as
  /// [N, C, 1, 1] (how the library's spatial layers read a flat sample {C}).
  OnnxValue Image(const OnnxValue& value) {
    if (value.layout == OnnxLayout::kImage) return value;
    if (graph_.unsqueeze_axes.empty()) {
      graph_.unsqueeze_axes = internal::OnnxGraph::Unique(graph_.values, "const:axes_2_3");
      const std::int64_t axes[] = {2, 3};
      graph_.builder.AddInt64Initializer(graph_.unsqueeze_axes, {2}, axes);
      graph_.values.insert(graph_.unsqueeze_axes);
      ++graph_.initializers;
    }
    return Node("unsqueeze", "Unsqueeze", {value.name, graph_.unsqueeze_axes}, {}, value.shape,
                OnnxLayout::kImage);
  }

  /// `value` in `layout` (Flat or Image).
  OnnxValue InLayout(const OnnxValue& value, OnnxLayout layout) {
    return layout == OnnxLayout::kFlat ? Flat(value) : Image(value);
  }

  /// The layout a block's output of `shape` takes where values meet (a residual sum, a
  /// concatenation): kFlat for a flat shape, kImage otherwise.
  static OnnxLayout LayoutFor(const Shape& shape) {
    return shape.IsFlat() ? OnnxLayout::kFlat : OnnxLayout::kImage;
  }

  /// Writes `child`, the layer of this block named `child_name`, applied to `input`, through
  /// the registry; returns its output. Throws what WriteOnnxLayer throws.
  OnnxValue Child(internal::AnyLayer<T>& child, const std::string& child_name,
                  const OnnxValue& input) {
    return WriteOnnxLayer(graph_, registry_, path_ + "." + child_name, child, input);
  }

  /// Writes `layer` at `path` applied to `input` with the exporter `registry` has for its
  /// type, and checks its result. Throws ArgumentError naming the layer (path and Name())
  /// when its type has no exporter, Error when the exporter returns a value of another shape
  /// than the layer's output or in an impossible layout, and what the exporter throws.
  static OnnxValue WriteOnnxLayer(internal::OnnxGraph& graph, const OnnxExporterRegistry<T>& registry,
                                  const std::string& path, internal::AnyLayer<T>& layer,
                                  const OnnxValue& input) {
    const Shape output_shape = layer.OutputShape(input.shape);
    OnnxLayerWriter writer(graph, registry, path, &layer, input.shape, output_shape);
    const auto* exporter = registry.Find(layer.Type());
    if (exporter == nullptr) {
      throw ArgumentError(
          "ExportOnnx: " + writer.Describe() +
          " cannot be exported to ONNX: no exporter is registered for its type (the built-in "
          "layers have one; give yours one with OnnxExporterRegistry<T>::Register<L> and pass "
          "the registry in OnnxExportOptions::exporters)");
    }
    const OnnxValue output = (*exporter)(writer, layer, input);
    if (!(output.shape == output_shape) ||
        (output.layout == OnnxLayout::kFlat && !output.shape.IsFlat()) ||
        !graph.values.count(output.name)) {
      throw Error("ExportOnnx: the exporter of " + writer.Describe() + " returned '" +
                  output.name + "' of " + output.shape.ToString() +
                  (output.layout == OnnxLayout::kFlat ? " (flat)" : "") +
                  ", but the layer outputs " + output_shape.ToString() +
                  " (or the value is not in the graph)");
    }
    return output;
  }

 private:
  std::string AuxName(const std::string& role) const {
    return path_.empty() ? role : path_ + ":" + role;
  }

  void AddFloat(const std::string& name, const std::vector<std::int64_t>& dims,
                std::span<const float> values) {
    graph_.builder.AddFloatInitializer(name, dims, values);
    graph_.values.insert(name);
    ++graph_.initializers;
  }

  internal::OnnxGraph& graph_;
  const OnnxExporterRegistry<T>& registry_;
  std::string path_;
  internal::AnyLayer<T>* layer_;  // null for the model itself
  Shape input_shape_;
  Shape output_shape_;
};

}  // namespace dlb
