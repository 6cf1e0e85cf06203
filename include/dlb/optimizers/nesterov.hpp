#pragma once
/// \file
/// Nesterov momentum.

#include "dlb/optimizers/momentum.hpp"

namespace dlb {

/// Nesterov momentum, torch.optim.SGD(lr, momentum=beta, nesterov=True, weight_decay):
///   g = grad + weight_decay * p
///   b = beta * b + g            (b_0 = 0)
///   p = p - lr * (g + beta * b)
template <Scalar T = float>
class Nesterov : public internal::MomentumRule<T, true> {
 public:
  explicit Nesterov(T lr, T beta = T(0.9), T weight_decay = T(0))
      : internal::MomentumRule<T, true>("Nesterov", lr, beta, weight_decay) {}
};

}  // namespace dlb
