#pragma once
/// \file
/// The Loss contract: a scalar objective on a model's output (logits) and the labels.
///
/// Required members (L::Scalar is T; logits are classes x batch, labels one per column):
/// ```
///   T Compute(const ConstMatrixRef<T>& logits, const LabelsRef& labels, Matrix<T>& dlogits);
///   T Value(const ConstMatrixRef<T>& logits, const LabelsRef& labels);
/// ```
/// Compute returns the loss and writes its exact gradient dL/dlogits (same shape as the
/// logits, resized without allocation when the shape is unchanged); Value returns the same
/// number without the gradient (validation passes).

#include <concepts>
#include <string>

#include "dlb/core/targets.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Satisfied by every type that fulfils the Loss contract described above.
template <class L>
concept Loss = requires { typename L::Scalar; } && Scalar<typename L::Scalar> &&
    requires(L& loss, const ConstMatrixRef<typename L::Scalar>& logits, const LabelsRef& labels,
             Matrix<typename L::Scalar>& dlogits) {
      { loss.Compute(logits, labels, dlogits) } -> std::convertible_to<typename L::Scalar>;
      { loss.Value(logits, labels) } -> std::convertible_to<typename L::Scalar>;
    };


}  // namespace dlb
