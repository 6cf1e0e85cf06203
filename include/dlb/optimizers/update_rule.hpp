#pragma once
/// \file
/// The UpdateRule contract: how one parameter block moves given its gradient.
///
/// A rule is a small policy object holding hyper-parameters; whatever it remembers between
/// steps for a parameter (velocity, moments) lives in a State created once per parameter
/// block by the Optimizer. Required members (R::Scalar is T):
/// ```
///   struct State {                                  // per-parameter memory
///     std::vector<StateRef<T>> Tensors();           //   its tensors by name ("exp_avg"),
///   };                                              //   for saving and resuming
///   State MakeState(const Matrix<T>& param) const;  // zero memory of param's shape
///   void Update(Matrix<T>& param, const Matrix<T>& grad, State& state,
///               std::int64_t step) const;           // step = 1, 2, ... (once per Optimizer::Step)
///   T LearningRate() const;  void SetLearningRate(T lr);
///   std::string Name() const;
/// ```
/// Optional: `void Validate(const std::string& parameter) const` in State, which throws
/// StateError naming the tensor ("<parameter>.<name>") when the memory holds values no
/// sequence of steps can produce (a negative second moment, a NaN velocity).
/// Optimizer::LoadState calls it after loading, so that a corrupt checkpoint is refused as
/// such instead of being resumed and then diverging.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Satisfied by every type that fulfils the UpdateRule contract described above.
template <class R>
concept UpdateRule = requires { typename R::Scalar; typename R::State; } &&
    Scalar<typename R::Scalar> &&
    requires(R& rule, const R& const_rule, Matrix<typename R::Scalar>& param,
             const Matrix<typename R::Scalar>& grad, typename R::State& state, std::int64_t step,
             typename R::Scalar lr) {
      { const_rule.MakeState(param) } -> std::same_as<typename R::State>;
      { state.Tensors() } -> std::same_as<std::vector<StateRef<typename R::Scalar>>>;
      const_rule.Update(param, grad, state, step);
      { const_rule.LearningRate() } -> std::convertible_to<typename R::Scalar>;
      rule.SetLearningRate(lr);
      { const_rule.Name() } -> std::convertible_to<std::string>;
    };

namespace internal {

/// Throws ArgumentError "<rule>: <what> must be <requirement>, got <value>" unless `ok`.
template <Scalar T>
void RequireHyper(bool ok, const char* rule, const char* what, const char* requirement, T value) {
  if (!ok) {
    throw ArgumentError(std::string(rule) + ": " + what + " must be " + requirement + ", got " +
                        std::to_string(value));
  }
}

/// Learning rate and L2 weight decay, validated: lr > 0 and finite, weight_decay >= 0.
template <Scalar T>
class RuleHyperParameters {
 public:
  RuleHyperParameters(const char* rule, T lr, T weight_decay)
      : rule_(rule), lr_(lr), weight_decay_(weight_decay) {
    SetLearningRate(lr);
    RequireHyper(std::isfinite(weight_decay) && weight_decay >= T(0), rule, "weight_decay",
                 "finite and >= 0", weight_decay);
  }

  T LearningRate() const { return lr_; }
  void SetLearningRate(T lr) {
    RequireHyper(std::isfinite(lr) && lr > T(0), rule_, "learning rate", "finite and > 0", lr);
    lr_ = lr;
  }
  T WeightDecay() const { return weight_decay_; }

 private:
  const char* rule_;
  T lr_;
  T weight_decay_;
};

/// Calls f(start, length) for consecutive chunks covering 0 .. size-1, the chunks shared out
/// among the threads. Rules that make several passes (moments, then the parameter) run them
/// chunk by chunk so that each chunk is read from memory once and the later passes hit the
/// L1 cache.
template <class F>
void ForEachChunk(Index size, F&& f) {
  constexpr Index kChunk = 2048;
  const Index chunks = (size + kChunk - 1) / kChunk;
  ParallelRanges(chunks, kChunk, [&](int, Index first, Index count) {
    for (Index chunk = first; chunk < first + count; ++chunk) {
      const Index start = chunk * kChunk;
      f(start, std::min(kChunk, size - start));
    }
  });
}

/// Array view of elements start .. start+length-1 of a matrix's storage.
template <Scalar T>
auto Chunk(Matrix<T>& m, Index start, Index length) {
  return Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(m.data() + start, length);
}
template <Scalar T>
auto Chunk(const Matrix<T>& m, Index start, Index length) {
  return Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(m.data() + start, length);
}

/// A rule State that checks itself after loading (see the contract above).
template <class S>
concept SelfValidatingState = requires(const S& state, const std::string& parameter) {
  state.Validate(parameter);
};

/// Throws StateError "state '<name>': element k is v, but <what> must be finite[ and >= 0]"
/// for the first element of `m` (k counted in row-major order, as the tensor is stored in a
/// file) that is not finite or, with `non_negative`, is negative. Does nothing otherwise.
template <Scalar T>
void RequireValidMemory(const Matrix<T>& m, const std::string& name, bool non_negative,
                        const char* what) {
  const auto bad = [&](T v) { return !std::isfinite(v) || (non_negative && v < T(0)); };
  if (!m.unaryExpr(bad).any()) return;
  for (Index r = 0; r < m.rows(); ++r) {
    for (Index c = 0; c < m.cols(); ++c) {
      if (!bad(m(r, c))) continue;
      char value[32];
      std::snprintf(value, sizeof value, "%g", static_cast<double>(m(r, c)));
      throw StateError("state '" + name + "': element " + std::to_string(r * m.cols() + c) +
                       " is " + value + ", but " + what + " must be finite" +
                       (non_negative ? " and >= 0" : "") +
                       "; the saved optimizer state is corrupt");
    }
  }
}

/// Throws ArgumentError unless 0 <= beta < 1.
template <Scalar T>
void RequireBeta(const char* rule, const char* what, T beta) {
  RequireHyper(beta >= T(0) && beta < T(1), rule, what, "in [0, 1)", beta);
}

}  // namespace internal

}  // namespace dlb
