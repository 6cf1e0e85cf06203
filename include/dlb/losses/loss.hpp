#pragma once
/// \file
/// The Loss contracts: a scalar objective on a model's output (logits) and the labels (Loss),
/// or the real-valued targets (TargetLoss).
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

namespace internal {
/// Stand-ins for the labels and the targets in the concepts below. Eigen::Ref<const X> converts
/// from any matrix expression (the mismatch only fails when the conversion is compiled), so a
/// LabelsRef argument would make a loss taking targets look like one taking labels. These
/// convert to the one kind of argument alone (a Ref or a const reference of it).
struct LabelsArgument {
  operator LabelsRef() const;       // NOLINT(google-explicit-constructor): declared only
  operator const Labels&() const;   // NOLINT(google-explicit-constructor)
};
template <Scalar T>
struct TargetsArgument {
  operator ConstMatrixRef<T>() const;  // NOLINT(google-explicit-constructor)
  operator const Matrix<T>&() const;   // NOLINT(google-explicit-constructor)
};
}  // namespace internal

/// Satisfied by every type that fulfils the Loss contract described above.
template <class L>
concept Loss = requires { typename L::Scalar; } && Scalar<typename L::Scalar> &&
    requires(L& loss, const ConstMatrixRef<typename L::Scalar>& logits,
             const internal::LabelsArgument& labels, Matrix<typename L::Scalar>& dlogits) {
      { loss.Compute(logits, labels, dlogits) } -> std::convertible_to<typename L::Scalar>;
      { loss.Value(logits, labels) } -> std::convertible_to<typename L::Scalar>;
    };

/// The contract for real-valued targets (regression, multi-output, multi-label): the same
/// members with targets of the outputs' shape (K x batch) in place of the labels:
/// ```
///   T Compute(const ConstMatrixRef<T>& outputs, const ConstMatrixRef<T>& targets, Matrix<T>& doutputs);
///   T Value(const ConstMatrixRef<T>& outputs, const ConstMatrixRef<T>& targets);
/// ```
/// Optionally `static constexpr ScoreKind kTargetScore`: the score a training pass reports
/// with this loss (R2 when absent).
template <class L>
concept TargetLoss = requires { typename L::Scalar; } && Scalar<typename L::Scalar> &&
    requires(L& loss, const ConstMatrixRef<typename L::Scalar>& outputs,
             const internal::TargetsArgument<typename L::Scalar>& targets,
             Matrix<typename L::Scalar>& doutputs) {
      { loss.Compute(outputs, targets, doutputs) } -> std::convertible_to<typename L::Scalar>;
      { loss.Value(outputs, targets) } -> std::convertible_to<typename L::Scalar>;
    };

/// A loss for class labels, for real-valued targets, or for both (MseLoss).
template <class L>
concept AnyLoss = Loss<L> || TargetLoss<L>;

/// The score a pass over real-valued targets reports with loss L: L::kTargetScore, else R2.
template <class L>
constexpr ScoreKind TargetScoreOf() {
  if constexpr (requires { L::kTargetScore; }) {
    return L::kTargetScore;
  } else {
    return ScoreKind::R2;
  }
}

}  // namespace dlb
