#pragma once
/// \file
/// AdamW: Adam with decoupled weight decay.

#include "dlb/optimizers/adam.hpp"

namespace dlb {

/// AdamW as torch.optim.AdamW(lr, betas=(beta1, beta2), eps, weight_decay):
///   p = p * (1 - lr * weight_decay)             (decay applied to the weights, not to g)
///   m = beta1 * m + (1 - beta1) * grad
///   v = beta2 * v + (1 - beta2) * grad^2
///   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// A rule of its own beside Adam (both built on internal::AdamRule): an AdamW can never be
/// used as an Adam.
template <Scalar T = float>
class AdamW : public internal::AdamRule<T, true> {
 public:
  explicit AdamW(T lr = T(1e-3), T beta1 = T(0.9), T beta2 = T(0.999), T eps = T(1e-8),
                 T weight_decay = T(1e-2))
      : internal::AdamRule<T, true>("AdamW", lr, beta1, beta2, eps, weight_decay) {}
};

}  // namespace dlb
