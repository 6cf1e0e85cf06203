#pragma once
/// \file
/// Logistic sigmoid.

#include <string>

#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/layer_spec.hpp"

namespace dlb {

/// Y = 1 / (1 + exp(-X)) element-wise; dX = dY * Y * (1 - Y). Any shape.
/// exp(-X) overflowing to +inf for X << 0 gives Y = 0 exactly, never NaN.
template <Scalar T = float>
class Sigmoid : public ElementwiseLayer {
 public:
  using Scalar = T;

  std::string Name() const { return "Sigmoid"; }
  LayerSpec Spec() const { return {"Sigmoid", {}}; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    y.resize(x.rows(), x.cols());
    ForColumnBlocks(x.rows(), x.cols(), [&](Index c, Index n) {
      y.middleCols(c, n).array() = T(1) / (T(1) + (-x.middleCols(c, n).array()).exp());
    });
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    dx->resize(dy.rows(), dy.cols());
    ForColumnBlocks(dy.rows(), dy.cols(), [&](Index c, Index n) {
      const auto yb = y.middleCols(c, n).array();
      dx->middleCols(c, n).array() = dy.middleCols(c, n).array() * yb * (T(1) - yb);
    });
  }
};

}  // namespace dlb
