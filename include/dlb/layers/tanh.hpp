#pragma once
/// \file
/// Hyperbolic tangent.

#include <string>

#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/layer_spec.hpp"

namespace dlb {

/// Y = tanh(X) element-wise; dX = dY * (1 - Y^2). Any shape.
template <Scalar T = float>
class Tanh : public ElementwiseLayer {
 public:
  using Scalar = T;

  std::string Name() const { return "Tanh"; }
  LayerSpec Spec() const { return {"Tanh", {}}; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    y.resize(x.rows(), x.cols());
    ForColumnBlocks(x.rows(), x.cols(), [&](Index c, Index n) {
      y.middleCols(c, n).array() = x.middleCols(c, n).array().tanh();
    });
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    dx->resize(dy.rows(), dy.cols());
    ForColumnBlocks(dy.rows(), dy.cols(), [&](Index c, Index n) {
      dx->middleCols(c, n).array() =
          dy.middleCols(c, n).array() * (T(1) - y.middleCols(c, n).array().square());
    });
  }
};

}  // namespace dlb
