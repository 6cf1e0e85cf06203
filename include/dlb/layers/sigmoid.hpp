#pragma once
/// \file
/// Logistic sigmoid.

#include <string>

#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"

namespace dlb {

/// Y = 1 / (1 + exp(-X)) element-wise; dX = dY * Y * (1 - Y). Any shape.
/// exp(-X) overflowing to +inf for X << 0 gives Y = 0 exactly, never NaN.
template <Scalar T = float>
class Sigmoid : public ElementwiseLayer {
 public:
  using Scalar = T;

  std::string Name() const { return "Sigmoid"; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    y.resize(x.rows(), x.cols());
    y.array() = T(1) / (T(1) + (-x.array()).exp());
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    dx->resize(dy.rows(), dy.cols());
    dx->array() = dy.array() * y.array() * (T(1) - y.array());
  }
};

}  // namespace dlb
