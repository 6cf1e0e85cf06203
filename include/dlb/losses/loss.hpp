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

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Read-only view of labels (a Labels vector or a segment of one).
using LabelsRef = Eigen::Ref<const Labels>;

/// Satisfied by every type that fulfils the Loss contract described above.
template <class L>
concept Loss = requires { typename L::Scalar; } && Scalar<typename L::Scalar> &&
    requires(L& loss, const ConstMatrixRef<typename L::Scalar>& logits, const LabelsRef& labels,
             Matrix<typename L::Scalar>& dlogits) {
      { loss.Compute(logits, labels, dlogits) } -> std::convertible_to<typename L::Scalar>;
      { loss.Value(logits, labels) } -> std::convertible_to<typename L::Scalar>;
    };

namespace internal {
/// Throws ShapeError/ArgumentError unless there is one label per column and every label
/// indexes a row of the logits. `who` names the caller in the message.
template <class Derived>
void CheckLabels(const char* who, const Eigen::MatrixBase<Derived>& logits,
                 const LabelsRef& labels) {
  if (logits.cols() == 0) throw ShapeError(std::string(who) + ": empty batch (0 columns)");
  if (labels.size() != logits.cols()) {
    throw ShapeError(std::string(who) + ": " + std::to_string(labels.size()) +
                     " labels for a batch of " + std::to_string(logits.cols()) +
                     " columns; expected one label per column");
  }
  for (Index j = 0; j < labels.size(); ++j) {
    if (labels(j) < 0 || labels(j) >= logits.rows()) {
      throw ArgumentError(std::string(who) + ": label " + std::to_string(labels(j)) +
                          " of sample " + std::to_string(j) + " is outside 0.." +
                          std::to_string(logits.rows() - 1) + " (the logits have " +
                          std::to_string(logits.rows()) + " rows)");
    }
  }
}
}  // namespace internal

}  // namespace dlb
