// The ONNX export's foundations, checked in C++ alone: the protobuf encoder against byte
// sequences from the protobuf documentation, and OnnxModelBuilder's output decoded by an
// independent decoder (support/onnx_decoder.hpp), plus every check the builder makes.
// test_onnx_runtime.cpp checks the same models with ONNX's checker and ONNX Runtime.

#include <sys/mman.h>

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/onnx/onnx_model_builder.hpp"
#include "dlb/onnx/protobuf_writer.hpp"
#include "support/helpers.hpp"
#include "support/onnx_decoder.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb::ArgumentError;
using dlb::OnnxAttribute;
using dlb::OnnxModelBuilder;
using dlb::internal::ProtobufWriter;
using dlb_test::MessageContains;

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (const int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

std::string Hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (!out.empty()) out += ' ';
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

#define CHECK_BYTES(actual, expected) CHECK(Hex(actual) == Hex(expected))

}  // namespace

TEST_CASE("protobuf writer: the encoding examples of the protobuf documentation") {
  ProtobufWriter w;
  w.WriteVarint(1, 150);
  CHECK_BYTES(w.Bytes(), Bytes({0x08, 0x96, 0x01}));

  ProtobufWriter s;
  s.WriteBytes(2, "testing");
  CHECK_BYTES(s.Bytes(), Bytes({0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g'}));

  ProtobufWriter nested;
  nested.WriteMessage(3, w);
  CHECK_BYTES(nested.Bytes(), Bytes({0x1a, 0x03, 0x08, 0x96, 0x01}));

  ProtobufWriter packed;
  const std::vector<std::int64_t> values = {3, 270, 86942};
  packed.WritePackedInt64(4, values);
  CHECK_BYTES(packed.Bytes(), Bytes({0x22, 0x06, 0x03, 0x8e, 0x02, 0x9e, 0xa7, 0x05}));
}

TEST_CASE("protobuf writer: integers, floats and doubles") {
  SECTION("negative int64 and int32 take 10 bytes, two's complement") {
    ProtobufWriter w;
    w.WriteInt64(1, -2);
    w.WriteInt32(2, -1);
    CHECK_BYTES(w.Bytes(), Bytes({0x08, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                                  0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
  }
  SECTION("extreme varints") {
    ProtobufWriter w;
    w.WriteVarint(1, 0);
    w.WriteVarint(1, std::numeric_limits<std::uint64_t>::max());
    w.WriteInt64(1, std::numeric_limits<std::int64_t>::min());
    CHECK_BYTES(w.Bytes(), Bytes({0x08, 0x00,
                                  0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                                  0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}));
    CHECK(dlb::internal::VarintSize(0) == 1);
    CHECK(dlb::internal::VarintSize(127) == 1);
    CHECK(dlb::internal::VarintSize(128) == 2);
    CHECK(dlb::internal::VarintSize(std::uint64_t{1} << 63) == 10);
  }
  SECTION("fixed-width values are little-endian IEEE-754 bits") {
    ProtobufWriter w;
    w.WriteFloat(1, 1.0f);
    w.WriteDouble(2, 1.0);
    w.WriteFixed32(3, 0x01020304u);
    w.WriteFixed64(4, 0x0102030405060708u);
    w.WriteFloat(5, -0.0f);
    CHECK_BYTES(w.Bytes(), Bytes({0x0d, 0x00, 0x00, 0x80, 0x3f,
                                  0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f,
                                  0x1d, 0x04, 0x03, 0x02, 0x01,
                                  0x21, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
                                  0x2d, 0x00, 0x00, 0x00, 0x80}));
  }
  SECTION("packed floats; empty packed lists write nothing") {
    ProtobufWriter w;
    const std::vector<float> floats = {1.0f, -2.0f};
    w.WritePackedFloat(4, floats);
    w.WritePackedFloat(5, std::vector<float>{});
    w.WritePackedInt64(6, std::vector<std::int64_t>{});
    CHECK_BYTES(w.Bytes(), Bytes({0x22, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0}));
  }
  SECTION("the largest field number takes a 5-byte tag; Append concatenates; Release empties") {
    ProtobufWriter w;
    w.WriteVarint(dlb::internal::kMaxProtobufFieldNumber, 1);
    CHECK_BYTES(w.Bytes(), Bytes({0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01}));
    ProtobufWriter both;
    both.Append(w);
    both.Append(w);
    CHECK(both.Size() == 12);
    CHECK(both.Release().size() == 12);
    CHECK(both.Size() == 0);
  }
}

TEST_CASE("protobuf writer: invalid field numbers and oversized fields are refused") {
  ProtobufWriter w;
  for (const std::uint32_t field : {0u, 19000u, 19500u, 19999u, 1u << 29}) {
    INFO("field " << field);
    CHECK_THROWS_MATCHES(w.WriteVarint(field, 1), ArgumentError,
                         MessageContains({"protobuf field number " + std::to_string(field)}));
    CHECK_THROWS_AS(w.WriteBytes(field, "x"), ArgumentError);
    CHECK_THROWS_AS(w.WriteFloat(field, 1.0f), ArgumentError);
    CHECK_THROWS_AS(w.WriteFixed64(field, 1), ArgumentError);
    CHECK_THROWS_AS(w.WritePackedInt64(field, std::vector<std::int64_t>{}), ArgumentError);
  }
  CHECK(w.Size() == 0);  // nothing was written by the failed calls
  w.WriteVarint(18999, 1);
  w.WriteVarint(20000, 1);

  // A real 2^31-byte range (reserved address space, never touched): refused before a byte of it
  // is read, and nothing is written.
  const std::size_t huge = dlb::internal::kMaxProtobufLength + 1;
  void* memory = ::mmap(nullptr, huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) {
    WARN("cannot reserve 2 GiB of address space: the length limit is checked directly only");
  } else {
    const std::size_t before = w.Size();
    CHECK_THROWS_MATCHES(w.WriteBytes(7, std::string_view(static_cast<const char*>(memory), huge)),
                         ArgumentError, MessageContains({"protobuf field 7", "2^31 - 1"}));
    CHECK_THROWS_MATCHES(
        w.WritePackedFloat(7, std::span<const float>(static_cast<const float*>(memory), huge / 4)),
        ArgumentError, MessageContains({"protobuf field 7 would hold 536870912 packed floats"}));
    CHECK(w.Size() == before);
    ::munmap(memory, huge);
  }
  CHECK_NOTHROW(dlb::internal::CheckProtobufLength(1, dlb::internal::kMaxProtobufLength));
  CHECK_THROWS_AS(dlb::internal::CheckProtobufLength(1, huge), ArgumentError);
}

TEST_CASE("protobuf writer: what it writes, the test decoder reads back") {
  ProtobufWriter inner;
  inner.WriteBytes(1, std::string("a\0b", 3));
  ProtobufWriter w;
  w.WriteInt64(1, -5);
  w.WriteMessage(2, inner);
  w.WritePackedInt64(3, std::vector<std::int64_t>{0, -1, std::numeric_limits<std::int64_t>::max()});
  w.WritePackedFloat(4, std::vector<float>{0.5f, std::numeric_limits<float>::infinity()});
  const auto fields = dlb_test::ParseProtobuf(w.Bytes());
  REQUIRE(fields.size() == 4);
  CHECK(static_cast<std::int64_t>(fields[0].value) == -5);
  CHECK(dlb_test::ParseProtobuf(fields[1].bytes).at(0).bytes == std::string_view("a\0b", 3));
  std::vector<std::int64_t> ints;
  dlb_test::AppendInt64s(fields[2], ints);
  CHECK(ints == std::vector<std::int64_t>{0, -1, std::numeric_limits<std::int64_t>::max()});
  std::vector<std::uint32_t> bits;
  dlb_test::AppendFloatBits(fields[3], bits);
  CHECK(bits == std::vector<std::uint32_t>{std::bit_cast<std::uint32_t>(0.5f), 0x7f800000u});
  // The decoder is strict: a truncated message is an error (a negative control of the decoder).
  CHECK_THROWS_AS(dlb_test::ParseProtobuf(w.Bytes().substr(0, w.Size() - 1)), dlb_test::DecodeError);
}

namespace {

// A small model that uses every kind of part the builder writes.
OnnxModelBuilder MakeSmallModel() {
  OnnxModelBuilder builder("small_graph", "0.1.0");
  builder.AddInput("input", {dlb::kOnnxBatchDimension, 2});
  const std::vector<float> weight = {1.0f, -2.0f, 0.25f, -0.0f, 3.5f, 1e-30f};
  builder.AddFloatInitializer("fc.weight", {3, 2}, weight);
  builder.AddFloatInitializer("fc.bias", {3}, std::vector<float>{0.5f, -0.5f, 0.0f});
  builder.AddInt64Initializer("shape", {2}, std::vector<std::int64_t>{0, -1});
  builder.AddNode({.name = "fc",
                   .op_type = "Gemm",
                   .inputs = {"input", "fc.weight", "fc.bias"},
                   .outputs = {"fc.output"},
                   .attributes = {OnnxAttribute::Int("transB", 1),
                                  OnnxAttribute::Float("alpha", 1.0f)}});
  builder.AddNode({.name = "act",
                   .op_type = "LeakyRelu",
                   .inputs = {"fc.output"},
                   .outputs = {"act.output"},
                   .attributes = {OnnxAttribute::Float("alpha", 0.125f)}});
  builder.AddNode({.name = "reshape",
                   .op_type = "Reshape",
                   .inputs = {"act.output", "shape"},
                   .outputs = {"output"}});
  builder.AddOutput("output", {dlb::kOnnxBatchDimension, 3});
  return builder;
}

}  // namespace

TEST_CASE("onnx builder: the model decodes into what was added, in order") {
  const dlb_test::DecodedModel model = dlb_test::DecodeOnnxModel(MakeSmallModel().Serialize());
  CHECK(model.ir_version == 8);
  CHECK(model.producer_name == "DLBlocks");
  CHECK(model.producer_version == "0.1.0");
  REQUIRE(model.opsets.size() == 1);
  CHECK(model.opsets[0].first.empty());
  CHECK(model.opsets[0].second == 17);
  CHECK(model.graph_count == 1);
  const dlb_test::DecodedGraph& g = model.graph;
  CHECK(g.name == "small_graph");

  REQUIRE(g.inputs.size() == 1);
  CHECK(g.inputs[0].name == "input");
  CHECK(g.inputs[0].elem_type == 1);
  REQUIRE(g.inputs[0].shape.size() == 2);
  CHECK(std::get<std::string>(g.inputs[0].shape[0]) == "N");
  CHECK(std::get<std::int64_t>(g.inputs[0].shape[1]) == 2);

  REQUIRE(g.initializers.size() == 3);
  CHECK(g.initializers[0].name == "fc.weight");
  CHECK(g.initializers[0].data_type == 1);
  CHECK(g.initializers[0].dims == std::vector<std::int64_t>{3, 2});
  const std::vector<std::uint32_t> weight_bits = dlb_test::RawFloatBits(g.initializers[0].raw_data);
  REQUIRE(weight_bits.size() == 6);
  CHECK(weight_bits[1] == std::bit_cast<std::uint32_t>(-2.0f));
  CHECK(weight_bits[3] == 0x80000000u);  // -0.0 keeps its sign
  CHECK(weight_bits[5] == std::bit_cast<std::uint32_t>(1e-30f));
  CHECK(g.initializers[1].dims == std::vector<std::int64_t>{3});
  CHECK(g.initializers[2].name == "shape");
  CHECK(g.initializers[2].data_type == 7);
  CHECK(g.initializers[2].raw_data.empty());
  CHECK(g.initializers[2].int64_data == std::vector<std::int64_t>{0, -1});

  REQUIRE(g.nodes.size() == 3);
  CHECK(g.nodes[0].name == "fc");
  CHECK(g.nodes[0].op_type == "Gemm");
  CHECK(g.nodes[0].domain.empty());
  CHECK(g.nodes[0].inputs == std::vector<std::string>{"input", "fc.weight", "fc.bias"});
  CHECK(g.nodes[0].outputs == std::vector<std::string>{"fc.output"});
  REQUIRE(g.nodes[0].attributes.size() == 2);
  CHECK(g.nodes[0].attributes[0].name == "transB");
  CHECK(g.nodes[0].attributes[0].type == 2);
  CHECK(g.nodes[0].attributes[0].i == 1);
  CHECK(g.nodes[0].attributes[1].type == 1);
  CHECK(g.nodes[0].attributes[1].f_bits == std::bit_cast<std::uint32_t>(1.0f));
  CHECK(g.nodes[2].op_type == "Reshape");
  CHECK(g.nodes[2].attributes.empty());

  REQUIRE(g.outputs.size() == 1);
  CHECK(g.outputs[0].name == "output");
  CHECK(std::get<std::int64_t>(g.outputs[0].shape[1]) == 3);
}

TEST_CASE("onnx builder: every attribute type, written as onnx.proto declares it") {
  OnnxModelBuilder builder("g", "");
  builder.AddInput("x", {"batch", 2});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  builder.AddNode({.name = "n",
                   .op_type = "Custom_Op2",
                   .inputs = {"x", ""},  // "" omits an optional input
                   .outputs = {"y"},
                   .attributes = {OnnxAttribute::Int("i", std::numeric_limits<std::int64_t>::min()),
                                  OnnxAttribute::Ints("ints", {-1, 0, 1LL << 40}),
                                  OnnxAttribute::Ints("no_ints", {}),
                                  OnnxAttribute::Float("f", nan),
                                  OnnxAttribute::Floats("floats", {-0.0f, 2.5f}),
                                  OnnxAttribute::String("s", "NOTSET"),
                                  OnnxAttribute::String("empty", "")}});
  builder.AddOutput("y", {});
  const std::string bytes = builder.Serialize();
  const dlb_test::DecodedNode node = dlb_test::DecodeOnnxModel(bytes).graph.nodes.at(0);
  CHECK(node.inputs == std::vector<std::string>{"x", ""});
  REQUIRE(node.attributes.size() == 7);
  const auto& a = node.attributes;
  CHECK((a[0].type == 2 && a[0].i == std::numeric_limits<std::int64_t>::min()));
  CHECK((a[1].type == 7 && a[1].ints == std::vector<std::int64_t>{-1, 0, 1LL << 40}));
  CHECK((a[2].type == 7 && a[2].ints.empty() && a[2].value_fields == 0));
  CHECK((a[3].type == 1 && std::isnan(std::bit_cast<float>(a[3].f_bits))));
  CHECK((a[4].type == 6 && a[4].floats_bits == std::vector<std::uint32_t>{0x80000000u,
                                                                          std::bit_cast<std::uint32_t>(2.5f)}));
  CHECK((a[5].type == 3 && a[5].s == "NOTSET"));
  CHECK((a[6].type == 3 && a[6].s.empty() && a[6].value_fields == 1));
  // INTS and FLOATS are unpacked (one field per value, wire types 0 and 5), as onnx.proto's
  // proto2 declarations without [packed = true] say.
  CHECK(a[1].value_fields == 3);
  CHECK(a[4].value_fields == 2);
}

TEST_CASE("onnx builder: names, order and shapes are checked, and a refused call changes nothing") {
  OnnxModelBuilder builder = MakeSmallModel();
  const std::string before = builder.Serialize();
  const auto node = [](std::string name, std::string op, std::vector<std::string> inputs,
                       std::vector<std::string> outputs,
                       std::vector<OnnxAttribute> attributes = {}) {
    return dlb::OnnxNode{std::move(name), std::move(op), std::move(inputs), std::move(outputs),
                         std::move(attributes)};
  };

  SECTION("values are defined once") {
    CHECK_THROWS_MATCHES(builder.AddInput("fc.weight", {"N", 2}), ArgumentError,
                         MessageContains({"graph input 'fc.weight'", "already defined"}));
    CHECK_THROWS_MATCHES(builder.AddFloatInitializer("input", {1}, std::vector<float>{1.0f}),
                         ArgumentError, MessageContains({"initializer 'input'", "already defined"}));
    CHECK_THROWS_MATCHES(builder.AddNode(node("relu", "Relu", {"input"}, {"fc.output"})),
                         ArgumentError,
                         MessageContains({"node 'relu' (Relu): output 'fc.output'", "already defined"}));
    CHECK_THROWS_MATCHES(builder.AddNode(node("split", "Split", {"input"}, {"a", "a"})),
                         ArgumentError, MessageContains({"output 'a' is listed twice"}));
  }
  SECTION("a node's inputs are defined before it") {
    CHECK_THROWS_MATCHES(builder.AddNode(node("late", "Relu", {"later"}, {"y"})), ArgumentError,
                         MessageContains({"node 'late' (Relu): input 'later' is not defined yet"}));
  }
  SECTION("nodes, op types and attributes") {
    CHECK_THROWS_MATCHES(builder.AddNode(node("fc", "Relu", {"input"}, {"y"})), ArgumentError,
                         MessageContains({"node 'fc'", "already added"}));
    CHECK_THROWS_MATCHES(builder.AddNode(node("r", "Re lu", {"input"}, {"y"})), ArgumentError,
                         MessageContains({"op_type 'Re lu' is not an operator name"}));
    CHECK_THROWS_AS(builder.AddNode(node("r", "", {"input"}, {"y"})), ArgumentError);
    CHECK_THROWS_AS(builder.AddNode(node("r", "1Relu", {"input"}, {"y"})), ArgumentError);
    CHECK_THROWS_MATCHES(builder.AddNode(node("r", "Relu", {"input"}, {})), ArgumentError,
                         MessageContains({"the node has no output"}));
    CHECK_THROWS_MATCHES(builder.AddNode(node("r", "Relu", {"input"}, {""})), ArgumentError,
                         MessageContains({"the node has no output"}));
    CHECK_THROWS_MATCHES(
        builder.AddNode(node("r", "LeakyRelu", {"input"}, {"y"},
                             {OnnxAttribute::Float("alpha", 0.1f), OnnxAttribute::Float("alpha", 0.2f)})),
        ArgumentError, MessageContains({"attribute 'alpha' is given twice"}));
    CHECK_THROWS_MATCHES(builder.AddNode(node("r", "Relu", {"input"}, {"y"},
                                              {OnnxAttribute::Int("", 1)})),
                         ArgumentError, MessageContains({"attribute: the name is empty"}));
  }
  SECTION("names are non-empty UTF-8 without NUL") {
    CHECK_THROWS_MATCHES(builder.AddInput("", {1}), ArgumentError,
                         MessageContains({"graph input: the name is empty"}));
    CHECK_THROWS_MATCHES(builder.AddInput("bad\xff", {1}), ArgumentError,
                         MessageContains({"UTF-8 text without NUL"}));
    CHECK_THROWS_AS(builder.AddInput(std::string("a\0b", 3), {1}), ArgumentError);
    CHECK_THROWS_AS(builder.AddInput("\xc0\x80", {1}), ArgumentError);        // overlong NUL
    CHECK_THROWS_AS(builder.AddInput("\xed\xa0\x80", {1}), ArgumentError);    // a surrogate
    CHECK_THROWS_AS(builder.AddInput("\xf4\x90\x80\x80", {1}), ArgumentError);  // > U+10FFFF
    CHECK_THROWS_AS(builder.AddInput("\xe2\x82", {1}), ArgumentError);        // truncated
    CHECK_THROWS_AS(builder.AddNode(node("\x80", "Relu", {"input"}, {"y"})), ArgumentError);
    CHECK_THROWS_AS(OnnxModelBuilder("", "1"), ArgumentError);
    CHECK_THROWS_AS(OnnxModelBuilder("g", "\xff"), ArgumentError);
  }
  SECTION("shapes and initializer sizes") {
    CHECK_THROWS_MATCHES(builder.AddInput("x", {-1, 3}), ArgumentError,
                         MessageContains({"graph input 'x': dimension -1 is negative",
                                          "name a dynamic dimension"}));
    CHECK_THROWS_MATCHES(builder.AddInput("x", {std::string(), 3}), ArgumentError,
                         MessageContains({"graph input 'x': dimension: the name is empty"}));
    CHECK_THROWS_AS(builder.AddInput("x", {1}, static_cast<dlb::OnnxElementType>(11)),
                    ArgumentError);
    CHECK_THROWS_MATCHES(builder.AddFloatInitializer("w", {2, 3}, std::vector<float>(5)),
                         ArgumentError,
                         MessageContains({"initializer 'w': its dimensions hold 6 values, but 5"}));
    CHECK_THROWS_AS(builder.AddInt64Initializer("w", {2, -3}, std::vector<std::int64_t>(6)),
                    ArgumentError);
    CHECK_THROWS_MATCHES(
        builder.AddFloatInitializer("w", {1LL << 40, 1LL << 40}, std::vector<float>(1)),
        ArgumentError, MessageContains({"product overflows"}));
    CHECK_THROWS_MATCHES(builder.AddOutput("output", {"N", 3}), ArgumentError,
                         MessageContains({"already declared as an output"}));
  }
  // Every refused call above left the model as it was.
  CHECK(builder.Serialize() == before);
  // ... and the builder still takes valid parts afterwards.
  builder.AddNode(node("relu", "Relu", {"output"}, {"relu.output"}));
  CHECK(builder.HasValue("relu.output"));
  CHECK(dlb_test::DecodeOnnxModel(builder.Serialize()).graph.nodes.size() == 4);
}

TEST_CASE("onnx builder: outputs are checked when the model is serialized") {
  OnnxModelBuilder builder("g", "0.1.0");
  builder.AddInput("x", {"N", 1});
  CHECK_THROWS_MATCHES(builder.Serialize(), ArgumentError,
                       MessageContains({"no graph output was declared"}));
  builder.AddOutput("y", {"N", 1});  // may be declared before the node that defines it ...
  CHECK_THROWS_MATCHES(builder.Serialize(), ArgumentError,
                       MessageContains({"graph output 'y' is not defined"}));
  builder.AddNode({.name = "relu", .op_type = "Relu", .inputs = {"x"}, .outputs = {"y"}});
  CHECK_NOTHROW(builder.Serialize());  // ... as long as it exists by now
}

TEST_CASE("onnx builder: Save writes Serialize()'s bytes atomically") {
  dlb_test::TempDir dir("dlb_onnx_builder_");
  const OnnxModelBuilder builder = MakeSmallModel();
  builder.Save(dir / "model.onnx");
  std::ifstream in(dir / "model.onnx", std::ios::binary);
  const std::string saved((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(saved == builder.Serialize());
  CHECK_THROWS_AS(builder.Save(dir.path.string()), dlb::FileError);  // a directory
  CHECK_THROWS_AS(builder.Save(dir / "missing/model.onnx"), dlb::FileError);
  // A model that cannot be serialized leaves no file behind.
  CHECK_THROWS_AS(OnnxModelBuilder("g", "").Save(dir / "empty.onnx"), ArgumentError);
  CHECK_FALSE(std::filesystem::exists(dir / "empty.onnx"));
}
