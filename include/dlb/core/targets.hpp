#pragma once
/// \file
/// What a model is trained to predict: class labels, one per sample (column) of a batch, and
/// the checks every loss and metric makes of them.

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

}  // namespace dlb
