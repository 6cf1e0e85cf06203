#pragma once
/// \file
/// Checked size arithmetic: every size the library computes from numbers it was given (layer
/// arguments, shapes, a file's architecture) goes through these, so that an overflow is an
/// error naming what overflowed instead of a wrapped size that a buffer is then allocated or
/// indexed with.

#include <cstdint>
#include <limits>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// The most values one sample, one tensor or one buffer of the library may hold: 2^48
/// (far above any memory, far below where products of a size and a batch or a byte count
/// could overflow 64 bits). Sizes above it are refused as errors, never allocated.
inline constexpr Index kMaxValues = Index{1} << 48;

/// a + b for sizes >= 0; throws ShapeError "<what> overflows: a + b" when the sum exceeds
/// kMaxValues (or a or b is negative).
inline Index CheckedAdd(Index a, Index b, const std::string& what) {
  Index sum = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &sum) || sum > kMaxValues) {
    throw ShapeError(what + " is out of range: " + std::to_string(a) + " + " + std::to_string(b) +
                     " (the limit is 2^48)");
  }
  return sum;
}

/// a * b for sizes >= 0; throws ShapeError "<what> is out of range: a x b" when the product
/// exceeds kMaxValues (or a or b is negative).
inline Index CheckedMultiply(Index a, Index b, const std::string& what) {
  Index product = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &product) || product > kMaxValues) {
    throw ShapeError(what + " is out of range: " + std::to_string(a) + " x " + std::to_string(b) +
                     " (the limit is 2^48)");
  }
  return product;
}

/// The product of `extents` (1 for none), or -1 when an extent is negative or the product
/// exceeds kMaxValues: for callers that report the problem in their own words.
template <class Extents>
Index ProductOrInvalid(const Extents& extents) {
  Index product = 1;
  for (auto extent : extents) {
    const auto size = static_cast<Index>(extent);
    if (size < 0 || __builtin_mul_overflow(product, size, &product) || product > kMaxValues) {
      return -1;
    }
  }
  return product;
}

}  // namespace dlb
