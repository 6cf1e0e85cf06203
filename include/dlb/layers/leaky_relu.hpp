#pragma once
/// \file
/// Leaky rectified linear unit.

#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/layer_spec.hpp"

namespace dlb {

/// Y = X where X > 0, alpha X elsewhere; dX = dY where X > 0, alpha dY elsewhere. Any shape.
template <Scalar T = float>
class LeakyReLU : public ElementwiseLayer {
 public:
  using Scalar = T;

  /// Throws ArgumentError unless alpha is finite and >= 0.
  explicit LeakyReLU(T alpha = T(0.01)) : alpha_(alpha) {
    if (!(alpha >= T(0)) || !std::isfinite(alpha)) {
      throw ArgumentError("LeakyReLU: alpha must be finite and >= 0, got " +
                          std::to_string(alpha));
    }
  }

  std::string Name() const { return "LeakyReLU(" + std::to_string(alpha_) + ")"; }
  T Alpha() const { return alpha_; }
  LayerSpec Spec() const { return {"LeakyReLU", {{"alpha", static_cast<double>(alpha_)}}}; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    y.resize(x.rows(), x.cols());
    ForColumnBlocks(x.rows(), x.cols(), [&](Index c, Index n) {
      const auto xb = x.middleCols(c, n).array();
      y.middleCols(c, n).array() = (xb > T(0)).select(xb, alpha_ * xb);
    });
  }

  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    dx->resize(dy.rows(), dy.cols());
    ForColumnBlocks(dy.rows(), dy.cols(), [&](Index c, Index n) {
      const auto dyb = dy.middleCols(c, n).array();
      dx->middleCols(c, n).array() = (x.middleCols(c, n).array() > T(0)).select(dyb, alpha_ * dyb);
    });
  }

 private:
  T alpha_;
};

}  // namespace dlb
