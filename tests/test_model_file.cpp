// Model files: Save, LoadModel and LoadWeights round-trip every layer type bit for bit in
// float and double, with PyTorch's names and layouts, the architecture and the preprocessing
// in the metadata; every bad file is a FileError naming the file and the problem.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dlb/data/standardize.hpp"
#include "dlb/serialization/model_file.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/layer_registry.hpp"
#include "dlb/model/model.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

#ifndef DLB_PROJECT_VERSION
#error "tests/CMakeLists.txt defines DLB_PROJECT_VERSION (the CMake project version) for this test"
#endif

namespace {

using dlb_test::MessageContains;
using dlb_test::RandomMatrix;

struct TempDir : dlb_test::TempDir {
  TempDir() : dlb_test::TempDir("dlb_test_model_file_") {}
};

/// 6 inputs -> 3 logits through every built-in layer type, each Linear with another init.
template <dlb::Scalar T>
dlb::ModelNN<T> EveryLayerModel(std::uint64_t seed) {
  dlb::ModelNN<T> model(6, seed);
  model.Add(dlb::Linear<T>(6, 5))
      .Add(dlb::ReLU<T>())
      .Add(dlb::Linear<T>(5, 5, dlb::Init::Xavier))
      .Add(dlb::LeakyReLU<T>(T(0.2)))
      .Add(dlb::Linear<T>(5, 4, dlb::Init::Const, T(0.5)))
      .Add(dlb::Sigmoid<T>())
      .Add(dlb::Dropout<T>(T(0.3)))
      .Add(dlb::Linear<T>(4, 4))
      .Add(dlb::Tanh<T>())
      .Add(dlb::Linear<T>(4, 3));
  // Non-zero biases, so that a bias lost on the way would show.
  for (auto& p : model.Parameters()) {
    if (p.name.find("bias") != std::string::npos) {
      *p.value = RandomMatrix<T>(p.value->rows(), 1, seed + 99);
    }
  }
  return model;
}

template <dlb::Scalar T>
dlb::Matrix<T> Logits(dlb::ModelNN<T>& model, const dlb::Matrix<T>& x) {
  model.SetMode(dlb::Mode::Inference);
  return model.Forward(x);
}

template <class A, class B>
bool BitwiseEqual(const A& a, const B& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() && (a.array() == b.array()).all();
}

/// Reads `path`, lets `change` edit its tensors and metadata, writes it back.
void Rewrite(const std::string& path, const std::function<void(dlb::Safetensors&)>& change) {
  dlb::Safetensors file = dlb::ReadSafetensors(path);
  change(file);
  dlb::WriteSafetensors(path, file.tensors, file.metadata);
}

/// Edits the metadata's architecture JSON.
void RewriteArchitecture(const std::string& path,
                         const std::function<void(nlohmann::ordered_json&)>& change) {
  Rewrite(path, [&](dlb::Safetensors& file) {
    auto architecture = nlohmann::ordered_json::parse(file.metadata.at("architecture"));
    change(architecture);
    file.metadata["architecture"] = architecture.dump();
  });
}

/// The tensors of `file` with `name` replaced by `tensor` (same position).
dlb::StateDict Replaced(const dlb::StateDict& tensors, const std::string& name, dlb::Tensor tensor) {
  dlb::StateDict result;
  for (const auto& [key, value] : tensors.Entries()) result.Insert(key, key == name ? tensor : value);
  return result;
}

/// LoadModel<float>(path) must throw a FileError naming the file and every fragment.
void RequireLoadRejected(const std::string& path, std::initializer_list<std::string> fragments) {
  std::vector<std::string> all(fragments);
  all.push_back(path);
  try {
    dlb::LoadModel<float>(path);
    FAIL("the file was accepted");
  } catch (const dlb::FileError& error) {
    INFO(error.what());
    CHECK(error.Path() == path);
    for (const std::string& fragment : all) CHECK_THAT(error.what(), Catch::Contains(fragment));
  }
}

/// A user layer type: y = factor * x.
template <dlb::Scalar T>
class Scale : public dlb::ElementwiseLayer {
 public:
  using Scalar = T;
  explicit Scale(T factor) : factor_(factor) {}
  std::string Name() const { return "Scale"; }
  dlb::LayerSpec Spec() const { return {"Scale", {{"factor", static_cast<double>(factor_)}}}; }
  void Forward(const dlb::ConstMatrixRef<T>& x, dlb::Matrix<T>& y, dlb::Mode) { y = factor_ * x; }
  void Backward(const dlb::ConstMatrixRef<T>&, const dlb::ConstMatrixRef<T>&,
                const dlb::ConstMatrixRef<T>& dy, dlb::Matrix<T>* dx) {
    if (dx != nullptr) *dx = factor_ * dy;
  }

 private:
  T factor_;
};

/// A user layer that cannot describe itself.
template <dlb::Scalar T>
struct NoSpec : dlb::ElementwiseLayer {
  using Scalar = T;
  std::string Name() const { return "NoSpec"; }
  void Forward(const dlb::ConstMatrixRef<T>& x, dlb::Matrix<T>& y, dlb::Mode) { y = x; }
  void Backward(const dlb::ConstMatrixRef<T>&, const dlb::ConstMatrixRef<T>&,
                const dlb::ConstMatrixRef<T>& dy, dlb::Matrix<T>* dx) {
    if (dx != nullptr) *dx = dy;
  }
};

}  // namespace

TEMPLATE_TEST_CASE("model file: save then load gives bitwise identical logits for every layer type",
                   "[model file]", float, double) {
  using T = TestType;
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<T> model = EveryLayerModel<T>(7);
  dlb::Save(model, path);
  const dlb::Matrix<T> x = RandomMatrix<T>(6, 9, 3, -3.0, 3.0);
  const dlb::Matrix<T> expected = Logits(model, x);

  dlb::LoadedModel<T> loaded = dlb::LoadModel<T>(path);
  REQUIRE(loaded.Model().NumLayers() == model.NumLayers());
  CHECK(loaded.Model().GetMode() == dlb::Mode::Inference);
  for (dlb::Index i = 0; i < model.NumLayers(); ++i) {
    INFO("layer " << i);
    CHECK(loaded.Model().LayerSpecAt(i) == model.LayerSpecAt(i));
    CHECK(loaded.Model().LayerName(i) == model.LayerName(i));
  }
  CHECK(loaded.Model().Summary() == model.Summary());
  CHECK_FALSE(loaded.standardizer.has_value());
  CHECK(BitwiseEqual(loaded.Predict(x), expected));

  // LoadWeights into a freshly built model of the same layers (other initial weights).
  dlb::ModelNN<T> other = EveryLayerModel<T>(12345);
  REQUIRE_FALSE(BitwiseEqual(Logits(other, x), expected));
  CHECK_FALSE(dlb::LoadWeights(other, path).has_value());
  CHECK(BitwiseEqual(Logits(other, x), expected));
}

TEMPLATE_TEST_CASE("model file: names, shapes and row-major layout of torch.nn.Sequential's state_dict",
                   "[model file]", float, double) {
  using T = TestType;
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<T> model = EveryLayerModel<T>(1);
  dlb::Save(model, path);
  const dlb::Safetensors file = dlb::ReadSafetensors(path);

  std::vector<std::string> names;
  for (const auto& [name, tensor] : file.tensors.Entries()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight",
                                          "4.bias", "7.weight", "7.bias", "9.weight", "9.bias"});
  const dlb::Tensor& weight = file.tensors.At("0.weight");
  CHECK(weight.dtype == dlb::DTypeOf<T>());
  CHECK(weight.shape == std::vector<std::int64_t>{5, 6});
  const std::vector<T> values = weight.Values<T>();
  const dlb::Matrix<T>& w = model.template LayerAt<dlb::Linear<T>>(0).Weight();
  for (dlb::Index r = 0; r < 5; ++r) {
    for (dlb::Index c = 0; c < 6; ++c) CHECK(values[static_cast<std::size_t>(r * 6 + c)] == w(r, c));
  }
  CHECK(file.tensors.At("9.bias").shape == std::vector<std::int64_t>{3});
  // The Dropout generator is resume state: in checkpoints, not in model files.
  CHECK_FALSE(file.tensors.Contains("6.generator"));
}

TEST_CASE("model file: the metadata holds format, versions, dtype and the architecture", "[model file]") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<float> model = EveryLayerModel<float>(1);
  dlb::Save(model, path, nullptr, {{"classes", "cat,dog,bird"}});
  const dlb::Metadata metadata = dlb::ReadSafetensors(path).metadata;
  CHECK(metadata.at("format") == "dlblocks.model");
  CHECK(metadata.at("format_version") == "2");
  CHECK(metadata.at("library_version") == DLB_PROJECT_VERSION);
  CHECK(metadata.at("dtype") == "F32");
  CHECK(metadata.at("classes") == "cat,dog,bird");
  CHECK(metadata.count("preprocessing") == 0);
  const auto architecture = nlohmann::json::parse(metadata.at("architecture"));
  CHECK(architecture["input_shape"] == nlohmann::json({6, 1, 1}));
  CHECK(architecture["layers"].size() == 10);
  CHECK(architecture["layers"][0]["type"] == "Linear");
  CHECK(architecture["layers"][0]["args"]["in"] == 6);
  CHECK(architecture["layers"][0]["args"]["init"] == "kaiming");
  CHECK(architecture["layers"][4]["args"]["init"] == "const");
  CHECK(architecture["layers"][4]["args"]["init_std"] == 0.5);
  CHECK(architecture["layers"][3]["args"]["alpha"] == static_cast<double>(0.2f));
  CHECK(architecture["layers"][6]["args"]["p"] == static_cast<double>(0.3f));
  CHECK(dlb::LoadModel<float>(path).metadata.at("classes") == "cat,dog,bird");
}

TEMPLATE_TEST_CASE("model file: the standardizer is stored exactly and applied by Predict",
                   "[model file]", float, double) {
  using T = TestType;
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::Matrix<T> raw = RandomMatrix<T>(6, 50, 11, 0.0, 255.0);
  raw.row(2).setConstant(T(7));  // a constant feature: std stored as 1
  dlb::Standardizer<T> standardizer;
  standardizer.Fit(raw);
  dlb::ModelNN<T> model = EveryLayerModel<T>(3);
  dlb::Save(model, path, &standardizer);

  dlb::LoadedModel<T> loaded = dlb::LoadModel<T>(path);
  REQUIRE(loaded.standardizer.has_value());
  CHECK(BitwiseEqual(loaded.standardizer->Mean(), standardizer.Mean()));
  CHECK(BitwiseEqual(loaded.standardizer->Stddev(), standardizer.Stddev()));
  dlb::Matrix<T> standardized = raw;
  standardizer.Transform(standardized);
  CHECK(BitwiseEqual(loaded.Predict(raw), Logits(model, standardized)));
  // LoadWeights returns it too.
  dlb::ModelNN<T> other = EveryLayerModel<T>(4);
  const auto returned = dlb::LoadWeights(other, path);
  REQUIRE(returned.has_value());
  CHECK(BitwiseEqual(returned->Mean(), standardizer.Mean()));
  // And PyTorch's strict load_state_dict sees only the Sequential's tensors.
  CHECK(dlb::ReadSafetensors(path).tensors.Size() == 10);
}

TEST_CASE("model file: a float file loads into a double model and back exactly", "[model file]") {
  TempDir dir;
  dlb::ModelNN<float> model = EveryLayerModel<float>(5);
  dlb::Save(model, dir / "float.safetensors");
  dlb::LoadedModel<double> wide = dlb::LoadModel<double>(dir / "float.safetensors");
  const dlb::Matrix<float>& w = model.LayerAt<dlb::Linear<float>>(2).Weight();
  CHECK(BitwiseEqual(wide.Model().LayerAt<dlb::Linear<double>>(2).Weight(), w.cast<double>()));
  dlb::Save(wide.Model(), dir / "double.safetensors");
  CHECK(dlb::ReadSafetensors(dir / "double.safetensors").tensors.At("2.weight").dtype == dlb::DType::F64);
  dlb::LoadedModel<float> narrow = dlb::LoadModel<float>(dir / "double.safetensors");
  CHECK(BitwiseEqual(narrow.Model().LayerAt<dlb::Linear<float>>(2).Weight(), w));
}

TEST_CASE("model file: a file without metadata (PyTorch's) loads with LoadWeights", "[model file]") {
  TempDir dir;
  const std::string path = dir / "torch.safetensors";
  dlb::ModelNN<float> model = EveryLayerModel<float>(8);
  dlb::WriteSafetensors(path, model.SaveState(), {{"format", "pt"}});
  dlb::ModelNN<float> other = EveryLayerModel<float>(9);
  dlb::LoadWeights(other, path);
  const dlb::Matrix<float> x = RandomMatrix<float>(6, 4, 1);
  CHECK(BitwiseEqual(Logits(other, x), Logits(model, x)));
  RequireLoadRejected(path, {"no 'architecture' in the metadata", "LoadWeights"});
}

TEST_CASE("model file: user layers are rebuilt through a registry", "[model file]") {
  TempDir dir;
  const std::string path = dir / "scale.safetensors";
  dlb::ModelNN<float> model(6, 1);
  model.Add(dlb::Linear<float>(6, 2)).Add(Scale<float>(2.5f));
  dlb::Save(model, path);

  RequireLoadRejected(path, {"layer 1 (Scale)", "unknown layer type 'Scale'",
                             "known types: AvgPool2D, BatchNorm1D, BatchNorm2D, Concat, Conv2D, Dropout, "
                             "GlobalAvgPool, LeakyReLU, Linear, MaxPool2D, ReLU, Residual, Sequential, Sigmoid, Tanh"});
  dlb::LayerRegistry<float> registry = dlb::DefaultLayerRegistry<float>();
  registry.Register("Scale", [](const dlb::LayerArgs& args) {
    return Scale<float>(static_cast<float>(args.Real("factor")));
  });
  CHECK(registry.Contains("Scale"));
  dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(path, registry);
  const dlb::Matrix<float> x = RandomMatrix<float>(6, 3, 2);
  CHECK(BitwiseEqual(loaded.Predict(x), Logits(model, x)));
}

TEST_CASE("model file: Save refuses what could not be loaded", "[model file]") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<float> no_spec(6, 1);
  no_spec.Add(dlb::Linear<float>(6, 2)).Add(NoSpec<float>());
  REQUIRE_THROWS_MATCHES(dlb::Save(no_spec, path), dlb::ArgumentError,
                         MessageContains({"layer 1 (NoSpec) has no Spec()"}));

  dlb::ModelNN<float> model = EveryLayerModel<float>(1);
  model.LayerAt<dlb::Linear<float>>(2).Weight()(1, 3) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_MATCHES(dlb::Save(model, path), dlb::ArgumentError,
                         MessageContains({"not saving", "tensor '2.weight' holds NaN at element 8"}));

  dlb::ModelNN<float> good = EveryLayerModel<float>(1);
  dlb::Standardizer<float> unfitted;
  REQUIRE_THROWS_MATCHES(dlb::Save(good, path, &unfitted), dlb::ArgumentError,
                         MessageContains({"Standardizer has 0 features", "takes 6 inputs"}));
  REQUIRE_THROWS_MATCHES(dlb::Save(good, path, nullptr, {{"format", "mine"}}), dlb::ArgumentError,
                         MessageContains({"metadata key 'format'"}));
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("model file: missing, extra, mistyped, misshapen and non-finite tensors",
          "[model file][bad input]") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<float> model = EveryLayerModel<float>(1);
  const auto fresh = [&] { dlb::Save(model, path); };

  fresh();
  Rewrite(path, [](dlb::Safetensors& f) { f.tensors = f.tensors.Without({"2.bias"}); });
  RequireLoadRejected(path, {"do not fit the saved architecture", "missing 2.bias"});
  dlb::ModelNN<float> target = EveryLayerModel<float>(2);
  const dlb::Matrix<float> before = target.LayerAt<dlb::Linear<float>>(0).Weight();
  REQUIRE_THROWS_MATCHES(dlb::LoadWeights(target, path), dlb::FileError,
                         MessageContains({path, "missing 2.bias"}));
  CHECK(BitwiseEqual(target.LayerAt<dlb::Linear<float>>(0).Weight(), before));  // unchanged

  fresh();
  Rewrite(path, [](dlb::Safetensors& f) {
    f.tensors.Insert("3.weight", dlb::Tensor::FromValues(dlb::DType::F32, {1}, std::vector<float>{1}));
    f.tensors.Insert("extra", dlb::Tensor::FromValues(dlb::DType::F32, {1}, std::vector<float>{1}));
  });
  RequireLoadRejected(path, {"unexpected 3.weight, extra"});

  fresh();
  Rewrite(path, [](dlb::Safetensors& f) {
    f.tensors = Replaced(f.tensors, "0.weight",
                         dlb::Tensor::FromValues(dlb::DType::I64, {5, 6}, std::vector<std::int64_t>(30)));
  });
  RequireLoadRejected(path, {"'0.weight'", "expected F32 or F64 [5, 6], found I64 [5, 6]"});

  fresh();
  Rewrite(path, [](dlb::Safetensors& f) {
    f.tensors = Replaced(f.tensors, "0.weight",
                         dlb::Tensor::FromValues(dlb::DType::F32, {6, 5}, std::vector<float>(30)));
  });
  RequireLoadRejected(path, {"'0.weight'", "expected F32 or F64 [5, 6], found F32 [6, 5]"});
  REQUIRE_THROWS_MATCHES(dlb::LoadWeights(target, path), dlb::FileError,
                         MessageContains({path, "found F32 [6, 5]"}));

  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    fresh();
    Rewrite(path, [&](dlb::Safetensors& f) {
      std::vector<float> bias = f.tensors.At("4.bias").Values<float>();
      bias[2] = bad;
      f.tensors = Replaced(f.tensors, "4.bias", dlb::Tensor::FromValues(dlb::DType::F32, {4}, bias));
    });
    RequireLoadRejected(path, {"tensor '4.bias' holds", "at element 2", "non-finite"});
    REQUIRE_THROWS_MATCHES(dlb::LoadWeights(target, path), dlb::FileError,
                           MessageContains({"tensor '4.bias' holds"}));
  }
}

TEST_CASE("model file: unknown formats, versions and layer types", "[model file][bad input]") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<float> model = EveryLayerModel<float>(1);

  dlb::Save(model, path);
  Rewrite(path, [](dlb::Safetensors& f) { f.metadata["format_version"] = "3"; });
  RequireLoadRejected(path, {"format version 3", "newer than this DLBlocks", "up to 2"});
  dlb::ModelNN<float> target = EveryLayerModel<float>(2);
  REQUIRE_THROWS_MATCHES(dlb::LoadWeights(target, path), dlb::FileError,
                         MessageContains({"format version 3"}));
  Rewrite(path, [](dlb::Safetensors& f) { f.metadata["format_version"] = "one"; });
  RequireLoadRejected(path, {"format_version in the metadata is 'one'"});
  Rewrite(path, [](dlb::Safetensors& f) { f.metadata.erase("format_version"); });
  RequireLoadRejected(path, {"format_version in the metadata is missing"});

  dlb::Save(model, path);
  Rewrite(path, [](dlb::Safetensors& f) { f.metadata["format"] = "dlblocks.zip"; });
  RequireLoadRejected(path, {"unknown format 'dlblocks.zip'"});

  dlb::Save(model, path);
  RewriteArchitecture(path, [](auto& a) { a["layers"][8]["type"] = "Softplus"; });
  RequireLoadRejected(path, {"layer 8 (Softplus)", "unknown layer type 'Softplus'", "known types"});
  REQUIRE_THROWS_MATCHES(dlb::LoadWeights(target, path), dlb::FileError,
                         MessageContains({"layer 8 is Softplus in the file but Tanh in this model"}));

  dlb::Save(model, path);
  Rewrite(path, [](dlb::Safetensors& f) { f.metadata["architecture"] = "{\"layers\": ["; });
  RequireLoadRejected(path, {"metadata 'architecture' is not valid JSON"});
}

TEST_CASE("model file: architectures that do not build or do not fit the tensors",
          "[model file][bad input]") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<float> model = EveryLayerModel<float>(1);
  const auto edit = [&](const std::function<void(nlohmann::ordered_json&)>& change) {
    dlb::Save(model, path);
    RewriteArchitecture(path, change);
  };

  // Sizes far beyond the file: rejected before anything is allocated.
  edit([](auto& a) {
    a["layers"][0]["args"]["in"] = std::int64_t{1} << 40;
    a["layers"][0]["args"]["out"] = std::int64_t{1} << 40;
  });
  RequireLoadRejected(path, {"layer 0 (Linear)", "a tensor of 1099511627776 x 1099511627776 values is "
                             "out of range"});
  // Sizes a tensor can hold but the file does not account for.
  edit([](auto& a) {
    a["layers"][0]["args"]["in"] = std::int64_t{1} << 20;
    a["layers"][0]["args"]["out"] = std::int64_t{1} << 20;
  });
  RequireLoadRejected(path, {"layer 0 (Linear)", "holds [1048576, 1048576] + [1048576]",
                             "more than the saved tensors account for"});
  // Small layers too: together they may not allocate more than the tensors hold.
  edit([](auto& a) {
    a["layers"].push_back({{"name", "10"}, {"type", "Linear"}, {"args", {{"in", 3}, {"out", 300}}}});
    a["layers"].push_back({{"name", "11"}, {"type", "Linear"}, {"args", {{"in", 300}, {"out", 300}}}});
  });
  RequireLoadRejected(path, {"layer 11 (Linear)", "[300, 300] + [300] values, more than the saved tensors"});
  // A shape that does not match the tensors.
  edit([](auto& a) { a["layers"][9]["args"]["out"] = 2; });
  RequireLoadRejected(path, {"do not fit the saved architecture", "'9.weight'",
                             "expected F32 or F64 [2, 4], found F32 [3, 4]"});
  // Layers that do not chain.
  edit([](auto& a) { a["input_shape"] = {7, 1, 1}; });
  RequireLoadRejected(path, {"layer 0 (Linear)", "needs 6 input values per sample, got 7"});
  edit([](auto& a) { a["input_shape"] = {0, 1, 1}; });
  RequireLoadRejected(path, {"input_shape must be [channels, height, width], each >= 1"});
  edit([](auto& a) { a["input_shape"] = {65536, 65536, 1}; });
  RequireLoadRejected(path, {"input_shape", "at most 2147483647 values"});
  edit([](auto& a) { a["layers"][0]["args"]["in"] = "six"; });
  RequireLoadRejected(path, {"layer 0 (Linear)", "argument 'in' must be a whole number"});
  edit([](auto& a) { a["layers"][0]["args"].erase("out"); });
  RequireLoadRejected(path, {"layer 0 (Linear)", "missing argument 'out'"});
  edit([](auto& a) { a["layers"][1]["args"]["inplace"] = 1; });
  RequireLoadRejected(path, {"layer 1 (ReLU)", "unknown argument(s) 'inplace'"});
  edit([](auto& a) { a["layers"][6]["args"]["p"] = 1.5; });
  RequireLoadRejected(path, {"layer 6 (Dropout)", "must be in [0, 1), got 1.5"});
  edit([](auto& a) { a["layers"][0]["args"]["init"] = "orthogonal"; });
  RequireLoadRejected(path, {"layer 0 (Linear)", "unknown weight initialisation 'orthogonal'"});
  edit([](auto& a) { a["layers"][1] = {{"type", "ReLU"}}; });
  RequireLoadRejected(path, {"layer 1: expected {\"name\": name, \"type\": type, \"args\": {...}}"});
  edit([](auto& a) { a["layers"][0]["args"]["in"] = {6}; });
  RequireLoadRejected(path, {"argument 'in' must be a number or a string"});

  // LoadWeights compares the saved layers with the model's.
  dlb::Save(model, path);
  dlb::ModelNN<float> shorter(6, 1);
  shorter.Add(dlb::Linear<float>(6, 3));
  REQUIRE_THROWS_MATCHES(dlb::LoadWeights(shorter, path), dlb::FileError,
                         MessageContains({path, "has 10 layers, this one 1"}));
}

TEST_CASE("model file: bad preprocessing statistics", "[model file][bad input]") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<float> model = EveryLayerModel<float>(1);
  dlb::Standardizer<float> standardizer(dlb::Vector<float>::Zero(6), dlb::Vector<float>::Ones(6));
  const auto edit = [&](const std::string& text) {
    dlb::Save(model, path, &standardizer);
    Rewrite(path, [&](dlb::Safetensors& f) { f.metadata["preprocessing"] = text; });
  };
  edit(R"({"standardize": {"mean": [0, 0, 0], "std": [1, 1, 1]}})");
  RequireLoadRejected(path, {"metadata 'preprocessing'", "mean must be an array of 6 numbers"});
  edit(R"({"standardize": {"mean": [0, 0, 0, 0, 0, 0], "std": [1, 1, 0, 1, 1, 1]}})");
  RequireLoadRejected(path, {"metadata 'preprocessing'", "feature 2", "std > 0"});
  edit(R"({"standardize": {"mean": [0, 0, 0, 0, "x", 0], "std": [1, 1, 1, 1, 1, 1]}})");
  RequireLoadRejected(path, {"metadata 'preprocessing'", "mean[4] is not a number"});
  edit(R"({"normalize": {}})");
  RequireLoadRejected(path, {"metadata 'preprocessing'", "expected {\"standardize\""});
}

TEST_CASE("model file: a truncated file is a FileError through LoadModel and LoadWeights",
          "[model file][bad input]") {
  TempDir dir;
  const std::string path = dir / "model.safetensors";
  dlb::ModelNN<float> model = EveryLayerModel<float>(1);
  dlb::Save(model, path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1);
  RequireLoadRejected(path, {"lie outside the"});
  REQUIRE_THROWS_MATCHES(dlb::LoadWeights(model, path), dlb::FileError, MessageContains({path}));
}

TEST_CASE("model file: a convnet (convolution, pooling, batch norm) loads bitwise, statistics included",
          "[model file]") {
  TempDir dir;
  const std::string path = dir / "convnet.safetensors";
  dlb::ModelNN<float> model(dlb::Shape(1, 8, 8), 4);
  model.Add(dlb::Conv2D<float>(dlb::Conv2DOptions(1, 4, 3).Padding(1)))
      .Add(dlb::BatchNorm2D<float>(4))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Conv2D<float>(4, 6, {3, 2}, 1, 0))
      .Add(dlb::AvgPool2D<float>(2, 1))
      .Add(dlb::GlobalAvgPool<float>())
      .Add(dlb::BatchNorm1D<float>(6))
      .Add(dlb::Linear<float>(6, 3));
  const dlb::Matrix<float> x = RandomMatrix<float>(64, 5, 8, -2.0, 2.0);
  model.Forward(x);  // training mode: the batch-norm running statistics move
  dlb::Save(model, path);
  const dlb::Matrix<float> expected = Logits(model, x);

  dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(path);
  CHECK(loaded.Model().Summary() == model.Summary());
  CHECK(BitwiseEqual(loaded.Predict(x), expected));
}

TEST_CASE("model file: the fuzzer's seed models load and predict (the seeds reach past the parser)") {
  // fuzz/make_safetensors_corpus.py writes them by hand, outside the library: if a seed stopped
  // loading, the fuzzer would spend its time in the error paths only.
  const std::string corpus = std::string(DLB_SOURCE_DIR) + "/fuzz/corpus/safetensors/";
  for (const char* name : {"mlp", "every-layer", "convnet"}) {
    INFO(name);
    dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(corpus + name + ".safetensors");
    const dlb::Matrix<float> x = dlb::Matrix<float>::Ones(loaded.Model().InputSize(), 3);
    const dlb::Matrix<float>& logits = loaded.Predict(x);
    CHECK(logits.cols() == 3);
    CHECK(logits.allFinite());
  }
  dlb::LoadedModel<double> loaded = dlb::LoadModel<double>(corpus + "double.safetensors");
  CHECK(loaded.Predict(dlb::Matrix<double>::Ones(2, 1)).allFinite());
}
