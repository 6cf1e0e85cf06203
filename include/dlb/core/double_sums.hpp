#pragma once
/// \file
/// Sums of a run of values accumulated in double at vector speed: the statistics passes of
/// batch normalisation (sum x, sum x^2; sum dy, sum dy (x - mu)).

#include <array>
#include <cstddef>

#include "dlb/core/types.hpp"

namespace dlb::internal {

/// Partial sums per total: value i of a run goes to lane i mod kDoubleSumLanes, and the lanes
/// are added up pairwise in a fixed order at the end, so that a sum depends on n and the
/// values only, not on the machine, its vector width or the thread count.
inline constexpr Index kDoubleSumLanes = 16;

/// lanes[i mod kDoubleSumLanes] += double(term(i)) for i in [0, n), in increasing i per lane.
/// One term a loop: GCC 12 turns such a loop into vector conversions and adds, but a loop
/// that adds two terms (as TwoSumsInDouble once did) it left in 32 scalar lanes, one value a
/// cycle: batch norm's forward over 128 x 16 x 28 x 28 floats took 0.74 ms on one core
/// instead of 0.35-0.38.
template <class Term>
void AddToLanes(std::array<double, kDoubleSumLanes>& lanes, Index n, const Term& term) {
  Index i = 0;
  for (; i + kDoubleSumLanes <= n; i += kDoubleSumLanes) {
    for (Index k = 0; k < kDoubleSumLanes; ++k) {
      lanes[static_cast<std::size_t>(k)] += static_cast<double>(term(i + k));
    }
  }
  for (Index k = 0; i < n; ++i, ++k) {
    lanes[static_cast<std::size_t>(k)] += static_cast<double>(term(i));
  }
}

/// The lanes added up pairwise: lane k + width into lane k for width = 8, 4, 2, 1.
inline double AddUpLanes(std::array<double, kDoubleSumLanes>& lanes) {
  for (std::size_t width = kDoubleSumLanes / 2; width >= 1; width /= 2) {
    for (std::size_t k = 0; k < width; ++k) lanes[k] += lanes[k + width];
  }
  return lanes[0];
}

/// {sum_i first(i), sum_i second(i)} over i in [0, n), each term converted to double and
/// accumulated there, in the lanes above (one pass over the run per sum).
///
/// Why not `run.cast<double>().sum()`: Eigen does not vectorise the float -> double cast, so
/// that is one chain of dependent scalar adds (about 4 cycles a value; perf showed the
/// batch-norm sums at 12% of a ResNet training epoch).
/// Requires first(i) and second(i) to be callable for i in [0, n) and return something
/// convertible to double.
template <class First, class Second>
std::array<double, 2> TwoSumsInDouble(Index n, const First& first, const Second& second) {
  std::array<double, kDoubleSumLanes> first_lanes{}, second_lanes{};
  AddToLanes(first_lanes, n, first);
  AddToLanes(second_lanes, n, second);
  return {AddUpLanes(first_lanes), AddUpLanes(second_lanes)};
}

}  // namespace dlb::internal
