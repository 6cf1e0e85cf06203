#pragma once
/// \file
/// Metrics for real-valued targets: mean squared and absolute error and R^2 (regression),
/// and the element-wise accuracy of logits against 0/1 targets (multi-label).

#include <cmath>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/targets.hpp"
#include "dlb/core/types.hpp"

namespace dlb {


/// Number of elements whose logit and 0/1 target agree: (Z_ij > 0) == (Y_ij > 1/2).
/// Throws ShapeError unless Z and Y have the same non-empty shape.
template <class Derived, class OtherDerived>
Index CountBinaryCorrect(const Eigen::MatrixBase<Derived>& logits,
                         const Eigen::MatrixBase<OtherDerived>& targets) {
  internal::CheckSameShape("CountBinaryCorrect", logits, targets);
  Index correct = 0;
  for (Index j = 0; j < logits.cols(); ++j) {
    for (Index i = 0; i < logits.rows(); ++i) {
      correct += (logits(i, j) > 0) == (targets(i, j) > 0.5);
    }
  }
  return correct;
}

/// Accumulates regression errors over the batches of a pass.
///
/// Represents: for outputs Z and targets Y (K x n per batch) seen so far, S samples:
///   MSE = sum (Z - Y)^2 / (K S),  MAE = sum |Z - Y| / (K S),
///   R^2 = 1 - sum_ij (Z_ij - Y_ij)^2 / sum_ij (Y_ij - mean_i)^2, mean_i = row i's target mean
/// (scikit-learn's "variance_weighted" R^2; for K = 1 the usual one). Sums in double.
/// Allocation: Reset(K) allocates when K grows; Add allocates nothing.
class RegressionMeter {
 public:
  /// Starts over for targets of `rows` values.
  void Reset(Index rows) {
    if (sum_y_.size() != rows) {
      sum_y_.resize(rows);
      sum_y2_.resize(rows);
    }
    sum_y_.setZero();
    sum_y2_.setZero();
    squared_ = absolute_ = 0;
    samples_ = 0;
  }

  /// Adds a batch; throws ShapeError unless Z and Y are both Reset's K x n.
  template <class Derived, class OtherDerived>
  void Add(const Eigen::MatrixBase<Derived>& outputs, const Eigen::MatrixBase<OtherDerived>& targets) {
    internal::CheckSameShape("RegressionMeter", outputs, targets);
    if (targets.rows() != sum_y_.size()) {
      throw ShapeError("RegressionMeter: targets of " + std::to_string(targets.rows()) +
                       " rows after Reset(" + std::to_string(sum_y_.size()) + ")");
    }
    for (Index j = 0; j < outputs.cols(); ++j) {
      for (Index i = 0; i < outputs.rows(); ++i) {
        const double y = static_cast<double>(targets(i, j));
        const double e = static_cast<double>(outputs(i, j)) - y;
        squared_ += e * e;
        absolute_ += std::abs(e);
        sum_y_(i) += y;
        sum_y2_(i) += y * y;
      }
    }
    samples_ += outputs.cols();
  }

  Index Samples() const { return samples_; }
  double Mse() const { return samples_ == 0 ? 0.0 : squared_ / Elements(); }
  double Mae() const { return samples_ == 0 ? 0.0 : absolute_ / Elements(); }
  /// R^2 as above; 1 for a perfect fit of constant targets, 0 for an imperfect one (the total
  /// sum of squares is then 0; scikit-learn does the same).
  double R2() const {
    const auto n = static_cast<double>(samples_);
    double total = 0;
    for (Index i = 0; i < sum_y_.size(); ++i) total += sum_y2_(i) - sum_y_(i) * sum_y_(i) / n;
    if (samples_ == 0) return 0.0;
    if (!(total > 0)) return squared_ == 0 ? 1.0 : 0.0;
    return 1.0 - squared_ / total;
  }

 private:
  double Elements() const { return static_cast<double>(samples_) * static_cast<double>(sum_y_.size()); }
  Eigen::VectorXd sum_y_, sum_y2_;
  double squared_ = 0, absolute_ = 0;
  Index samples_ = 0;
};

}  // namespace dlb
