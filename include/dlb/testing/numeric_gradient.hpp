#pragma once
/// \file
/// Finite-difference gradients in double and the error measure that compares them with a
/// Backward: what dlb::testing::CheckLayer uses, for checking functions of your own.
///
/// ```
///   #include <dlb/testing/numeric_gradient.hpp>
///   const auto f = [&] { return (r.array() * layer_output(x).array()).sum(); };
///   const dlb::Matrix<double> numeric = dlb::testing::NumericGradient(f, x);
///   const double floor = dlb::testing::ErrorFloor(magnitude_of_f_terms, 1e-4, 1e-6);
///   // every entry: dlb::testing::RelativeError(analytic(i), numeric(i), floor) <= 1e-6
/// ```

#include <algorithm>
#include <cmath>
#include <limits>

#include "dlb/core/types.hpp"

namespace dlb::testing {

/// The derivative of the scalar f() with respect to every entry of `values`, which f reads:
/// each entry is moved in place and restored. The fourth-order central difference
///   df/dv ~ (8 (f(v + h) - f(v - h)) - (f(v + 2h) - f(v - 2h))) / (12 h)
/// has a truncation error O(h^4), far below the rounding error eps |f| / h for h = 1e-4, so
/// h can be large enough to keep the rounding small. Requires every kink of f (max, ReLU,
/// pooling) more than 2h from each entry. Ensures an exact zero where f does not depend on an
/// entry (the differences are taken first).
template <class F>
Matrix<double> NumericGradient(F&& f, Matrix<double>& values, double step = 1e-4) {
  Matrix<double> gradient(values.rows(), values.cols());
  for (Index i = 0; i < values.size(); ++i) {
    const double saved = values.data()[i];
    const auto at = [&](double offset) {
      values.data()[i] = saved + offset;
      return static_cast<double>(f());
    };
    const double p2 = at(2 * step), p1 = at(step), m1 = at(-step), m2 = at(-2 * step);
    values.data()[i] = saved;
    gradient.data()[i] = (8 * (p1 - m1) - (p2 - m2)) / (12 * step);
  }
  return gradient;
}

/// |a - n| / max(floor, |a| + |n|): the relative error of an analytic entry a against the
/// numeric n, or, for entries smaller than `floor`, their difference in units of `floor`.
inline double RelativeError(double a, double n, double floor = 1e-8) {
  return std::abs(a - n) / std::max(floor, std::abs(a) + std::abs(n));
}

/// The floor of RelativeError at which an entry within the difference quotient's rounding
/// noise passes `tolerance`: each value of f is rounded by about eps `magnitude` (the sum of
/// the magnitudes of f's terms, e.g. sum |R .* Y|), which the quotient divides by `step`. A
/// gradient that is zero in exact arithmetic (a bias before a batch norm) comes out of both
/// sides as such noise, and compiler flags decide which (GCC's -O3 -march=native contracts
/// multiply-adds that -O1 leaves apart). At least 1e-8.
inline double ErrorFloor(double magnitude, double step, double tolerance) {
  const double noise = std::numeric_limits<double>::epsilon() * magnitude / step;
  return std::max(1e-8, noise / tolerance);
}

}  // namespace dlb::testing
