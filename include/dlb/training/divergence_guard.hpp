#pragma once
/// \file
/// Detects a training run that stopped producing finite numbers and keeps the last finite
/// parameters.

#include <cmath>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
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
    for (std::size_t i = 0; i < params_.size(); ++i) backup_[i] = *params_[i].value;
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
