// Models that are not a chain: Residual and Concat blocks, nested in Sequentials and in each
// other. Gradients in double (through the public layer check), torchvision's state names,
// shape errors naming the layer by its path, files and copies of nested models, the
// capabilities found through blocks, and moved-from models.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "dlb/layers/activations.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/builtin_layers.hpp"
#include "dlb/model/concat.hpp"
#include "dlb/model/model.hpp"
#include "dlb/model/residual.hpp"
#include "dlb/model/resnet.hpp"
#include "dlb/model/sequential.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/serialization/model_file.hpp"
#include "dlb/testing/check_layer.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

using dlb::Concat;
using dlb::Conv2D;
using dlb::Conv2DOptions;
using dlb::Index;
using dlb::Matrix;
using dlb::Residual;
using dlb::Sequential;
using dlb::Shape;
using dlb_test::MessageContains;

namespace {

/// A residual block whose body holds a Concat, and whose shortcut has parameters.
template <dlb::Scalar T>
Residual<T> ResidualWithConcat(Index channels) {
  Sequential<T> body;
  body.Add("mix", Concat<T>()
                      .Add("narrow", Conv2D<T>(channels, 1, 1))
                      .Add("wide", Sequential<T>()
                                       .Add(Conv2D<T>(Conv2DOptions(channels, 2, 3).Padding(1)))
                                       .Add(dlb::Tanh<T>())))
      .Add("bn", dlb::BatchNorm2D<T>(3));
  Sequential<T> shortcut;
  shortcut.Add(Conv2D<T>(Conv2DOptions(channels, 3, 1).Bias(false)));
  return Residual<T>(std::move(body), std::move(shortcut),
                     dlb::ResidualOptions().Activation(dlb::Activation::Tanh));
}

}  // namespace

TEST_CASE("blocks nested twice pass the layer check: a residual around a concat, a concat of residuals",
          "[blocks]") {
  // Sequential > Residual (shortcut with parameters) > Sequential > Concat > Sequential.
  Sequential<double> outer;
  outer.Add("block", ResidualWithConcat<double>(2)).Add("act", dlb::ReLU<double>());
  const auto report = dlb::testing::CheckLayer(std::move(outer), Shape(2, 4, 4));
  CHECK(report.worst_gradient_error < 1e-6);

  // Concat > Residual (identity) > Sequential, and Concat > Sequential > Residual.
  Concat<double> branches;
  branches
      .Add("left", Residual<double>(Sequential<double>().Add(Conv2D<double>(Conv2DOptions(2, 2, 3).Padding(1))).Add(dlb::Tanh<double>()),
                                    dlb::ResidualOptions().Activation(dlb::Activation::None)))
      .Add("right", Sequential<double>().Add(ResidualWithConcat<double>(2)));
  CHECK(dlb::testing::CheckLayer(std::move(branches), Shape(2, 3, 3)).worst_gradient_error < 1e-6);
}

TEST_CASE("a residual block computes f(body(x) + shortcut(x)), identity or not", "[blocks]") {
  const Matrix<float> x = dlb_test::RandomMatrix<float>(8, 3, 5);
  dlb::Linear<float> body_layer(8, 8);
  Residual<float> identity(Sequential<float>().Add(body_layer));
  identity.SetInputShape(Shape(8));
  Matrix<float> y;
  identity.Forward(x, y, dlb::Mode::Train);
  Matrix<float> body_out;
  body_layer.Forward(x, body_out, dlb::Mode::Train);
  CHECK(y.isApprox(Matrix<float>((body_out + x).cwiseMax(0.0f))));
  CHECK(identity.Name() == "Residual(identity, relu)");
}

TEST_CASE("a ResNet's state has torchvision's names and the documented size", "[blocks]") {
  dlb::ModelNN<float> model = dlb::MakeResNet<float>();
  CHECK(model.NumParameters() == 174970);
  std::vector<std::string> names;
  for (const auto& ref : model.State()) names.push_back(ref.name);
  for (const char* name : {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
                           "layer1.1.bn2.num_batches_tracked", "layer2.0.downsample.0.weight",
                           "layer2.0.downsample.1.running_mean", "layer3.1.conv2.weight",
                           "fc.weight", "fc.bias"}) {
    INFO(name);
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
  }
  // No bias on the convolutions, no shortcut in stage 1 (identity).
  CHECK(std::find(names.begin(), names.end(), "conv1.bias") == names.end());
  CHECK(std::find(names.begin(), names.end(), "layer1.0.downsample.0.weight") == names.end());
  CHECK(model.OutputShapeAt(model.NumLayers() - 1) == Shape(10));
  CHECK(model.LayerAt<dlb::BatchNorm2D<float>>("layer2.0.downsample.1").Size() == 32);
}

TEST_CASE("a layer that does not fit inside a block is named by its path", "[blocks]") {
  dlb::ModelNN<float> model(Shape(4, 8, 8));
  Sequential<float> stage;
  stage.Add(Residual<float>(Sequential<float>()
                                .Add("conv1", Conv2D<float>(Conv2DOptions(4, 8, 3).Padding(1)))
                                .Add("conv2", Conv2D<float>(Conv2DOptions(16, 8, 3).Padding(1)))));
  REQUIRE_THROWS_MATCHES(model.Add("layer1", std::move(stage)), dlb::ShapeError,
                         MessageContains({"ModelNN::Add: layer1.0.conv2 (Conv2D(16 -> 8, 3x3, padding 1)) "
                                          "needs 16 input channels, got 8 x 8 x 8"}));
  CHECK(model.NumLayers() == 0);

  // Body and identity shortcut of different shapes.
  REQUIRE_THROWS_MATCHES(
      model.Add(Residual<float>(Sequential<float>().Add(Conv2D<float>(4, 6, 1)))),
      dlb::ShapeError,
      MessageContains({"layer 0 (Residual(identity, relu)) adds a body output of 6 x 8 x 8 to a "
                       "shortcut output of 4 x 8 x 8 (the identity: the input)"}));
  // Concat branches of different planes.
  REQUIRE_THROWS_MATCHES(model.Add("cat", Concat<float>().Add(Conv2D<float>(4, 2, 1)).Add(Conv2D<float>(4, 2, 3))),
                         dlb::ShapeError,
                         MessageContains({"cat (Concat(2 branches)) cannot stack branch '1' (2 x 6 x 6)"}));
  // Names: repeated, or not a name.
  REQUIRE_THROWS_MATCHES(Sequential<float>().Add("a", dlb::ReLU<float>()).Add("a", dlb::ReLU<float>()),
                         dlb::ArgumentError, MessageContains({"two layers are named 'a'"}));
  REQUIRE_THROWS_MATCHES(model.Add("x.y", dlb::ReLU<float>()), dlb::ArgumentError,
                         MessageContains({"'x.y' is not 1 to 64 letters, digits, '_' or '-'"}));
}

TEST_CASE("a block inside a model takes no more layers", "[blocks]") {
  dlb::ModelNN<float> model(Shape(3));
  model.Add("block", Sequential<float>().Add(dlb::Linear<float>(3, 3)));
  auto& block = model.LayerAt<Sequential<float>>("block");
  REQUIRE_THROWS_MATCHES(block.Add(dlb::ReLU<float>()), dlb::Error,
                         MessageContains({"already has an input shape"}));
}

TEST_CASE("a nested model saves and loads bit for bit, and copies", "[blocks]") {
  dlb_test::TempDir dir("dlb_test_blocks_");
  dlb::ModelNN<float> model = dlb::MakeResNet<float>({.input = Shape(1, 8, 8), .classes = 3,
                                                      .widths = {4, 6}, .blocks_per_stage = 2}, 7);
  model.Add("extra", Concat<float>().Add(dlb::Linear<float>(3, 2)).Add(dlb::Linear<float>(3, 1)));
  // Train one step so that the batch norms' statistics are not their initial values.
  const Matrix<float> x = dlb_test::RandomMatrix<float>(64, 6, 3);
  dlb::Optimizer optimizer(model, dlb::Adam<float>(1e-2f));
  model.Forward(x);
  model.Backward(Matrix<float>::Ones(3, 6));
  optimizer.Step();
  model.SetMode(dlb::Mode::Inference);
  const Matrix<float> expected = model.Forward(x);

  const std::string path = dir / "resnet.safetensors";
  dlb::Save(model, path);
  dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(path);
  CHECK(loaded.Model().Summary() == model.Summary());
  CHECK((loaded.predictor.Predict(x).array() == expected.array()).all());

  dlb::ModelNN<float> other = dlb::MakeResNet<float>({.input = Shape(1, 8, 8), .classes = 3,
                                                      .widths = {4, 6}, .blocks_per_stage = 2}, 99);
  other.Add("extra", Concat<float>().Add(dlb::Linear<float>(3, 2)).Add(dlb::Linear<float>(3, 1)));
  dlb::LoadWeights(other, path);
  other.SetMode(dlb::Mode::Inference);
  CHECK((other.Forward(x).array() == expected.array()).all());

  dlb::ModelNN<float> copy = model.Clone();
  CHECK((copy.Forward(x).array() == expected.array()).all());

  // A model with another block structure is refused, naming where it differs.
  dlb::ModelNN<float> shallower = dlb::MakeResNet<float>({.input = Shape(1, 8, 8), .classes = 3,
                                                          .widths = {4, 6}, .blocks_per_stage = 1}, 7);
  shallower.Add("extra", Concat<float>().Add(dlb::Linear<float>(3, 2)).Add(dlb::Linear<float>(3, 1)));
  REQUIRE_THROWS_MATCHES(dlb::LoadWeights(shallower, path), dlb::FileError,
                         MessageContains({"does not match the file's architecture: block layer1 has 2 "
                                          "layers, this one 1"}));
}

namespace {
/// A normalisation layer of a user: it takes part in data-parallel statistics by having
/// SetStatisticsReducer, whatever its type name.
template <dlb::Scalar T>
struct UserNorm : dlb::ElementwiseLayer {
  using Scalar = T;
  std::string Name() const { return "UserNorm"; }
  void Forward(const dlb::ConstMatrixRef<T>& x, dlb::Matrix<T>& y, dlb::Mode) { y = x; }
  void Backward(const dlb::ConstMatrixRef<T>&, const dlb::ConstMatrixRef<T>&,
                const dlb::ConstMatrixRef<T>& dy, dlb::Matrix<T>* dx) {
    if (dx) *dx = dy;
  }
  void SetStatisticsReducer(dlb::StatisticsReducer reducer) { has_reducer = bool(reducer); }
  bool has_reducer = false;
};
}  // namespace

TEST_CASE("capabilities are found inside blocks, whatever the layer's type name", "[blocks]") {
  dlb::ModelNN<float> model = dlb::MakeResNet<float>({.input = Shape(1, 8, 8), .classes = 3,
                                                      .widths = {4, 6}, .blocks_per_stage = 1});
  model.Add("norm", Sequential<float>().Add(UserNorm<float>()));
  int reducers = 0;
  model.VisitLayers([&](const std::string&, dlb::internal::AnyLayer<float>& layer, int) {
    if (layer.SetStatisticsReducer([](double*, Index) {})) ++reducers;
  });
  // bn1, 2 x (bn1, bn2) and one downsample batch norm, and the user's layer.
  CHECK(reducers == 1 + 4 + 1 + 1);
  CHECK(model.LayerAt<UserNorm<float>>("norm.0").has_reducer);
}

TEST_CASE("a moved-from model and block are valid to reuse", "[blocks]") {
  dlb::ModelNN<float> model(Shape(3));
  model.Add(dlb::Linear<float>(3, 2));
  dlb::ModelNN<float> moved = std::move(model);
  CHECK(moved.NumLayers() == 1);
  // The moved-from model takes layers and optimizers again.
  model.Add(dlb::Linear<float>(1, 2));  // NOLINT(bugprone-use-after-move): the point of the test
  dlb::Optimizer optimizer(model, dlb::Adam<float>(1e-3f));
  model.Forward(Matrix<float>::Ones(1, 2));
  model.Backward(Matrix<float>::Ones(2, 2));
  optimizer.Step();
  moved = std::move(model);
  CHECK(moved.InputSize() == 1);
  CHECK(model.NumLayers() == 0);  // NOLINT(bugprone-use-after-move)

  Residual<float> block(Sequential<float>().Add(dlb::Linear<float>(2, 2)));
  Residual<float> taken = std::move(block);
  CHECK(block.Name() == "Residual(identity, relu)");  // NOLINT(bugprone-use-after-move)
  CHECK(block.Parameters().empty());
}

TEST_CASE("a batch norm followed by a ReLU runs fused: bit for bit the two layers run alone",
          "[blocks][fusion]") {
  const Shape shape(3, 4, 4);
  const Matrix<double> x = dlb_test::RandomMatrix<double>(shape.Size(), 6, 1, -2.0, 3.0);
  const Matrix<double> dy = dlb_test::RandomMatrix<double>(shape.Size(), 6, 2);
  for (const dlb::Mode mode : {dlb::Mode::Train, dlb::Mode::Inference}) {
    // The reference: the two layers, each run by hand.
    dlb::BatchNorm2D<double> bn(3);
    dlb::ReLU<double> relu;
    bn.SetInputShape(shape);
    bn.Weight() << 1.5, -0.5, 1.0;
    bn.Bias() << 0.25, 0.0, -0.5;
    Matrix<double> normalized, y, relu_grad, dx;
    bn.Forward(x, normalized, mode);
    relu.Forward(normalized, y, mode);
    relu.Backward(normalized, y, dy, &relu_grad);
    bn.Backward(x, normalized, relu_grad, &dx);

    // The same two layers in a chain, which fuses them.
    Sequential<double> chain;
    chain.Add("bn", bn).Add("relu", relu);
    chain.SetInputShape(shape);
    Matrix<double> chain_y, chain_dx;
    chain.Forward(x, chain_y, mode);
    chain.Backward(x, chain_y, dy, &chain_dx);
    CHECK((chain_y.array() > 0).count() > 0);   // the ReLU cuts some values, not all
    CHECK((chain_y.array() == 0).count() > 0);
    CHECK(chain_y == y);
    CHECK(chain_dx == dx);
    const auto expected = bn.Parameters();
    const auto got = chain.Parameters();
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(*got[i].grad == *expected[i].grad);
  }

  // In a model the pair is fused as it is added, and Summary() says so; a batch norm does not
  // fuse a Tanh (the chain then runs both layers).
  dlb::ModelNN<double> model(shape, 1);
  model.Add("bn1", dlb::BatchNorm2D<double>(3)).Add("relu", dlb::ReLU<double>())
       .Add("bn2", dlb::BatchNorm2D<double>(3)).Add("tanh", dlb::Tanh<double>());
  CHECK(model.LayerAt<dlb::BatchNorm2D<double>>("bn1").FusedActivation() == dlb::Activation::ReLU);
  CHECK(model.LayerAt<dlb::BatchNorm2D<double>>("bn2").FusedActivation() == dlb::Activation::None);
  const std::string summary = model.Summary();
  CHECK(summary.find("ReLU (fused into bn1)") != std::string::npos);
  CHECK(summary.find("Tanh (fused") == std::string::npos);

  // A copy of the fused batch norm, put in a chain with no ReLU after it, applies none.
  Sequential<double> alone;
  alone.Add("bn", model.LayerAt<dlb::BatchNorm2D<double>>("bn1"));
  alone.SetInputShape(shape);
  Matrix<double> alone_y;
  alone.Forward(x, alone_y, dlb::Mode::Train);
  CHECK((alone_y.array() < 0).count() > 0);

  // Gradients through the fused pair, in a chain with parameters before and after it (the
  // convolution before the batch norm without a bias, as in a ResNet: batch norm removes any
  // constant, so that bias's gradient is 0 and a difference quotient of it only noise).
  Sequential<double> net;
  net.Add(Conv2D<double>(Conv2DOptions(2, 3, 3).Padding(1).Bias(false)))
      .Add(dlb::BatchNorm2D<double>(3))
      .Add(dlb::ReLU<double>())
      .Add(Conv2D<double>(3, 2, 1));
  CHECK(dlb::testing::CheckLayer(std::move(net), Shape(2, 4, 4)).worst_gradient_error < 1e-6);
}

namespace {

/// The values of two matrices are the same, bit for bit (a NaN equals a NaN of the same bits).
template <class T>
bool SameBits(const Matrix<T>& a, const Matrix<T>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.size())) == 0;
}

/// Batch norm, optionally ReLU, and max-pooling over `kernel` windows, run as layers apart by
/// hand and as a chain (which fuses them into the batch norm): the same output, bit for bit,
/// and the same gradients up to `tolerance` (relative; the fused backward adds the terms of a
/// maximum's gradient in another order). With `check_backward` false (inputs with NaN), only
/// the forward.
template <class T>
void CheckFusedPooling(const Shape& input, dlb::Size2D kernel, const Matrix<T>& x, bool with_relu,
                       dlb::Mode mode, double tolerance, bool check_backward = true) {
  INFO(input.ToString() << ", kernel " << kernel.ToString() << ", ReLU " << with_relu << ", mode "
                        << int(mode));
  // The reference: the layers, each run by hand.
  dlb::BatchNorm2D<T> bn(input.channels);
  dlb::ReLU<T> relu;
  dlb::MaxPool2D<T> pool(kernel);
  bn.SetInputShape(input);
  pool.SetInputShape(input);
  for (dlb::Index c = 0; c < input.channels; ++c) {
    bn.Weight()(c, 0) = T(1.5) - T(c % 3);  // 1.5, 0.5, -0.5, ...
    bn.Bias()(c, 0) = T(0.25) * T(c % 2);
  }
  const Shape pooled = pool.OutputShape(input);
  const Matrix<T> dy = dlb_test::RandomMatrix<T>(pooled.Size(), x.cols(), 2);
  Matrix<T> normalized, activated, y, pool_grad, relu_grad, dx;
  bn.Forward(x, normalized, mode);
  if (with_relu) relu.Forward(normalized, activated, mode);
  const Matrix<T>& pool_input = with_relu ? activated : normalized;
  pool.Forward(pool_input, y, mode);

  // The same layers in a chain, which fuses them into the batch norm.
  Sequential<T> chain;
  chain.Add("bn", bn);
  if (with_relu) chain.Add("relu", relu);
  chain.Add("pool", pool);
  chain.SetInputShape(input);
  const auto& fused = *chain.Children()[0].layer;
  REQUIRE(fused.FusedMaxPool() == pool.Window());
  Matrix<T> chain_y, chain_dx;
  chain.Forward(x, chain_y, mode);
  CHECK(SameBits(chain_y, y));  // the same values compared the same way
  if (!check_backward) return;
  pool.Backward(pool_input, y, dy, &pool_grad);
  if (with_relu) relu.Backward(normalized, activated, pool_grad, &relu_grad);
  bn.Backward(x, normalized, with_relu ? relu_grad : pool_grad, &dx);
  chain.Backward(x, chain_y, dy, &chain_dx);
  REQUIRE(chain_dx.rows() == dx.rows());
  CHECK((chain_dx - dx).cwiseAbs().maxCoeff() <= tolerance * (1 + dx.cwiseAbs().maxCoeff()));
  const auto expected = bn.Parameters();
  const auto got = chain.Parameters();
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK((*got[i].grad - *expected[i].grad).cwiseAbs().maxCoeff() <=
          tolerance * (1 + expected[i].grad->cwiseAbs().maxCoeff()));
  }
}

}  // namespace

TEST_CASE("a batch norm followed by a ReLU and a max-pooling runs fused: the layers run alone",
          "[blocks][fusion]") {
  // 7 x 6 planes under 2 x 2 windows: the last row is in no window (its gradient is the batch
  // norm's alone); 5 x 7 planes leave a column out; a 3 x 2 window shows that rectangles fuse.
  // 8 x 10 and 6 x 20 planes take the vector kernels of 2 x 2 windows (dlb/core/max_pool_2x2.hpp:
  // 5 and 10 windows a row, in groups of 4 and 8 that overlap at the row's end).
  const Shape shape(3, 7, 6);
  for (const auto& [input, kernel] :
       {std::pair{shape, dlb::Size2D(2)}, std::pair{Shape(3, 5, 7), dlb::Size2D(2)},
        std::pair{shape, dlb::Size2D(3, 2)}, std::pair{Shape(3, 8, 10), dlb::Size2D(2)},
        std::pair{Shape(2, 6, 20), dlb::Size2D(2)}}) {
    const Matrix<double> x = dlb_test::RandomMatrix<double>(input.Size(), 5, 1, -2.0, 3.0);
    for (const bool with_relu : {true, false}) {
      for (const dlb::Mode mode : {dlb::Mode::Train, dlb::Mode::Inference}) {
        CheckFusedPooling(input, kernel, x, with_relu, mode, 1e-12);
      }
    }
  }
}

TEST_CASE("the fused 2 x 2 max-pooling keeps torch's ties and NaN rule in float",
          "[blocks][fusion]") {
  // Inputs on a grid of quarters, so that windows hold equal values (the first maximum wins),
  // and in inference NaN inputs (a NaN wins, the window's last); 28 x 28 is the CNN's first
  // pooling, 14 x 14 its second.
  for (const Shape& input : {Shape(2, 8, 8), Shape(3, 6, 20), Shape(2, 28, 28), Shape(2, 14, 14)}) {
#if defined(__GNUC__) || defined(__clang__)
    REQUIRE(dlb::internal::MaxPool2x2Fits(dlb::MaxPool2D<float>(2).Window(), input.height,
                                          input.width));
#endif
    Matrix<float> x = dlb_test::RandomMatrix<float>(input.Size(), 4, 3, -2.0, 2.0);
    x = (x.array() * 4).round() / 4;
    for (const bool with_relu : {true, false}) {
      CheckFusedPooling(input, dlb::Size2D(2), x, with_relu, dlb::Mode::Train, 1e-5);
      Matrix<float> with_nan = x;
      for (dlb::Index i = 0; i < with_nan.size(); i += 7) with_nan.data()[i] = NAN;
      CheckFusedPooling(input, dlb::Size2D(2), with_nan, with_relu, dlb::Mode::Inference, 0,
                        /*check_backward=*/false);
    }
  }
}

TEST_CASE("a chain fuses a batch norm, ReLU and max-pooling as they are added, non-overlapping windows only",
          "[blocks][fusion]") {
  const Shape shape(3, 7, 6);
  // In a model the three are fused as they are added, and Summary() says so; windows that
  // overlap (3 x 3, stride 2) are not fused (the chain then runs the pooling itself).
  const Matrix<double> x = dlb_test::RandomMatrix<double>(shape.Size(), 5, 1, -2.0, 3.0);
  dlb::ModelNN<double> model(shape, 1);
  model.Add("bn1", dlb::BatchNorm2D<double>(3)).Add("relu1", dlb::ReLU<double>())
       .Add("pool1", dlb::MaxPool2D<double>(2))
       .Add("bn2", dlb::BatchNorm2D<double>(3)).Add("pool2", dlb::MaxPool2D<double>(3, 2));
  CHECK(model.LayerAt<dlb::BatchNorm2D<double>>("bn1").FusedMaxPool().has_value());
  CHECK_FALSE(model.LayerAt<dlb::BatchNorm2D<double>>("bn2").FusedMaxPool().has_value());
  const std::string summary = model.Summary();
  INFO(summary);
  CHECK(summary.find("ReLU (fused into bn1)") != std::string::npos);
  CHECK(summary.find("MaxPool2D(2x2) (fused into bn1)") != std::string::npos);
  CHECK(summary.find("MaxPool2D(3x3, stride 2) (fused") == std::string::npos);
  model.SetLayerTiming(true);
  model.Forward(Matrix<double>(x));
  model.Backward(Matrix<double>::Ones(3, x.cols()));
  for (const dlb::LayerTime& row : model.LayerTimes()) {
    INFO(row.path);
    CHECK(row.fused_into == (row.path == "relu1" || row.path == "pool1" ? "bn1" : ""));
  }

  // Gradients through the fused layers, with parameters before and after them.
  Sequential<double> net;
  net.Add(Conv2D<double>(Conv2DOptions(2, 3, 3).Padding(1).Bias(false)))
      .Add(dlb::BatchNorm2D<double>(3))
      .Add(dlb::ReLU<double>())
      .Add(dlb::MaxPool2D<double>(2))
      .Add(Conv2D<double>(3, 2, 1));
  CHECK(dlb::testing::CheckLayer(net, Shape(2, 6, 4)).worst_gradient_error < 1e-6);
  // 8 x 8 planes: the vector kernels of 2 x 2 windows.
  CHECK(dlb::testing::CheckLayer(std::move(net), Shape(2, 8, 8)).worst_gradient_error < 1e-6);
}

TEST_CASE("ModelNN::SetLayerTiming times every layer's passes, blocks and their layers included",
          "[blocks]") {
  dlb::ModelNN<float> model = dlb::MakeResNet<float>(
      {.input = Shape(1, 8, 8), .classes = 3, .widths = {4, 8}, .blocks_per_stage = 1}, 5);
  const dlb::Matrix<float> x = dlb_test::RandomMatrix<float>(64, 6, 3);
  const dlb::Matrix<float> dlogits = dlb_test::RandomMatrix<float>(3, 6, 4);
  const auto step = [&] {
    model.Forward(x);
    model.Backward(dlogits);
  };
  step();
  for (const dlb::LayerTime& row : model.LayerTimes()) {
    CHECK(row.times.forward_calls == 0);  // untimed until SetLayerTiming(true)
  }

  model.SetLayerTiming(true);
  for (int k = 0; k < 3; ++k) step();
  const std::vector<dlb::LayerTime> rows = model.LayerTimes();
  REQUIRE(rows.size() > 10);
  std::size_t fused = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const dlb::LayerTime& row = rows[i];
    INFO(row.path << " " << row.name);
    if (row.times.forward_calls == 0) {
      // Only an activation that the batch norm before it applies.
      CHECK(row.name.rfind("ReLU", 0) == 0);
      CHECK(row.fused_into == rows[i - 1].path);
      CHECK(row.times.backward_calls == 0);
      ++fused;
      continue;
    }
    CHECK(row.fused_into.empty());
    CHECK(row.times.forward_calls == 3);
    CHECK(row.times.backward_calls == 3);
    CHECK(row.times.forward_seconds > 0);
    // A block's time includes its children's (the rows after it, one level deeper).
    double children = 0;
    for (std::size_t j = i + 1; j < rows.size() && rows[j].depth > row.depth; ++j) {
      if (rows[j].depth == row.depth + 1) children += rows[j].times.forward_seconds;
    }
    CHECK(row.times.forward_seconds >= children);
  }
  CHECK(fused >= 3);  // the stem's ReLU and each block's relu after bn1
  const auto find = [&](const std::string& path) {
    for (const dlb::LayerTime& row : rows) {
      if (row.path == path) return row;
    }
    FAIL("no row " << path);
    return dlb::LayerTime{};
  };
  CHECK(find("layer1.0.conv1").depth == 2);  // model > layer1 > 0 > conv1
  CHECK(find("layer2.0.downsample.0").times.backward_calls == 3);

  const std::string table = dlb::FormatLayerTimes(rows);
  CHECK_THAT(table, Catch::Contains("layer1.0.conv1") &&
                        Catch::Contains("layer1.0.relu") && Catch::Contains("fused into layer1.0.bn1") &&
                        Catch::Contains("all layers"));

  // Off: the times stay; on again: from zero.
  model.SetLayerTiming(false);
  step();
  CHECK(model.LayerTimes().front().times.forward_calls == 3);
  model.SetLayerTiming(true);
  CHECK(model.LayerTimes().front().times.forward_calls == 0);
  step();
  CHECK(model.LayerTimes().front().times.forward_calls == 1);
}
