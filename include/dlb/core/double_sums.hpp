#pragma once
/// \file
/// Sums of a run of values accumulated in double at vector speed: the statistics passes of
/// batch normalisation (sum x, sum x^2; sum dy, sum dy (x - mu)).

#include <array>

#include "dlb/core/types.hpp"

namespace dlb::internal {

/// {sum_i first(i), sum_i second(i)} over i in [0, n), each term converted to double and
/// accumulated there.
///
/// Why not `run.cast<double>().sum()`: Eigen does not vectorise the float -> double cast, so
/// that is one chain of dependent scalar adds (about 4 cycles a value; perf showed the
/// batch-norm sums at 12% of a ResNet training epoch). Here kDoubleSumLanes independent
/// partial sums per total are kept, which the compiler turns into vector conversions and
/// adds, and added up at the end (pairwise, in a fixed order: the result depends on n and
/// the values only, not on the machine or the thread count).
/// Requires first(i) and second(i) to be callable for i in [0, n) and return something
/// convertible to double.
inline constexpr Index kDoubleSumLanes = 16;

template <class First, class Second>
std::array<double, 2> TwoSumsInDouble(Index n, const First& first, const Second& second) {
  std::array<double, kDoubleSumLanes> a{}, b{};
  Index i = 0;
  for (; i + kDoubleSumLanes <= n; i += kDoubleSumLanes) {
    for (Index k = 0; k < kDoubleSumLanes; ++k) {
      a[static_cast<std::size_t>(k)] += static_cast<double>(first(i + k));
      b[static_cast<std::size_t>(k)] += static_cast<double>(second(i + k));
    }
  }
  for (Index k = 0; i < n; ++i, ++k) {
    a[static_cast<std::size_t>(k)] += static_cast<double>(first(i));
    b[static_cast<std::size_t>(k)] += static_cast<double>(second(i));
  }
  for (std::size_t width = kDoubleSumLanes / 2; width >= 1; width /= 2) {
    for (std::size_t k = 0; k < width; ++k) {
      a[k] += a[k + width];
      b[k] += b[k + width];
    }
  }
  return {a[0], b[0]};
}

}  // namespace dlb::internal
