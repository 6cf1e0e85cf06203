#pragma once
/// \file
/// The geometry of a window sliding over the image planes of a sample: what convolutions and
/// pooling layers share (kernel, stride and padding, and the output size they give).

#include <string>
#include <type_traits>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// A height and a width, e.g. a kernel of 3 x 5. Built from one number for a square
/// (`Size2D(3)` is 3 x 3) or from two (`Size2D(3, 5)`, `{3, 5}`).
struct Size2D {
  Index height = 1;
  Index width = 1;

  constexpr Size2D() = default;
  /// A square: both extents `both`. Implicit, so that `Conv2D<float>(1, 32, 3)` reads well.
  constexpr Size2D(Index both) : height(both), width(both) {}  // NOLINT(google-explicit-constructor)
  constexpr Size2D(Index height_, Index width_) : height(height_), width(width_) {}

  constexpr bool operator==(const Size2D&) const = default;
  constexpr bool IsSquare() const { return height == width; }

  /// "3x3" or "3x5".
  std::string ToString() const { return std::to_string(height) + "x" + std::to_string(width); }
};

/// Represents: a kernel_h x kernel_w window placed at rows oy * stride_h - padding_h ..
/// + kernel_h - 1 and columns ox * stride_w - padding_w .. + kernel_w - 1 of each image plane
/// (positions outside the plane read as zero padding), for every output position (oy, ox).
/// The output size is torch's (floor mode):
///   out_h = floor((in_h + 2 padding_h - kernel_h) / stride_h) + 1,   likewise for the width,
/// so rows and columns that no whole window reaches (the last row of a 7-row plane under a
/// 2x2 window of stride 2) are not read.
/// Requires: kernel >= 1, stride >= 1 and padding >= 0 in each direction.
struct Window2D {
  /// The largest kernel, stride or padding extent Validate accepts (2^31 - 1): beyond any
  /// image, and small enough that no sum or product of two extents overflows.
  static constexpr Index kMaxExtent = (Index{1} << 31) - 1;

  Size2D kernel{1};
  Size2D stride{1};
  Size2D padding{0};

  constexpr bool operator==(const Window2D&) const = default;

  /// Throws ArgumentError, prefixed with `who` ("Conv2D"), unless the requirements above hold.
  void Validate(const std::string& who) const {
    auto fail = [&](const std::string& what) { throw ArgumentError(who + ": " + what); };
    if (kernel.height < 1 || kernel.width < 1) {
      fail("the kernel must be at least 1x1, got " + kernel.ToString());
    }
    if (stride.height < 1 || stride.width < 1) {
      fail("the stride must be at least 1 in each direction, got " + stride.ToString());
    }
    if (padding.height < 0 || padding.width < 0) {
      fail("the padding must be at least 0 in each direction, got " + padding.ToString());
    }
    for (Index extent : {kernel.height, kernel.width, stride.height, stride.width, padding.height,
                         padding.width}) {
      if (extent > kMaxExtent) {
        fail("the window " + kernel.ToString() + ", stride " + stride.ToString() + ", padding " +
             padding.ToString() + " has an extent above " + std::to_string(kMaxExtent));
      }
    }
  }

  /// The output plane for an input plane of in_h x in_w; throws ShapeError "needs an input
  /// of at least 3 x 3 per channel (the 3x3 kernel, less the padding), got 32 x 2 x 2" when
  /// the padded plane is smaller than the window (`input` labels the message).
  Size2D OutputSize(const Shape& input) const {
    // Checked: a padding of 2^61 read from a file must not wrap around to a small size.
    const Index padded_h = CheckedAdd(input.height, CheckedMultiply(2, padding.height, "twice the padding"),
                                      "the padded height (input + 2 x padding)");
    const Index padded_w = CheckedAdd(input.width, CheckedMultiply(2, padding.width, "twice the padding"),
                                      "the padded width (input + 2 x padding)");
    if (padded_h < kernel.height || padded_w < kernel.width) {
      const bool padded = padding.height > 0 || padding.width > 0;
      // padded < kernel here, so kernel - 2 padding > input >= 1: no overflow, no sign flip.
      throw ShapeError("needs an input of at least " +
                       std::to_string(kernel.height - 2 * padding.height) + " x " +
                       std::to_string(kernel.width - 2 * padding.width) + " per channel (the " +
                       kernel.ToString() + " window" + (padded ? ", less the padding" : "") +
                       "), got " + std::to_string(input.channels) + " x " +
                       std::to_string(input.height) + " x " + std::to_string(input.width));
    }
    return {(padded_h - kernel.height) / stride.height + 1,
            (padded_w - kernel.width) / stride.width + 1};
  }

  /// ", stride 2" / ", stride 1x2" unless the stride is `usual`; ", padding 1" unless 0.
  std::string Describe(Size2D usual_stride) const {
    std::string text;
    if (!(stride == usual_stride)) text += ", stride " + Compact(stride);
    if (!(padding == Size2D(0))) text += ", padding " + Compact(padding);
    return text;
  }

  /// "2" for 2x2, "1x2" otherwise.
  static std::string Compact(Size2D size) {
    return size.IsSquare() ? std::to_string(size.height) : size.ToString();
  }
};

namespace internal {

/// Calls f(std::integral_constant<Index, S>) with S = stride for the common strides 1 and 2
/// (so the row kernels below are compiled for a constant stride), S = 0 otherwise.
template <class F>
void WithStride(Index stride, F&& f) {
  if (stride == 1) {
    f(std::integral_constant<Index, 1>{});
  } else if (stride == 2) {
    f(std::integral_constant<Index, 2>{});
  } else {
    f(std::integral_constant<Index, 0>{});
  }
}

// Row kernels of the windowed layers (im2col, pooling): n values of an image row read or
// written `stride` apart (the compile-time kStride when it is not 0) against n contiguous
// ones. Plain loops over non-aliasing pointers, so that the compiler can vectorise them.

/// out[o] = values[o*stride].
template <Index kStride, Scalar T>
void GatherRow(const T* __restrict values, T* __restrict out, Index n, Index stride) {
  const Index step = kStride != 0 ? kStride : stride;
  for (Index o = 0; o < n; ++o) out[o] = values[o * step];
}

/// sum[o] += values[o*stride].
template <Index kStride, Scalar T>
void AddRow(const T* __restrict values, T* __restrict sum, Index n, Index stride) {
  const Index step = kStride != 0 ? kStride : stride;
  for (Index o = 0; o < n; ++o) sum[o] += values[o * step];
}

/// targets[o*stride] += scale * values[o].
template <Index kStride, Scalar T>
void SpreadRow(const T* __restrict values, T* __restrict targets, Index n, Index stride, T scale) {
  const Index step = kStride != 0 ? kStride : stride;
  for (Index o = 0; o < n; ++o) targets[o * step] += scale * values[o];
}

}  // namespace internal

}  // namespace dlb
