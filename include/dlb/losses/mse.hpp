#pragma once
/// \file
/// Mean squared error.

#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"
#include "dlb/losses/loss.hpp"

namespace dlb {

/// Mean squared error over all elements.
///
/// For outputs Z and targets Y, both K x N:
///   L  = (1 / (K N)) sum_ij (Z_ij - Y_ij)^2,
///   dZ = 2 (Z - Y) / (K N)        (the exact gradient of the reported L).
/// With class labels instead of targets, Y = onehot(y) (classification by regression).
template <Scalar T = float>
class MseLoss {
 public:
  using Scalar = T;

  /// L for real-valued targets (same shape as the outputs); writes dZ into `doutputs`.
  T Compute(const ConstMatrixRef<T>& outputs, const ConstMatrixRef<T>& targets,
            Matrix<T>& doutputs) const {
    CheckTargets(outputs, targets);
    const T scale = T(2) / static_cast<T>(outputs.size());
    doutputs.resize(outputs.rows(), outputs.cols());
    doutputs.array() = outputs.array() - targets.array();
    const T value = doutputs.squaredNorm() / static_cast<T>(outputs.size());
    doutputs *= scale;
    return value;
  }

  /// L for real-valued targets, without the gradient.
  T Value(const ConstMatrixRef<T>& outputs, const ConstMatrixRef<T>& targets) const {
    CheckTargets(outputs, targets);
    return (outputs - targets).squaredNorm() / static_cast<T>(outputs.size());
  }

  /// L against one-hot encoded labels; writes dZ into `doutputs`.
  T Compute(const ConstMatrixRef<T>& outputs, const LabelsRef& labels, Matrix<T>& doutputs) const {
    internal::CheckLabels("MseLoss", outputs, labels);
    doutputs.resize(outputs.rows(), outputs.cols());
    doutputs = outputs;
    for (Index j = 0; j < labels.size(); ++j) doutputs(labels(j), j) -= T(1);
    const T value = doutputs.squaredNorm() / static_cast<T>(outputs.size());
    doutputs *= T(2) / static_cast<T>(outputs.size());
    return value;
  }

  /// L against one-hot encoded labels, without the gradient.
  T Value(const ConstMatrixRef<T>& outputs, const LabelsRef& labels) const {
    internal::CheckLabels("MseLoss", outputs, labels);
    double total = outputs.squaredNorm();
    // (z - 1)^2 = z^2 - 2 z + 1 at each labelled entry.
    for (Index j = 0; j < labels.size(); ++j) {
      total += 1.0 - 2.0 * static_cast<double>(outputs(labels(j), j));
    }
    return static_cast<T>(total / static_cast<double>(outputs.size()));
  }

 private:
  static void CheckTargets(const ConstMatrixRef<T>& outputs, const ConstMatrixRef<T>& targets) {
    if (outputs.rows() != targets.rows() || outputs.cols() != targets.cols() ||
        outputs.size() == 0) {
      throw ShapeError("MseLoss: outputs are " + std::to_string(outputs.rows()) + " x " +
                       std::to_string(outputs.cols()) + " but targets are " +
                       std::to_string(targets.rows()) + " x " + std::to_string(targets.cols()) +
                       "; they must have the same non-empty shape");
    }
  }
};

}  // namespace dlb
