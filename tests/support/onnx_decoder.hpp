#pragma once
// A strict decoder of the protobuf wire format and of the ONNX ModelProto fields that
// dlb::OnnxModelBuilder writes, for the tests and the fuzzer: it checks the writer from the
// reading side without libprotobuf.
//
// Written independently of include/dlb/onnx/: the field numbers below are transcribed again
// from onnx.proto (not taken from dlb::internal::onnx_field), and an unknown field number is
// an error, so a wrong number in the writer shows up as a decoding failure. Repeated scalar
// fields are accepted packed and unpacked, as protobuf's parsers accept them.

#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace dlb_test {

/// A malformed message, or a field the decoder does not expect.
struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// One field of a message: its number, wire type and payload (varint and fixed values in
/// `value`, length-delimited bytes in `bytes`, pointing into the parsed message).
struct ProtobufField {
  std::uint32_t number = 0;
  std::uint32_t wire_type = 0;
  std::uint64_t value = 0;
  std::string_view bytes;
};

/// Reads a varint at `pos`, advancing it. Throws DecodeError on truncation or more than 10
/// bytes, and when the 10th byte has bits beyond the 64th.
inline std::uint64_t ReadVarint(std::string_view data, std::size_t& pos) {
  std::uint64_t value = 0;
  for (int i = 0; i < 10; ++i) {
    if (pos >= data.size()) throw DecodeError("truncated varint");
    const auto byte = static_cast<unsigned char>(data[pos++]);
    if (i == 9 && byte > 1) throw DecodeError("varint overflows 64 bits");
    value |= std::uint64_t{byte & 0x7fu} << (7 * i);
    if ((byte & 0x80) == 0) return value;
  }
  throw DecodeError("varint longer than 10 bytes");
}

inline std::uint64_t ReadLittleEndian(std::string_view data, std::size_t& pos, int bytes) {
  if (data.size() - pos < static_cast<std::size_t>(bytes)) throw DecodeError("truncated fixed field");
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= std::uint64_t{static_cast<unsigned char>(data[pos++])} << (8 * i);
  }
  return value;
}

/// Splits a message into its fields, in order. Throws DecodeError when it is malformed.
inline std::vector<ProtobufField> ParseProtobuf(std::string_view data) {
  std::vector<ProtobufField> fields;
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::uint64_t tag = ReadVarint(data, pos);
    ProtobufField field;
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) throw DecodeError("invalid field number");
    field.number = static_cast<std::uint32_t>(tag >> 3);
    field.wire_type = static_cast<std::uint32_t>(tag & 7);
    switch (field.wire_type) {
      case 0:
        field.value = ReadVarint(data, pos);
        break;
      case 1:
        field.value = ReadLittleEndian(data, pos, 8);
        break;
      case 5:
        field.value = ReadLittleEndian(data, pos, 4);
        break;
      case 2: {
        const std::uint64_t length = ReadVarint(data, pos);
        if (length > data.size() - pos) throw DecodeError("length-delimited field past the end");
        field.bytes = data.substr(pos, static_cast<std::size_t>(length));
        pos += static_cast<std::size_t>(length);
        break;
      }
      default:
        throw DecodeError("unsupported wire type " + std::to_string(field.wire_type));
    }
    fields.push_back(field);
  }
  return fields;
}

inline void ExpectWireType(const ProtobufField& field, std::uint32_t wire_type, const char* what) {
  if (field.wire_type != wire_type) {
    throw DecodeError(std::string(what) + ": field " + std::to_string(field.number) +
                      " has wire type " + std::to_string(field.wire_type));
  }
}

/// Appends the value(s) of a repeated int64 field, packed (wire type 2) or not (0).
inline void AppendInt64s(const ProtobufField& field, std::vector<std::int64_t>& out) {
  if (field.wire_type == 0) {
    out.push_back(static_cast<std::int64_t>(field.value));
    return;
  }
  ExpectWireType(field, 2, "repeated int64");
  std::size_t pos = 0;
  while (pos < field.bytes.size()) {
    out.push_back(static_cast<std::int64_t>(ReadVarint(field.bytes, pos)));
  }
}

/// Appends the bit patterns of a repeated float field, packed (wire type 2) or not (5).
inline void AppendFloatBits(const ProtobufField& field, std::vector<std::uint32_t>& out) {
  if (field.wire_type == 5) {
    out.push_back(static_cast<std::uint32_t>(field.value));
    return;
  }
  ExpectWireType(field, 2, "repeated float");
  if (field.bytes.size() % 4 != 0) throw DecodeError("packed floats: length not a multiple of 4");
  std::size_t pos = 0;
  while (pos < field.bytes.size()) {
    out.push_back(static_cast<std::uint32_t>(ReadLittleEndian(field.bytes, pos, 4)));
  }
}

inline std::string String(const ProtobufField& field, const char* what) {
  ExpectWireType(field, 2, what);
  return std::string(field.bytes);
}

inline std::int64_t Int(const ProtobufField& field, const char* what) {
  ExpectWireType(field, 0, what);
  return static_cast<std::int64_t>(field.value);
}

[[noreturn]] inline void UnknownField(const char* message, const ProtobufField& field) {
  throw DecodeError(std::string(message) + ": unexpected field " + std::to_string(field.number));
}

// ONNX messages, as far as the builder writes them.

struct DecodedAttribute {
  std::string name;
  std::int64_t type = 0;  // AttributeProto.AttributeType
  std::int64_t i = 0;
  std::uint32_t f_bits = 0;
  std::string s;
  std::vector<std::int64_t> ints;
  std::vector<std::uint32_t> floats_bits;
  int value_fields = 0;  // how many value fields (f, i, s, floats, ints) were present
};

struct DecodedNode {
  std::string name;
  std::string op_type;
  std::string domain;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::vector<DecodedAttribute> attributes;
};

struct DecodedTensor {
  std::string name;
  std::int64_t data_type = 0;
  std::vector<std::int64_t> dims;
  std::string raw_data;
  std::vector<std::int64_t> int64_data;
  std::vector<std::uint32_t> float_data_bits;
};

struct DecodedValueInfo {
  std::string name;
  std::int64_t elem_type = 0;
  bool has_shape = false;
  std::vector<std::variant<std::int64_t, std::string>> shape;
};

struct DecodedGraph {
  std::string name;
  std::vector<DecodedNode> nodes;
  std::vector<DecodedTensor> initializers;
  std::vector<DecodedValueInfo> inputs;
  std::vector<DecodedValueInfo> outputs;
};

struct DecodedModel {
  std::int64_t ir_version = 0;
  std::string producer_name;
  std::string producer_version;
  std::vector<std::pair<std::string, std::int64_t>> opsets;  // (domain, version)
  int graph_count = 0;
  DecodedGraph graph;
};

inline DecodedAttribute DecodeAttribute(std::string_view bytes) {
  DecodedAttribute attribute;
  for (const ProtobufField& field : ParseProtobuf(bytes)) {
    switch (field.number) {
      case 1: attribute.name = String(field, "AttributeProto.name"); break;
      case 2:
        ExpectWireType(field, 5, "AttributeProto.f");
        attribute.f_bits = static_cast<std::uint32_t>(field.value);
        ++attribute.value_fields;
        break;
      case 3: attribute.i = Int(field, "AttributeProto.i"); ++attribute.value_fields; break;
      case 4: attribute.s = String(field, "AttributeProto.s"); ++attribute.value_fields; break;
      case 7: AppendFloatBits(field, attribute.floats_bits); ++attribute.value_fields; break;
      case 8: AppendInt64s(field, attribute.ints); ++attribute.value_fields; break;
      case 20: attribute.type = Int(field, "AttributeProto.type"); break;
      default: UnknownField("AttributeProto", field);
    }
  }
  return attribute;
}

inline DecodedNode DecodeNode(std::string_view bytes) {
  DecodedNode node;
  for (const ProtobufField& field : ParseProtobuf(bytes)) {
    switch (field.number) {
      case 1: node.inputs.push_back(String(field, "NodeProto.input")); break;
      case 2: node.outputs.push_back(String(field, "NodeProto.output")); break;
      case 3: node.name = String(field, "NodeProto.name"); break;
      case 4: node.op_type = String(field, "NodeProto.op_type"); break;
      case 5:
        ExpectWireType(field, 2, "NodeProto.attribute");
        node.attributes.push_back(DecodeAttribute(field.bytes));
        break;
      case 7: node.domain = String(field, "NodeProto.domain"); break;
      default: UnknownField("NodeProto", field);
    }
  }
  return node;
}

inline DecodedTensor DecodeTensor(std::string_view bytes) {
  DecodedTensor tensor;
  for (const ProtobufField& field : ParseProtobuf(bytes)) {
    switch (field.number) {
      case 1: AppendInt64s(field, tensor.dims); break;
      case 2: tensor.data_type = Int(field, "TensorProto.data_type"); break;
      case 4: AppendFloatBits(field, tensor.float_data_bits); break;
      case 7: AppendInt64s(field, tensor.int64_data); break;
      case 8: tensor.name = String(field, "TensorProto.name"); break;
      case 9: tensor.raw_data = String(field, "TensorProto.raw_data"); break;
      default: UnknownField("TensorProto", field);
    }
  }
  return tensor;
}

inline DecodedValueInfo DecodeValueInfo(std::string_view bytes) {
  DecodedValueInfo info;
  for (const ProtobufField& field : ParseProtobuf(bytes)) {
    if (field.number == 1) {
      info.name = String(field, "ValueInfoProto.name");
    } else if (field.number == 2) {
      ExpectWireType(field, 2, "ValueInfoProto.type");
      for (const ProtobufField& type : ParseProtobuf(field.bytes)) {
        if (type.number != 1) UnknownField("TypeProto", type);
        ExpectWireType(type, 2, "TypeProto.tensor_type");
        for (const ProtobufField& tensor : ParseProtobuf(type.bytes)) {
          if (tensor.number == 1) {
            info.elem_type = Int(tensor, "TypeProto.Tensor.elem_type");
          } else if (tensor.number == 2) {
            ExpectWireType(tensor, 2, "TypeProto.Tensor.shape");
            info.has_shape = true;
            for (const ProtobufField& dim : ParseProtobuf(tensor.bytes)) {
              if (dim.number != 1) UnknownField("TensorShapeProto", dim);
              ExpectWireType(dim, 2, "TensorShapeProto.dim");
              const std::vector<ProtobufField> value = ParseProtobuf(dim.bytes);
              if (value.size() != 1) throw DecodeError("Dimension: not exactly one value");
              if (value[0].number == 1) {
                info.shape.emplace_back(Int(value[0], "Dimension.dim_value"));
              } else if (value[0].number == 2) {
                info.shape.emplace_back(String(value[0], "Dimension.dim_param"));
              } else {
                UnknownField("Dimension", value[0]);
              }
            }
          } else {
            UnknownField("TypeProto.Tensor", tensor);
          }
        }
      }
    } else {
      UnknownField("ValueInfoProto", field);
    }
  }
  return info;
}

/// Decodes a serialized ModelProto. Throws DecodeError when it is malformed or holds a field
/// the builder never writes.
inline DecodedModel DecodeOnnxModel(std::string_view bytes) {
  DecodedModel model;
  for (const ProtobufField& field : ParseProtobuf(bytes)) {
    switch (field.number) {
      case 1: model.ir_version = Int(field, "ModelProto.ir_version"); break;
      case 2: model.producer_name = String(field, "ModelProto.producer_name"); break;
      case 3: model.producer_version = String(field, "ModelProto.producer_version"); break;
      case 7: {
        ExpectWireType(field, 2, "ModelProto.graph");
        ++model.graph_count;
        for (const ProtobufField& g : ParseProtobuf(field.bytes)) {
          switch (g.number) {
            case 1: model.graph.nodes.push_back(DecodeNode(String(g, "GraphProto.node"))); break;
            case 2: model.graph.name = String(g, "GraphProto.name"); break;
            case 5:
              model.graph.initializers.push_back(DecodeTensor(String(g, "GraphProto.initializer")));
              break;
            case 11: model.graph.inputs.push_back(DecodeValueInfo(String(g, "GraphProto.input"))); break;
            case 12: model.graph.outputs.push_back(DecodeValueInfo(String(g, "GraphProto.output"))); break;
            default: UnknownField("GraphProto", g);
          }
        }
        break;
      }
      case 8: {
        ExpectWireType(field, 2, "ModelProto.opset_import");
        std::pair<std::string, std::int64_t> opset;
        for (const ProtobufField& o : ParseProtobuf(field.bytes)) {
          if (o.number == 1) {
            opset.first = String(o, "OperatorSetIdProto.domain");
          } else if (o.number == 2) {
            opset.second = Int(o, "OperatorSetIdProto.version");
          } else {
            UnknownField("OperatorSetIdProto", o);
          }
        }
        model.opsets.push_back(opset);
        break;
      }
      default: UnknownField("ModelProto", field);
    }
  }
  return model;
}

/// The floats of a raw_data string (little-endian IEEE-754), as bit patterns.
inline std::vector<std::uint32_t> RawFloatBits(const std::string& raw) {
  if (raw.size() % 4 != 0) throw DecodeError("raw_data: length not a multiple of 4");
  std::vector<std::uint32_t> bits;
  std::size_t pos = 0;
  while (pos < raw.size()) bits.push_back(static_cast<std::uint32_t>(ReadLittleEndian(raw, pos, 4)));
  return bits;
}

}  // namespace dlb_test
