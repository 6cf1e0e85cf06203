#pragma once
/// \file
/// The one random source every stochastic block takes (weight init, dropout, shuffling).
/// Distributions are implemented here rather than taken from `<random>`, whose
/// std::normal_distribution differs between standard libraries: the same seed gives the same
/// network on every platform.

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>

#include "dlb/core/types.hpp"

namespace dlb {

/// Seedable 64-bit Mersenne Twister; its output sequence is fixed by the C++ standard.
using Generator = std::mt19937_64;

/// Uniform draw in [0, 1): u = k * 2^-b with k uniform on b bits, b = 24 for float and 53
/// otherwise, so rounding to T can never produce 1.
template <Scalar T>
T SampleUniform(Generator& gen) {
  if constexpr (std::numeric_limits<T>::digits <= 24) {
    return static_cast<T>(gen() >> 40) * T(0x1.0p-24);
  } else {
    return static_cast<T>(static_cast<double>(gen() >> 11) * 0x1.0p-53);
  }
}

/// Standard normal draw N(0, 1) by the Box-Muller transform:
/// z = sqrt(-2 ln u1) * cos(2 pi u2), with u1 in (0, 1].
template <Scalar T>
T SampleNormal(Generator& gen) {
  const double u1 = 1.0 - static_cast<double>(gen() >> 11) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(gen() >> 11) * 0x1.0p-53;
  return static_cast<T>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
}

/// Uniform integer in [0, n) without modulo bias (rejection sampling); n > 0.
inline std::uint64_t SampleIndex(Generator& gen, std::uint64_t n) {
  const std::uint64_t limit = Generator::max() - Generator::max() % n;
  std::uint64_t x;
  do {
    x = gen();
  } while (x >= limit);
  return x % n;
}

}  // namespace dlb
