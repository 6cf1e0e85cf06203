#pragma once
/// \file
/// Shape: what one sample looks like as it flows from layer to layer.

#include <string>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// The shape of one sample: channels x height x width. A flat feature vector of n values is
/// {n, 1, 1}.
///
/// Represents: how a layer reads the column that holds a sample. The column is the sample
/// flattened channel-major, then rows, then columns (the memory order of one sample of a
/// PyTorch NCHW tensor), so element (c, y, x) sits at row (c * height + y) * width + x, and a
/// Linear layer after a convolution reads the same numbers PyTorch's nn.Flatten would give it.
/// Ensures: Size() = channels * height * width is the number of rows of a batch. Size() of a
/// shape that is not IsValid() is meaningless: every shape computed from outside numbers is
/// checked with IsValid() (which also bounds the product, so Size() cannot overflow) before use.
struct Shape {
  Index channels = 0;
  Index height = 1;
  Index width = 1;

  constexpr Shape() = default;
  /// A flat feature vector of `features` values: {features, 1, 1}. Implicit, so that an MLP
  /// is written `ModelNN<float> model(784)`.
  constexpr Shape(Index features) : channels(features) {}  // NOLINT(google-explicit-constructor)
  constexpr Shape(Index channels_, Index height_, Index width_)
      : channels(channels_), height(height_), width(width_) {}

  /// Number of values of one sample (rows of a batch).
  constexpr Index Size() const { return channels * height * width; }
  /// True for {n, 1, 1}.
  constexpr bool IsFlat() const { return height == 1 && width == 1; }
  /// True when every extent is >= 1 and the shape holds at most kMaxValues values.
  constexpr bool IsValid() const {
    if (channels < 1 || height < 1 || width < 1) return false;
    Index plane = 0, size = 0;
    return !__builtin_mul_overflow(height, width, &plane) &&
           !__builtin_mul_overflow(plane, channels, &size) && size <= kMaxValues;
  }

  constexpr bool operator==(const Shape&) const = default;

  /// "784" for a flat shape, "32 x 7 x 7" otherwise.
  std::string ToString() const {
    if (IsFlat()) return std::to_string(channels);
    return std::to_string(channels) + " x " + std::to_string(height) + " x " +
           std::to_string(width);
  }
};

/// The check a layer with a fixed number of inputs makes in OutputShape: throws ShapeError
/// "needs 3136 input values per sample, got 64 x 8 x 8 = 4096" unless input.Size() equals
/// `features`. Any shape of the right size is accepted (a Linear after a convolution reads
/// the flattened sample). Like every OutputShape message it starts with what the layer
/// needs, so that ModelNN::Add can prefix "layer 3 (Linear(3136 -> 128)) ".
inline void RequireInputSize(const Shape& input, Index features) {
  if (input.Size() != features) {
    throw ShapeError("needs " + std::to_string(features) + " input values per sample, got " +
                     input.ToString() +
                     (input.IsFlat() ? std::string() : " = " + std::to_string(input.Size())));
  }
}

}  // namespace dlb
