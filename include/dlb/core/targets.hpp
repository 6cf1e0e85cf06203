#pragma once
/// \file
/// What a model is trained to predict: class labels, one per sample (column) of a batch, or
/// real-valued target columns; the checks every loss and metric makes of them, and the kind
/// of score a pass reports.

#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Read-only view of labels (a Labels vector or a segment of one).
using LabelsRef = Eigen::Ref<const Labels>;

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

/// What a pass's score (PassResult::score, EpochStats::train_score/val_score) measures.
enum class ScoreKind {
  Accuracy,        ///< class labels: fraction of samples whose largest logit is their label
  R2,              ///< real targets: coefficient of determination (RegressionMeter::R2)
  BinaryAccuracy,  ///< 0/1 targets and logits: fraction of elements with (z > 0) == (y > 1/2)
};

/// "acc", "r2" or "bin_acc": the score's short name (progress lines).
inline const char* ScoreName(ScoreKind kind) {
  switch (kind) {
    case ScoreKind::R2: return "r2";
    case ScoreKind::BinaryAccuracy: return "bin_acc";
    default: return "acc";
  }
}

namespace internal {
template <class Derived, class OtherDerived>
void CheckSameShape(const char* who, const Eigen::MatrixBase<Derived>& outputs,
                    const Eigen::MatrixBase<OtherDerived>& targets) {
  if (outputs.rows() != targets.rows() || outputs.cols() != targets.cols() || outputs.size() == 0) {
    throw ShapeError(std::string(who) + ": outputs are " + std::to_string(outputs.rows()) + " x " +
                     std::to_string(outputs.cols()) + " but targets are " +
                     std::to_string(targets.rows()) + " x " + std::to_string(targets.cols()) +
                     "; they must have the same non-empty shape");
  }
}
}  // namespace internal

}  // namespace dlb
