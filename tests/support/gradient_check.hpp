#pragma once
// Central-difference gradient checking in double, shared by every test that checks a
// Backward against the function it differentiates.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/types.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/testing/numeric_gradient.hpp"
#include "helpers.hpp"

namespace dlb_test {

// The library's finite differences and error measure (dlb/testing/numeric_gradient.hpp),
// the ones dlb::testing::CheckLayer uses.
using dlb::testing::NumericGradient;
using dlb::testing::RelativeError;

/// Checks that `analytic` matches `numeric` entry by entry (RelativeError < tol) and is not
/// identically zero (a check of two zero matrices would prove nothing). On failure the
/// message names the block, the worst entry and both values.
inline void CheckGradient(const std::string& what, const dlb::Matrix<double>& analytic,
                          const dlb::Matrix<double>& numeric, double tol = 1e-6,
                          double floor = 1e-8) {
  INFO("gradient of " << what);
  REQUIRE(analytic.rows() == numeric.rows());
  REQUIRE(analytic.cols() == numeric.cols());
  REQUIRE(analytic.allFinite());
  double worst = 0;
  dlb::Index worst_i = 0;
  for (dlb::Index i = 0; i < analytic.size(); ++i) {
    const double e = RelativeError(analytic.data()[i], numeric.data()[i], floor);
    if (!(e <= worst)) {
      worst = e;
      worst_i = i;
    }
  }
  INFO("worst entry " << worst_i << " (row " << worst_i % analytic.rows() << ", col "
                      << worst_i / analytic.rows() << "): analytic "
                      << analytic.data()[worst_i] << ", numeric " << numeric.data()[worst_i]);
  CHECK(worst < tol);
  CHECK(analytic.cwiseAbs().maxCoeff() > 0);
}

/// Gradient check of a layer in double on the scalar objective f(X, params) = sum(R .* Y)
/// with Y = Forward(X) and a fixed random R: Backward(X, Y, dY = R) must give dX and every
/// parameter gradient (through Parameters(), when the layer has them) equal to the numeric
/// derivatives of f. `prepare()` runs before every Forward (e.g. to reseed a Dropout mask).
template <dlb::Layer L, class Prepare>
void CheckLayerGradients(L& layer, const dlb::Matrix<double>& x0, std::uint64_t seed,
                         Prepare&& prepare, dlb::Mode mode = dlb::Mode::Train,
                         double tol = 1e-6) {
  static_assert(std::is_same_v<typename L::Scalar, double>, "gradient checks run in double");
  dlb::Matrix<double> x = x0;
  dlb::Matrix<double> y;
  prepare();
  layer.Forward(x, y, mode);
  const dlb::Matrix<double> r = RandomMatrix<double>(y.rows(), y.cols(), seed);
  auto objective = [&] {
    prepare();
    layer.Forward(x, y, mode);
    return (r.array() * y.array()).sum();
  };

  constexpr double kStep = 1e-4;  // of the differences, and of their rounding noise below
  const dlb::Matrix<double> numeric_dx = NumericGradient(objective, x, kStep);
  std::vector<std::pair<std::string, dlb::Matrix<double>>> numeric_params;
  if constexpr (dlb::LayerWithParameters<L>) {
    for (auto& p : layer.Parameters()) {
      numeric_params.emplace_back(p.name, NumericGradient(objective, *p.value, kStep));
    }
  }

  // Analytic gradients at the unperturbed point.
  prepare();
  layer.Forward(x, y, mode);
  dlb::Matrix<double> dx;
  layer.Backward(x, y, r, &dx);
  const double floor = dlb::testing::ErrorFloor((r.array() * y.array()).abs().sum(), kStep, tol);
  CheckGradient(layer.Name() + " input", dx, numeric_dx, tol, floor);
  if constexpr (dlb::LayerWithParameters<L>) {
    auto params = layer.Parameters();
    REQUIRE(params.size() == numeric_params.size());
    for (std::size_t k = 0; k < params.size(); ++k) {
      CheckGradient(layer.Name() + " " + params[k].name, *params[k].grad,
                    numeric_params[k].second, tol, floor);
    }
  }
}

/// CheckLayerGradients for a layer without random state.
template <dlb::Layer L>
void CheckLayerGradients(L& layer, const dlb::Matrix<double>& x0, std::uint64_t seed) {
  CheckLayerGradients(layer, x0, seed, [] {});
}

}  // namespace dlb_test
