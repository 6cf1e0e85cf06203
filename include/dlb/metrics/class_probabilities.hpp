#pragma once
/// \file
/// Class probabilities from a classifier's logits: Softmax (per column), ArgMax (the
/// predicted class of each sample) and TopK (the k most probable classes of one sample).
///
/// Logits are classes x N, one sample per column, as ModelNN::Forward and Predictor::Predict
/// return them. Every function refuses logits that are not finite (NaN or infinity), naming
/// the sample: NaN compares false with everything, so an arg-max over it would still name a
/// class and the prediction would look like one.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// One class of a TopK answer.
struct ClassProbability {
  Label label = 0;           ///< the class (row of the logits)
  double probability = 0.0;  ///< softmax of the logits, in [0, 1]
};

namespace internal {

/// Throws ArgumentError naming `who` and the first sample (column) whose logits are not all
/// finite, or when there are no classes.
template <class Derived>
void RequireFiniteLogits(const char* who, const Eigen::MatrixBase<Derived>& logits) {
  if (logits.rows() == 0) {
    throw ArgumentError(std::string(who) + ": the logits have no rows (classes)");
  }
  for (Index j = 0; j < logits.cols(); ++j) {
    if (!logits.col(j).allFinite()) {
      throw ArgumentError(std::string(who) + ": the logits of sample " + std::to_string(j) +
                          " are not finite (NaN or infinity), so no class can be predicted");
    }
  }
}

}  // namespace internal

/// P = softmax(Z) per column for logits Z (classes x N): P_ij = exp(Z_ij - m_j) /
/// sum_k exp(Z_kj - m_j), m_j = max_k Z_kj (subtracting the maximum keeps exp from
/// overflowing; every column of P sums to 1 up to rounding). Computed in double, returned in
/// the logits' scalar type. Throws ArgumentError for logits that are not finite.
template <class Derived>
Matrix<typename Derived::Scalar> Softmax(const Eigen::MatrixBase<Derived>& logits) {
  using T = typename Derived::Scalar;
  internal::RequireFiniteLogits("Softmax", logits);
  Matrix<T> p(logits.rows(), logits.cols());
  for (Index j = 0; j < logits.cols(); ++j) {
    const double top = static_cast<double>(logits.col(j).maxCoeff());
    double sum = 0.0;
    for (Index i = 0; i < logits.rows(); ++i) sum += std::exp(static_cast<double>(logits(i, j)) - top);
    for (Index i = 0; i < logits.rows(); ++i) {
      p(i, j) = static_cast<T>(std::exp(static_cast<double>(logits(i, j)) - top) / sum);
    }
  }
  return p;
}

/// The predicted class of each sample: argmax_i Z_ij for logits Z (classes x N), the first
/// (lowest) class winning ties, as in CountCorrect. Throws ArgumentError for logits that are
/// not finite.
template <class Derived>
Labels ArgMax(const Eigen::MatrixBase<Derived>& logits) {
  internal::RequireFiniteLogits("ArgMax", logits);
  Labels classes(logits.cols());
  for (Index j = 0; j < logits.cols(); ++j) {
    Index best = 0;
    logits.col(j).maxCoeff(&best);
    classes(j) = static_cast<Label>(best);
  }
  return classes;
}

/// The min(k, classes) most probable classes of one sample, most probable first (ties: the
/// lower class first), with their softmax probabilities. `logits` is one column (classes x 1,
/// e.g. logits.col(j)). Throws ArgumentError for k < 1, a matrix of more than one column or
/// logits that are not finite.
template <class Derived>
std::vector<ClassProbability> TopK(const Eigen::MatrixBase<Derived>& logits, Index k) {
  if (k < 1) throw ArgumentError("TopK: k must be >= 1, got " + std::to_string(k));
  if (logits.cols() != 1) {
    throw ArgumentError("TopK: expected the logits of one sample (one column), got " +
                        std::to_string(logits.rows()) + " x " + std::to_string(logits.cols()) +
                        "; pass logits.col(j)");
  }
  internal::RequireFiniteLogits("TopK", logits);
  const Matrix<double> p = Softmax(logits.template cast<double>().eval());
  std::vector<ClassProbability> all(static_cast<std::size_t>(p.rows()));
  for (Index i = 0; i < p.rows(); ++i) all[static_cast<std::size_t>(i)] = {static_cast<Label>(i), p(i, 0)};
  const auto more_probable = [](const ClassProbability& a, const ClassProbability& b) {
    return a.probability != b.probability ? a.probability > b.probability : a.label < b.label;
  };
  const auto count = static_cast<std::size_t>(std::min(k, p.rows()));
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count), all.end(), more_probable);
  all.resize(count);
  return all;
}

}  // namespace dlb
