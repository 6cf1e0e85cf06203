#pragma once
/// \file
/// Softmax cross-entropy on logits, fused for numerical stability, with optional label
/// smoothing.

#include <cmath>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"
#include "dlb/losses/loss.hpp"

namespace dlb {

/// The arguments of CrossEntropyLoss.
struct CrossEntropyLossOptions {
  /// epsilon in [0, 1] (torch.nn.CrossEntropyLoss's label_smoothing): the target of a sample
  /// of label y is (1 - epsilon) onehot(y) + epsilon / K over the K classes instead of
  /// onehot(y). 0: plain cross-entropy.
  double label_smoothing = 0;

  CrossEntropyLossOptions& LabelSmoothing(double value) {
    label_smoothing = value;
    return *this;
  }
  /// Throws ArgumentError unless 0 <= label_smoothing <= 1.
  void Validate() const {
    if (!(label_smoothing >= 0 && label_smoothing <= 1)) {
      throw ArgumentError("CrossEntropyLoss: label_smoothing must be in [0, 1], got " +
                          std::to_string(label_smoothing));
    }
  }
};

/// Mean softmax cross-entropy over the batch, as torch.nn.CrossEntropyLoss (reduction "mean",
/// `label_smoothing` epsilon).
///
/// Logits Z are K x N (K classes), labels y_j in 0..K-1. With m_j = max_i Z_ij and
/// S_j = sum_i exp(Z_ij - m_j), so that log softmax(Z)_ij = Z_ij - m_j - log S_j,
///   L  = (1/N) sum_j [ m_j + log S_j - Z_{y_j j} + epsilon (Z_{y_j j} - mean_i Z_ij) ],
///   dZ = (softmax(Z) - (1 - epsilon) onehot(y) - epsilon / K) / N,
/// the cross-entropy against the smoothed target (1 - epsilon) onehot(y) + epsilon / K.
/// Subtracting the column maximum keeps exp() in (0, 1], so logits of +-1000 give finite
/// values and gradients. With epsilon = 0 the epsilon terms are skipped, not added as zeros.
template <Scalar T = float>
class CrossEntropyLoss {
 public:
  using Scalar = T;

  /// Plain cross-entropy (no label smoothing).
  CrossEntropyLoss() = default;
  /// Throws ArgumentError for a label_smoothing outside [0, 1].
  explicit CrossEntropyLoss(const CrossEntropyLossOptions& options)
      : label_smoothing_(options.label_smoothing) {
    options.Validate();
  }

  double LabelSmoothing() const { return label_smoothing_; }

  /// Returns L and writes dZ (K x N) into `dlogits`.
  T Compute(const ConstMatrixRef<T>& logits, const LabelsRef& labels, Matrix<T>& dlogits) const {
    internal::CheckLabels("CrossEntropyLoss", logits, labels);
    const Index n = logits.cols();
    dlogits.resize(logits.rows(), n);
    const T per_sample = T(1) / static_cast<T>(n);
    const T smoothing = static_cast<T>(label_smoothing_);
    const T spread = static_cast<T>(label_smoothing_ / static_cast<double>(logits.rows() * n));
    double total = 0;
    for (Index j = 0; j < n; ++j) {
      const T max_logit = logits.col(j).maxCoeff();
      dlogits.col(j).array() = (logits.col(j).array() - max_logit).exp();
      const T sum = dlogits.col(j).sum();
      total += ColumnLoss(logits, labels, j, max_logit, sum);
      dlogits.col(j) *= T(1) / (sum * static_cast<T>(n));
      dlogits(labels(j), j) -= per_sample;
      if (label_smoothing_ != 0) {
        dlogits.col(j).array() -= spread;
        dlogits(labels(j), j) += smoothing * per_sample;
      }
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
      total += ColumnLoss(logits, labels, j, max_logit, sum);
    }
    return static_cast<T>(total / static_cast<double>(logits.cols()));
  }

 private:
  /// Sample j's term of L (in double), given m_j and S_j.
  double ColumnLoss(const ConstMatrixRef<T>& logits, const LabelsRef& labels, Index j,
                    T max_logit, T sum) const {
    const double label_logit = static_cast<double>(logits(labels(j), j));
    double loss = static_cast<double>(max_logit) + std::log(static_cast<double>(sum)) - label_logit;
    if (label_smoothing_ != 0) {
      const double mean_logit = logits.col(j).template cast<double>().mean();
      loss += label_smoothing_ * (label_logit - mean_logit);
    }
    return loss;
  }

  double label_smoothing_ = 0;
};

}  // namespace dlb
