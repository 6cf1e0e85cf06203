#pragma once
/// \file
/// Adam.

#include <cmath>
#include <string>

#include "dlb/optimizers/update_rule.hpp"

namespace dlb {

/// Adam as torch.optim.Adam(lr, betas=(beta1, beta2), eps, weight_decay), step t = 1, 2, ...:
///   g = grad + weight_decay * p                 (L2 penalty folded into the gradient)
///   m = beta1 * m + (1 - beta1) * g             (m_0 = 0)
///   v = beta2 * v + (1 - beta2) * g^2           (v_0 = 0)
///   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// t counts optimizer steps (not parameter blocks), so the bias corrections 1 - beta^t are
/// the same for every block of one step.
template <Scalar T = float>
class Adam : public internal::RuleHyperParameters<T> {
 public:
  using Scalar = T;
  struct State {
    Matrix<T> first_moment;   ///< m
    Matrix<T> second_moment;  ///< v
  };

  explicit Adam(T lr = T(1e-3), T beta1 = T(0.9), T beta2 = T(0.999), T eps = T(1e-8),
                T weight_decay = T(0))
      : Adam("Adam", lr, beta1, beta2, eps, weight_decay) {}

  std::string Name() const { return name_; }
  T Beta1() const { return beta1_; }
  T Beta2() const { return beta2_; }
  T Epsilon() const { return eps_; }

  State MakeState(const Matrix<T>& param) const {
    return {Matrix<T>::Zero(param.rows(), param.cols()),
            Matrix<T>::Zero(param.rows(), param.cols())};
  }

  void Update(Matrix<T>& param, const Matrix<T>& grad, State& state, std::int64_t step) const {
    UpdateChunks(param, grad, state, step, T(1), this->WeightDecay());
  }

 protected:
  Adam(const char* name, T lr, T beta1, T beta2, T eps, T weight_decay)
      : internal::RuleHyperParameters<T>(name, lr, weight_decay),
        name_(name),
        beta1_(beta1),
        beta2_(beta2),
        eps_(eps) {
    internal::RequireBeta(name, "beta1", beta1);
    internal::RequireBeta(name, "beta2", beta2);
    internal::RequireHyper(std::isfinite(eps) && eps > T(0), name, "eps", "finite and > 0", eps);
  }

  /// One Adam step, chunk by chunk: p *= shrink (AdamW's decoupled decay; 1 for Adam), then
  /// with g = grad + l2 p:  m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2,
  /// p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), bc_k = 1 - beta_k^t.
  void UpdateChunks(Matrix<T>& param, const Matrix<T>& grad, State& state, std::int64_t step,
                    T shrink, T l2) const {
    const double t = static_cast<double>(step);
    const double bias_correction1 = 1.0 - std::pow(static_cast<double>(beta1_), t);
    const double bias_correction2 = 1.0 - std::pow(static_cast<double>(beta2_), t);
    const T step_size =
        static_cast<T>(static_cast<double>(this->LearningRate()) / bias_correction1);
    const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bias_correction2));
    internal::ForEachChunk(param.size(), [&](Index start, Index length) {
      auto p = internal::Chunk(param, start, length);
      auto m = internal::Chunk(state.first_moment, start, length);
      auto v = internal::Chunk(state.second_moment, start, length);
      const auto g = internal::Chunk(grad, start, length);
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

}  // namespace dlb
