#pragma once
/// \file
/// Per-feature standardization (z-scores), fitted on the training set and applied unchanged
/// to every other set so that no statistic of the test data leaks into training.

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "dlb/core/error.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Standardizes each feature (row) of a features x samples matrix.
///
/// Fit over the n columns x_1 .. x_n of the training set, per feature r:
///
///     mean_r = (1/n) * sum_j x_rj
///     std_r  = sqrt((1/n) * sum_j (x_rj - mean_r)^2)      (population std)
///
/// and Transform maps x_rj to (x_rj - mean_r) / std_r. A constant feature (std_r == 0, e.g. a
/// border pixel that is always 0) gets std_r = 1 and mean_r = its value, so it becomes
/// exactly 0 instead of NaN.
template <Scalar T>
class Standardizer {
 public:
  /// An unfitted standardizer (call Fit).
  Standardizer() = default;

  /// A standardizer with known statistics (e.g. read back from a model file), as if fitted.
  /// Throws ArgumentError unless mean and stddev have the same size >= 1, every mean is
  /// finite and every std a normal number > 0 with a finite inverse (naming the first
  /// feature that is not).
  Standardizer(Vector<T> mean, Vector<T> stddev) : mean_(std::move(mean)), stddev_(std::move(stddev)) {
    if (mean_.size() == 0 || mean_.size() != stddev_.size()) {
      throw ArgumentError("Standardizer: mean and std need the same number of features >= 1, got " +
                          std::to_string(mean_.size()) + " and " + std::to_string(stddev_.size()));
    }
    for (Index r = 0; r < mean_.size(); ++r) {
      // A std that is subnormal (1e-45 in a float) or whose inverse overflows would turn the
      // feature into infinities: refused like a zero or negative one.
      if (!std::isfinite(mean_(r)) || !std::isnormal(stddev_(r)) || !(stddev_(r) > T(0)) ||
          !std::isfinite(T(1) / stddev_(r))) {
        throw ArgumentError("Standardizer: feature " + std::to_string(r) + " has mean " +
                            std::to_string(mean_(r)) + " and std " + std::to_string(stddev_(r)) +
                            "; expected a finite mean and a finite std > 0 whose inverse is "
                            "finite (a normal number)");
      }
    }
  }

  /// Computes mean and std of every row of X (features x samples) over its columns.
  /// Sums run in double whatever T is, so 60,000 float samples lose no precision.
  /// Throws ShapeError if X has no rows or no columns, ArgumentError if X holds a
  /// non-finite value (naming its feature).
  void Fit(const Matrix<T>& X);

  /// Statistics per channel of image samples (X is C*H*W x samples, channel-major, see
  /// Shape): each channel's mean and population std over its H*W positions and every sample,
  /// given to each of the channel's features. Every pixel of a channel is then mapped by the
  /// same affine function, so shifting or flipping a standardized image (augmentation) gives
  /// the standardization of the shifted image; per-pixel statistics do not (a pixel near the
  /// border that is almost always 0 gets a tiny std, and its rare values, scaled up tenfold
  /// or more, would be moved into the image). A constant channel gets std 1 and mean its
  /// value. Sums run in double. Throws ShapeError if X has no samples or its rows are not
  /// image.Size(), ArgumentError if X holds a non-finite value (naming its channel).
  void FitPerChannel(const Matrix<T>& X, const Shape& image) {
    if (X.cols() == 0 || X.rows() == 0 || X.rows() != image.Size()) {
      throw ShapeError("Standardizer::FitPerChannel: needs samples of " + image.ToString() + " (" +
                       std::to_string(image.Size()) + " rows), got " + std::to_string(X.rows()) +
                       " x " + std::to_string(X.cols()));
    }
    FitGroups(X, image.height * image.width, "Standardizer::FitPerChannel", "channel");
  }

  /// Replaces every x_rj of X (features x samples, any number of samples) by
  /// (x_rj - mean_r) / std_r. Throws ShapeError if X.rows() differs from the fitted number of
  /// features or Fit was never called.
  void Transform(Matrix<T>& X) const;

  /// Per-feature mean (features), empty before Fit.
  const Vector<T>& Mean() const noexcept { return mean_; }
  /// Per-feature population std (features), constant features reported as 1; empty before Fit.
  const Vector<T>& Stddev() const noexcept { return stddev_; }

 private:
  /// The statistics of Fit and FitPerChannel: X's rows fall into groups of `group_size`
  /// consecutive rows (a feature: 1 row; a channel: its H*W rows), and each group's mean and
  /// population std over its rows and all columns go to every row of the group:
  ///
  ///     mean_g = (1/N) * sum x,   std_g = sqrt((1/N) * sum (x - mean_g)^2),   N = group_size * n
  ///
  /// in two passes (mean first, then squared deviations: no cancellation of E[x^2] - E[x]^2),
  /// summed in double whatever T is, column by column (contiguous, no copy of X). A constant
  /// group (its values compared themselves: the rounded mean of equal values can differ from
  /// them by an ulp and give a tiny std that would blow the group up) gets its value as mean
  /// and std 1, as does a std that underflows to 0 in a narrow T.
  /// Requires X non-empty with rows a multiple of group_size; throws ArgumentError naming the
  /// first group (`caller`: group_name g) that holds a non-finite value.
  void FitGroups(const Matrix<T>& X, Index group_size, const char* caller,
                 const char* group_name);

  Vector<T> mean_;
  Vector<T> stddev_;
};

// The members below are defined outside the class, not inline: a translation unit that
// declares Standardizer<float> extern (DLB_COMPILED, dlb/compiled.hpp) then does not
// instantiate them to inline them. Measured on the README's quick start with DLB_COMPILED at
// -O1: 6.3 s of compiler CPU with them in the class, 5.4 s outside.

template <Scalar T>
void Standardizer<T>::Transform(Matrix<T>& X) const {
  if (mean_.size() == 0) {
    throw ShapeError("Standardizer::Transform: Fit must be called first");
  }
  if (X.rows() != mean_.size()) {
    throw ShapeError("Standardizer::Transform: expected " + std::to_string(mean_.size()) +
                     " features (rows, as fitted), got " + std::to_string(X.rows()));
  }
  X = (X.colwise() - mean_).array().colwise() / stddev_.array();
}

template <Scalar T>
void Standardizer<T>::FitGroups(const Matrix<T>& X, Index group_size, const char* caller,
                                const char* group_name) {
  const Index groups = X.rows() / group_size;
  const double n = static_cast<double>(X.cols()) * static_cast<double>(group_size);
  // Column j as a group_size x groups matrix: group g is its column g.
  const auto groups_of = [&](Index j) {
    return Eigen::Map<const Matrix<T>>(X.col(j).data(), group_size, groups);
  };
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(groups);
  Vector<T> low = groups_of(0).colwise().minCoeff().transpose();
  Vector<T> high = groups_of(0).colwise().maxCoeff().transpose();
  for (Index j = 0; j < X.cols(); ++j) {
    sum += groups_of(j).template cast<double>().colwise().sum().transpose();
    low = low.cwiseMin(groups_of(j).colwise().minCoeff().transpose());
    high = high.cwiseMax(groups_of(j).colwise().maxCoeff().transpose());
  }
  const Eigen::VectorXd mean = sum / n;
  for (Index g = 0; g < groups; ++g) {
    if (!std::isfinite(mean(g))) {
      throw ArgumentError(std::string(caller) + ": " + group_name + " " + std::to_string(g) +
                          " holds a non-finite value (inf or NaN)");
    }
  }
  Eigen::VectorXd squares = Eigen::VectorXd::Zero(groups);
  for (Index j = 0; j < X.cols(); ++j) {
    squares += (groups_of(j).template cast<double>().rowwise() - mean.transpose())
                   .array()
                   .square()
                   .colwise()
                   .sum()
                   .matrix()
                   .transpose();
  }
  mean_.resize(X.rows());
  stddev_.resize(X.rows());
  for (Index g = 0; g < groups; ++g) {
    T group_mean = static_cast<T>(mean(g));
    T group_std = static_cast<T>(std::sqrt(squares(g) / n));
    if (low(g) == high(g)) {
      group_mean = low(g);
      group_std = T(1);
    } else if (!(group_std > T(0))) {
      group_std = T(1);  // underflow to 0 in a narrow T
    }
    mean_.segment(g * group_size, group_size).setConstant(group_mean);
    stddev_.segment(g * group_size, group_size).setConstant(group_std);
  }
}

template <Scalar T>
void Standardizer<T>::Fit(const Matrix<T>& X) {
  if (X.rows() == 0 || X.cols() == 0) {
    throw ShapeError("Standardizer::Fit: needs at least one feature and one sample, got " +
                     std::to_string(X.rows()) + " x " + std::to_string(X.cols()));
  }
  FitGroups(X, 1, "Standardizer::Fit", "feature");
}

}  // namespace dlb
