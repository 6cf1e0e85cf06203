#pragma once
/// \file
/// Rectified linear unit.

#include <string>

#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/layer_spec.hpp"

namespace dlb {

/// Y = max(X, 0) element-wise; dX = dY where Y > 0, else 0. Any shape.
template <Scalar T = float>
class ReLU : public ElementwiseLayer {
 public:
  using Scalar = T;

  std::string Name() const { return "ReLU"; }
  LayerSpec Spec() const { return {"ReLU", {}}; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    y.resize(x.rows(), x.cols());
    ForColumnBlocks(x.rows(), x.cols(), [&](Index c, Index n) {
      y.middleCols(c, n).array() = x.middleCols(c, n).array().max(T(0));
    });
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    dx->resize(dy.rows(), dy.cols());
    ForColumnBlocks(dy.rows(), dy.cols(), [&](Index c, Index n) {
      dx->middleCols(c, n).array() =
          (y.middleCols(c, n).array() > T(0)).select(dy.middleCols(c, n).array(), T(0));
    });
  }
};

}  // namespace dlb
