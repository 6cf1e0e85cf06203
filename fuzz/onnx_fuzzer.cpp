// libFuzzer target for the ONNX export's encoder (dlb/onnx/protobuf_writer.hpp) and model
// builder (dlb/onnx/onnx_model_builder.hpp).
//
// The input is a program: its first byte picks the target, the rest is a sequence of calls
// with their arguments. Two differential checks against independent code:
//  * writer (first byte even): random Write*() calls, valid and invalid field numbers
//    included; an oracle here says which must throw dlb::ArgumentError. The bytes written
//    must parse (tests/support/onnx_decoder.hpp, a separate strict decoder) into exactly the
//    fields of the calls that succeeded, in order; a refused call must write nothing.
//  * builder (first byte odd): random AddInput / AddFloatInitializer / AddInt64Initializer /
//    AddNode / AddOutput calls drawing names from a pool with duplicates, empty and invalid
//    UTF-8 names; an oracle (sets of defined names) says which calls must throw
//    ArgumentError, and whether Serialize() must. The serialized model must decode into
//    exactly the parts of the successful calls (so a refused call changed nothing).
// A finding is a crash or sanitizer report, an exception other than ArgumentError, or a
// disagreement with the oracle or the decoder.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/onnx/onnx_model_builder.hpp"
#include "dlb/onnx/protobuf_writer.hpp"
#include "scratch_files.hpp"
#include "support/onnx_decoder.hpp"

namespace {

using fuzz::Finding;

/// Reads the fuzzer's input as a stream of arguments; past the end everything reads as 0.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool Empty() const { return pos_ >= size_; }
  std::uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint64_t U64() {
    std::uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value |= std::uint64_t{Byte()} << (8 * i);
    return value;
  }
  std::uint32_t U32() {
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) value |= std::uint32_t{Byte()} << (8 * i);
    return value;
  }
  std::string Bytes(std::size_t max) {
    std::string out;
    for (std::size_t i = 0, n = Byte() % (max + 1); i < n && !Empty(); ++i) {
      out.push_back(static_cast<char>(Byte()));
    }
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

/// Calls `call`; returns whether it succeeded. ArgumentError is a refusal; anything else
/// escapes and is a finding.
template <class F>
bool Succeeds(F&& call) {
  try {
    call();
    return true;
  } catch (const dlb::ArgumentError&) {
    return false;
  }
}

void Expect(bool condition, const std::string& what) {
  if (!condition) Finding(what);
}

// ---------------------------------------------------------------------------------------
// The writer.

struct ExpectedField {
  std::uint32_t number = 0;
  std::uint32_t wire_type = 0;
  std::uint64_t value = 0;
  std::string bytes;
  enum Kind { kScalar, kBytes, kPackedInt64, kPackedFloat, kMessage } kind = kScalar;
  std::vector<std::int64_t> ints;
  std::vector<std::uint32_t> float_bits;
};

std::uint32_t FieldNumber(Input& in) {
  const std::uint8_t choice = in.Byte();
  switch (choice % 8) {
    case 0: return 0;
    case 1: return 18990 + in.Byte() * 5u;  // around the reserved 19000..19999
    case 2: return dlb::internal::kMaxProtobufFieldNumber;
    case 3: return dlb::internal::kMaxProtobufFieldNumber + 1 + in.Byte();
    case 4: return in.U32();
    default: return 1 + choice % 40;
  }
}

// The oracle's own statement of protobuf's rule.
bool ValidField(std::uint32_t field) {
  return field >= 1 && field < (1u << 29) && !(field >= 19000 && field < 20000);
}

void FuzzWriter(Input& in) {
  dlb::internal::ProtobufWriter writer;
  std::vector<ExpectedField> expected;
  for (int call = 0; call < 64 && !in.Empty(); ++call) {
    const std::uint8_t op = in.Byte() % 12;
    const std::uint32_t field = FieldNumber(in);
    ExpectedField e;
    e.number = field;
    const std::size_t before = writer.Size();
    bool ok = false;
    bool writes = true;
    switch (op) {
      case 0: e.value = in.U64(); ok = Succeeds([&] { writer.WriteVarint(field, e.value); }); break;
      case 1: {
        const auto v = static_cast<std::int64_t>(in.U64());
        e.value = static_cast<std::uint64_t>(v);
        ok = Succeeds([&] { writer.WriteInt64(field, v); });
        break;
      }
      case 2: {
        const auto v = static_cast<std::int32_t>(in.U32());
        e.value = static_cast<std::uint64_t>(static_cast<std::int64_t>(v));
        ok = Succeeds([&] { writer.WriteInt32(field, v); });
        break;
      }
      case 3:
        e.wire_type = 5, e.value = in.U32();
        ok = Succeeds([&] { writer.WriteFixed32(field, static_cast<std::uint32_t>(e.value)); });
        break;
      case 4: {
        e.wire_type = 5, e.value = in.U32();
        const float v = std::bit_cast<float>(static_cast<std::uint32_t>(e.value));
        ok = Succeeds([&] { writer.WriteFloat(field, v); });
        break;
      }
      case 5:
        e.wire_type = 1, e.value = in.U64();
        ok = Succeeds([&] { writer.WriteFixed64(field, e.value); });
        break;
      case 6: {
        e.wire_type = 1, e.value = in.U64();
        const double v = std::bit_cast<double>(e.value);
        ok = Succeeds([&] { writer.WriteDouble(field, v); });
        break;
      }
      case 7:
        e.wire_type = 2, e.kind = ExpectedField::kBytes, e.bytes = in.Bytes(40);
        ok = Succeeds([&] { writer.WriteBytes(field, e.bytes); });
        break;
      case 8: {
        e.wire_type = 2, e.kind = ExpectedField::kPackedInt64;
        for (int i = 0, n = in.Byte() % 6; i < n; ++i) e.ints.push_back(static_cast<std::int64_t>(in.U64()));
        writes = !e.ints.empty();
        ok = Succeeds([&] { writer.WritePackedInt64(field, e.ints); });
        break;
      }
      case 9: {
        e.wire_type = 2, e.kind = ExpectedField::kPackedFloat;
        std::vector<float> values;
        for (int i = 0, n = in.Byte() % 6; i < n; ++i) {
          e.float_bits.push_back(in.U32());
          values.push_back(std::bit_cast<float>(e.float_bits.back()));
        }
        writes = !values.empty();
        ok = Succeeds([&] { writer.WritePackedFloat(field, values); });
        break;
      }
      case 10: {
        // A nested message holding one varint field 1.
        e.wire_type = 2, e.kind = ExpectedField::kMessage, e.value = in.U64();
        dlb::internal::ProtobufWriter inner;
        inner.WriteVarint(1, e.value);
        ok = Succeeds([&] { writer.WriteMessage(field, inner); });
        break;
      }
      default: {
        // Append: another writer's fields, a fixed32 field 3 and a bytes field 4.
        dlb::internal::ProtobufWriter other;
        e.number = 3, e.wire_type = 5, e.value = in.U32();
        other.WriteFixed32(3, static_cast<std::uint32_t>(e.value));
        ExpectedField second;
        second.number = 4, second.wire_type = 2, second.kind = ExpectedField::kBytes;
        second.bytes = in.Bytes(8);
        other.WriteBytes(4, second.bytes);
        writer.Append(other);
        expected.push_back(e);
        expected.push_back(second);
        continue;
      }
    }
    Expect(ok == ValidField(field),
           "writer op " + std::to_string(op) + " on field " + std::to_string(field) +
               (ok ? " succeeded" : " was refused") + ", the oracle disagrees");
    if (!ok) {
      Expect(writer.Size() == before, "a refused write changed the message");
    } else if (writes) {
      expected.push_back(e);
    } else {
      Expect(writer.Size() == before, "an empty packed list wrote something");
    }
  }

  Expect(writer.Size() == writer.Bytes().size(), "Size() differs from Bytes().size()");
  std::vector<dlb_test::ProtobufField> fields;
  try {
    fields = dlb_test::ParseProtobuf(writer.Bytes());
  } catch (const dlb_test::DecodeError& error) {
    Finding(std::string("the writer's bytes do not parse: ") + error.what());
  }
  Expect(fields.size() == expected.size(), "the message holds " + std::to_string(fields.size()) +
                                               " fields, " + std::to_string(expected.size()) +
                                               " were written");
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const dlb_test::ProtobufField& f = fields[i];
    const ExpectedField& e = expected[i];
    const std::string where = "field #" + std::to_string(i) + " (number " + std::to_string(e.number) + ")";
    Expect(f.number == e.number && f.wire_type == e.wire_type, where + ": number or wire type");
    switch (e.kind) {
      case ExpectedField::kScalar: Expect(f.value == e.value, where + ": value"); break;
      case ExpectedField::kBytes: Expect(f.bytes == e.bytes, where + ": bytes"); break;
      case ExpectedField::kPackedInt64: {
        std::vector<std::int64_t> ints;
        dlb_test::AppendInt64s(f, ints);
        Expect(ints == e.ints, where + ": packed int64 values");
        break;
      }
      case ExpectedField::kPackedFloat: {
        std::vector<std::uint32_t> bits;
        dlb_test::AppendFloatBits(f, bits);
        Expect(bits == e.float_bits, where + ": packed float bits");
        break;
      }
      case ExpectedField::kMessage: {
        const auto inner = dlb_test::ParseProtobuf(f.bytes);
        Expect(inner.size() == 1 && inner[0].number == 1 && inner[0].wire_type == 0 &&
                   inner[0].value == e.value,
               where + ": nested message");
        break;
      }
    }
  }
  const std::size_t size = writer.Size();
  Expect(writer.Release().size() == size && writer.Size() == 0, "Release()");
}

// ---------------------------------------------------------------------------------------
// The builder.

struct PoolEntry {
  std::string text;
  bool valid;
};

const std::vector<PoolEntry>& NamePool() {
  static const std::vector<PoolEntry> pool = {
      {"a", true}, {"b", true}, {"c.d", true}, {"\xc3\xa9", true}, {"N", true},
      {"\xf0\x9f\x99\x82", true}, {"x", true}, {"y", true}, {"", false}, {"\xff", false},
      {std::string("a\0b", 3), false}, {"\xc0\x80", false}, {"\xed\xa0\x80", false},
      {"\xe2\x82", false}, {"z", true}, {"w", true}};
  return pool;
}

const std::vector<PoolEntry>& OpPool() {
  static const std::vector<PoolEntry> pool = {{"Relu", true}, {"Op_2", true}, {"_x", true},
                                              {"Gemm", true}, {"", false}, {"1x", false},
                                              {"a b", false}, {"\xc3\xa9", false}};
  return pool;
}

struct ExpectedNode {
  dlb::OnnxNode node;
};

struct ExpectedValueInfo {
  std::string name;
  std::int32_t type = 1;
  std::vector<dlb::OnnxDimension> shape;
};

struct ExpectedInitializer {
  std::string name;
  std::int32_t type = 1;
  std::vector<std::int64_t> dims;
  std::vector<std::uint32_t> float_bits;
  std::vector<std::int64_t> ints;
};

class BuilderFuzz {
 public:
  explicit BuilderFuzz(Input& in) : in_(in) {}

  void Run() {
    for (int call = 0; call < 48 && !in_.Empty(); ++call) {
      switch (in_.Byte() % 5) {
        case 0: AddInput(); break;
        case 1: AddInitializer(); break;
        case 2: case 3: AddNode(); break;
        default: AddOutput(); break;
      }
    }
    bool should_serialize = !outputs_.empty();
    for (const ExpectedValueInfo& output : outputs_) should_serialize &= values_.count(output.name) > 0;
    std::string bytes;
    const bool serialized = Succeeds([&] { bytes = builder_.Serialize(); });
    Expect(serialized == should_serialize, std::string("Serialize() ") +
                                               (serialized ? "succeeded" : "was refused") +
                                               ", the oracle disagrees");
    if (serialized) Compare(bytes);
  }

 private:
  // A byte c: a fresh valid name "f<k>" when c % 4 == 0, else entry (c / 4) % 16 of the pool
  // (with its validity).
  PoolEntry Name() {
    const std::uint8_t choice = in_.Byte();
    if (choice % 4 == 0) return {"f" + std::to_string(fresh_++), true};
    return NamePool()[(choice / 4u) % NamePool().size()];
  }

  std::vector<dlb::OnnxDimension> Shape(bool& valid) {
    std::vector<dlb::OnnxDimension> shape;
    for (int i = 0, rank = in_.Byte() % 4; i < rank; ++i) {
      const std::uint8_t choice = in_.Byte();
      if (choice % 4 == 0) {
        const PoolEntry param = Name();
        valid &= param.valid;
        shape.emplace_back(param.text);
      } else {
        const auto dim = static_cast<std::int64_t>(static_cast<std::int8_t>(in_.Byte()));
        valid &= dim >= 0;
        shape.emplace_back(dim);
      }
    }
    return shape;
  }

  std::int32_t ElementType(bool& valid) {
    const std::uint8_t choice = in_.Byte() % 8;
    const std::int32_t type = choice < 4 ? 1 : choice < 7 ? 7 : 11;
    valid &= type != 11;
    return type;
  }

  void AddInput() {
    const PoolEntry name = Name();
    bool valid = name.valid && values_.count(name.text) == 0;
    ExpectedValueInfo info{name.text, 1, Shape(valid)};
    info.type = ElementType(valid);
    const bool ok = Succeeds([&] {
      builder_.AddInput(info.name, info.shape, static_cast<dlb::OnnxElementType>(info.type));
    });
    Expect(ok == valid, "AddInput: the oracle disagrees");
    if (ok) {
      values_.insert(info.name);
      inputs_.push_back(info);
    }
  }

  void AddOutput() {
    const PoolEntry name = Name();
    bool valid = name.valid;
    for (const ExpectedValueInfo& output : outputs_) valid &= output.name != name.text;
    ExpectedValueInfo info{name.text, 1, Shape(valid)};
    info.type = ElementType(valid);
    const bool ok = Succeeds([&] {
      builder_.AddOutput(info.name, info.shape, static_cast<dlb::OnnxElementType>(info.type));
    });
    Expect(ok == valid, "AddOutput: the oracle disagrees");
    if (ok) outputs_.push_back(info);
  }

  void AddInitializer() {
    const PoolEntry name = Name();
    bool valid = name.valid && values_.count(name.text) == 0;
    ExpectedInitializer init{name.text, in_.Byte() % 2 ? 1 : 7, {}, {}, {}};
    std::int64_t count = 1;
    for (int i = 0, rank = in_.Byte() % 3; i < rank; ++i) {
      init.dims.push_back(static_cast<std::int8_t>(in_.Byte()) % 5);
      valid &= init.dims.back() >= 0;
      count *= std::max<std::int64_t>(init.dims.back(), 0);
    }
    if (in_.Byte() % 8 == 0) {
      ++count;  // a size that does not fit the dims
      valid = false;
    }
    bool ok = false;
    if (init.type == 1) {
      std::vector<float> values;
      for (std::int64_t i = 0; i < count; ++i) {
        init.float_bits.push_back(in_.U32());
        values.push_back(std::bit_cast<float>(init.float_bits.back()));
      }
      ok = Succeeds([&] { builder_.AddFloatInitializer(init.name, init.dims, values); });
    } else {
      for (std::int64_t i = 0; i < count; ++i) init.ints.push_back(static_cast<std::int64_t>(in_.U64()));
      ok = Succeeds([&] { builder_.AddInt64Initializer(init.name, init.dims, init.ints); });
    }
    Expect(ok == valid, "AddInitializer: the oracle disagrees");
    if (ok) {
      values_.insert(init.name);
      initializers_.push_back(init);
    }
  }

  void AddNode() {
    dlb::OnnxNode node;
    const PoolEntry name = Name();
    const PoolEntry op = OpPool()[in_.Byte() % OpPool().size()];
    node.name = name.text;
    node.op_type = op.text;
    bool valid = name.valid && node_names_.count(name.text) == 0 && op.valid;
    for (int i = 0, n = in_.Byte() % 4; i < n; ++i) {
      const PoolEntry input = Name();
      node.inputs.push_back(input.text);
      valid &= input.text.empty() || values_.count(input.text) > 0;
    }
    std::set<std::string> outputs;
    for (int i = 0, n = in_.Byte() % 4; i < n; ++i) {
      const PoolEntry output = Name();
      node.outputs.push_back(output.text);
      if (output.text.empty()) continue;
      valid &= output.valid && values_.count(output.text) == 0 && outputs.insert(output.text).second;
    }
    valid &= !outputs.empty();
    std::set<std::string> attribute_names;
    for (int i = 0, n = in_.Byte() % 4; i < n; ++i) {
      const PoolEntry attribute = Name();
      valid &= attribute.valid && attribute_names.insert(attribute.text).second;
      switch (in_.Byte() % 5) {
        case 0: node.attributes.push_back(dlb::OnnxAttribute::Int(attribute.text, static_cast<std::int64_t>(in_.U64()))); break;
        case 1: {
          std::vector<std::int64_t> v(in_.Byte() % 4);
          for (std::int64_t& e : v) e = static_cast<std::int64_t>(in_.U64());
          node.attributes.push_back(dlb::OnnxAttribute::Ints(attribute.text, v));
          break;
        }
        case 2: node.attributes.push_back(dlb::OnnxAttribute::Float(attribute.text, std::bit_cast<float>(in_.U32()))); break;
        case 3: {
          std::vector<float> v(in_.Byte() % 4);
          for (float& e : v) e = std::bit_cast<float>(in_.U32());
          node.attributes.push_back(dlb::OnnxAttribute::Floats(attribute.text, v));
          break;
        }
        default: node.attributes.push_back(dlb::OnnxAttribute::String(attribute.text, in_.Bytes(12)));
      }
    }
    const bool ok = Succeeds([&] { builder_.AddNode(node); });
    Expect(ok == valid, "AddNode '" + node.name + "' (" + node.op_type + "): the oracle disagrees");
    if (ok) {
      node_names_.insert(node.name);
      values_.insert(outputs.begin(), outputs.end());
      nodes_.push_back(node);
    }
  }

  static void CompareInfo(const dlb_test::DecodedValueInfo& d, const ExpectedValueInfo& e,
                          const std::string& what) {
    Expect(d.name == e.name && d.elem_type == e.type && d.has_shape && d.shape.size() == e.shape.size(),
           what + ": name, type or rank");
    for (std::size_t i = 0; i < e.shape.size(); ++i) {
      const bool same = std::visit(
          [&](const auto& expected) {
            using T = std::decay_t<decltype(expected)>;
            const T* decoded = std::get_if<T>(&d.shape[i]);
            return decoded != nullptr && *decoded == expected;
          },
          e.shape[i]);
      Expect(same, what + ": dimension " + std::to_string(i));
    }
  }

  void Compare(const std::string& bytes) {
    dlb_test::DecodedModel model;
    try {
      model = dlb_test::DecodeOnnxModel(bytes);
    } catch (const dlb_test::DecodeError& error) {
      Finding(std::string("the model does not decode: ") + error.what());
    }
    Expect(model.ir_version == 8 && model.producer_name == "DLBlocks" && model.graph_count == 1 &&
               model.opsets.size() == 1 && model.opsets[0].second == 17 && model.graph.name == "fuzz",
           "model header");
    const dlb_test::DecodedGraph& g = model.graph;
    Expect(g.inputs.size() == inputs_.size(), "input count");
    for (std::size_t i = 0; i < inputs_.size(); ++i) CompareInfo(g.inputs[i], inputs_[i], "input");
    Expect(g.outputs.size() == outputs_.size(), "output count");
    for (std::size_t i = 0; i < outputs_.size(); ++i) CompareInfo(g.outputs[i], outputs_[i], "output");
    Expect(g.initializers.size() == initializers_.size(), "initializer count");
    for (std::size_t i = 0; i < initializers_.size(); ++i) {
      const dlb_test::DecodedTensor& d = g.initializers[i];
      const ExpectedInitializer& e = initializers_[i];
      Expect(d.name == e.name && d.data_type == e.type && d.dims == e.dims, "initializer header");
      if (e.type == 1) {
        Expect(dlb_test::RawFloatBits(d.raw_data) == e.float_bits && d.int64_data.empty(),
               "float initializer data");
      } else {
        Expect(d.int64_data == e.ints && d.raw_data.empty(), "int64 initializer data");
      }
    }
    Expect(g.nodes.size() == nodes_.size(), "node count");
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      const dlb_test::DecodedNode& d = g.nodes[i];
      const dlb::OnnxNode& e = nodes_[i];
      Expect(d.name == e.name && d.op_type == e.op_type && d.domain.empty() &&
                 d.inputs == e.inputs && d.outputs == e.outputs &&
                 d.attributes.size() == e.attributes.size(),
             "node " + e.name);
      for (std::size_t a = 0; a < e.attributes.size(); ++a) {
        const dlb_test::DecodedAttribute& da = d.attributes[a];
        const dlb::OnnxAttribute& ea = e.attributes[a];
        Expect(da.name == ea.name, "attribute name");
        const bool same = std::visit(
            [&](const auto& value) {
              using T = std::decay_t<decltype(value)>;
              if constexpr (std::is_same_v<T, std::int64_t>) {
                return da.type == 2 && da.i == value;
              } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
                return da.type == 7 && da.ints == value;
              } else if constexpr (std::is_same_v<T, float>) {
                return da.type == 1 && da.f_bits == std::bit_cast<std::uint32_t>(value);
              } else if constexpr (std::is_same_v<T, std::vector<float>>) {
                std::vector<std::uint32_t> bits;
                for (const float f : value) bits.push_back(std::bit_cast<std::uint32_t>(f));
                return da.type == 6 && da.floats_bits == bits;
              } else {
                return da.type == 3 && da.s == value;
              }
            },
            ea.value);
        Expect(same, "attribute " + ea.name + " of node " + e.name);
      }
    }
  }

  Input& in_;
  dlb::OnnxModelBuilder builder_{"fuzz", "0"};
  int fresh_ = 0;
  std::set<std::string> values_;
  std::set<std::string> node_names_;
  std::vector<ExpectedValueInfo> inputs_;
  std::vector<ExpectedValueInfo> outputs_;
  std::vector<ExpectedInitializer> initializers_;
  std::vector<dlb::OnnxNode> nodes_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzerName() = "onnx_fuzzer";
  if (size == 0) return 0;
  Input in(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    FuzzWriter(in);
  } else {
    BuilderFuzz(in).Run();
  }
  return 0;
}
