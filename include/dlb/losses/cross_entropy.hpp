#pragma once
/// \file
/// Softmax cross-entropy on logits, fused for numerical stability.

#include <cmath>

#include "dlb/core/types.hpp"
#include "dlb/losses/loss.hpp"

namespace dlb {

/// Mean softmax cross-entropy over the batch.
///
/// Logits Z are classes x N, labels y_j in 0..classes-1. With m_j = max_i Z_ij,
///   L  = (1/N) sum_j [ m_j + log sum_i exp(Z_ij - m_j) - Z_{y_j j} ],
///   dZ = (softmax(Z) - onehot(y)) / N.
/// Subtracting the column maximum keeps exp() in (0, 1], so logits of +-1000 give finite
/// values and gradients.
template <Scalar T = float>
class CrossEntropyLoss {
 public:
  using Scalar = T;

  /// Returns L and writes dZ (classes x N) into `dlogits`.
  T Compute(const ConstMatrixRef<T>& logits, const LabelsRef& labels, Matrix<T>& dlogits) {
    internal::CheckLabels("CrossEntropyLoss", logits, labels);
    const Index n = logits.cols();
    dlogits.resize(logits.rows(), n);
    double total = 0;
    for (Index j = 0; j < n; ++j) {
      const T max_logit = logits.col(j).maxCoeff();
      dlogits.col(j).array() = (logits.col(j).array() - max_logit).exp();
      const T sum = dlogits.col(j).sum();
      total += static_cast<double>(max_logit) + std::log(static_cast<double>(sum)) -
               static_cast<double>(logits(labels(j), j));
      dlogits.col(j) *= T(1) / (sum * static_cast<T>(n));
      dlogits(labels(j), j) -= T(1) / static_cast<T>(n);
    }
    return static_cast<T>(total / static_cast<double>(n));
  }

  /// Returns L without computing the gradient.
  T Value(const ConstMatrixRef<T>& logits, const LabelsRef& labels) const {
    internal::CheckLabels("CrossEntropyLoss", logits, labels);
    double total = 0;
    for (Index j = 0; j < logits.cols(); ++j) {
      const T max_logit = logits.col(j).maxCoeff();
      const T sum = (logits.col(j).array() - max_logit).exp().sum();
      total += static_cast<double>(max_logit) + std::log(static_cast<double>(sum)) -
               static_cast<double>(logits(labels(j), j));
    }
    return static_cast<T>(total / static_cast<double>(logits.cols()));
  }
};

}  // namespace dlb
