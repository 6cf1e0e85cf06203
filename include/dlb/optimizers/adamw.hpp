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
template <Scalar T = float>
class AdamW : public Adam<T> {
 public:
  using typename Adam<T>::State;

  explicit AdamW(T lr = T(1e-3), T beta1 = T(0.9), T beta2 = T(0.999), T eps = T(1e-8),
                 T weight_decay = T(1e-2))
      : Adam<T>("AdamW", lr, beta1, beta2, eps, weight_decay) {}

  void Update(Matrix<T>& param, const Matrix<T>& grad, State& state, std::int64_t step) const {
    this->UpdateChunks(param, grad, state, step, T(1) - this->LearningRate() * this->WeightDecay(),
                       T(0));
  }
};

}  // namespace dlb
