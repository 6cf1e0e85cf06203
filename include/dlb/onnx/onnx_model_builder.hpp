#pragma once
/// \file
/// Building an ONNX model (onnx.ai) by hand: graph inputs, initializers (weights), operator
/// nodes and graph outputs, serialized as an ONNX ModelProto with the library's own protobuf
/// encoder (dlb/onnx/protobuf_writer.hpp), so the export needs no protobuf library.
///
/// What it writes:
///  * ir_version 8 and opset_import { domain "" (ai.onnx), version 17 }: opset 17 is the
///    newest that Debian 12's python3-onnx (1.12, IR 8) checks, and ONNX Runtime reads it
///    (onnxruntime-web 1.31.1 reads up to opset 26 and IR 13); every operator DLBlocks needs
///    (Gemm, Conv, BatchNormalization, pooling, activations, Add, Concat, Sub, Div, Flatten,
///    Reshape) exists in it;
///  * producer_name "DLBlocks" and the producer_version given;
///  * one graph: nodes in the order added (which is a topological order, see below), the
///    graph's name, initializers (float32 as little-endian raw_data, int64 as packed
///    int64_data), inputs and outputs with their element type and shape; a dimension is fixed
///    (an integer) or named and dynamic (a string such as kOnnxBatchDimension, "N").
///
/// Checked when each part is added (a violation throws dlb::ArgumentError, names the part and
/// leaves the builder as it was):
///  * every name (value, node, attribute, dimension, graph) is non-empty UTF-8 without NUL;
///  * value names (graph inputs, initializers, node outputs) are unique: ONNX graphs are in
///    single-assignment form;
///  * a node's inputs are defined before the node is added (a graph input, an initializer or
///    an earlier node's output), so the nodes are in topological order as ONNX requires; an
///    empty input name "" marks an omitted optional input, as in ONNX;
///  * node names are unique, op_type is an identifier, attribute names are unique per node;
///  * an initializer's dimensions are >= 0 and their product is the number of values;
///  * a fixed dimension is >= 0 (a dynamic one is named, not -1).
/// Checked by Serialize(): there is at least one graph output, and each output is defined;
/// the model fits protobuf's 2 GiB limit. Not checked here: whether op_type exists in opset 17
/// and its attributes and input shapes fit it (ONNX's checker and ONNX Runtime do that).
///
/// Tensors are row-major (C order) as in ONNX: an Eigen matrix, column-major by default, has
/// to be transposed or mapped row-major before it is passed.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/onnx/protobuf_writer.hpp"

namespace dlb {

/// The ONNX operator set (domain ai.onnx) the models are written for.
inline constexpr std::int64_t kOnnxOpsetVersion = 17;
/// The ONNX IR version written: 8, what ONNX 1.12 (which defined opset 17) writes, and the newest
/// that Debian 12's python3-onnx 1.12 checks (it refuses 9: "Your model ir_version is higher
/// than the checker's").
inline constexpr std::int64_t kOnnxIrVersion = 8;
/// ModelProto.producer_name.
inline constexpr const char* kOnnxProducerName = "DLBlocks";
/// The name of the dynamic batch dimension of exported models' inputs and outputs.
inline constexpr const char* kOnnxBatchDimension = "N";

/// Element types of graph inputs, outputs and initializers (ONNX TensorProto.DataType values).
enum class OnnxElementType : std::int32_t {
  kFloat = 1,  ///< float32
  kInt64 = 7,  ///< int64 (e.g. the shape input of Reshape)
};

/// One dimension of a graph input's or output's shape: fixed (an integer >= 0) or dynamic and
/// named (a string, e.g. kOnnxBatchDimension). {"N", 1, 28, 28} is a batch of 1x28x28 images.
using OnnxDimension = std::variant<std::int64_t, std::string>;

/// A node attribute: a name and one value of the ONNX attribute types INT, INTS, FLOAT, FLOATS
/// or STRING. Make one with the factory functions, e.g. OnnxAttribute::Ints("pads", {1, 1, 1, 1}).
struct OnnxAttribute {
  using Value =
      std::variant<std::int64_t, std::vector<std::int64_t>, float, std::vector<float>, std::string>;

  std::string name;
  Value value;

  static OnnxAttribute Int(std::string name, std::int64_t value) {
    return {std::move(name), Value(std::in_place_index<0>, value)};
  }
  static OnnxAttribute Ints(std::string name, std::vector<std::int64_t> values) {
    return {std::move(name), Value(std::in_place_index<1>, std::move(values))};
  }
  static OnnxAttribute Float(std::string name, float value) {
    return {std::move(name), Value(std::in_place_index<2>, value)};
  }
  static OnnxAttribute Floats(std::string name, std::vector<float> values) {
    return {std::move(name), Value(std::in_place_index<3>, std::move(values))};
  }
  /// A STRING attribute (ONNX stores its bytes as given; opset 17's string attributes, such as
  /// Conv's auto_pad, are ASCII).
  static OnnxAttribute String(std::string name, std::string value) {
    return {std::move(name), Value(std::in_place_index<4>, std::move(value))};
  }
};

/// One operator node of the graph, e.g.
///   {.name = "fc1", .op_type = "Gemm", .inputs = {"input", "fc1.weight", "fc1.bias"},
///    .outputs = {"fc1.output"}, .attributes = {OnnxAttribute::Int("transB", 1)}}
struct OnnxNode {
  // Default member initializers let a designated initializer leave members out without
  // -Wmissing-field-initializers warnings.
  std::string name{};                     ///< unique among the nodes, e.g. the layer's name
  std::string op_type{};                  ///< an operator of ai.onnx opset 17, e.g. "Gemm"
  std::vector<std::string> inputs{};      ///< defined values, in the operator's order; "" omits one
  std::vector<std::string> outputs{};     ///< new values; at least one
  std::vector<OnnxAttribute> attributes{};
};

namespace internal {

/// Field numbers of onnx.proto (github.com/onnx/onnx/blob/main/onnx/onnx.proto), for the
/// fields written. Only additions ever happen there, so these stay valid.
namespace onnx_field {
// ModelProto
inline constexpr std::uint32_t kModelIrVersion = 1;
inline constexpr std::uint32_t kModelProducerName = 2;
inline constexpr std::uint32_t kModelProducerVersion = 3;
inline constexpr std::uint32_t kModelGraph = 7;
inline constexpr std::uint32_t kModelOpsetImport = 8;
// OperatorSetIdProto
inline constexpr std::uint32_t kOpsetDomain = 1;
inline constexpr std::uint32_t kOpsetVersion = 2;
// GraphProto
inline constexpr std::uint32_t kGraphNode = 1;
inline constexpr std::uint32_t kGraphName = 2;
inline constexpr std::uint32_t kGraphInitializer = 5;
inline constexpr std::uint32_t kGraphInput = 11;
inline constexpr std::uint32_t kGraphOutput = 12;
// NodeProto
inline constexpr std::uint32_t kNodeInput = 1;
inline constexpr std::uint32_t kNodeOutput = 2;
inline constexpr std::uint32_t kNodeName = 3;
inline constexpr std::uint32_t kNodeOpType = 4;
inline constexpr std::uint32_t kNodeAttribute = 5;
// AttributeProto
inline constexpr std::uint32_t kAttributeName = 1;
inline constexpr std::uint32_t kAttributeF = 2;
inline constexpr std::uint32_t kAttributeI = 3;
inline constexpr std::uint32_t kAttributeS = 4;
inline constexpr std::uint32_t kAttributeFloats = 7;
inline constexpr std::uint32_t kAttributeInts = 8;
inline constexpr std::uint32_t kAttributeType = 20;
// AttributeProto.AttributeType
inline constexpr std::int32_t kAttributeTypeFloat = 1;
inline constexpr std::int32_t kAttributeTypeInt = 2;
inline constexpr std::int32_t kAttributeTypeString = 3;
inline constexpr std::int32_t kAttributeTypeFloats = 6;
inline constexpr std::int32_t kAttributeTypeInts = 7;
// TensorProto
inline constexpr std::uint32_t kTensorDims = 1;
inline constexpr std::uint32_t kTensorDataType = 2;
inline constexpr std::uint32_t kTensorInt64Data = 7;
inline constexpr std::uint32_t kTensorName = 8;
inline constexpr std::uint32_t kTensorRawData = 9;
// ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto(.Dimension)
inline constexpr std::uint32_t kValueInfoName = 1;
inline constexpr std::uint32_t kValueInfoType = 2;
inline constexpr std::uint32_t kTypeTensorType = 1;
inline constexpr std::uint32_t kTensorTypeElemType = 1;
inline constexpr std::uint32_t kTensorTypeShape = 2;
inline constexpr std::uint32_t kShapeDim = 1;
inline constexpr std::uint32_t kDimValue = 1;
inline constexpr std::uint32_t kDimParam = 2;
}  // namespace onnx_field

/// Whether `text` is well-formed UTF-8: no stray continuation bytes, no overlong forms, no
/// UTF-16 surrogates, nothing above U+10FFFF (what protobuf's parsers require of a string).
inline bool IsValidUtf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code = 0;
    std::uint32_t minimum = 0;
    if ((byte & 0xe0) == 0xc0) {
      length = 2, code = byte & 0x1f, minimum = 0x80;
    } else if ((byte & 0xf0) == 0xe0) {
      length = 3, code = byte & 0x0f, minimum = 0x800;
    } else if ((byte & 0xf8) == 0xf0) {
      length = 4, code = byte & 0x07, minimum = 0x10000;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = (code << 6) | (next & 0x3f);
    }
    if (code < minimum || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return false;
    i += length;
  }
  return true;
}

/// `name` quoted for an error message.
inline std::string Quoted(std::string_view name) { return "'" + std::string(name) + "'"; }

/// Throws ArgumentError unless `name` is a usable ONNX name: non-empty UTF-8 without NUL.
/// `what` says whose name it is ("graph input", "node 'fc1': output").
inline void CheckOnnxName(std::string_view name, const std::string& what) {
  if (name.empty()) throw ArgumentError("ONNX " + what + ": the name is empty");
  if (name.find('\0') != std::string_view::npos || !IsValidUtf8(name)) {
    throw ArgumentError("ONNX " + what + " " + Quoted(name) +
                        ": a name must be UTF-8 text without NUL characters");
  }
}

/// Whether `text` is an identifier ([A-Za-z_][A-Za-z0-9_]*), the form of ONNX operator types.
inline bool IsOnnxIdentifier(std::string_view text) noexcept {
  if (text.empty()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

/// Product of `dims`, or throws ArgumentError when one is negative or the product overflows.
inline std::size_t OnnxElementCount(const std::vector<std::int64_t>& dims, const std::string& what) {
  std::size_t count = 1;
  for (const std::int64_t dim : dims) {
    if (dim < 0) {
      throw ArgumentError("ONNX " + what + ": dimension " + std::to_string(dim) +
                          " is negative");
    }
    const auto size = static_cast<std::size_t>(dim);
    if (size != 0 && count > std::numeric_limits<std::size_t>::max() / size) {
      throw ArgumentError("ONNX " + what + ": the dimensions' product overflows");
    }
    count *= size;
  }
  return count;
}

/// ValueInfoProto of a tensor value: name, element type, shape.
inline ProtobufWriter EncodeOnnxValueInfo(const std::string& name, OnnxElementType type,
                                          const std::vector<OnnxDimension>& shape) {
  namespace f = onnx_field;
  ProtobufWriter shape_proto;
  for (const OnnxDimension& dim : shape) {
    ProtobufWriter dim_proto;
    if (const auto* value = std::get_if<std::int64_t>(&dim)) {
      dim_proto.WriteInt64(f::kDimValue, *value);
    } else {
      dim_proto.WriteBytes(f::kDimParam, std::get<std::string>(dim));
    }
    shape_proto.WriteMessage(f::kShapeDim, dim_proto);
  }
  ProtobufWriter tensor_type;
  tensor_type.WriteInt32(f::kTensorTypeElemType, static_cast<std::int32_t>(type));
  tensor_type.WriteMessage(f::kTensorTypeShape, shape_proto);
  ProtobufWriter type_proto;
  type_proto.WriteMessage(f::kTypeTensorType, tensor_type);
  ProtobufWriter value_info;
  value_info.WriteBytes(f::kValueInfoName, name);
  value_info.WriteMessage(f::kValueInfoType, type_proto);
  return value_info;
}

/// AttributeProto: name, value, type. Repeated INTS and FLOATS are written unpacked, one field
/// per value, as onnx.proto (proto2, no [packed = true]) declares them.
inline ProtobufWriter EncodeOnnxAttribute(const OnnxAttribute& attribute) {
  namespace f = onnx_field;
  ProtobufWriter proto;
  proto.WriteBytes(f::kAttributeName, attribute.name);
  std::int32_t type = 0;
  std::visit(
      [&](const auto& value) {
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::int64_t>) {
          proto.WriteInt64(f::kAttributeI, value);
          type = f::kAttributeTypeInt;
        } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
          for (const std::int64_t v : value) proto.WriteInt64(f::kAttributeInts, v);
          type = f::kAttributeTypeInts;
        } else if constexpr (std::is_same_v<T, float>) {
          proto.WriteFloat(f::kAttributeF, value);
          type = f::kAttributeTypeFloat;
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          for (const float v : value) proto.WriteFloat(f::kAttributeFloats, v);
          type = f::kAttributeTypeFloats;
        } else {
          static_assert(std::is_same_v<T, std::string>);
          proto.WriteBytes(f::kAttributeS, value);
          type = f::kAttributeTypeString;
        }
      },
      attribute.value);
  proto.WriteInt32(f::kAttributeType, type);
  return proto;
}

}  // namespace internal

/// Builds one ONNX model: add the graph inputs, the initializers and the nodes in the order of
/// the forward pass, then the graph outputs, then Serialize() or Save(). See the file comment
/// for what is checked; every check failure throws ArgumentError and changes nothing.
class OnnxModelBuilder {
 public:
  /// `graph_name`: GraphProto.name (e.g. "dlblocks_model"); `producer_version`:
  /// ModelProto.producer_version, the DLBlocks version that exports (e.g. "0.1.0").
  OnnxModelBuilder(std::string graph_name, std::string producer_version)
      : graph_name_(std::move(graph_name)), producer_version_(std::move(producer_version)) {
    internal::CheckOnnxName(graph_name_, "graph name");
    if (!internal::IsValidUtf8(producer_version_)) {
      throw ArgumentError("ONNX producer version: not UTF-8 text");
    }
  }

  /// Declares a graph input: a tensor of element type `type` and shape `shape`, e.g.
  /// AddInput("input", {kOnnxBatchDimension, 1, 28, 28}).
  void AddInput(const std::string& name, const std::vector<OnnxDimension>& shape,
                OnnxElementType type = OnnxElementType::kFloat) {
    CheckNewValue(name, "graph input");
    CheckShape(shape, "graph input " + internal::Quoted(name));
    CheckElementType(type, "graph input " + internal::Quoted(name));
    const internal::ProtobufWriter proto = internal::EncodeOnnxValueInfo(name, type, shape);
    inputs_.WriteMessage(internal::onnx_field::kGraphInput, proto);
    values_.insert(name);
  }

  /// Adds a float32 initializer (a constant tensor such as a weight) of shape `dims` holding
  /// `values` in row-major order; dims {} is a scalar. `values.size()` must be the product of
  /// `dims`. Written as little-endian raw_data.
  void AddFloatInitializer(const std::string& name, const std::vector<std::int64_t>& dims,
                           std::span<const float> values) {
    CheckInitializer(name, dims, values.size());
    namespace f = internal::onnx_field;
    internal::ProtobufWriter proto = InitializerHeader(dims, OnnxElementType::kFloat);
    proto.WriteBytes(f::kTensorName, name);
    std::string raw;
    internal::AppendFloatsLittleEndian(raw, values);
    proto.WriteBytes(f::kTensorRawData, raw);
    initializers_.WriteMessage(internal::onnx_field::kGraphInitializer, proto);
    values_.insert(name);
  }

  /// Adds an int64 initializer (e.g. the target shape {0, -1} of a Reshape), as packed
  /// int64_data.
  void AddInt64Initializer(const std::string& name, const std::vector<std::int64_t>& dims,
                           std::span<const std::int64_t> values) {
    CheckInitializer(name, dims, values.size());
    namespace f = internal::onnx_field;
    internal::ProtobufWriter proto = InitializerHeader(dims, OnnxElementType::kInt64);
    proto.WritePackedInt64(f::kTensorInt64Data, values);
    proto.WriteBytes(f::kTensorName, name);
    initializers_.WriteMessage(f::kGraphInitializer, proto);
    values_.insert(name);
  }

  /// Adds an operator node after the ones added before. Its inputs must be defined by now and
  /// its outputs must be new names.
  void AddNode(const OnnxNode& node) {
    const std::string what = "node " + internal::Quoted(node.name);
    internal::CheckOnnxName(node.name, "node");
    if (node_names_.count(node.name) != 0) {
      throw ArgumentError("ONNX " + what + ": a node of this name was already added");
    }
    if (!internal::IsOnnxIdentifier(node.op_type)) {
      throw ArgumentError("ONNX " + what + ": op_type " + internal::Quoted(node.op_type) +
                          " is not an operator name (letters, digits, '_')");
    }
    const std::string full = what + " (" + node.op_type + ")";
    for (const std::string& input : node.inputs) {
      if (input.empty()) continue;  // an omitted optional input
      if (values_.count(input) == 0) {
        throw ArgumentError("ONNX " + full + ": input " + internal::Quoted(input) +
                            " is not defined yet; add the graph input, initializer or node "
                            "that produces it first");
      }
    }
    bool has_output = false;
    std::unordered_set<std::string> outputs;
    for (const std::string& output : node.outputs) {
      if (output.empty()) continue;  // an omitted optional output
      CheckNewValue(output, full + ": output");
      if (!outputs.insert(output).second) {
        throw ArgumentError("ONNX " + full + ": output " + internal::Quoted(output) +
                            " is listed twice");
      }
      has_output = true;
    }
    if (!has_output) throw ArgumentError("ONNX " + full + ": the node has no output");
    std::unordered_set<std::string> attribute_names;
    for (const OnnxAttribute& attribute : node.attributes) {
      internal::CheckOnnxName(attribute.name, full + ": attribute");
      if (!attribute_names.insert(attribute.name).second) {
        throw ArgumentError("ONNX " + full + ": attribute " + internal::Quoted(attribute.name) +
                            " is given twice");
      }
    }

    namespace f = internal::onnx_field;
    internal::ProtobufWriter proto;
    for (const std::string& input : node.inputs) proto.WriteBytes(f::kNodeInput, input);
    for (const std::string& output : node.outputs) proto.WriteBytes(f::kNodeOutput, output);
    proto.WriteBytes(f::kNodeName, node.name);
    proto.WriteBytes(f::kNodeOpType, node.op_type);
    for (const OnnxAttribute& attribute : node.attributes) {
      proto.WriteMessage(f::kNodeAttribute, internal::EncodeOnnxAttribute(attribute));
    }
    nodes_.WriteMessage(f::kGraphNode, proto);
    node_names_.insert(node.name);
    values_.insert(outputs.begin(), outputs.end());
  }

  /// Declares a graph output: a value defined by the time Serialize() is called, with its
  /// element type and shape, e.g. AddOutput("output", {kOnnxBatchDimension, 10}).
  void AddOutput(const std::string& name, const std::vector<OnnxDimension>& shape,
                 OnnxElementType type = OnnxElementType::kFloat) {
    internal::CheckOnnxName(name, "graph output");
    for (const std::string& output : output_names_) {
      if (output == name) {
        throw ArgumentError("ONNX graph output " + internal::Quoted(name) +
                            ": already declared as an output");
      }
    }
    CheckShape(shape, "graph output " + internal::Quoted(name));
    CheckElementType(type, "graph output " + internal::Quoted(name));
    const internal::ProtobufWriter proto = internal::EncodeOnnxValueInfo(name, type, shape);
    outputs_.WriteMessage(internal::onnx_field::kGraphOutput, proto);
    output_names_.push_back(name);
  }

  /// Whether `name` is a defined value: a graph input, an initializer or a node output.
  bool HasValue(const std::string& name) const { return values_.count(name) != 0; }

  /// The model as ONNX bytes (a serialized ModelProto). Throws ArgumentError when there is no
  /// graph output, when an output is not defined, or when the model is 2 GiB or more. Needs
  /// about three times the model's size in memory while it runs.
  std::string Serialize() const {
    if (output_names_.empty()) throw ArgumentError("ONNX model: no graph output was declared");
    for (const std::string& output : output_names_) {
      if (!HasValue(output)) {
        throw ArgumentError("ONNX graph output " + internal::Quoted(output) +
                            " is not defined by any graph input, initializer or node");
      }
    }
    namespace f = internal::onnx_field;
    // The graph's fields in ascending field order: node (1), name (2), initializer (5),
    // input (11), output (12).
    internal::ProtobufWriter graph;
    graph.Append(nodes_);
    graph.WriteBytes(f::kGraphName, graph_name_);
    graph.Append(initializers_);
    graph.Append(inputs_);
    graph.Append(outputs_);

    internal::ProtobufWriter opset;
    opset.WriteBytes(f::kOpsetDomain, "");  // ai.onnx
    opset.WriteInt64(f::kOpsetVersion, kOnnxOpsetVersion);
    internal::ProtobufWriter model;
    model.WriteInt64(f::kModelIrVersion, kOnnxIrVersion);
    model.WriteBytes(f::kModelProducerName, kOnnxProducerName);
    model.WriteBytes(f::kModelProducerVersion, producer_version_);
    model.WriteMessage(f::kModelGraph, graph);
    model.WriteMessage(f::kModelOpsetImport, opset);
    if (model.Size() > internal::kMaxProtobufLength) {
      throw ArgumentError("ONNX model: " + std::to_string(model.Size()) +
                          " bytes, more than the 2^31 - 1 bytes protobuf parsers accept "
                          "(external data files are not supported)");
    }
    return model.Release();
  }

  /// Writes Serialize() to `path` atomically (dlb::WriteFileAtomically): all or nothing.
  /// Throws what Serialize() throws, and FileError when the file cannot be written.
  void Save(const std::string& path) const { WriteFileAtomically(path, Serialize()); }

 private:
  void CheckNewValue(const std::string& name, const std::string& what) const {
    internal::CheckOnnxName(name, what);
    if (values_.count(name) != 0) {
      throw ArgumentError("ONNX " + what + " " + internal::Quoted(name) +
                          ": a value of this name is already defined (names must be unique)");
    }
  }

  static void CheckShape(const std::vector<OnnxDimension>& shape, const std::string& what) {
    for (const OnnxDimension& dim : shape) {
      if (const auto* value = std::get_if<std::int64_t>(&dim)) {
        if (*value < 0) {
          throw ArgumentError("ONNX " + what + ": dimension " + std::to_string(*value) +
                              " is negative; name a dynamic dimension instead (e.g. \"" +
                              kOnnxBatchDimension + "\")");
        }
      } else {
        internal::CheckOnnxName(std::get<std::string>(dim), what + ": dimension");
      }
    }
  }

  static void CheckElementType(OnnxElementType type, const std::string& what) {
    if (type != OnnxElementType::kFloat && type != OnnxElementType::kInt64) {
      throw ArgumentError("ONNX " + what + ": element type " +
                          std::to_string(static_cast<std::int32_t>(type)) +
                          " is not float32 or int64");
    }
  }

  void CheckInitializer(const std::string& name, const std::vector<std::int64_t>& dims,
                        std::size_t count) const {
    const std::string what = "initializer " + internal::Quoted(name);
    CheckNewValue(name, "initializer");
    const std::size_t expected = internal::OnnxElementCount(dims, what);
    if (expected != count) {
      throw ArgumentError("ONNX " + what + ": its dimensions hold " + std::to_string(expected) +
                          " values, but " + std::to_string(count) + " were given");
    }
  }

  /// A TensorProto's first fields, dims (1) and data_type (2); the caller adds the data and
  /// the name in field order (int64_data 7, name 8, raw_data 9), as protobuf's serializers do.
  static internal::ProtobufWriter InitializerHeader(const std::vector<std::int64_t>& dims,
                                                    OnnxElementType type) {
    namespace f = internal::onnx_field;
    internal::ProtobufWriter proto;
    for (const std::int64_t dim : dims) proto.WriteInt64(f::kTensorDims, dim);
    proto.WriteInt32(f::kTensorDataType, static_cast<std::int32_t>(type));
    return proto;
  }

  std::string graph_name_;
  std::string producer_version_;
  // The graph's repeated fields, each encoded when added (so weights are held once, encoded).
  internal::ProtobufWriter nodes_;
  internal::ProtobufWriter initializers_;
  internal::ProtobufWriter inputs_;
  internal::ProtobufWriter outputs_;
  std::unordered_set<std::string> values_;      ///< every defined value name
  std::unordered_set<std::string> node_names_;
  std::vector<std::string> output_names_;
};

}  // namespace dlb
