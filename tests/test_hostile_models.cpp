// Model files from strangers (issue 15, the model part): forged architectures and values that
// would overflow a size, ask for unbounded memory, or make NaN. Each is refused with a
// FileError naming the file and the problem, before anything is allocated for it; none may
// corrupt memory, abort or hang.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "dlb/core/state.hpp"
#include "dlb/io/safetensors.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/model/layer_registry.hpp"
#include "dlb/model/model.hpp"
#include "dlb/serialization/model_file.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb_test::MessageContains;

/// A model file with `layers` (JSON of the architecture's "layers") on inputs of `input`, the
/// tensors `tensors`, and metadata `extra` added.
std::string WriteModel(const dlb_test::TempDir& dir, const std::string& name,
                       const nlohmann::json& input, const nlohmann::json& layers,
                       const dlb::StateDict& tensors = {}, const dlb::Metadata& extra = {},
                       const std::string& architecture_text = "") {
  dlb::Metadata metadata = {{"format", "dlblocks.model"},
                            {"format_version", "2"},
                            {"library_version", "0.1.0"},
                            {"dtype", "F32"}};
  metadata["architecture"] = architecture_text.empty()
                                 ? nlohmann::json{{"input_shape", input}, {"layers", layers}}.dump()
                                 : architecture_text;
  for (const auto& [key, value] : extra) metadata[key] = value;
  const std::string path = dir / name;
  dlb::WriteSafetensors(path, tensors, metadata);
  return path;
}

nlohmann::json Conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t padding) {
  return {{"name", "conv"}, {"type", "Conv2D"},
          {"args", {{"in_channels", in}, {"out_channels", out}, {"kernel_height", kernel},
                    {"kernel_width", kernel}, {"padding_height", padding}, {"padding_width", padding},
                    {"bias", 0}}}};
}

dlb::StateDict Tensors(std::initializer_list<std::pair<std::string, dlb::Tensor>> entries) {
  dlb::StateDict tensors;
  for (const auto& [name, tensor] : entries) tensors.Insert(name, tensor);
  return tensors;
}

dlb::Tensor Floats(std::vector<std::int64_t> shape, float value) {
  const auto count = static_cast<std::size_t>(dlb::ProductOrInvalid(shape));
  return dlb::Tensor::FromValues(dlb::DType::F32, std::move(shape), std::vector<float>(count, value));
}

/// LoadModel<float>(path) must throw a FileError naming the file and every fragment.
void RequireRefused(const std::string& path, const std::vector<std::string>& fragments) {
  try {
    dlb::LoadModel<float>(path);
    FAIL("LoadModel accepted " << path);
  } catch (const dlb::FileError& error) {
    const std::string message = error.what();
    INFO(message);
    CHECK(message.find(path) != std::string::npos);
    for (const std::string& fragment : fragments) CHECK(message.find(fragment) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("hostile models: sizes that overflow are errors, never wrapped sizes", "[model file][bad input]") {
  dlb_test::TempDir dir("dlb_test_hostile_");
  // A padding of 2^61 (the heap overflow of issue 15) and of 2^62 (a negative "at least").
  const std::int64_t huge = std::int64_t{1} << 61;
  RequireRefused(WriteModel(dir, "pad61.safetensors", {1, 28, 28}, nlohmann::json::array({Conv(1, 1, 3, huge)}),
                            Tensors({{"conv.weight", Floats({1, 1, 3, 3}, 0.5f)}})),
                 {"layer conv (Conv2D)", "has an extent above 2147483647"});
  RequireRefused(WriteModel(dir, "pad62.safetensors", {1, 28, 28}, nlohmann::json::array({Conv(1, 1, 3, huge * 2)}),
                            Tensors({{"conv.weight", Floats({1, 1, 3, 3}, 0.5f)}})),
                 {"has an extent above 2147483647"});
  // Conv2D(2^40, 1, 2^20): its fan-in overflows.
  RequireRefused(WriteModel(dir, "fanin.safetensors", {1, 28, 28},
                            nlohmann::json::array({Conv(std::int64_t{1} << 40, 1, std::int64_t{1} << 20, 0)})),
                 {"out of range"});
  // In the library, not only in the loader.
  REQUIRE_THROWS_MATCHES(dlb::Conv2D<float>(std::int64_t{1} << 40, 1, std::int64_t{1} << 20),
                         dlb::ArgumentError, MessageContains({"Conv2D: a tensor of", "out of range"}));
  REQUIRE_THROWS_MATCHES(dlb::Conv2D<float>(dlb::Conv2DOptions(1, 1, 3).Padding(huge)),
                         dlb::ArgumentError, MessageContains({"has an extent above 2147483647"}));
  // A shape whose product overflows before a zero extent.
  dlb::Tensor tensor{dlb::DType::F32, {std::int64_t{1} << 62, 4, 0}, {}};
  dlb::ModelNN<float> model(4);
  model.Add("fc", dlb::Linear<float>(4, 2));
  dlb::StateDict state = model.SaveState();
  dlb::StateDict forged;
  for (const auto& [name, value] : state.Entries()) forged.Insert(name, name == "fc.bias" ? tensor : value);
  REQUIRE_THROWS_MATCHES(model.LoadState(forged), dlb::StateError,
                         MessageContains({"fc.bias", "at most 2^48 elements"}));
}

TEST_CASE("hostile models: an architecture cannot ask for unbounded memory", "[model file][bad input]") {
  dlb_test::TempDir dir("dlb_test_hostile_");
  // 20,001 ReLU layers before a Linear (the probe's file had 100,000): one activation buffer
  // each. Refused by their count, before any is built.
  nlohmann::json many = nlohmann::json::array();
  for (int i = 0; i < 20001; ++i) many.push_back({{"name", std::to_string(i)}, {"type", "ReLU"}, {"args", nlohmann::json::object()}});
  RequireRefused(WriteModel(dir, "relus.safetensors", {784, 1, 1}, many),
                 {"more layers than the limit allows (LoadOptions::max_layers)"});
  // A padding of 30000 on a 28 x 28 image: 3.6 billion outputs per sample.
  RequireRefused(WriteModel(dir, "pad30000.safetensors", {1, 28, 28}, nlohmann::json::array({Conv(1, 1, 3, 30000)}),
                            Tensors({{"conv.weight", Floats({1, 1, 3, 3}, 0.5f)}})),
                 {"values of activations and working memory per sample, more than the limit of 67108864 "
                  "(LoadOptions::max_values_per_sample)"});
  // Blocks nested deeper than the limit.
  nlohmann::json nested = {{"name", "leaf"}, {"type", "ReLU"}, {"args", nlohmann::json::object()}};
  for (int depth = 0; depth < 40; ++depth) {
    nested = {{"name", "b"}, {"type", "Sequential"}, {"args", nlohmann::json::object()}, {"layers", {nested}}};
  }
  RequireRefused(WriteModel(dir, "deep.safetensors", {4, 1, 1}, nlohmann::json::array({nested})),
                 {"nested deeper than the limit allows (LoadOptions::max_depth)"});
  // JSON nested deeper than any architecture.
  const std::string bomb = std::string(100000, '[') + std::string(100000, ']');
  RequireRefused(WriteModel(dir, "bomb.safetensors", {4, 1, 1}, {}, {}, {}, bomb),
                 {"metadata 'architecture' nested deeper than 256 levels"});
  // The limits are options: a larger budget loads what the default refuses.
  const std::string path = WriteModel(dir, "wide.safetensors", {1, 28, 28}, nlohmann::json::array({Conv(1, 1, 3, 200)}),
                                      Tensors({{"conv.weight", Floats({1, 1, 3, 3}, 0.5f)}}));
  REQUIRE_NOTHROW(dlb::LoadModel<float>(path));
  dlb::LoadOptions tight;
  tight.max_values_per_sample = 1000;
  REQUIRE_THROWS_MATCHES(dlb::LoadModel<float>(path, tight), dlb::FileError,
                         MessageContains({"more than the limit of 1000"}));
}

TEST_CASE("hostile models: values that make NaN are refused, naming the tensor", "[model file][bad input]") {
  dlb_test::TempDir dir("dlb_test_hostile_");
  const nlohmann::json bn = {{"name", "bn"}, {"type", "BatchNorm1D"}, {"args", {{"features", 2}}}};
  const auto bn_tensors = [](float running_var) {
    dlb::StateDict tensors;
    tensors.Insert("bn.weight", Floats({2}, 1.0f));
    tensors.Insert("bn.bias", Floats({2}, 0.0f));
    tensors.Insert("bn.running_mean", Floats({2}, 0.0f));
    tensors.Insert("bn.running_var", Floats({2}, running_var));
    tensors.Insert("bn.num_batches_tracked", dlb::Tensor::FromValues(dlb::DType::I64, {}, std::vector<std::int64_t>{3}));
    return tensors;
  };
  RequireRefused(WriteModel(dir, "var.safetensors", {2, 1, 1}, nlohmann::json::array({bn}), bn_tensors(-1.0f)),
                 {"bn.running_var holds -1", "a variance cannot be negative"});
  REQUIRE_NOTHROW(dlb::LoadModel<float>(WriteModel(dir, "fine.safetensors", {2, 1, 1}, nlohmann::json::array({bn}), bn_tensors(1.0f))));
  nlohmann::json huge_eps = bn;
  huge_eps["args"]["eps"] = 1e300;
  RequireRefused(WriteModel(dir, "eps.safetensors", {2, 1, 1}, nlohmann::json::array({huge_eps}), bn_tensors(1.0f)),
                 {"eps must be in (0, 1]"});
  // A standardizer std of 1e-45 (subnormal in a float: its inverse is infinite).
  const dlb::Metadata tiny_std = {
      {"preprocessing", R"({"standardize": {"mean": [0, 0], "std": [1e-45, 1]}})"}};
  RequireRefused(WriteModel(dir, "std.safetensors", {2, 1, 1}, nlohmann::json::array({bn}), bn_tensors(1.0f), tiny_std),
                 {"metadata 'preprocessing'", "feature 0", "std"});
}

TEST_CASE("hostile models: duplicate keys anywhere in the architecture are refused", "[model file][bad input]") {
  dlb_test::TempDir dir("dlb_test_hostile_");
  RequireRefused(WriteModel(dir, "dup.safetensors", {}, {}, {}, {},
                            R"({"input_shape": [4, 1, 1], "layers": [{"name": "a", "type": "ReLU", "args": {}, "type": "Tanh"}]})"),
                 {"metadata 'architecture' repeats the key 'type' in one object"});
  RequireRefused(WriteModel(dir, "dup-root.safetensors", {}, {}, {}, {},
                            R"({"input_shape": [4, 1, 1], "input_shape": [5, 1, 1], "layers": []})"),
                 {"repeats the key 'input_shape'"});
}
