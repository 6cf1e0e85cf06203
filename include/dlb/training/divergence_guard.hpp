#pragma once
/// \file
/// Detects a training run that stopped producing finite numbers and keeps the last finite
/// parameters.

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// True when every element of m is finite. Uses the sum, which is NaN or infinite as soon as
/// one element is (and only overflows for values near the type's maximum, which is
/// divergence too), so the check is one vectorized read.
template <class Derived>
bool AllFinite(const Eigen::MatrixBase<Derived>& m) {
  return std::isfinite(static_cast<double>(m.sum()));
}

/// AllFinite for a stored matrix, its elements summed by all threads at once.
template <Scalar T>
bool AllFinite(const Matrix<T>& m) {
  std::array<double, kMaxParallelParts> partial{};
  const int parts = ParallelRanges(m.size(), 1, [&](int part, Index begin, Index length) {
    partial[part] =
        static_cast<double>(Eigen::Map<const Vector<T>>(m.data() + begin, length).sum());
  });
  double total = 0;
  for (int part = 0; part < parts; ++part) total += partial[part];
  return std::isfinite(total);
}

/// Wraps optimizer steps so that a step producing non-finite values is undone.
///
/// Before a step: CheckGradients throws DivergenceError naming the first parameter whose
/// gradient is not finite. Then Snapshot copies the parameters (into buffers allocated once)
/// and, after the step, CheckParametersOrRestore restores them and throws if any became
/// non-finite. The parameters thus always hold the last finite values.
template <Scalar T>
class DivergenceGuard {
 public:
  explicit DivergenceGuard(std::vector<Parameter<T>> params) : params_(std::move(params)) {
    backup_.resize(params_.size());
  }

  void CheckLoss(double loss, int epoch, Index batch) const {
    if (!std::isfinite(loss)) {
      throw DivergenceError(epoch, batch, "the loss is " + std::to_string(loss));
    }
  }

  void CheckGradients(int epoch, Index batch) const {
    for (const auto& p : params_) {
      if (!AllFinite(*p.grad)) {
        throw DivergenceError(epoch, batch, "the gradient of " + p.name + " is not finite");
      }
    }
  }

  void Snapshot() {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const Matrix<T>& value = *params_[i].value;
      backup_[i].resize(value.rows(), value.cols());
      ParallelRanges(value.size(), 1, [&](int, Index begin, Index length) {
        Eigen::Map<Vector<T>>(backup_[i].data() + begin, length) =
            Eigen::Map<const Vector<T>>(value.data() + begin, length);
      });
    }
  }

  void CheckParametersOrRestore(int epoch, Index batch) {
    for (const auto& p : params_) {
      if (!AllFinite(*p.value)) {
        for (std::size_t i = 0; i < params_.size(); ++i) *params_[i].value = backup_[i];
        throw DivergenceError(epoch, batch,
                              "the update made " + p.name +
                                  " non-finite; the parameters were restored to their values "
                                  "before that step");
      }
    }
  }

 private:
  std::vector<Parameter<T>> params_;
  std::vector<Matrix<T>> backup_;
};

}  // namespace dlb
