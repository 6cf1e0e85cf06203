#pragma once
/// \file
/// Plain stochastic gradient descent.

#include <string>
#include <vector>

#include "dlb/core/state.hpp"

#include "dlb/optimizers/update_rule.hpp"

namespace dlb {

/// SGD as torch.optim.SGD(lr, weight_decay) with momentum 0:
///   g = grad + weight_decay * p
///   p = p - lr * g
template <Scalar T = float>
class SGD : public internal::RuleHyperParameters<T> {
 public:
  using Scalar = T;
  struct State {
    std::vector<StateRef<T>> Tensors() { return {}; }  ///< plain SGD remembers nothing
  };

  explicit SGD(T lr, T weight_decay = T(0))
      : internal::RuleHyperParameters<T>("SGD", lr, weight_decay) {}

  std::string Name() const { return "SGD"; }
  State MakeState(const Matrix<T>& /*param*/) const { return {}; }

  void Update(Matrix<T>& param, const Matrix<T>& grad, State& /*state*/,
              std::int64_t /*step*/) const {
    const T lr = this->LearningRate();
    const T decay = this->WeightDecay();
    if (decay == T(0)) {
      param.noalias() -= lr * grad;
    } else {
      param.array() -= lr * (grad.array() + decay * param.array());
    }
  }
};

}  // namespace dlb
