// Losses and the accuracy metric: values by hand, gradients against numeric derivatives,
// numerical stability and error reporting.

#include <catch2/catch.hpp>

#include <array>
#include <cmath>

#include "dlb/core/error.hpp"
#include "dlb/losses/bce_with_logits.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/losses/mse.hpp"
#include "dlb/metrics/accuracy.hpp"
#include "support/gradient_check.hpp"
#include "support/helpers.hpp"

using Catch::Matchers::Contains;
using dlb::Index;
using dlb::Labels;
using dlb::Matrix;
using dlb_test::CheckGradient;
using dlb_test::NumericGradient;
using dlb_test::RandomMatrix;
using dlb_test::What;

namespace {

Labels MakeLabels(std::initializer_list<dlb::Label> values) {
  Labels y(static_cast<Index>(values.size()));
  Index i = 0;
  for (dlb::Label v : values) y(i++) = v;
  return y;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Cross-entropy

TEMPLATE_TEST_CASE(
    "CrossEntropyLoss: value and gradient by hand on 3 classes x 2 samples, plain and with label "
    "smoothing 0.2", "", float, double) {
  using T = TestType;
  Matrix<T> z(3, 2);
  z << 1, 2,  //
      2, 1,   //
      3, 0;
  const Labels y = MakeLabels({2, 1});
  // L = -(1/2) sum_j sum_i q_ij log softmax(Z)_ij and dZ = (softmax(Z) - q) / 2 with the
  // target q = (1 - e) onehot(y) + e / 3; plain (e = 0): L = ((log(e^1 + e^2 + e^3) - 3) +
  // (log(e^2 + e^1 + e^0) - 1)) / 2. Values from that definition with Python's math module.
  struct Case {
    double smoothing, value;
    std::array<double, 6> dz;  // column-major
  };
  const Case cases[] = {
      {0.0, 0.9076059644443801,
       {0.04501528658519023, 0.12236423552739883, -0.16737952211258905, 0.33262047788741095,
        -0.37763576447260117, 0.04501528658519023}},
      {0.2, 1.0076059644443802,
       {0.011681953251856898, 0.08903090219406551, -0.1007128554459224, 0.2992871445540776,
        -0.3109690978059345, 0.011681953251856898}}};
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  for (const Case& c : cases) {
    INFO("label smoothing " << c.smoothing);
    const dlb::CrossEntropyLoss<T> loss(dlb::CrossEntropyLossOptions().LabelSmoothing(c.smoothing));
    CHECK(loss.LabelSmoothing() == c.smoothing);
    Matrix<T> dz;
    CHECK(loss.Compute(z, y, dz) == Approx(c.value).epsilon(tol));
    CHECK(loss.Value(z, y) == Approx(c.value).epsilon(tol));
    REQUIRE(dz.rows() == 3);
    REQUIRE(dz.cols() == 2);
    for (Index i = 0; i < dz.size(); ++i) {
      CHECK(static_cast<double>(dz(i)) == Approx(c.dz[static_cast<std::size_t>(i)]).margin(tol));
    }
    // Every column of dZ sums to 0: softmax and the target both sum to 1.
    for (Index j = 0; j < dz.cols(); ++j) {
      CHECK(static_cast<double>(dz.col(j).sum()) == Approx(0).margin(tol));
    }
  }
}

TEST_CASE("CrossEntropyLoss: gradient check in double, label smoothing 0, 0.1 and 1") {
  Matrix<double> z = RandomMatrix<double>(4, 5, 101, -3, 3);
  const Labels y = MakeLabels({0, 3, 1, 1, 2});
  for (const double epsilon : {0.0, 0.1, 1.0}) {
    INFO("label smoothing " << epsilon);
    const dlb::CrossEntropyLoss<double> loss(dlb::CrossEntropyLossOptions().LabelSmoothing(epsilon));
    Matrix<double> dz;
    const double value = loss.Compute(z, y, dz);
    CHECK(value == Approx(loss.Value(z, y)).epsilon(1e-15));
    auto f = [&] {
      Matrix<double> scratch;
      return loss.Compute(z, y, scratch);  // the numeric derivative of the reported value
    };
    CheckGradient("cross-entropy logits", dz, NumericGradient(f, z));
  }
  // Smoothing 1: the target is uniform, so the labels do not matter.
  const dlb::CrossEntropyLoss<double> uniform(dlb::CrossEntropyLossOptions().LabelSmoothing(1));
  CHECK(uniform.Value(z, y) == Approx(uniform.Value(z, MakeLabels({1, 1, 1, 1, 1}))).epsilon(1e-14));
  // Smoothing 0 is the default loss, bit for bit.
  const dlb::CrossEntropyLoss<double> plain;
  const dlb::CrossEntropyLoss<double> zero(dlb::CrossEntropyLossOptions().LabelSmoothing(0));
  Matrix<double> plain_dz, zero_dz;
  CHECK(plain.Compute(z, y, plain_dz) == zero.Compute(z, y, zero_dz));
  CHECK(plain_dz == zero_dz);
}

TEST_CASE("CrossEntropyLoss: a label smoothing outside [0, 1] is refused") {
  for (const double epsilon : {-0.1, 1.5, std::nan("")}) {
    CHECK_THROWS_MATCHES(
        dlb::CrossEntropyLoss<float>(dlb::CrossEntropyLossOptions().LabelSmoothing(epsilon)),
        dlb::ArgumentError, What(Contains("label_smoothing must be in [0, 1]")));
  }
}

TEMPLATE_TEST_CASE("CrossEntropyLoss: logits of +-1000 give finite, exact loss and gradient", "",
                   float, double) {
  using T = TestType;
  Matrix<T> z(3, 3);
  z << 1000, -1000, 1000,  //
      -1000, 1000, 1000,   //
      0, 0, -1000;
  const Labels y = MakeLabels({1, 1, 0});
  // Column 0: the label's logit is 2000 below the max: loss 2000, softmax (1, 0, 0).
  // Column 1: the label holds the max by 1000: loss log(1 + 2 e^-1000) = 0, gradient 0.
  // Column 2: a tie between classes 0 and 1: loss log 2, softmax (1/2, 1/2, 0).
  const double expected_loss = (2000.0 + std::log(2.0)) / 3.0;
  Matrix<double> expected_dz(3, 3);
  expected_dz << 1, 0, -0.5,  //
      -1, 0, 0.5,             //
      0, 0, 0;
  expected_dz /= 3.0;

  dlb::CrossEntropyLoss<T> loss;
  Matrix<T> dz;
  const T value = loss.Compute(z, y, dz);
  REQUIRE(std::isfinite(value));
  REQUIRE(dz.allFinite());
  CHECK(value == Approx(expected_loss).epsilon(1e-6));
  CHECK(loss.Value(z, y) == Approx(expected_loss).epsilon(1e-6));
  for (Index i = 0; i < dz.size(); ++i) {
    CHECK(static_cast<double>(dz(i)) == Approx(expected_dz(i)).margin(1e-7));
  }
}

TEST_CASE("CrossEntropyLoss: every gradient column sums to 0, softmax part is in [0, 1/N]") {
  const Matrix<float> z = RandomMatrix<float>(10, 32, 111, -20, 20);
  Labels y(32);
  for (Index j = 0; j < 32; ++j) y(j) = static_cast<dlb::Label>((7 * j) % 10);
  dlb::CrossEntropyLoss<float> loss;
  Matrix<float> dz;
  const float value = loss.Compute(z, y, dz);
  CHECK(value > 0.0f);
  for (Index j = 0; j < z.cols(); ++j) {
    INFO("column " << j);
    CHECK(std::abs(dz.col(j).sum()) < 1e-7f);
    CHECK(dz(y(j), j) <= 0.0f);  // softmax - 1 at the label
    for (Index i = 0; i < z.rows(); ++i) {
      if (i != y(j)) CHECK((dz(i, j) >= 0.0f && dz(i, j) <= 1.0f / 32));
    }
  }
}

TEST_CASE("CrossEntropyLoss: bad labels are reported with their value and position") {
  Matrix<float> z = Matrix<float>::Zero(3, 3);
  Matrix<float> dz;
  dlb::CrossEntropyLoss<float> loss;
  SECTION("label >= classes") {
    const Labels y = MakeLabels({0, 3, 1});
    REQUIRE_THROWS_MATCHES(loss.Compute(z, y, dz), dlb::ArgumentError,
                           What(Contains("CrossEntropyLoss") && Contains("label 3") &&
                                Contains("sample 1") && Contains("0..2")));
    REQUIRE_THROWS_MATCHES(loss.Value(z, y), dlb::ArgumentError, What(Contains("label 3")));
  }
  SECTION("negative label") {
    const Labels y = MakeLabels({0, 1, -1});
    REQUIRE_THROWS_MATCHES(loss.Compute(z, y, dz), dlb::ArgumentError,
                           What(Contains("label -1") && Contains("sample 2")));
  }
  SECTION("label count differs from the batch size") {
    const Labels y = MakeLabels({0, 1});
    REQUIRE_THROWS_MATCHES(loss.Compute(z, y, dz), dlb::ShapeError,
                           What(Contains("CrossEntropyLoss") && Contains("2 labels") &&
                                Contains("3 columns")));
    REQUIRE_THROWS_MATCHES(loss.Value(z, y), dlb::ShapeError, What(Contains("2 labels")));
  }
  SECTION("empty batch") {
    const Matrix<float> empty(3, 0);
    const Labels none(0);
    REQUIRE_THROWS_MATCHES(loss.Compute(empty, none, dz), dlb::ShapeError,
                           What(Contains("empty batch")));
  }
}

// ---------------------------------------------------------------------------------------
// Mean squared error

TEMPLATE_TEST_CASE("MseLoss: value and gradient by hand", "", float, double) {
  using T = TestType;
  dlb::MseLoss<T> loss;
  Matrix<T> z(2, 2), targets(2, 2), dz;
  z << 1, 2,  //
      3, 4;
  targets << 0, 2,  //
      1, 1;
  // Differences (1, 2 | 0, 3): L = (1 + 4 + 0 + 9) / 4 = 3.5, dZ = 2 (Z - Y) / 4.
  CHECK(loss.Compute(z, targets, dz) == T(3.5));
  CHECK(loss.Value(z, targets) == T(3.5));
  Matrix<T> expected(2, 2);
  expected << 0.5, 0,  //
      1, 1.5;
  CHECK(dz == expected);

  // Against labels: Y = onehot(1, 0) = (0 1 | 1 0); differences (0.2 -0.1 | -0.3 0.1),
  // L = (0.04 + 0.01 + 0.09 + 0.01) / 4 = 0.0375.
  Matrix<T> outputs(2, 2);
  outputs << T(0.2), T(0.9),  //
      T(0.7), T(0.1);
  const Labels y = MakeLabels({1, 0});
  CHECK(loss.Compute(outputs, y, dz) == Approx(0.0375).epsilon(1e-6));
  CHECK(loss.Value(outputs, y) == Approx(0.0375).epsilon(1e-6));
  expected << T(0.1), T(-0.05),  //
      T(-0.15), T(0.05);
  CHECK(dz.isApprox(expected, T(1e-6)));
}

TEST_CASE("MseLoss: dZ is the numeric gradient of the reported value (targets and labels)") {
  dlb::MseLoss<double> loss;
  Matrix<double> z = RandomMatrix<double>(3, 4, 121);
  Matrix<double> dz;

  SECTION("targets") {
    const Matrix<double> targets = RandomMatrix<double>(3, 4, 122);
    const double value = loss.Compute(z, targets, dz);
    CHECK(value == Approx(loss.Value(z, targets)).epsilon(1e-15));
    auto f = [&] {
      Matrix<double> scratch;
      return loss.Compute(z, targets, scratch);
    };
    CheckGradient("MSE outputs (targets)", dz, NumericGradient(f, z));
  }
  SECTION("labels") {
    const Labels y = MakeLabels({2, 0, 1, 2});
    const double value = loss.Compute(z, y, dz);
    CHECK(value == Approx(loss.Value(z, y)).epsilon(1e-14));
    auto f = [&] {
      Matrix<double> scratch;
      return loss.Compute(z, y, scratch);
    };
    CheckGradient("MSE outputs (labels)", dz, NumericGradient(f, z));
    // The value-only path must be the same function of Z.
    auto g = [&] { return loss.Value(z, y); };
    CheckGradient("MSE Value (labels)", dz, NumericGradient(g, z));
  }
}

TEST_CASE("MseLoss: mismatched shapes and bad labels are reported") {
  dlb::MseLoss<float> loss;
  const Matrix<float> z = Matrix<float>::Zero(2, 3);
  Matrix<float> dz;
  REQUIRE_THROWS_MATCHES(loss.Compute(z, Matrix<float>::Zero(3, 2), dz), dlb::ShapeError,
                         What(Contains("MseLoss") && Contains("2 x 3") && Contains("3 x 2")));
  REQUIRE_THROWS_AS(loss.Value(z, Matrix<float>::Zero(2, 2)), dlb::ShapeError);
  REQUIRE_THROWS_AS(loss.Compute(Matrix<float>(2, 0), Matrix<float>(2, 0), dz), dlb::ShapeError);
  REQUIRE_THROWS_MATCHES(loss.Compute(z, MakeLabels({0, 2, 1}), dz), dlb::ArgumentError,
                         What(Contains("MseLoss") && Contains("label 2") && Contains("0..1")));
  REQUIRE_THROWS_MATCHES(loss.Value(z, MakeLabels({0, 1})), dlb::ShapeError,
                         What(Contains("MseLoss") && Contains("2 labels")));
}

// ---------------------------------------------------------------------------------------
// Accuracy

TEST_CASE("ScoreAccLogits and CountCorrect by hand, first maximum wins ties") {
  Matrix<float> z(3, 4);
  z << 0.1f, 2, 0.5f, -1,  //
      0.7f, 1, 0.5f, -3,   //
      0.2f, 0, 0.1f, -0.5f;
  // argmax per column: 1, 0, 0 (tie 0/1: the first), 2.
  CHECK(dlb::CountCorrect(z, MakeLabels({1, 2, 0, 2})) == 3);
  CHECK(dlb::ScoreAccLogits(z, MakeLabels({1, 2, 0, 2})) == 0.75);
  CHECK(dlb::ScoreAccLogits(z, MakeLabels({1, 2, 1, 2})) == 0.5);
  CHECK(dlb::ScoreAccLogits(z, MakeLabels({1, 0, 0, 2})) == 1.0);
  CHECK(dlb::ScoreAccLogits(z, MakeLabels({0, 1, 2, 1})) == 0.0);
  // Works on a block (expression) of logits too.
  CHECK(dlb::ScoreAccLogits(z.leftCols(2), MakeLabels({1, 0})) == 1.0);

  REQUIRE_THROWS_MATCHES(dlb::ScoreAccLogits(z, MakeLabels({1, 2, 0})), dlb::ShapeError,
                         What(Contains("CountCorrect") && Contains("3 labels")));
  REQUIRE_THROWS_MATCHES(dlb::ScoreAccLogits(z, MakeLabels({1, 2, 0, 5})), dlb::ArgumentError,
                         What(Contains("label 5")));
}

TEST_CASE("BCEWithLogitsLoss: value by hand (torch's formula) and gradient check in double") {
  // By hand: x = 0, y = 1 -> log 2; x = 2, y = 0 -> 2 + log(1 + e^-2); x = -1, y = 0.25 ->
  // 0 + 0.25 + log(1 + e^-1); x = 3, y = 1 -> log(1 + e^-3). Mean over the 4 elements.
  Matrix<double> z(2, 2), y(2, 2);
  z << 0, -1,  //
      2, 3;
  y << 1, 0.25,  //
      0, 1;
  dlb::BCEWithLogitsLoss<double> loss;
  Matrix<double> dz;
  const double expected = (std::log(2.0) + 2 + std::log1p(std::exp(-2.0)) + 0.25 +
                           std::log1p(std::exp(-1.0)) + std::log1p(std::exp(-3.0))) / 4;
  CHECK(loss.Compute(z, y, dz) == Approx(expected).epsilon(1e-14));
  CHECK(loss.Value(z, y) == Approx(expected).epsilon(1e-14));
  // The naive form -[y log s + (1 - y) log(1 - s)] agrees where it is finite.
  double naive = 0;
  for (Index i = 0; i < z.size(); ++i) {
    const double s = 1 / (1 + std::exp(-z(i)));
    naive -= y(i) * std::log(s) + (1 - y(i)) * std::log(1 - s);
  }
  CHECK(naive / 4 == Approx(expected).epsilon(1e-12));
  CHECK(dz(0, 0) == Approx((0.5 - 1) / 4).epsilon(1e-14));  // (s(0) - 1) / 4

  Matrix<double> x = RandomMatrix<double>(3, 5, 202, -4, 4);
  Matrix<double> targets = RandomMatrix<double>(3, 5, 203, 0, 1);
  targets(0, 0) = 0, targets(1, 1) = 1;  // hard labels too
  const double value = loss.Compute(x, targets, dz);
  CHECK(value == Approx(loss.Value(x, targets)).epsilon(1e-15));
  auto f = [&] {
    Matrix<double> scratch;
    return loss.Compute(x, targets, scratch);
  };
  CheckGradient("BCE-with-logits logits", dz, NumericGradient(f, x));
  // Negative control: the gradient of another target differs from the numeric one.
  Matrix<double> other = targets;
  other(2, 3) = 1 - other(2, 3) + 0.3;
  Matrix<double> wrong;
  loss.Compute(x, other, wrong);
  CHECK((wrong - NumericGradient(f, x)).cwiseAbs().maxCoeff() > 1e-3);
}

TEMPLATE_TEST_CASE("BCEWithLogitsLoss: logits of +-1000 give finite, exact loss and gradient", "",
                   float, double) {
  using T = TestType;
  Matrix<T> z(1, 4), y(1, 4);
  z << 1000, -1000, 1000, -1000;
  y << 1, 0, 0, 1;
  // Right sign: loss 0, gradient 0; wrong sign: loss 1000, gradient +-1/4.
  dlb::BCEWithLogitsLoss<T> loss;
  Matrix<T> dz;
  const T value = loss.Compute(z, y, dz);
  REQUIRE(std::isfinite(value));
  REQUIRE(dz.allFinite());
  CHECK(static_cast<double>(value) == Approx(500.0).epsilon(1e-6));
  CHECK(static_cast<double>(loss.Value(z, y)) == Approx(500.0).epsilon(1e-6));
  CHECK(static_cast<double>(dz(0)) == Approx(0).margin(1e-12));
  CHECK(static_cast<double>(dz(1)) == Approx(0).margin(1e-12));
  CHECK(static_cast<double>(dz(2)) == Approx(0.25).epsilon(1e-6));
  CHECK(static_cast<double>(dz(3)) == Approx(-0.25).epsilon(1e-6));
}

TEST_CASE("BCEWithLogitsLoss: mismatched shapes are reported") {
  dlb::BCEWithLogitsLoss<float> loss;
  Matrix<float> z = Matrix<float>::Zero(3, 2), y = Matrix<float>::Zero(2, 3), dz;
  CHECK_THROWS_AS(loss.Compute(z, y, dz), dlb::ShapeError);
  CHECK_THROWS_WITH(loss.Value(z, y), Catch::Contains("BCEWithLogitsLoss") && Catch::Contains("3 x 2"));
  static_assert(dlb::TargetLoss<dlb::BCEWithLogitsLoss<float>>);
  static_assert(!dlb::Loss<dlb::BCEWithLogitsLoss<float>>);
  static_assert(dlb::Loss<dlb::MseLoss<float>> && dlb::TargetLoss<dlb::MseLoss<float>>);
}
