// ModelNN: chain validation, error reporting, parameters, seeding, modes, a whole-model
// gradient check, user-defined layers and the compile-time contracts.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/losses/loss.hpp"
#include "dlb/losses/mse.hpp"
#include "dlb/model/model.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/adamw.hpp"
#include "dlb/optimizers/momentum.hpp"
#include "dlb/optimizers/nesterov.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/optimizers/sgd.hpp"
#include "dlb/optimizers/update_rule.hpp"
#include "support/gradient_check.hpp"
#include "support/helpers.hpp"

using Catch::Matchers::Contains;
using dlb::ConstMatrixRef;
using dlb::Index;
using dlb::Labels;
using dlb::Matrix;
using dlb::Mode;
using dlb_test::RandomMatrix;
using dlb_test::What;

namespace {

/// A user-defined layer, unknown to the library: Y = s X with one trainable scalar s,
/// dL/ds = sum(dY .* X), dX = s dY. Fixed input size, so it can start a model.
template <dlb::Scalar T>
class Scale {
 public:
  using Scalar = T;
  explicit Scale(Index size) : size_(size), s_(Matrix<T>::Ones(1, 1)), ds_(Matrix<T>::Zero(1, 1)) {}
  std::string Name() const { return "Scale(" + std::to_string(size_) + ")"; }
  dlb::Shape OutputShape(const dlb::Shape& input) const {
    dlb::RequireInputSize(input, size_);
    return size_;
  }
  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    y.resize(x.rows(), x.cols());
    y = s_(0, 0) * x;
  }
  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    ds_(0, 0) = (dy.array() * x.array()).sum();
    if (dx != nullptr) *dx = s_(0, 0) * dy;
  }
  std::vector<dlb::Parameter<T>> Parameters() { return {{"scale", &s_, &ds_}}; }
  T Value() const { return s_(0, 0); }

 private:
  Index size_;
  Matrix<T> s_, ds_;
};

/// A user-defined element-wise layer with neither parameters nor Init: Y = -X.
template <dlb::Scalar T>
struct Negate {
  using Scalar = T;
  std::string Name() const { return "Negate"; }
  dlb::Shape OutputShape(const dlb::Shape& input) const { return input; }
  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode) { y = -x; }
  void Backward(const ConstMatrixRef<T>&, const ConstMatrixRef<T>&, const ConstMatrixRef<T>& dy,
                Matrix<T>* dx) {
    if (dx != nullptr) *dx = -dy;
  }
};

/// Not a layer: no Backward.
struct ForwardOnly {
  using Scalar = float;
  std::string Name() const { return "ForwardOnly"; }
  dlb::Shape OutputShape(const dlb::Shape&) const { return 1; }
  void Forward(const ConstMatrixRef<float>&, Matrix<float>&, Mode) {}
};

// Compile-time contracts.
static_assert(!dlb::Layer<int>);
static_assert(!dlb::Layer<ForwardOnly>);
static_assert(dlb::Layer<dlb::Linear<double>>);
static_assert(dlb::Layer<dlb::Linear<float>>);
static_assert(dlb::Layer<dlb::ReLU<float>> && dlb::Layer<dlb::LeakyReLU<float>> &&
              dlb::Layer<dlb::Sigmoid<float>> && dlb::Layer<dlb::Tanh<float>> &&
              dlb::Layer<dlb::Dropout<float>>);
static_assert(dlb::LayerWithParameters<dlb::Linear<float>>);
static_assert(!dlb::LayerWithParameters<dlb::ReLU<float>>);
static_assert(dlb::InitializableLayer<dlb::Dropout<float>>);
static_assert(dlb::Layer<Scale<float>> && dlb::LayerWithParameters<Scale<float>>);
static_assert(dlb::Layer<Negate<double>> && !dlb::InitializableLayer<Negate<double>>);
static_assert(dlb::UpdateRule<dlb::Adam<float>>);
static_assert(dlb::UpdateRule<dlb::SGD<double>> && dlb::UpdateRule<dlb::Momentum<float>> &&
              dlb::UpdateRule<dlb::Nesterov<float>> && dlb::UpdateRule<dlb::AdamW<double>>);
static_assert(!dlb::UpdateRule<int>);
static_assert(dlb::Loss<dlb::CrossEntropyLoss<float>>);
static_assert(dlb::Loss<dlb::MseLoss<double>>);
static_assert(!dlb::Loss<int>);

template <class T>
std::vector<Matrix<T>> ParameterValues(dlb::ModelNN<T>& model) {
  std::vector<Matrix<T>> values;
  for (const auto& p : model.Parameters()) values.push_back(*p.value);
  return values;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Building

TEST_CASE("ModelNN::Add rejects a chain that does not fit, naming layers and shapes") {
  dlb::ModelNN<float> model(784);
  REQUIRE_THROWS_MATCHES(model.Add(dlb::Linear<float>(785, 350)), dlb::ShapeError,
                         What(Contains("layer 0 (Linear(785 -> 350)) needs 785 input values "
                                       "per sample, got 784")));
  model.Add(dlb::Linear<float>(784, 350));
  REQUIRE_THROWS_MATCHES(model.Add(dlb::Linear<float>(300, 100)), dlb::ShapeError,
                         What(Contains("layer 1 (Linear(300 -> 100)) needs 300 input values "
                                       "per sample, got 350")));
  CHECK(model.NumLayers() == 1);  // the rejected layer was not added

  // The size an element-wise layer passes on is checked too.
  model.Add(dlb::ReLU<float>());
  REQUIRE_THROWS_MATCHES(model.Add(dlb::Linear<float>(349, 10)), dlb::ShapeError,
                         What(Contains("layer 2 (Linear(349 -> 10))") && Contains("got 350")));
  model.Add(dlb::Linear<float>(350, 10));
  CHECK(model.NumLayers() == 3);
  CHECK(model.InputSize() == 784);
  CHECK(model.OutputSize() == 10);
  CHECK(model.LayerName(2) == "Linear(350 -> 10)");
}

TEST_CASE("ModelNN: the input shape is stated once; shapes flow through element-wise layers") {
  REQUIRE_THROWS_MATCHES(dlb::ModelNN<float>(0), dlb::ArgumentError,
                         What(Contains("input shape must have every extent >= 1, got 0 x 1 x 1")));
  REQUIRE_THROWS_AS(dlb::ModelNN<float>(dlb::Shape(1, 0, 28)), dlb::ArgumentError);
  dlb::ModelNN<float> model(dlb::Shape(2, 3, 4));
  CHECK(model.NumLayers() == 0);
  CHECK(model.InputSize() == 24);
  CHECK(model.OutputShape() == dlb::Shape(2, 3, 4));
  // An element-wise first layer is fine now: the model knows its input shape.
  model.Add(dlb::ReLU<float>());
  CHECK(model.OutputShapeAt(0) == dlb::Shape(2, 3, 4));
  // Linear reads a C x H x W sample flattened, as PyTorch's Flatten + Linear.
  model.Add(dlb::Linear<float>(24, 5));
  CHECK(model.OutputShape() == dlb::Shape(5));
  CHECK(model.OutputShape().ToString() == "5");
  REQUIRE_THROWS_MATCHES(dlb::ModelNN<float>(dlb::Shape(2, 3, 4)).Add(dlb::Linear<float>(12, 5)),
                         dlb::ShapeError,
                         What(Contains("layer 0 (Linear(12 -> 5)) needs 12 input values per "
                                       "sample, got 2 x 3 x 4 = 24")));
}

TEST_CASE("ModelNN: Forward and Backward report misuse") {
  SECTION("empty model") {
    dlb::ModelNN<float> empty(3);
    REQUIRE_THROWS_MATCHES(empty.Forward(Matrix<float>::Zero(3, 2)), dlb::ShapeError,
                           What(Contains("no layers")));
    REQUIRE_THROWS_AS(empty.Backward(Matrix<float>::Zero(3, 2)), dlb::ShapeError);
  }
  dlb::ModelNN<float> model(784);
  model.Add(dlb::Linear<float>(784, 32)).Add(dlb::ReLU<float>()).Add(dlb::Linear<float>(32, 10));
  SECTION("Backward before any Forward") {
    REQUIRE_THROWS_MATCHES(model.Backward(Matrix<float>::Zero(10, 4)), dlb::Error,
                           What(Contains("before Forward")));
  }
  SECTION("wrong number of rows (an exception in every build type, not an assert)") {
    REQUIRE_THROWS_MATCHES(model.Forward(Matrix<float>::Zero(783, 4)), dlb::ShapeError,
                           What(Contains("783 x 4") && Contains("input shape 784 needs 784 rows")));
    REQUIRE_THROWS_AS(model.Forward(Matrix<float>::Zero(10, 4)), dlb::ShapeError);
  }
  SECTION("empty batch") {
    REQUIRE_THROWS_AS(model.Forward(Matrix<float>::Zero(784, 0)), dlb::ShapeError);
  }
  SECTION("Backward with a gradient that does not match the logits") {
    const Matrix<float> x = Matrix<float>::Zero(784, 4);
    const Matrix<float>& logits = model.Forward(x);
    CHECK(logits.rows() == 10);
    CHECK(logits.cols() == 4);
    REQUIRE_THROWS_MATCHES(model.Backward(Matrix<float>::Zero(10, 5)), dlb::ShapeError,
                           What(Contains("10 x 5") && Contains("10 x 4")));
    REQUIRE_THROWS_AS(model.Backward(Matrix<float>::Zero(9, 4)), dlb::ShapeError);
    CHECK_NOTHROW(model.Backward(Matrix<float>::Zero(10, 4)));
  }
  SECTION("Backward after Add needs a new Forward (the new layer has no activations)") {
    const Matrix<float> x = Matrix<float>::Zero(784, 4);
    model.Forward(x);
    model.Add(dlb::ReLU<float>());
    REQUIRE_THROWS_MATCHES(model.Backward(Matrix<float>::Zero(10, 4)), dlb::Error,
                           What(Contains("before Forward")));
    model.Forward(x);
    CHECK_NOTHROW(model.Backward(Matrix<float>::Zero(10, 4)));
  }
}

TEST_CASE("ModelNN: NumParameters and Parameters names for 784-350-250-150-50-10") {
  dlb::ModelNN<float> model(784, 1);
  const Index sizes[] = {784, 350, 250, 150, 50, 10};
  for (int i = 0; i < 5; ++i) {
    if (i > 0) model.Add(dlb::ReLU<float>());
    model.Add(dlb::Linear<float>(sizes[i], sizes[i + 1]));
  }
  CHECK(model.NumLayers() == 9);
  CHECK(model.NumParameters() ==
        784 * 350 + 350 + 350 * 250 + 250 + 250 * 150 + 150 + 150 * 50 + 50 + 50 * 10 + 10);
  const auto params = model.Parameters();
  REQUIRE(params.size() == 10);
  const char* names[] = {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight",
                         "4.bias",   "6.weight", "6.bias", "8.weight", "8.bias"};
  for (std::size_t k = 0; k < params.size(); ++k) {
    CHECK(params[k].name == names[k]);
    CHECK(params[k].value->rows() == params[k].grad->rows());
    CHECK(params[k].value->cols() == params[k].grad->cols());
  }
  CHECK(params[2].value->rows() == 250);
  CHECK(params[2].value->cols() == 350);
  CHECK(params[3].value->cols() == 1);
  CHECK(params[2].value == &model.LayerAt<dlb::Linear<float>>(2).Weight());
  const std::string summary = model.Summary();
  CHECK_THAT(summary, Contains("input") && Contains("Linear(784 -> 350)") &&
                          Contains("274750") && Contains("Total parameters: 408210"));
}

TEST_CASE("ModelNN::LayerAt returns the concrete layer or reports a wrong index or type") {
  dlb::ModelNN<float> model(3);
  model.Add(dlb::Linear<float>(3, 2)).Add(dlb::Sigmoid<float>());
  CHECK(model.LayerAt<dlb::Linear<float>>(0).Weight().cols() == 3);
  CHECK(model.LayerAt<dlb::Sigmoid<float>>(1).Name() == "Sigmoid");
  REQUIRE_THROWS_MATCHES(model.LayerAt<dlb::Tanh<float>>(1), dlb::Error,
                         What(Contains("layer 1 is Sigmoid")));
  REQUIRE_THROWS_AS(model.LayerAt<dlb::Linear<float>>(2), dlb::Error);
  REQUIRE_THROWS_AS(model.LayerAt<dlb::Linear<float>>(-1), dlb::Error);
}

// ---------------------------------------------------------------------------------------
// Seeding and modes

TEST_CASE("ModelNN: the seed determines the parameters; Init(seed) is reproducible") {
  auto build = [](dlb::ModelNN<float>& m) {
    m.Add(dlb::Linear<float>(6, 5)).Add(dlb::Tanh<float>()).Add(dlb::Linear<float>(5, 3));
  };
  dlb::ModelNN<float> a(6, 42), b(6, 42), c(6, 43);
  build(a);
  build(b);
  build(c);
  CHECK(ParameterValues(a) == ParameterValues(b));
  CHECK(ParameterValues(a)[0] != ParameterValues(c)[0]);
  CHECK(ParameterValues(a)[2] != ParameterValues(c)[2]);
  // The layers do not all get the same draws.
  CHECK(ParameterValues(a)[0].topLeftCorner(3, 5) != ParameterValues(a)[2]);

  const auto fresh = ParameterValues(a);
  a.Init(7);
  CHECK(ParameterValues(a) != fresh);
  c.Init(7);
  CHECK(ParameterValues(a) == ParameterValues(c));
  // Init(seed) redraws exactly what construction with that seed drew.
  a.Init(42);
  CHECK(ParameterValues(a) == fresh);
}

TEST_CASE("ModelNN: SetMode switches Dropout between training and inference") {
  dlb::ModelNN<float> model(4, 3);
  model.Add(dlb::Linear<float>(4, 200)).Add(dlb::Dropout<float>(0.5f));
  const Matrix<float> x = RandomMatrix<float>(4, 10, 5);
  Matrix<float> linear_out;
  model.LayerAt<dlb::Linear<float>>(0).Forward(x, linear_out, Mode::Inference);
  REQUIRE((linear_out.array() != 0.0f).all());

  CHECK(model.GetMode() == Mode::Train);  // the default
  const Matrix<float> train = model.Forward(x);
  const double dropped = static_cast<double>((train.array() == 0.0f).count()) / train.size();
  CHECK(dropped == Approx(0.5).margin(0.05));
  CHECK(((train.array() == 0.0f) || (train.array() == 2.0f * linear_out.array())).all());

  model.SetMode(Mode::Inference);
  CHECK(model.GetMode() == Mode::Inference);
  CHECK(model.Forward(x) == linear_out);

  // Dropout's generator is seeded from the model's seed: same seed, same masks.
  dlb::ModelNN<float> twin(4, 3);
  twin.Add(dlb::Linear<float>(4, 200)).Add(dlb::Dropout<float>(0.5f));
  CHECK(twin.Forward(x) == train);
}

// ---------------------------------------------------------------------------------------
// Gradients

TEST_CASE("ModelNN: whole-model gradient check (Linear-Tanh-Linear-ReLU-Linear + CE)") {
  dlb::ModelNN<double> model(5, 17);
  model.Add(dlb::Linear<double>(5, 6))
      .Add(dlb::Tanh<double>())
      .Add(dlb::Linear<double>(6, 4))
      .Add(dlb::ReLU<double>())
      .Add(dlb::Linear<double>(4, 3));
  // Non-zero biases, so that every term of the forward pass matters.
  std::uint64_t seed = 100;
  for (auto& p : model.Parameters()) {
    if (p.name.ends_with("bias")) *p.value = RandomMatrix<double>(p.value->rows(), 1, ++seed, -0.5, 0.5);
  }
  Matrix<double> x = RandomMatrix<double>(5, 7, 18, -2, 2);
  Labels y(7);
  y << 0, 2, 1, 1, 0, 2, 2;

  // Precondition: the ReLU's inputs are far from its kink compared with the step 2h = 2e-4.
  {
    Matrix<double> h1, h2, z2;
    model.LayerAt<dlb::Linear<double>>(0).Forward(x, h1, Mode::Train);
    h2 = h1.array().tanh().matrix();
    model.LayerAt<dlb::Linear<double>>(2).Forward(h2, z2, Mode::Train);
    REQUIRE(z2.cwiseAbs().minCoeff() > 1e-2);
    REQUIRE((z2.array() > 0).count() > 0);  // some units are active
  }

  dlb::CrossEntropyLoss<double> loss;
  auto objective = [&] { return loss.Value(model.Forward(x), y); };
  auto params = model.Parameters();
  std::vector<Matrix<double>> numeric;
  for (auto& p : params) numeric.push_back(dlb_test::NumericGradient(objective, *p.value));
  const Matrix<double> numeric_dx = dlb_test::NumericGradient(objective, x);

  Matrix<double> dlogits, dx;
  loss.Compute(model.Forward(x), y, dlogits);
  model.Backward(dlogits, &dx);
  for (std::size_t k = 0; k < params.size(); ++k) {
    dlb_test::CheckGradient(params[k].name, *params[k].grad, numeric[k]);
  }
  dlb_test::CheckGradient("model input", dx, numeric_dx);
}

TEST_CASE("ModelNN: a strided view of a larger matrix gives the same gradients as a copy") {
  // Forward keeps a view of its input for Backward; a block of rows 1..4 of an 7 x 9 matrix
  // has an outer stride of 7, not 4.
  auto build = [](dlb::ModelNN<double>& m) {
    m.Add(dlb::Linear<double>(4, 3)).Add(dlb::Sigmoid<double>()).Add(dlb::Linear<double>(3, 2));
  };
  dlb::ModelNN<double> a(4, 5), b(4, 5);
  build(a);
  build(b);
  const Matrix<double> big = RandomMatrix<double>(7, 9, 6);
  const Matrix<double> copy = big.block(1, 2, 4, 5);
  const Matrix<double> dlogits = RandomMatrix<double>(2, 5, 7);
  Matrix<double> dx_view, dx_copy;
  const Matrix<double> out_view = a.Forward(big.block(1, 2, 4, 5));
  a.Backward(dlogits, &dx_view);
  const Matrix<double> out_copy = b.Forward(copy);
  b.Backward(dlogits, &dx_copy);
  CHECK(out_view == out_copy);
  CHECK(dx_view == dx_copy);
  auto pa = a.Parameters(), pb = b.Parameters();
  for (std::size_t k = 0; k < pa.size(); ++k) CHECK(*pa[k].grad == *pb[k].grad);
}

// ---------------------------------------------------------------------------------------
// User-defined layers

TEST_CASE("ModelNN: a user-defined layer plugs in and trains") {
  // Learn Y = 2.5 X with one Scale layer (plus a parameterless user layer applied twice,
  // which must cancel) by minimising the MSE with the library's optimizer.
  dlb::ModelNN<double> model(3, 1);
  model.Add(Scale<double>(3)).Add(Negate<double>()).Add(Negate<double>());
  CHECK(model.NumParameters() == 1);
  REQUIRE(model.Parameters().size() == 1);
  CHECK(model.Parameters()[0].name == "0.scale");
  CHECK(model.LayerName(0) == "Scale(3)");

  const Matrix<double> x = RandomMatrix<double>(3, 20, 8);
  const Matrix<double> targets = 2.5 * x;
  dlb::MseLoss<double> loss;
  dlb::Optimizer optimizer(model, dlb::SGD<double>(0.5));  // from the model itself
  Matrix<double> dout;
  double first_loss = 0, last_loss = 0;
  for (int step = 0; step < 60; ++step) {
    last_loss = loss.Compute(model.Forward(x), targets, dout);
    if (step == 0) first_loss = last_loss;
    model.Backward(dout);
    optimizer.Step();
  }
  CHECK(first_loss > 0.1);
  CHECK(last_loss < 1e-10);
  CHECK(model.LayerAt<Scale<double>>(0).Value() == Approx(2.5).epsilon(1e-6));
}

// ---------------------------------------------------------------------------------------
// Input the model cannot keep a pointer to (run under ASan by `scripts/test`)

TEST_CASE("ModelNN::Forward copies expressions, transposes, row-major and strided input") {
  auto build = [](dlb::ModelNN<double>& m) {
    m.Add(dlb::Linear<double>(4, 3)).Add(dlb::Tanh<double>()).Add(dlb::Linear<double>(3, 2));
  };
  dlb::ModelNN<double> reference(4, 9), model(4, 9);
  build(reference);
  build(model);
  const Matrix<double> x = RandomMatrix<double>(4, 6, 10);
  const Matrix<double> dlogits = RandomMatrix<double>(2, 6, 11);
  Matrix<double> expected_dx;
  const Matrix<double> expected = reference.Forward(x);
  reference.Backward(dlogits, &expected_dx);

  auto check = [&](const Matrix<double>& out) {
    CHECK(out == expected);
    Matrix<double> dx;
    model.Backward(dlogits, &dx);  // reads the batch of the Forward above
    CHECK(dx == expected_dx);
  };
  SECTION("an expression (a temporary gone before Backward)") {
    const Matrix<float> x_float = x.cast<float>();
    const Matrix<double> rounded = x_float.cast<double>();
    const Matrix<double> out = model.Forward(x_float.cast<double>());
    Matrix<double> dx, dx_rounded;
    model.Backward(dlogits, &dx);
    reference.Forward(rounded);
    reference.Backward(dlogits, &dx_rounded);
    CHECK(dx == dx_rounded);
    CHECK(out == reference.Forward(rounded));
  }
  SECTION("a transpose") {
    const Matrix<double> xt = x.transpose();
    check(model.Forward(xt.transpose()));
  }
  SECTION("a live row-major matrix") {
    const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major = x;
    check(model.Forward(row_major));
  }
  SECTION("a map with an inner stride") {
    Matrix<double> wide(8, 6);
    for (Index i = 0; i < 4; ++i) wide.row(2 * i) = x.row(i);
    const Eigen::Map<const Matrix<double>, 0, Eigen::Stride<Eigen::Dynamic, 2>> strided(
        wide.data(), 4, 6, Eigen::Stride<Eigen::Dynamic, 2>(8, 2));
    check(model.Forward(strided));
  }
}

TEST_CASE("ModelNN::Forward(Forward(x)) on a square model is correct (no aliasing)") {
  dlb::ModelNN<double> model(5, 3);
  model.Add(dlb::Linear<double>(5, 5)).Add(dlb::Tanh<double>());
  const Matrix<double> x = RandomMatrix<double>(5, 4, 12);
  const Matrix<double> once = model.Forward(x);
  const Matrix<double> twice_expected = model.Forward(once);
  model.Forward(x);
  const Matrix<double> twice = model.Forward(model.Forward(x));
  CHECK(twice == twice_expected);
  Matrix<double> dx;
  model.Backward(Matrix<double>::Ones(5, 4), &dx);
  model.Forward(once);
  Matrix<double> dx_expected;
  model.Backward(Matrix<double>::Ones(5, 4), &dx_expected);
  CHECK(dx == dx_expected);
}

// ---------------------------------------------------------------------------------------
// Named state

TEST_CASE("ModelNN::SaveState names and lays out tensors as PyTorch's Sequential state_dict") {
  dlb::ModelNN<float> model(3, 4);
  model.Add(dlb::Linear<float>(3, 2)).Add(dlb::ReLU<float>()).Add(dlb::Dropout<float>(0.25f));
  auto& linear = model.LayerAt<dlb::Linear<float>>(0);
  linear.Weight() << 1, 2, 3, 4, 5, 6;
  linear.Bias() << 7, 8;
  const dlb::StateDict weights = model.SaveState();
  REQUIRE(weights.Size() == 2);
  CHECK(weights.Entries()[0].first == "0.weight");
  CHECK(weights.Entries()[1].first == "0.bias");
  const dlb::Tensor& w = weights.At("0.weight");
  CHECK(w.dtype == dlb::DType::F32);
  CHECK(w.shape == std::vector<std::int64_t>{2, 3});
  CHECK(w.Values<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});  // row-major, as torch
  CHECK(weights.At("0.bias").shape == std::vector<std::int64_t>{2});
  // The checkpoint scope adds what resuming needs: the dropout layer's generator.
  const dlb::StateDict checkpoint = model.SaveState(dlb::StateScope::Checkpoint);
  CHECK(checkpoint.Size() == 3);
  CHECK(checkpoint.At("2.generator").dtype == dlb::DType::U64);
}

TEST_CASE("ModelNN::LoadState restores bitwise, converts precision and rejects what does not fit") {
  auto build = [](std::uint64_t seed) {
    dlb::ModelNN<double> m(4, seed);
    m.Add(dlb::Linear<double>(4, 3)).Add(dlb::Dropout<double>(0.5)).Add(dlb::Linear<double>(3, 2));
    return m;
  };
  dlb::ModelNN<double> a = build(1), b = build(2);
  const Matrix<double> x = RandomMatrix<double>(4, 5, 13);
  const dlb::StateDict saved = a.SaveState(dlb::StateScope::Checkpoint);
  b.LoadState(saved, dlb::StateScope::Checkpoint);
  CHECK(ParameterValues(a) == ParameterValues(b));
  CHECK(a.Forward(x) == b.Forward(x));  // same dropout masks too: the generator came along

  SECTION("missing and unexpected names are reported together; nothing changes") {
    dlb::StateDict wrong;
    wrong.Insert("0.weight", saved.At("0.weight"));
    wrong.Insert("0.bias", saved.At("0.bias"));
    wrong.Insert("9.weight", saved.At("2.weight"));
    dlb::ModelNN<double> c = build(3);
    const auto before = ParameterValues(c);
    REQUIRE_THROWS_MATCHES(c.LoadState(wrong), dlb::StateError,
                           What(Contains("missing 2.weight, 2.bias") &&
                                Contains("unexpected 9.weight")));
    CHECK(ParameterValues(c) == before);
  }
  SECTION("a wrong shape or dtype names the tensor; nothing changes") {
    dlb::StateDict wrong = a.SaveState();
    *wrong.Find("2.bias") = dlb::Tensor::FromValues(dlb::DType::F64, {3}, std::vector<double>{1, 2, 3});
    dlb::ModelNN<double> c = build(3);
    const auto before = ParameterValues(c);
    REQUIRE_THROWS_MATCHES(c.LoadState(wrong), dlb::StateError,
                           What(Contains("state '2.bias': expected F32 or F64 [2], found F64 [3]")));
    CHECK(ParameterValues(c) == before);
    *wrong.Find("2.bias") = dlb::Tensor::FromValues(dlb::DType::I64, {2}, std::vector<std::int64_t>{1, 2});
    REQUIRE_THROWS_AS(c.LoadState(wrong), dlb::StateError);
    *wrong.Find("2.bias") = dlb::Tensor{dlb::DType::F64, {2}, std::vector<std::uint8_t>(3)};
    REQUIRE_THROWS_MATCHES(c.LoadState(wrong), dlb::StateError, What(Contains("3 bytes")));
    CHECK(ParameterValues(c) == before);
  }
  SECTION("float weights load into a double model and back") {
    dlb::ModelNN<float> f(4, 1);
    f.Add(dlb::Linear<float>(4, 3)).Add(dlb::Dropout<float>(0.5f)).Add(dlb::Linear<float>(3, 2));
    f.LoadState(a.SaveState());
    dlb::ModelNN<double> back = build(5);
    back.LoadState(f.SaveState());
    const auto av = ParameterValues(a), bv = ParameterValues(back);
    for (std::size_t k = 0; k < av.size(); ++k) {
      CHECK(bv[k] == av[k].cast<float>().cast<double>());
    }
  }
}
