// dlb::ExportOnnx checked by the real tools: ONNX's checker (python3-onnx, check_model with
// full_check) accepts every exported model, and ONNX Runtime (npm onnxruntime-web, WASM,
// under Node.js) computes the library's inference outputs from the same raw inputs:
//  * each built-in layer type alone (its Example());
//  * the MLP, the CNN of the examples and the ResNet, with a standardizer, to 1e-4 (max abs)
//    with the same predicted classes; the MLP also as a double model (written in float);
//  * a property test: random models composed from every type in BuiltinLayers<float>, blocks
//    nested in blocks, layer names that collide with the graph's own names;
//  * the names (state_dict initializers, nodes by path, the input and output shapes);
//  * a layer without an exporter is an error naming it, and no file is written; a user's
//    exporter makes its layer exportable; an exporter that returns a wrong shape is refused.
// A case whose tool is missing reports "[skipped]" (CTest: Skipped) for that tool's checks;
// the export itself and the checks that need no tool still run. Negative controls: a changed
// weight must make ONNX Runtime's outputs differ from the library's.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <typeindex>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "dlb/dlb.hpp"
#include "dlb/onnx/export_onnx.hpp"
#include "support/onnx_tools.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb::Index;
using dlb::Matrix;
using dlb::ModelNN;
using dlb::Shape;
using dlb_test::NamedTensor;

// ---------------------------------------------------------------------------------------
// What the library computes, and the tensors the tools read.

/// Uniform values in [lo, hi), rows x cols, from `rng`.
Matrix<float> RandomMatrix(Index rows, Index cols, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> uniform(lo, hi);
  Matrix<float> m(rows, cols);
  for (Index j = 0; j < cols; ++j) {
    for (Index i = 0; i < rows; ++i) m(i, j) = uniform(rng);
  }
  return m;
}

/// [N, C, H, W] (or [N, F] for a flat shape) of a batch with one sample per column: each
/// column, channel-major, is one row-major sample.
NamedTensor BatchTensor(const std::string& name, const Matrix<float>& batch, const Shape& shape) {
  NamedTensor tensor{name, {batch.cols(), shape.channels}, {}};
  if (!shape.IsFlat()) {
    tensor.dims.push_back(shape.height);
    tensor.dims.push_back(shape.width);
  }
  tensor.data.assign(batch.data(), batch.data() + batch.size());
  return tensor;
}

/// The library's inference output for the raw batch `x`: standardized when a standardizer
/// is given (as LoadedModel::Predict does), then the model in Mode::Inference.
template <dlb::Scalar T>
Matrix<float> LibraryOutput(ModelNN<T>& model, const Matrix<float>& x,
                            const std::optional<dlb::Standardizer<T>>& standardizer) {
  Matrix<T> input = x.cast<T>();
  if (standardizer) standardizer->Transform(input);
  model.SetMode(dlb::Mode::Inference);
  return model.Forward(input).template cast<float>();
}

/// Gives every vector of state (biases, batch norms' scales, shifts and statistics) values
/// away from their initial 0 and 1, so that a graph that left one out could not match.
template <dlb::Scalar T>
void RandomizeState(ModelNN<T>& model, std::mt19937& rng) {
  std::uniform_real_distribution<double> uniform(-0.5, 0.5);
  model.VisitLayers([&](const std::string&, dlb::internal::AnyLayer<T>& layer, int) {
    if (!layer.Children().empty()) return;
    for (auto& ref : layer.AllState()) {
      auto* const* matrix = std::get_if<Matrix<T>*>(&ref.value);
      if (matrix == nullptr || dlb::StateShape(ref).size() != 1) continue;
      for (Index i = 0; i < (*matrix)->size(); ++i) {
        const double u = uniform(rng);
        (*matrix)->data()[i] = static_cast<T>(ref.name == "running_var" ? 1.25 + 1.5 * u
                                              : ref.name == "weight"    ? 1.0 + u
                                                                        : u);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Running the tools on many models at once: one checker process, one ONNX Runtime process
// (compiling its WASM module is most of a run's time).

/// One exported model and what ONNX Runtime must compute from its input.
struct Case {
  std::string label;       // for messages: which model
  std::string path;        // the .onnx file
  NamedTensor input;       // "input"
  NamedTensor expected;    // "output", the library's
};

/// Runs ONNX's checker on every case's model; REQUIREs that it accepts them all. False
/// (with a [skipped] warning) when the checker is missing.
bool CheckAll(const std::vector<Case>& cases) {
  if (!dlb_test::HaveOnnxChecker()) {
    WARN("[skipped] ONNX's checker: no python3 with the onnx module (Debian python3-onnx)");
    return false;
  }
  std::vector<std::string> command = {dlb_test::kOnnxPython, "-B", dlb_test::kOnnxToolsDir + "/check_onnx_model.py"};
  for (const Case& c : cases) command.push_back(c.path);
  const dlb_test::CommandResult result = dlb_test::RunCommand(command);
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  return true;
}

/// ONNX Runtime's output of every case, in order, or nothing (with a [skipped] warning) when
/// it is not installed. REQUIREs that every model loaded and ran.
std::optional<std::vector<NamedTensor>> RunAll(const dlb_test::TempDir& dir, const std::vector<Case>& cases) {
  if (!dlb_test::HaveOnnxRuntime()) {
    WARN("[skipped] ONNX Runtime: onnxruntime-web is not installed in "
         << dlb_test::kOnnxRuntimePrefix
         << " (node: " << (dlb_test::kNode.empty() ? "not found" : dlb_test::kNode)
         << "); CTest's setup test installs it with npm");
    return std::nullopt;
  }
  const std::string list = dir / "runs.txt";
  {
    std::ofstream out(list);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const std::string in = dir / ("in" + std::to_string(i) + ".bin");
      dlb_test::WriteTensorList(in, {cases[i].input});
      out << cases[i].path << '\t' << in << '\t' << (dir / ("out" + std::to_string(i) + ".bin")) << '\n';
    }
  }
  const dlb_test::CommandResult result = dlb_test::RunCommand(
      {dlb_test::kNode, dlb_test::kOnnxToolsDir + "/run_onnxruntime.js", dlb_test::kOnnxRuntimePrefix, "--list", list});
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  std::vector<NamedTensor> outputs;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto tensors = dlb_test::ReadTensorList(dir / ("out" + std::to_string(i) + ".bin"));
    REQUIRE(tensors.size() == 1);
    outputs.push_back(tensors[0]);
  }
  return outputs;
}

/// Exports `model` to dir/<file>.onnx and makes the case: input x, expected the library's
/// output (after `standardizer`, which the graph holds too).
template <dlb::Scalar T>
Case MakeCase(const dlb_test::TempDir& dir, const std::string& label, ModelNN<T>& model,
              const Matrix<float>& x, const std::optional<dlb::Standardizer<T>>& standardizer = std::nullopt,
              const dlb::OnnxExportOptions<T>* given_options = nullptr) {
  dlb::OnnxExportOptions<T> options = given_options ? *given_options : dlb::OnnxExportOptions<T>{};
  options.standardizer = standardizer;
  std::string file;
  for (const char c : label) file += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  Case c{label, dir / (file + ".onnx"), BatchTensor("input", x, model.InputShape()), {}};
  const dlb::OnnxExport written = dlb::ExportOnnx(model, c.path, options);
  CHECK(written.input_name == "input");
  CHECK(written.output_name == "output");
  c.expected = BatchTensor("output", LibraryOutput(model, x, standardizer), model.OutputShape());
  return c;
}

/// "" when ONNX Runtime's logits match the library's to `tolerance` (max abs) and give the
/// same class for each sample (a different class is accepted only for a tie: the library's
/// logits of both classes within 2 * tolerance); otherwise what differs. Also reports the
/// largest difference through *max_difference.
std::string LogitsMismatch(const NamedTensor& actual, const NamedTensor& expected, double tolerance,
                           double* max_difference = nullptr) {
  if (actual.dims != expected.dims || actual.dims.size() != 2) return "the shapes differ";
  const auto n = static_cast<std::size_t>(expected.dims[0]);
  const auto classes = static_cast<std::size_t>(expected.dims[1]);
  double largest = 0;
  for (std::size_t i = 0; i < actual.data.size(); ++i) {
    const double difference = std::abs(double{actual.data[i]} - double{expected.data[i]});
    largest = std::isnan(difference) ? INFINITY : std::max(largest, difference);
  }
  if (max_difference) *max_difference = largest;
  std::ostringstream problems;
  if (!(largest <= tolerance)) problems << "largest difference " << largest << " > " << tolerance << "; ";
  for (std::size_t s = 0; s < n; ++s) {
    const auto argmax = [&](const std::vector<float>& data) {
      const auto begin = data.begin() + static_cast<std::ptrdiff_t>(s * classes);
      return static_cast<std::size_t>(std::max_element(begin, begin + static_cast<std::ptrdiff_t>(classes)) - begin);
    };
    const std::size_t a = argmax(actual.data), e = argmax(expected.data);
    if (a != e && std::abs(expected.data[s * classes + a] - expected.data[s * classes + e]) > 2 * tolerance) {
      problems << "sample " << s << ": class " << a << ", the library's " << e << "; ";
    }
  }
  return problems.str();
}

// ---------------------------------------------------------------------------------------
// Models.

/// The examples' CNN (examples/common/cnn_model.hpp, train_fashion_mnist --model cnn).
ModelNN<float> MakeCnn(std::uint64_t seed) {
  ModelNN<float> model(Shape(1, 28, 28), seed);
  model.Add(dlb::Conv2D<float>(dlb::Conv2DOptions(1, 32, 3).Padding(1)))
      .Add(dlb::BatchNorm2D<float>(32))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Conv2D<float>(dlb::Conv2DOptions(32, 64, 3).Padding(1)))
      .Add(dlb::BatchNorm2D<float>(64))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Linear<float>(64 * 7 * 7, 128))
      .Add(dlb::ReLU<float>())
      .Add(dlb::Dropout<float>(0.3f))
      .Add(dlb::Linear<float>(128, 10));
  return model;
}

/// Stand-in images: pixels in [0, 1], with a bright block whose place depends on the image
/// (so that the standardizer's statistics vary over the pixels as Fashion-MNIST's do).
Matrix<float> StandInImages(Index count, std::mt19937& rng) {
  Matrix<float> images = RandomMatrix(784, count, rng, 0.0f, 0.3f);
  for (Index j = 0; j < count; ++j) {
    const Index top = j % 14, left = (j * 5) % 14;
    for (Index r = top; r < top + 12; ++r) {
      for (Index c = left; c < left + 12; ++c) images(r * 28 + c, j) = 0.7f + 0.3f * images(r * 28 + c, j);
    }
  }
  return images;
}

template <dlb::Scalar T>
dlb::Standardizer<T> FittedStandardizer(const Matrix<float>& images) {
  dlb::Standardizer<T> standardizer;
  standardizer.Fit(images.cast<T>());
  return standardizer;
}

/// A user's layer type with no built-in exporter: y = factor x.
struct Scale {
  using Scalar = float;
  float factor = 2.0f;
  std::string Name() const { return "Scale(" + std::to_string(static_cast<int>(factor)) + ")"; }
  Shape OutputShape(const Shape& input) const { return input; }
  void Forward(const dlb::ConstMatrixRef<float>& x, Matrix<float>& y, dlb::Mode) { y = factor * x; }
  void Backward(const dlb::ConstMatrixRef<float>&, const dlb::ConstMatrixRef<float>&,
                const dlb::ConstMatrixRef<float>& dy, Matrix<float>* dx) {
    if (dx) *dx = factor * dy;
  }
};

// ---------------------------------------------------------------------------------------
// Random models from every built-in layer type.

using LayerPointer = dlb::internal::LayerPointer<float>;

struct RandomModels {
  std::mt19937 rng;
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  double Real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
  bool Coin() { return Int(0, 1) == 1; }

  static constexpr int kMaxDepth = 3;

  /// A random layer that takes `in` (blocks only above kMaxDepth), and its output shape.
  LayerPointer Layer(const Shape& in, int depth, Shape& out) {
    LayerPointer layer;
    while (!layer) {
      switch (Int(0, depth < kMaxDepth ? 14 : 11)) {
        case 0: layer = Make(dlb::Linear<float>(in.Size(), Int(1, 6))); break;
        case 1: layer = Make(dlb::ReLU<float>()); break;
        case 2: layer = Make(dlb::LeakyReLU<float>(Real(0.0, 0.5))); break;
        case 3: layer = Make(dlb::Sigmoid<float>()); break;
        case 4: layer = Make(dlb::Tanh<float>()); break;
        case 5: layer = Make(dlb::Dropout<float>(static_cast<float>(Real(0.0, 0.9)))); break;
        case 6: {
          const Index ph = Int(0, 1), pw = Int(0, 1);
          dlb::Conv2DOptions options(in.channels, Int(1, 4),
                                     {Int(1, static_cast<int>(std::min<Index>(3, in.height + 2 * ph))),
                                      Int(1, static_cast<int>(std::min<Index>(3, in.width + 2 * pw)))});
          layer = Make(dlb::Conv2D<float>(options.Stride({Int(1, 2), Int(1, 2)}).Padding({ph, pw}).Bias(Coin())));
          break;
        }
        case 7:
        case 8: {
          const dlb::Size2D kernel{Int(1, static_cast<int>(std::min<Index>(3, in.height))),
                                   Int(1, static_cast<int>(std::min<Index>(3, in.width)))};
          const dlb::Size2D stride{Int(1, 2), Int(1, 2)};
          if (Coin()) {
            layer = Make(dlb::MaxPool2D<float>(dlb::MaxPool2DOptions(kernel, stride)));
          } else {
            layer = Make(dlb::AvgPool2D<float>(dlb::AvgPool2DOptions(kernel, stride)));
          }
          break;
        }
        case 9: layer = Make(dlb::GlobalAvgPool<float>()); break;
        case 10:
          if (in.IsFlat()) layer = Make(dlb::BatchNorm1D<float>(in.channels, Real(1e-5, 1e-2)));
          break;
        case 11: layer = Make(dlb::BatchNorm2D<float>(in.channels, Real(1e-5, 1e-2))); break;
        case 12: layer = Make(Chain(in, depth + 1, out)); break;
        case 13: layer = Make(MakeResidual(in, depth + 1)); break;
        case 14: layer = Make(MakeConcat(in, depth + 1)); break;
      }
    }
    out = layer->OutputShape(in);
    REQUIRE(out.IsValid());
    return layer;
  }

  template <class L>
  static LayerPointer Make(L layer) {
    return dlb::internal::MakeLayerPointer(std::move(layer));
  }

  /// 1 to 3 random layers from `in`.
  dlb::Sequential<float> Chain(const Shape& in, int depth, Shape& out) {
    dlb::Sequential<float> chain;
    out = in;
    for (int i = Int(1, 3); i > 0; --i) {
      Shape next;
      chain.AddPointer(std::to_string(chain.NumLayers()), Layer(out, depth, next));
      out = next;
    }
    return chain;
  }

  /// A layer from `in` to `target`: Linear for a flat target, else a Conv2D whose kernel and
  /// padding give the target's height and width (stride 1: H' = H + 2p - k + 1).
  LayerPointer Adapter(const Shape& in, const Shape& target) {
    if (target.IsFlat() && Coin()) return Make(dlb::Linear<float>(in.Size(), target.channels));
    const auto fit = [](Index from, Index to, Index& kernel, Index& pad) {
      pad = to > from ? (to - from + 1) / 2 : 0;
      kernel = from + 2 * pad - to + 1;
    };
    Index kh = 0, kw = 0, ph = 0, pw = 0;
    fit(in.height, target.height, kh, ph);
    fit(in.width, target.width, kw, pw);
    return Make(dlb::Conv2D<float>(
        dlb::Conv2DOptions(in.channels, target.channels, {kh, kw}).Padding({ph, pw}).Bias(Coin())));
  }

  dlb::Residual<float> MakeResidual(const Shape& in, int depth) {
    Shape body_out;
    dlb::Sequential<float> body = Chain(in, depth, body_out);
    dlb::Sequential<float> shortcut;
    if (!(body_out == in) || Coin()) shortcut.AddPointer("0", Adapter(in, body_out));
    if (!shortcut.Empty() && Coin()) {
      if (body_out.IsFlat() && Coin()) {
        shortcut.Add(dlb::BatchNorm1D<float>(body_out.channels));
      } else {
        shortcut.Add(dlb::BatchNorm2D<float>(body_out.channels));
      }
    }
    const dlb::Activation activations[] = {dlb::Activation::None, dlb::Activation::ReLU,
                                           dlb::Activation::LeakyReLU, dlb::Activation::Sigmoid,
                                           dlb::Activation::Tanh};
    dlb::ResidualOptions options;
    options.Activation(activations[Int(0, 4)]).ShortcutName(Coin() ? "downsample" : "skip");
    return dlb::Residual<float>(std::move(body), std::move(shortcut), options);
  }

  dlb::Concat<float> MakeConcat(const Shape& in, int depth) {
    dlb::Concat<float> concat;
    Shape first_out;
    concat.Add("a", Chain(in, depth, first_out));
    for (int b = Int(1, 2); b > 0; --b) {
      Shape out;
      dlb::Sequential<float> branch = Chain(in, depth, out);
      Shape target(Int(1, 3), first_out.height, first_out.width);
      branch.AddPointer(std::to_string(branch.NumLayers()), Adapter(out, target));
      concat.AddPointer(b == 1 ? "b" : "c", Make(std::move(branch)));
    }
    return concat;
  }

  /// A model of 1 to 4 random layers on a random input shape; some top-level layers take
  /// names the graph uses for itself ("input", "output", "input_mean", "flatten").
  ModelNN<float> Model(std::uint64_t seed) {
    const Shape input = Coin() ? Shape(Int(1, 6)) : Shape(Int(1, 3), Int(1, 6), Int(1, 6));
    ModelNN<float> model(input, seed);
    Shape shape = input;
    const char* names[] = {"input", "output", "input_mean", "flatten", "standardize"};
    std::set<std::string> used;
    for (int i = Int(1, 4); i > 0; --i) {
      Shape out;
      LayerPointer layer = Layer(shape, 0, out);
      std::string name = std::to_string(model.NumLayers());
      if (Int(0, 3) == 0) {
        const std::string wanted = names[Int(0, 4)];
        if (used.insert(wanted).second) name = wanted;
      }
      model.AddPointer(name, std::move(layer));
      shape = out;
    }
    return model;
  }
};

template <class... Layers>
std::vector<std::pair<std::type_index, std::string>> BuiltinTypes(dlb::LayerList<Layers...>) {
  return {{std::type_index(typeid(Layers)), Layers::Options::kType}...};
}

/// The graph of a model file as describe_onnx_model.py reads it.
nlohmann::json Describe(const std::string& path) {
  const dlb_test::CommandResult result =
      dlb_test::RunCommand({dlb_test::kOnnxPython, "-B", dlb_test::kOnnxToolsDir + "/describe_onnx_model.py", path});
  INFO(result.output);
  REQUIRE(result.exit_code == 0);
  return nlohmann::json::parse(result.output);
}

}  // namespace

TEST_CASE("onnx export: every built-in layer type alone, checked and run by ONNX Runtime") {
  dlb_test::TempDir dir("dlb_onnx_export_layers_");
  std::mt19937 rng(7);
  std::vector<Case> cases;
  std::set<std::string> exported;
  const auto add = [&](auto example) {
    using L = decltype(example.layer);
    const std::string type = L::Options::kType;
    INFO(type);
    ModelNN<float> model(example.input, 1);
    model.Add(type, std::move(example.layer));
    RandomizeState(model, rng);
    cases.push_back(MakeCase(dir, type, model, RandomMatrix(model.InputSize(), 3, rng, -2.0f, 2.0f)));
    exported.insert(type);
  };
  [&]<class... Layers>(dlb::LayerList<Layers...>) { (add(Layers::Example()), ...); }(dlb::BuiltinLayers<float>{});
  CHECK(exported.size() == 15);
  // Conv2D without a bias, and BatchNorm1D and BatchNorm2D on flat samples ([N, C]).
  ModelNN<float> no_bias(Shape(2, 5, 4), 2);
  no_bias.Add(dlb::Conv2D<float>(dlb::Conv2DOptions(2, 3, {3, 2}).Stride({1, 2}).Padding({1, 0}).Bias(false)));
  cases.push_back(MakeCase(dir, "Conv2D without bias", no_bias, RandomMatrix(40, 3, rng)));
  ModelNN<float> flat_norms(Shape(4), 3);
  flat_norms.Add(dlb::BatchNorm1D<float>(4)).Add(dlb::BatchNorm2D<float>(4, 1e-3));
  RandomizeState(flat_norms, rng);
  cases.push_back(MakeCase(dir, "batch norms on flat samples", flat_norms, RandomMatrix(4, 3, rng)));

  CheckAll(cases);
  const auto outputs = RunAll(dir, cases);
  if (!outputs) return;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].label);
    CHECK(dlb_test::TensorMismatch((*outputs)[i], cases[i].expected, 1e-5) == "");
  }
}

TEST_CASE("onnx export: the MLP, the CNN and the ResNet with a standardizer give the library's "
          "logits (1e-4) and classes; a double model too") {
  dlb_test::TempDir dir("dlb_onnx_export_models_");
  std::mt19937 rng(11);
  const Matrix<float> train = StandInImages(200, rng);
  const Matrix<float> test = StandInImages(48, rng);

  ModelNN<float> mlp = dlb::MakeMlp<float>(784, {64, 32}, 10, dlb::Activation::ReLU, dlb::Init::Kaiming, 3);
  ModelNN<float> cnn = MakeCnn(4);
  ModelNN<float> resnet = dlb::MakeResNet<float>({}, 5);
  ModelNN<double> mlp64 = dlb::MakeMlp<double>(784, {64, 32}, 10, dlb::Activation::Tanh, dlb::Init::Kaiming, 6);
  mlp64.Add(dlb::Dropout<double>(0.5));  // the identity in the graph
  RandomizeState(cnn, rng);
  RandomizeState(resnet, rng);
  RandomizeState(mlp64, rng);

  std::vector<Case> cases;
  cases.push_back(MakeCase(dir, "MLP", mlp, test, std::optional(FittedStandardizer<float>(train))));
  cases.push_back(MakeCase(dir, "CNN", cnn, test, std::optional(FittedStandardizer<float>(train))));
  cases.push_back(MakeCase(dir, "ResNet", resnet, test, std::optional(FittedStandardizer<float>(train))));
  cases.push_back(MakeCase(dir, "double MLP", mlp64, test, std::optional(FittedStandardizer<double>(train))));
  CHECK(cases[0].input.dims == std::vector<std::int64_t>{48, 784});
  CHECK(cases[1].input.dims == std::vector<std::int64_t>{48, 1, 28, 28});

  CheckAll(cases);
  const auto outputs = RunAll(dir, cases);
  if (!outputs) return;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    double largest = 0;
    const std::string mismatch = LogitsMismatch((*outputs)[i], cases[i].expected, 1e-4, &largest);
    INFO(cases[i].label << ": largest difference " << largest);
    CHECK(mismatch == "");
    // The logits spread: a graph that computed a constant could not match.
    const auto [lo, hi] = std::minmax_element(cases[i].expected.data.begin(), cases[i].expected.data.end());
    CHECK(*hi - *lo > 0.5);
  }

  // Negative control: the same comparison reports the MLP's logits once a weight of its last
  // layer changes by 0.01 (the file keeps the old weight).
  mlp.LayerAt<dlb::Linear<float>>(4).Weight()(0, 0) += 0.01f;
  const auto changed = BatchTensor("output", LibraryOutput(mlp, test, std::optional(FittedStandardizer<float>(train))),
                                   mlp.OutputShape());
  CHECK_FALSE(LogitsMismatch((*outputs)[0], changed, 1e-4).empty());
}

TEST_CASE("onnx export: random models of every built-in type, nested blocks included") {
  dlb_test::TempDir dir("dlb_onnx_export_random_");
  RandomModels random{std::mt19937(2024)};
  const auto builtin = BuiltinTypes(dlb::BuiltinLayers<float>{});
  std::set<std::type_index> seen;
  std::vector<Case> cases;
  int depth_two = 0;
  // At least 40 models, more until every built-in type has been in one (at most 400).
  for (int m = 0; m < 400 && (m < 40 || seen.size() < builtin.size()); ++m) {
    ModelNN<float> model = random.Model(static_cast<std::uint64_t>(m));
    RandomizeState(model, random.rng);
    model.VisitLayers([&](const std::string&, const dlb::internal::AnyLayer<float>& layer, int depth) {
      seen.insert(std::type_index(layer.Type()));
      depth_two += depth >= 2;
    });
    std::optional<dlb::Standardizer<float>> standardizer;
    if (random.Coin()) {
      standardizer = FittedStandardizer<float>(RandomMatrix(model.InputSize(), 5, random.rng, -1.0f, 3.0f));
    }
    INFO("model " << m << ":\n" << model.Summary());
    cases.push_back(MakeCase(dir, "random " + std::to_string(m), model,
                             RandomMatrix(model.InputSize(), 3, random.rng, -1.5f, 1.5f), standardizer));
  }
  for (const auto& [type, name] : builtin) {
    INFO("built-in layer type " << name);
    CHECK(seen.count(type) == 1);
  }
  CHECK(depth_two > 0);  // blocks in blocks

  CheckAll(cases);
  const auto outputs = RunAll(dir, cases);
  if (!outputs) return;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].label);
    CHECK(dlb_test::TensorMismatch((*outputs)[i], cases[i].expected, 1e-4) == "");
  }
}

TEST_CASE("onnx export: names follow the state_dict and the layer paths; shapes NCHW with a "
          "dynamic batch") {
  dlb_test::TempDir dir("dlb_onnx_export_names_");
  ModelNN<float> resnet = dlb::MakeResNet<float>({}, 1);
  std::mt19937 rng(3);
  const Matrix<float> images = StandInImages(20, rng);
  dlb::OnnxExportOptions<float> options;
  options.standardizer = FittedStandardizer<float>(images);
  const dlb::OnnxExport written = dlb::ExportOnnx(resnet, dir / "resnet.onnx", options);
  CHECK(dlb::OnnxShapeText(written.input_shape) == "N x 1 x 28 x 28");
  CHECK(dlb::OnnxShapeText(written.output_shape) == "N x 10");

  // What the tools need no tool for: the bytes name every state_dict tensor.
  std::set<std::string> expected_initializers = {"input_mean", "input_std"};
  const dlb::StateDict state = resnet.SaveState();
  for (const auto& [name, tensor] : state.Entries()) {
    if (name.size() < 19 || name.substr(name.size() - 19) != "num_batches_tracked") {
      expected_initializers.insert(name);
      CHECK(written.bytes.find(name) != std::string::npos);
    }
  }
  CHECK(written.initializers == expected_initializers.size());
  if (!dlb_test::HaveOnnxChecker()) {
    WARN("[skipped] reading the names back: no python3 with the onnx module");
    return;
  }
  const nlohmann::json graph = Describe(dir / "resnet.onnx");
  CHECK(graph["ir_version"] == 8);
  CHECK(graph["opset"] == nlohmann::json::parse(R"([["", 17]])"));
  CHECK(graph["inputs"] == nlohmann::json::parse(R"([{"name": "input", "dims": ["N", 1, 28, 28]}])"));
  CHECK(graph["outputs"] == nlohmann::json::parse(R"([{"name": "output", "dims": ["N", 10]}])"));
  std::set<std::string> initializers;
  for (const auto& initializer : graph["initializers"]) initializers.insert(initializer["name"].get<std::string>());
  CHECK(initializers == expected_initializers);
  std::map<std::string, std::string> nodes;  // name -> op_type
  for (const auto& node : graph["nodes"]) nodes[node["name"].get<std::string>()] = node["op_type"].get<std::string>();
  CHECK(graph["nodes"].size() == written.nodes);
  CHECK(graph["nodes"][0]["name"] == "standardize:sub");
  CHECK(graph["nodes"][0]["op_type"] == "Sub");
  CHECK(graph["nodes"][1]["op_type"] == "Div");
  CHECK(nodes["conv1"] == "Conv");
  CHECK(nodes["bn1"] == "BatchNormalization");
  CHECK(nodes["layer1.0.conv1"] == "Conv");
  CHECK(nodes["layer1.0.relu"] == "Relu");    // the body's ReLU
  CHECK(nodes["layer1.0:add"] == "Add");      // the block's sum
  CHECK(nodes["layer1.0:relu"] == "Relu");    // and its activation
  CHECK(nodes["layer2.0.downsample.0"] == "Conv");
  CHECK(nodes["layer2.0.downsample.1"] == "BatchNormalization");
  CHECK(nodes["avgpool"] == "GlobalAveragePool");
  CHECK(nodes["avgpool:flatten"] == "Flatten");
  CHECK(nodes["fc"] == "Gemm");
  CHECK(graph["nodes"].back()["outputs"] == nlohmann::json::parse(R"(["output"])"));

  // A flat model: [N, F]; the Linear after a convolution reads the flattened sample.
  ModelNN<float> mixed(Shape(2, 3, 3), 2);
  mixed.Add("conv", dlb::Conv2D<float>(2, 2, 3, 1, 1)).Add("fc", dlb::Linear<float>(18, 4));
  dlb::ExportOnnx(mixed, dir / "mixed.onnx");
  const nlohmann::json mixed_graph = Describe(dir / "mixed.onnx");
  CHECK(mixed_graph["nodes"][1]["name"] == "fc:flatten");
  CHECK(mixed_graph["nodes"][2]["inputs"][0] == "fc:flatten");
  ModelNN<float> mlp = dlb::MakeMlp<float>(784, {8}, 10);
  dlb::ExportOnnx(mlp, dir / "mlp.onnx");
  CHECK(Describe(dir / "mlp.onnx")["inputs"] == nlohmann::json::parse(R"([{"name": "input", "dims": ["N", 784]}])"));
}

TEST_CASE("onnx export: a layer without an exporter is an error naming it; a user's exporter "
          "exports it; an exporter returning another shape is refused") {
  dlb_test::TempDir dir("dlb_onnx_export_user_");
  ModelNN<float> model(Shape(3), 1);
  model.Add("blk", dlb::Sequential<float>().Add(dlb::Linear<float>(3, 4)).Add(Scale{}));
  const std::string path = dir / "never.onnx";
  try {
    dlb::ExportOnnx(model, path);
    FAIL("exported a model with a layer that has no exporter");
  } catch (const dlb::ArgumentError& error) {
    INFO(error.what());
    CHECK(std::string(error.what()).find("blk.1 (Scale(2)) cannot be exported to ONNX") != std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(path));

  // Registered: Mul by a constant of its own.
  dlb::OnnxExporterRegistry<float> registry = dlb::DefaultOnnxExporters<float>();
  registry.Register<Scale>([](dlb::OnnxLayerWriter<float>& writer, Scale& layer, const dlb::OnnxValue& input) {
    const float factor[] = {layer.factor};
    const std::string constant = writer.Constant("factor", {}, factor);
    return writer.Node("", "Mul", {input.name, constant}, {}, input.shape, input.layout);
  });
  dlb::OnnxExportOptions<float> options;
  options.exporters = &registry;
  std::mt19937 rng(5);
  std::vector<Case> cases = {MakeCase(dir, "user layer", model, RandomMatrix(3, 4, rng),
                                      std::optional<dlb::Standardizer<float>>(), &options)};

  // An exporter that returns a value of another shape than the layer's output.
  dlb::OnnxExporterRegistry<float> faulty = dlb::DefaultOnnxExporters<float>();
  faulty.Register<Scale>([](dlb::OnnxLayerWriter<float>&, Scale&, const dlb::OnnxValue& input) {
    return dlb::OnnxValue{input.name, Shape(1), dlb::OnnxLayout::kFlat};
  });
  options.exporters = &faulty;
  CHECK_THROWS_WITH(dlb::ExportOnnx(model, path, options),
                    Catch::Contains("the exporter of blk.1 (Scale(2)) returned") &&
                        Catch::Contains("but the layer outputs 4"));
  CHECK_FALSE(std::filesystem::exists(path));

  // Other refusals: no layers, a standardizer of another size, an unfitted one.
  ModelNN<float> empty(Shape(3), 1);
  CHECK_THROWS_AS(dlb::ExportOnnxModel(empty), dlb::ShapeError);
  dlb::OnnxExportOptions<float> wrong;
  wrong.standardizer = FittedStandardizer<float>(RandomMatrix(5, 4, rng));
  CHECK_THROWS_WITH(dlb::ExportOnnxModel(model, wrong), Catch::Contains("the standardizer has 5 features"));
  wrong.standardizer = dlb::Standardizer<float>();
  CHECK_THROWS_WITH(dlb::ExportOnnxModel(model, wrong), Catch::Contains("never fitted"));
  ModelNN<double> huge(Shape(2), 1);
  huge.Add("fc", dlb::Linear<double>(2, 2));
  huge.LayerAt<dlb::Linear<double>>(0).Weight()(1, 0) = 1e300;
  CHECK_THROWS_WITH(dlb::ExportOnnxModel(huge), Catch::Contains("fc.weight holds") &&
                                                    Catch::Contains("not a finite float32"));

  // Edge layouts: a model of Dropout only (an Identity), one whose output is an image, a flat
  // input into a convolution.
  ModelNN<float> identity(Shape(2, 2, 2), 1);
  identity.Add(dlb::Dropout<float>(0.5f));
  cases.push_back(MakeCase(dir, "dropout only", identity, RandomMatrix(8, 2, rng)));
  ModelNN<float> image_out(Shape(4), 1);
  image_out.Add(dlb::Conv2D<float>(4, 3, 1)).Add(dlb::Tanh<float>());
  cases.push_back(MakeCase(dir, "flat into conv", image_out, RandomMatrix(4, 2, rng)));
  ModelNN<float> image_model(Shape(1, 4, 4), 1);
  image_model.Add(dlb::Conv2D<float>(1, 2, 3, 1, 1)).Add(dlb::AvgPool2D<float>(2));
  cases.push_back(MakeCase(dir, "image output", image_model, RandomMatrix(16, 2, rng)));
  CHECK(cases.back().expected.dims == std::vector<std::int64_t>{2, 2, 2, 2});

  CheckAll(cases);
  const auto outputs = RunAll(dir, cases);
  if (!outputs) return;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO(cases[i].label);
    CHECK(dlb_test::TensorMismatch((*outputs)[i], cases[i].expected, 1e-5) == "");
  }
}
