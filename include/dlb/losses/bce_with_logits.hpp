#pragma once
/// \file
/// Binary cross-entropy on logits (multi-label classification), fused for numerical stability.

#include <cmath>

#include "dlb/core/types.hpp"
#include "dlb/losses/loss.hpp"

namespace dlb {

/// Mean binary cross-entropy of sigmoid(Z) against targets Y in [0, 1], over all elements,
/// as torch.nn.BCEWithLogitsLoss (reduction "mean").
///
/// Logits Z and targets Y are K x N; per element, with x = Z_ij, y = Y_ij,
///   l(x, y) = -[y log s(x) + (1 - y) log(1 - s(x))] = max(x, 0) - x y + log(1 + exp(-|x|)),
///   L  = (1 / (K N)) sum_ij l(Z_ij, Y_ij),
///   dZ = (s(Z) - Y) / (K N),   s(x) = 1 / (1 + exp(-x)).
/// The right-hand form never exponentiates a positive number, so logits of +-1000 give
/// finite values (|x| for a wrong sign, 0 for a right one) and gradients.
/// A pass over data with this loss reports the element-wise accuracy (ScoreKind::BinaryAccuracy).
template <Scalar T = float>
class BCEWithLogitsLoss {
 public:
  using Scalar = T;
  static constexpr ScoreKind kTargetScore = ScoreKind::BinaryAccuracy;

  /// Returns L and writes dZ (K x N) into `dlogits`. Throws ShapeError unless Z and Y have
  /// the same non-empty shape.
  T Compute(const ConstMatrixRef<T>& logits, const ConstMatrixRef<T>& targets, Matrix<T>& dlogits) const {
    internal::CheckSameShape("BCEWithLogitsLoss", logits, targets);
    dlogits.resize(logits.rows(), logits.cols());
    const double scale = 1.0 / static_cast<double>(logits.size());
    double total = 0;
    for (Index j = 0; j < logits.cols(); ++j) {
      for (Index i = 0; i < logits.rows(); ++i) {
        const double x = static_cast<double>(logits(i, j)), y = static_cast<double>(targets(i, j));
        const double e = std::exp(-std::abs(x));  // in (0, 1]
        total += std::max(x, 0.0) - x * y + std::log1p(e);
        const double sigmoid = x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        dlogits(i, j) = static_cast<T>((sigmoid - y) * scale);
      }
    }
    return static_cast<T>(total * scale);
  }

  /// Returns L without the gradient.
  T Value(const ConstMatrixRef<T>& logits, const ConstMatrixRef<T>& targets) const {
    internal::CheckSameShape("BCEWithLogitsLoss", logits, targets);
    double total = 0;
    for (Index j = 0; j < logits.cols(); ++j) {
      for (Index i = 0; i < logits.rows(); ++i) {
        const double x = static_cast<double>(logits(i, j)), y = static_cast<double>(targets(i, j));
        total += std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
      }
    }
    return static_cast<T>(total / static_cast<double>(logits.size()));
  }
};

}  // namespace dlb
