// Layers: forward values by hand, gradient checks in double, initialisation statistics,
// dropout statistics and argument validation.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "dlb/core/error.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/sign_select.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/linear.hpp"
#include "support/gradient_check.hpp"
#include "support/helpers.hpp"

using dlb::Index;
using dlb::Matrix;
using dlb::Mode;
using dlb_test::CheckLayerGradients;
using dlb_test::RandomAwayFromZero;
using dlb_test::RandomMatrix;

namespace {

/// Sample mean and standard deviation of all entries.
std::pair<double, double> MeanStd(const Matrix<float>& m) {
  const Matrix<double> d = m.cast<double>();
  const double mean = d.mean();
  const double var = (d.array() - mean).square().sum() / static_cast<double>(d.size() - 1);
  return {mean, std::sqrt(var)};
}

}  // namespace

TEST_CASE("gradient checker: accepts an exact gradient and rejects a slightly wrong one") {
  // f(x) = sum_i sin(x_i) x_i^2, df/dx_i = cos(x_i) x_i^2 + 2 x_i sin(x_i).
  Matrix<double> x = RandomMatrix<double>(3, 2, 1);
  auto f = [&] { return (x.array().sin() * x.array().square()).sum(); };
  const Matrix<double> exact =
      (x.array().cos() * x.array().square() + 2 * x.array() * x.array().sin()).matrix();
  const Matrix<double> numeric = dlb_test::NumericGradient(f, x);
  double worst = 0;
  for (Index i = 0; i < exact.size(); ++i) {
    worst = std::max(worst, dlb_test::RelativeError(exact(i), numeric(i)));
  }
  CHECK(worst < 1e-9);
  // An error of 1e-4 relative in one entry is well above the 1e-6 bound the checks use.
  Matrix<double> wrong = exact;
  wrong(3) *= 1 + 1e-4;
  CHECK(dlb_test::RelativeError(wrong(3), numeric(3)) > 1e-6);
}

// ---------------------------------------------------------------------------------------
// Linear

TEST_CASE("Linear: shapes follow W (out x in), b (out x 1), Z (out x batch)") {
  dlb::Linear<float> layer(5, 3);
  CHECK(layer.Weight().rows() == 3);
  CHECK(layer.Weight().cols() == 5);
  CHECK(layer.Bias().rows() == 3);
  CHECK(layer.Bias().cols() == 1);
  CHECK(layer.OutputShape(5) == dlb::Shape(3));
  CHECK(layer.OutputShape(dlb::Shape(5, 1, 1)) == dlb::Shape(3));
  REQUIRE_THROWS_MATCHES(layer.OutputShape(dlb::Shape(2, 2, 2)), dlb::ShapeError,
                         dlb_test::What(Catch::Matchers::Contains(
                             "needs 5 input values per sample, got 2 x 2 x 2 = 8")));
  CHECK(layer.Name() == "Linear(5 -> 3)");
  auto params = layer.Parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "weight");
  CHECK(params[1].name == "bias");
  CHECK(params[0].value == &layer.Weight());
  CHECK(params[1].value == &layer.Bias());
  CHECK(params[0].grad->rows() == 3);
  CHECK(params[0].grad->cols() == 5);
  CHECK(params[1].grad->rows() == 3);
  CHECK(params[1].grad->cols() == 1);

  Matrix<float> z;
  layer.Forward(Matrix<float>::Ones(5, 7), z, Mode::Train);
  CHECK(z.rows() == 3);
  CHECK(z.cols() == 7);
}

TEST_CASE("Linear: forward and backward by hand") {
  dlb::Linear<double> layer(3, 2);
  layer.Weight() << 1, 2, 3,  //
      4, 5, 6;
  layer.Bias() << 0.5, -1;
  Matrix<double> x(3, 2);
  x << 1, 0,  //
      0, 1,   //
      2, -1;
  Matrix<double> z;
  layer.Forward(x, z, Mode::Train);
  Matrix<double> expected_z(2, 2);
  expected_z << 7.5, -0.5,  //
      15, -2;
  CHECK(z == expected_z);

  Matrix<double> dz(2, 2);
  dz << 1, 2,  //
      0, -1;
  Matrix<double> dx;
  layer.Backward(x, z, dz, &dx);
  Matrix<double> expected_dw(2, 3), expected_db(2, 1), expected_dx(3, 2);
  expected_dw << 1, 2, 0,  //
      0, -1, 1;
  expected_db << 3, -1;
  expected_dx << 1, -2,  //
      2, -1,             //
      3, 0;
  auto params = layer.Parameters();
  CHECK(*params[0].grad == expected_dw);
  CHECK(*params[1].grad == expected_db);
  CHECK(dx == expected_dx);

  SECTION("a null dX still yields the parameter gradients (first layer of a model)") {
    layer.Parameters()[0].grad->setZero();
    layer.Parameters()[1].grad->setZero();
    layer.Backward(x, z, dz, nullptr);
    CHECK(*params[0].grad == expected_dw);
    CHECK(*params[1].grad == expected_db);
  }
  SECTION("Backward overwrites (does not accumulate) the parameter gradients") {
    layer.Backward(x, z, dz, &dx);
    CHECK(*params[0].grad == expected_dw);
    CHECK(*params[1].grad == expected_db);
  }
}

TEST_CASE("Linear: gradient check for input, weight and bias") {
  dlb::Linear<double> layer(4, 3);
  dlb::Generator gen(11);
  layer.Init(gen);
  // A non-zero bias so that a bias mix-up would show.
  layer.Bias() = RandomMatrix<double>(3, 1, 12);
  CheckLayerGradients(layer, RandomMatrix<double>(4, 5, 13), 14);
}

TEST_CASE("Linear: Kaiming, Xavier and Const draw N(0, std^2) with the documented std") {
  constexpr Index in = 400, out = 250;  // fan_in differs from fan_out: a swap would show
  struct Case {
    dlb::Init scheme;
    float init_std;
    double expected_std;
  };
  const Case cases[] = {
      {dlb::Init::Kaiming, 0.01f, std::sqrt(2.0 / in)},
      {dlb::Init::Xavier, 0.01f, std::sqrt(1.0 / in)},
      {dlb::Init::Const, 0.3f, 0.3},
  };
  for (const Case& c : cases) {
    INFO("scheme " << static_cast<int>(c.scheme));
    dlb::Linear<float> layer(in, out, c.scheme, c.init_std);
    dlb::Generator gen(2024);
    layer.Init(gen);
    const auto [mean, std_dev] = MeanStd(layer.Weight());
    // 100k draws: the sample std is within ~0.5 % and the mean within ~0.01 std.
    CHECK(std_dev == Approx(c.expected_std).epsilon(0.03));
    CHECK(std::abs(mean) < 0.02 * c.expected_std);
    CHECK(layer.Bias().isZero(0));
    CHECK(dlb::InitStd(c.scheme, in, c.init_std) == Approx(c.expected_std).epsilon(1e-6));
  }
}

TEST_CASE("Linear: Init zeroes the bias again and is reproducible from the seed") {
  dlb::Linear<float> a(20, 10), b(20, 10);
  CHECK(a.Weight() == b.Weight());  // fixed default seed at construction
  a.Bias().setConstant(3.0f);
  dlb::Generator gen_a(7), gen_b(7), gen_c(8);
  a.Init(gen_a);
  b.Init(gen_b);
  CHECK(a.Bias().isZero(0));
  CHECK(a.Weight() == b.Weight());
  b.Init(gen_c);
  CHECK(a.Weight() != b.Weight());
  CHECK((a.Weight() - b.Weight()).cwiseAbs().minCoeff() > 0);  // different everywhere
}

TEST_CASE("Linear: zero sizes and a negative or non-finite init_std are ArgumentErrors") {
  using Catch::Matchers::Contains;
  using dlb_test::What;
  REQUIRE_THROWS_MATCHES(dlb::Linear<float>(0, 3), dlb::ArgumentError,
                         What(Contains("Linear(0 -> 3)")));
  REQUIRE_THROWS_MATCHES(dlb::Linear<float>(3, 0), dlb::ArgumentError,
                         What(Contains("Linear(3 -> 0)")));
  REQUIRE_THROWS_AS(dlb::Linear<float>(-1, 3), dlb::ArgumentError);
  REQUIRE_THROWS_MATCHES(dlb::Linear<float>(3, 3, dlb::Init::Const, -0.1f), dlb::ArgumentError,
                         What(Contains("init_std")));
  REQUIRE_THROWS_AS(dlb::Linear<float>(3, 3, dlb::Init::Const, std::nanf("")),
                    dlb::ArgumentError);
  // An infinite std would give infinite weights.
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    REQUIRE_THROWS_MATCHES(dlb::Linear<float>(4, 4, dlb::Init::Const, bad), dlb::ArgumentError,
                           What(Contains("init_std must be finite")));
  }
}

// ---------------------------------------------------------------------------------------
// Activations

TEST_CASE("ReLU: forward and backward by hand, gradient check") {
  dlb::ReLU<double> relu;
  Matrix<double> x(2, 2), y, dx;
  x << -2, 0.5,  //
      -0.5, 3;
  relu.Forward(x, y, Mode::Train);
  Matrix<double> expected(2, 2);
  expected << 0, 0.5,  //
      0, 3;
  CHECK(y == expected);
  Matrix<double> dy(2, 2);
  dy << 1, 3,  //
      2, 4;
  relu.Backward(x, y, dy, &dx);
  expected << 0, 3,  //
      0, 4;
  CHECK(dx == expected);
  CHECK(relu.OutputShape(17) == dlb::Shape(17));
  CHECK(relu.OutputShape(dlb::Shape(3, 4, 5)) == dlb::Shape(3, 4, 5));

  CheckLayerGradients(relu, RandomAwayFromZero(4, 6, 21), 22);
}

TEST_CASE("LeakyReLU: forward and backward by hand, gradient check, invalid alpha") {
  dlb::LeakyReLU<double> leaky(0.1);
  Matrix<double> x(1, 4), y, dx;
  x << -2, -0.5, 0.5, 3;
  leaky.Forward(x, y, Mode::Train);
  Matrix<double> expected(1, 4);
  expected << -0.2, -0.05, 0.5, 3;
  CHECK(y.isApprox(expected, 1e-15));
  Matrix<double> dy(1, 4);
  dy << 1, 2, 3, 4;
  leaky.Backward(x, y, dy, &dx);
  expected << 0.1, 0.2, 3, 4;
  CHECK(dx.isApprox(expected, 1e-15));

  dlb::LeakyReLU<double> checked(0.2);
  CheckLayerGradients(checked, RandomAwayFromZero(4, 6, 31), 32);

  REQUIRE_THROWS_AS(dlb::LeakyReLU<float>(-0.1f), dlb::ArgumentError);
  REQUIRE_THROWS_AS(dlb::LeakyReLU<float>(std::nanf("")), dlb::ArgumentError);
  REQUIRE_THROWS_AS(dlb::LeakyReLU<float>(std::numeric_limits<float>::infinity()),
                    dlb::ArgumentError);
}

TEST_CASE("Sigmoid: forward and backward by hand, gradient check") {
  dlb::Sigmoid<double> sigmoid;
  Matrix<double> x(1, 3), y, dx;
  x << 0, std::log(3.0), -std::log(3.0);  // 1/(1+1), 1/(1+1/3), 1/(1+3)
  sigmoid.Forward(x, y, Mode::Train);
  CHECK(y(0) == Approx(0.5).epsilon(1e-15));
  CHECK(y(1) == Approx(0.75).epsilon(1e-15));
  CHECK(y(2) == Approx(0.25).epsilon(1e-15));
  sigmoid.Backward(x, y, Matrix<double>::Ones(1, 3), &dx);  // y (1 - y)
  CHECK(dx(0) == Approx(0.25).epsilon(1e-15));
  CHECK(dx(1) == Approx(0.1875).epsilon(1e-15));
  CHECK(dx(2) == Approx(0.1875).epsilon(1e-15));

  CheckLayerGradients(sigmoid, RandomMatrix<double>(4, 6, 41, -3, 3), 42);
}

TEMPLATE_TEST_CASE("Sigmoid: inputs of +-1000 give finite outputs and gradients", "", float,
                   double) {
  dlb::Sigmoid<TestType> sigmoid;
  Matrix<TestType> x(1, 4), y, dx;
  x << TestType(-1000), TestType(-100), TestType(100), TestType(1000);
  sigmoid.Forward(x, y, Mode::Train);
  REQUIRE(y.allFinite());
  CHECK(y(0) >= TestType(0));
  CHECK(y(0) < TestType(1e-30));
  CHECK(y(3) == TestType(1));
  sigmoid.Backward(x, y, Matrix<TestType>::Ones(1, 4), &dx);
  REQUIRE(dx.allFinite());
  CHECK(dx.cwiseAbs().maxCoeff() < TestType(1e-30));
}

TEST_CASE("Tanh: forward and backward by hand, gradient check") {
  dlb::Tanh<double> tanh_layer;
  Matrix<double> x(1, 3), y, dx;
  x << 0, std::log(2.0), -std::log(2.0);  // tanh(ln 2) = (4 - 1) / (4 + 1)
  tanh_layer.Forward(x, y, Mode::Train);
  CHECK(y(0) == 0);
  CHECK(y(1) == Approx(0.6).epsilon(1e-15));
  CHECK(y(2) == Approx(-0.6).epsilon(1e-15));
  tanh_layer.Backward(x, y, Matrix<double>::Ones(1, 3), &dx);  // 1 - y^2
  CHECK(dx(0) == 1);
  CHECK(dx(1) == Approx(0.64).epsilon(1e-14));
  CHECK(dx(2) == Approx(0.64).epsilon(1e-14));

  CheckLayerGradients(tanh_layer, RandomMatrix<double>(4, 6, 51, -2, 2), 52);
}

TEMPLATE_TEST_CASE("element-wise layers skip dX when it is null and leave their inputs alone",
                   "", dlb::ReLU<double>, dlb::LeakyReLU<double>, dlb::Sigmoid<double>,
                   dlb::Tanh<double>, dlb::Dropout<double>) {
  const Matrix<double> x = RandomMatrix<double>(2, 3, 61);
  Matrix<double> y, dx;
  TestType layer;
  layer.Forward(x, y, Mode::Train);
  const Matrix<double> y_before = y;
  const Matrix<double> dy = RandomMatrix<double>(2, 3, 62);
  layer.Backward(x, y, dy, nullptr);  // must neither dereference nor write anything
  CHECK(y == y_before);
  // The same call with a buffer gives a real gradient of the right shape, and repeating it
  // gives the same values: the null call changed no state the gradient depends on.
  layer.Backward(x, y, dy, &dx);
  CHECK(dx.rows() == 2);
  CHECK(dx.cols() == 3);
  Matrix<double> again;
  layer.Backward(x, y, dy, &again);
  CHECK(again == dx);
  CHECK(dx != Matrix<double>::Zero(2, 3));
}

TEMPLATE_TEST_CASE("sign selections equal Eigen's select bit for bit, vectorised and in the tail",
                   "", float, double) {
  using T = TestType;
  // 37 x 5: every packet width leaves a scalar tail; zeros of both signs, NaNs, infinities
  // and denormals among the values and the gradients.
  Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic> values = RandomMatrix<T>(37, 5, 63).array();
  Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic> grads = RandomMatrix<T>(37, 5, 64).array();
  const T specials[] = {T(0), -T(0), std::numeric_limits<T>::quiet_NaN(),
                        std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity(),
                        std::numeric_limits<T>::denorm_min(), -std::numeric_limits<T>::denorm_min()};
  for (int i = 0; i < 7; ++i) {
    values(3 * i, i % 5) = specials[i];
    grads(5 * i + 1, (i + 2) % 5) = specials[(i + 3) % 7];
    values(5 * i + 1, (i + 2) % 5) = T(i % 2 == 0 ? 1 : -1);
  }
  const T alpha = T(0.01);
  using Array = Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic>;
  const Array kept = dlb::internal::KeepWherePositive(grads, values);
  const Array kept_by_select = (values > T(0)).select(grads, T(0));
  const Array scaled = dlb::internal::ScaleWhereNotPositive(grads, values, alpha);
  const Array scaled_by_select = (values > T(0)).select(grads, alpha * grads);
  REQUIRE(std::memcmp(kept.data(), kept_by_select.data(), sizeof(T) * kept.size()) == 0);
  REQUIRE(std::memcmp(scaled.data(), scaled_by_select.data(), sizeof(T) * scaled.size()) == 0);
  for (Index i = 0; i < values.size(); ++i) {
    const T one = dlb::internal::KeepWherePositive(grads(i), values(i));
    REQUIRE(std::memcmp(&one, &kept(i), sizeof(T)) == 0);
  }
}

// ---------------------------------------------------------------------------------------
// Dropout

TEST_CASE("Dropout: gradient check in train mode with a fixed mask") {
  dlb::Dropout<double> dropout(0.4);
  // Reseeding identically before every Forward makes the mask the same for every
  // evaluation of the objective, so it is differentiable.
  auto fix_mask = [&] {
    dlb::Generator gen(77);
    dropout.Init(gen);
  };
  CheckLayerGradients(dropout, RandomMatrix<double>(5, 8, 71), 72, fix_mask, Mode::Train);

  // The mask really drops and scales: Y is 0 or X / (1 - p).
  Matrix<double> x = RandomAwayFromZero(5, 8, 73), y, dx;
  fix_mask();
  dropout.Forward(x, y, Mode::Train);
  Index dropped = 0;
  for (Index i = 0; i < x.size(); ++i) {
    if (y(i) == 0) {
      ++dropped;
    } else {
      CHECK(y(i) == Approx(x(i) / 0.6).epsilon(1e-15));
    }
  }
  CHECK(dropped > 0);
  CHECK(dropped < x.size());
  // dX uses the mask of the latest Forward: dX / dY = Y / X element-wise.
  const Matrix<double> dy = RandomMatrix<double>(5, 8, 74);
  dropout.Backward(x, y, dy, &dx);
  for (Index i = 0; i < x.size(); ++i) CHECK(dx(i) == Approx(dy(i) * y(i) / x(i)).epsilon(1e-14));
}

TEST_CASE("Dropout: drops a fraction p and preserves the mean") {
  constexpr float p = 0.3f;
  dlb::Dropout<float> dropout(p, 5);
  const Matrix<float> ones = Matrix<float>::Ones(200, 500);
  Matrix<float> y;
  dropout.Forward(ones, y, Mode::Train);
  const double n = static_cast<double>(y.size());
  const double dropped = static_cast<double>((y.array() == 0.0f).count());
  const double kept_value = 1.0 / (1.0 - p);
  // 100k Bernoulli(0.3) draws: the fraction's std is 0.0015.
  CHECK(dropped / n == Approx(p).margin(0.01));
  CHECK(((y.array() == 0.0f) || (y.array() == static_cast<float>(kept_value))).all());
  CHECK(y.cast<double>().mean() == Approx(1.0).margin(0.01));

  // E[Y] = X element by element, averaged over many independent masks.
  Matrix<float> x(2, 2);
  x << 1.0f, -2.0f, 0.5f, 4.0f;
  Matrix<double> sum = Matrix<double>::Zero(2, 2);
  constexpr int draws = 4000;
  Matrix<float> previous;
  Index changes = 0;
  for (int k = 0; k < draws; ++k) {
    dropout.Forward(x, y, Mode::Train);
    if (k > 0 && y != previous) ++changes;
    previous = y;
    sum += y.cast<double>();
  }
  const Matrix<double> mean = sum / draws;
  for (Index i = 0; i < x.size(); ++i) {
    // std of the mean: |x| sqrt(p / (1 - p)) / sqrt(4000) = 0.0103 |x|.
    CHECK(mean(i) == Approx(x(i)).epsilon(0.05));
  }
  CHECK(changes > draws / 2);  // a fresh mask every Forward
}

TEST_CASE("Dropout: inference (and p = 0) is the identity, forward and backward") {
  const Matrix<float> x = RandomMatrix<float>(3, 4, 81);
  const Matrix<float> dy = RandomMatrix<float>(3, 4, 82);
  Matrix<float> y, dx;
  dlb::Dropout<float> dropout(0.5f);
  dropout.Forward(x, y, Mode::Inference);
  CHECK(y == x);
  dropout.Backward(x, y, dy, &dx);
  CHECK(dx == dy);
  // Back to training after inference: the mask is used again.
  dropout.Forward(x, y, Mode::Train);
  CHECK(y != x);

  dlb::Dropout<float> none(0.0f);
  none.Forward(x, y, Mode::Train);
  CHECK(y == x);
  none.Backward(x, y, dy, &dx);
  CHECK(dx == dy);
}

TEST_CASE("Dropout: same seed gives the same mask, Init reseeds") {
  const Matrix<float> x = Matrix<float>::Ones(10, 10);
  Matrix<float> ya, yb;
  dlb::Dropout<float> a(0.5f, 3), b(0.5f, 3), c(0.5f, 4);
  a.Forward(x, ya, Mode::Train);
  b.Forward(x, yb, Mode::Train);
  CHECK(ya == yb);
  c.Forward(x, yb, Mode::Train);
  CHECK(ya != yb);
  dlb::Generator g1(9), g2(9);
  a.Init(g1);
  c.Init(g2);
  a.Forward(x, ya, Mode::Train);
  c.Forward(x, yb, Mode::Train);
  CHECK(ya == yb);
}

TEST_CASE("Dropout: p outside [0, 1) is an ArgumentError") {
  using Catch::Matchers::Contains;
  using dlb_test::What;
  for (float p : {-0.1f, 1.0f, 1.5f, std::nanf(""), std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity()}) {
    INFO("p = " << p);
    REQUIRE_THROWS_MATCHES(dlb::Dropout<float>(p), dlb::ArgumentError,
                           What(Contains("Dropout") && Contains("[0, 1)")));
  }
  CHECK_NOTHROW(dlb::Dropout<float>(0.0f));
  CHECK_NOTHROW(dlb::Dropout<float>(0.99f));
}
