#pragma once
/// \file
/// Heavy-ball momentum and Nesterov momentum, as torch.optim.SGD(momentum=beta).

#include <string>
#include <vector>

#include "dlb/core/state.hpp"

#include "dlb/optimizers/update_rule.hpp"

namespace dlb {

namespace internal {
/// Shared by Momentum and Nesterov: the velocity update of torch.optim.SGD with dampening 0,
///   g = grad + weight_decay * p,  b = beta * b + g   (b starts at 0, so b_1 = g_1),
/// then p -= lr * b (heavy ball) or p -= lr * (g + beta * b) (Nesterov).
template <Scalar T, bool kNesterov>
class MomentumRule : public RuleHyperParameters<T> {
 public:
  using Scalar = T;
  struct State {
    Matrix<T> velocity;  ///< b, the same shape as the parameter (PyTorch's momentum_buffer).
    std::vector<StateRef<T>> Tensors() { return {{"momentum_buffer", &velocity}}; }
    /// b finite.
    void Validate(const std::string& parameter) const {
      RequireValidMemory(velocity, parameter + ".momentum_buffer", false, "a velocity");
    }
  };

  MomentumRule(const char* name, T lr, T beta, T weight_decay)
      : RuleHyperParameters<T>(name, lr, weight_decay), name_(name), beta_(beta) {
    RequireBeta(name, "beta", beta);
  }

  std::string Name() const { return name_; }
  T Beta() const { return beta_; }
  State MakeState(const Matrix<T>& param) const {
    return {Matrix<T>::Zero(param.rows(), param.cols())};
  }

  void Update(Matrix<T>& param, const Matrix<T>& grad, State& state,
              std::int64_t /*step*/) const {
    const T lr = this->LearningRate();
    const T decay = this->WeightDecay();
    ForEachChunk(param.size(), [&](Index start, Index length) {
      auto p = Chunk(param, start, length);
      auto b = Chunk(state.velocity, start, length);
      const auto g = Chunk(grad, start, length);
      if (decay == T(0)) {
        Apply(p, b, g, lr);
      } else {
        Apply(p, b, g + decay * p, lr);
      }
    });
  }

 private:
  template <class P, class B, class G>
  void Apply(P& p, B& b, const G& g, T lr) const {
    b = beta_ * b + g;
    if constexpr (kNesterov) {
      p -= lr * (g + beta_ * b);
    } else {
      p -= lr * b;
    }
  }

  const char* name_;
  T beta_;
};
}  // namespace internal

/// Heavy-ball momentum, torch.optim.SGD(lr, momentum=beta, weight_decay):
///   g = grad + weight_decay * p
///   b = beta * b + g            (b_0 = 0)
///   p = p - lr * b
template <Scalar T = float>
class Momentum : public internal::MomentumRule<T, false> {
 public:
  explicit Momentum(T lr, T beta = T(0.9), T weight_decay = T(0))
      : internal::MomentumRule<T, false>("Momentum", lr, beta, weight_decay) {}
};

}  // namespace dlb
