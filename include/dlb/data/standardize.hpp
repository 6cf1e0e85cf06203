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
  void Fit(const Matrix<T>& X) {
    if (X.rows() == 0 || X.cols() == 0) {
      throw ShapeError("Standardizer::Fit: needs at least one feature and one sample, got " +
                       std::to_string(X.rows()) + " x " + std::to_string(X.cols()));
    }
    const Index features = X.rows();
    const auto n = static_cast<double>(X.cols());
    Eigen::VectorXd sum = Eigen::VectorXd::Zero(features);
    Vector<T> low = X.col(0);
    Vector<T> high = X.col(0);
    // Column by column: contiguous in memory, and no double copy of the whole matrix.
    for (Index j = 0; j < X.cols(); ++j) {
      sum += X.col(j).template cast<double>();
      low = low.cwiseMin(X.col(j));
      high = high.cwiseMax(X.col(j));
    }
    const Eigen::VectorXd mean = sum / n;
    for (Index r = 0; r < features; ++r) {
      if (!std::isfinite(mean(r))) {
        throw ArgumentError("Standardizer::Fit: feature " + std::to_string(r) +
                            " holds a non-finite value (inf or NaN)");
      }
    }
    // Two passes (mean first, then squared deviations) avoid the cancellation of
    // E[x^2] - E[x]^2.
    Eigen::VectorXd squares = Eigen::VectorXd::Zero(features);
    for (Index j = 0; j < X.cols(); ++j) {
      squares += (X.col(j).template cast<double>() - mean).cwiseAbs2();
    }
    mean_.resize(features);
    stddev_.resize(features);
    for (Index r = 0; r < features; ++r) {
      // Compare the values themselves: the rounded mean of equal values can differ from them
      // by an ulp and give a tiny nonzero std that would blow the feature up.
      if (low(r) == high(r)) {
        mean_(r) = low(r);
        stddev_(r) = T(1);
      } else {
        mean_(r) = static_cast<T>(mean(r));
        stddev_(r) = static_cast<T>(std::sqrt(squares(r) / n));
        if (!(stddev_(r) > T(0))) stddev_(r) = T(1);  // underflow to 0 in a narrow T
      }
    }
  }

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
    const Index plane = image.height * image.width;
    const double n = static_cast<double>(X.cols()) * static_cast<double>(plane);
    mean_.resize(X.rows());
    stddev_.resize(X.rows());
    for (Index c = 0; c < image.channels; ++c) {
      // Two passes, as Fit: the mean, then the squared deviations.
      double sum = 0;
      T low = X(c * plane, 0), high = low;
      for (Index j = 0; j < X.cols(); ++j) {
        const auto values = X.col(j).segment(c * plane, plane);
        sum += values.template cast<double>().sum();
        low = std::min(low, values.minCoeff());
        high = std::max(high, values.maxCoeff());
      }
      const double mean = sum / n;
      if (!std::isfinite(mean)) {
        throw ArgumentError("Standardizer::FitPerChannel: channel " + std::to_string(c) +
                            " holds a non-finite value (inf or NaN)");
      }
      double squares = 0;
      for (Index j = 0; j < X.cols(); ++j) {
        squares += (X.col(j).segment(c * plane, plane).template cast<double>().array() - mean)
                       .square()
                       .sum();
      }
      T channel_mean = static_cast<T>(mean), channel_std = static_cast<T>(std::sqrt(squares / n));
      if (low == high) {
        channel_mean = low;
        channel_std = T(1);
      } else if (!(channel_std > T(0))) {
        channel_std = T(1);  // underflow to 0 in a narrow T
      }
      mean_.segment(c * plane, plane).setConstant(channel_mean);
      stddev_.segment(c * plane, plane).setConstant(channel_std);
    }
  }

  /// Replaces every x_rj of X (features x samples, any number of samples) by
  /// (x_rj - mean_r) / std_r. Throws ShapeError if X.rows() differs from the fitted number of
  /// features or Fit was never called.
  void Transform(Matrix<T>& X) const {
    if (mean_.size() == 0) {
      throw ShapeError("Standardizer::Transform: Fit must be called first");
    }
    if (X.rows() != mean_.size()) {
      throw ShapeError("Standardizer::Transform: expected " + std::to_string(mean_.size()) +
                       " features (rows, as fitted), got " + std::to_string(X.rows()));
    }
    X = (X.colwise() - mean_).array().colwise() / stddev_.array();
  }

  /// Per-feature mean (features), empty before Fit.
  const Vector<T>& Mean() const noexcept { return mean_; }
  /// Per-feature population std (features), constant features reported as 1; empty before Fit.
  const Vector<T>& Stddev() const noexcept { return stddev_; }

 private:
  Vector<T> mean_;
  Vector<T> stddev_;
};

}  // namespace dlb
