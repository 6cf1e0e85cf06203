#pragma once
/// \file
/// Classification accuracy from logits.

#include "dlb/core/types.hpp"
#include "dlb/core/targets.hpp"

namespace dlb {

/// Number of columns whose largest logit is in the row of their label (the first maximum
/// wins ties). Logits are classes x N; throws like the losses on a label/column mismatch.
template <class Derived>
Index CountCorrect(const Eigen::MatrixBase<Derived>& logits, const LabelsRef& labels) {
  internal::CheckLabels("CountCorrect", logits, labels);
  Index correct = 0;
  for (Index j = 0; j < logits.cols(); ++j) {
    Index predicted = 0;
    logits.col(j).maxCoeff(&predicted);
    correct += predicted == labels(j);
  }
  return correct;
}

/// Accuracy = (1/N) #{ j : argmax_i Z_ij = y_j } for logits Z (classes x N).
template <class Derived>
double ScoreAccLogits(const Eigen::MatrixBase<Derived>& logits, const LabelsRef& labels) {
  return static_cast<double>(CountCorrect(logits, labels)) / static_cast<double>(logits.cols());
}

}  // namespace dlb
