#pragma once
/// \file
/// What every layer that reads its input as C x H x W images shares (convolution, pooling,
/// batch norm): it is told its input shape once (ModelNN::Add calls SetInputShape), and it
/// checks every batch against it.

#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Base of a layer `Derived` whose Forward needs its input shape (CRTP).
///
/// Represents: the input shape given to SetInputShape and the output shape
/// Derived::OutputShape gives for it. Requires: Derived provides Name() and
/// OutputShape(const Shape&). Ensures: SetInputShape throws ShapeError (what the layer needs,
/// as OutputShape says it) and keeps the previous shape when `input` does not fit.
template <class Derived>
class SpatialLayer {
 public:
  /// Remembers `input` (and the output shape it gives); throws ShapeError when the layer
  /// does not accept it.
  void SetInputShape(const Shape& input) {
    const Shape output = static_cast<const Derived&>(*this).OutputShape(input);
    input_shape_ = input;
    output_shape_ = output;
  }
  /// The shape given to SetInputShape (channels 0 before).
  const Shape& InputShape() const { return input_shape_; }

 protected:
  /// Throws ShapeError unless SetInputShape was called and `rows` (of a batch or of its
  /// gradient, `what`) equals `shape`.Size().
  void RequireRows(Index rows, const Shape& shape, const char* what) const {
    const auto& self = static_cast<const Derived&>(*this);
    if (!input_shape_.IsValid()) {
      throw ShapeError(self.Name() + ": the input shape is unknown; call SetInputShape(shape) "
                       "before Forward (ModelNN::Add does)");
    }
    if (rows != shape.Size()) {
      throw ShapeError(self.Name() + ": " + what + " has " + std::to_string(rows) +
                       " rows, but its sample shape " + shape.ToString() + " needs " +
                       std::to_string(shape.Size()));
    }
  }

  /// Throws ShapeError unless an output gradient of `samples` columns belongs to the latest
  /// Forward, which had `latest` samples (for a layer whose Backward reads what its Forward
  /// kept per sample, e.g. where each maximum was).
  void RequireLatestBatch(Index samples, Index latest) const {
    if (samples != latest) {
      throw ShapeError(static_cast<const Derived&>(*this).Name() + ": the output gradient has " +
                       std::to_string(samples) + " samples, the latest Forward had " +
                       std::to_string(latest));
    }
  }

  Shape input_shape_{0, 0, 0};
  Shape output_shape_{0, 0, 0};
};

}  // namespace dlb
