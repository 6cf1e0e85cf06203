#pragma once
/// \file
/// Adam, and the kernel it shares with AdamW.

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dlb/core/state.hpp"
#include "dlb/optimizers/update_rule.hpp"

namespace dlb {

namespace internal {
/// The Adam step shared by Adam (L2 decay folded into the gradient) and AdamW (decoupled
/// decay applied to the weights), chunk by chunk, with t = step and bc_k = 1 - beta_k^t:
///   p *= 1 - lr * weight_decay                  (AdamW only)
///   g  = grad + weight_decay * p                (Adam only)
///   m  = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2
///   p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
/// Adam and AdamW are two distinct rules built on it; neither is a kind of the other.
template <Scalar T, bool kDecoupledDecay>
class AdamRule : public RuleHyperParameters<T> {
 public:
  using Scalar = T;
  struct State {
    Matrix<T> first_moment;   ///< m (PyTorch's exp_avg)
    Matrix<T> second_moment;  ///< v (PyTorch's exp_avg_sq)
    std::vector<StateRef<T>> Tensors() {
      return {{"exp_avg", &first_moment}, {"exp_avg_sq", &second_moment}};
    }
    /// m finite; v, a running mean of squares, finite and >= 0 (its square root is taken).
    void Validate(const std::string& parameter) const {
      RequireValidMemory(first_moment, parameter + ".exp_avg", false, "a mean of gradients");
      RequireValidMemory(second_moment, parameter + ".exp_avg_sq", true,
                         "a mean of squared gradients");
    }
  };

  AdamRule(const char* name, T lr, T beta1, T beta2, T eps, T weight_decay)
      : RuleHyperParameters<T>(name, lr, weight_decay),
        name_(name),
        beta1_(beta1),
        beta2_(beta2),
        eps_(eps) {
    RequireBeta(name, "beta1", beta1);
    RequireBeta(name, "beta2", beta2);
    RequireHyper(std::isfinite(eps) && eps > T(0), name, "eps", "finite and > 0", eps);
  }

  std::string Name() const { return name_; }
  T Beta1() const { return beta1_; }
  T Beta2() const { return beta2_; }
  T Epsilon() const { return eps_; }

  State MakeState(const Matrix<T>& param) const {
    return {Matrix<T>::Zero(param.rows(), param.cols()),
            Matrix<T>::Zero(param.rows(), param.cols())};
  }

  void Update(Matrix<T>& param, const Matrix<T>& grad, State& state, std::int64_t step) const {
    const T lr = this->LearningRate();
    const T decay = this->WeightDecay();
    const T shrink = kDecoupledDecay ? T(1) - lr * decay : T(1);
    const T l2 = kDecoupledDecay ? T(0) : decay;
    const double t = static_cast<double>(step);
    const double bias_correction1 = 1.0 - std::pow(static_cast<double>(beta1_), t);
    const double bias_correction2 = 1.0 - std::pow(static_cast<double>(beta2_), t);
    const T step_size = static_cast<T>(static_cast<double>(lr) / bias_correction1);
    const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bias_correction2));
    ForEachChunk(param.size(), [&](Index start, Index length) {
      auto p = Chunk(param, start, length);
      auto m = Chunk(state.first_moment, start, length);
      auto v = Chunk(state.second_moment, start, length);
      const auto g = Chunk(grad, start, length);
      if (shrink != T(1)) p *= shrink;
      if (l2 == T(0)) {
        m = beta1_ * m + (T(1) - beta1_) * g;
        v = beta2_ * v + (T(1) - beta2_) * g.square();
      } else {
        m = beta1_ * m + (T(1) - beta1_) * (g + l2 * p);
        v = beta2_ * v + (T(1) - beta2_) * (g + l2 * p).square();
      }
      p -= step_size * m / (v.sqrt() * inv_sqrt_bc2 + eps_);
    });
  }

 private:
  const char* name_;
  T beta1_, beta2_, eps_;
};
}  // namespace internal

/// Adam as torch.optim.Adam(lr, betas=(beta1, beta2), eps, weight_decay), step t = 1, 2, ...:
///   g = grad + weight_decay * p                 (L2 penalty folded into the gradient)
///   m = beta1 * m + (1 - beta1) * g             (m_0 = 0)
///   v = beta2 * v + (1 - beta2) * g^2           (v_0 = 0)
///   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// t counts optimizer steps (not parameter blocks), so the bias corrections 1 - beta^t are
/// the same for every block of one step.
template <Scalar T = float>
class Adam : public internal::AdamRule<T, false> {
 public:
  explicit Adam(T lr = T(1e-3), T beta1 = T(0.9), T beta2 = T(0.999), T eps = T(1e-8),
                T weight_decay = T(0))
      : internal::AdamRule<T, false>("Adam", lr, beta1, beta2, eps, weight_decay) {}
};

}  // namespace dlb
