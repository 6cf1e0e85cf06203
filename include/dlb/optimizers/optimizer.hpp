#pragma once
/// \file
/// The Optimizer: applies one UpdateRule to a set of parameters and owns their state.

#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/optimizers/update_rule.hpp"

namespace dlb {

/// Anything that lists its parameters: a ModelNN, or a user's own container.
template <class M, class T>
concept ParameterSource = requires(M& source) {
  { source.Parameters() } -> std::same_as<std::vector<Parameter<T>>>;
};

/// Moves a fixed set of parameters along their gradients with one update rule.
///
/// Represents: the parameter list, the rule (SGD, Momentum, Nesterov, Adam, AdamW or a
/// user's UpdateRule) and one rule State per parameter block, created at construction.
/// Step() advances the step counter t once and calls rule.Update(p, grad, state, t) for every
/// block, reading the gradients the last Backward wrote.
/// Usage: `dlb::Optimizer opt(model, dlb::Adam<float>(1e-3f)); ... opt.Step();`
template <Scalar T = float>
class Optimizer {
 public:
  /// Optimizes `params` (e.g. model.Parameters()) with `rule`.
  template <UpdateRule Rule>
    requires std::same_as<typename Rule::Scalar, T>
  Optimizer(std::vector<Parameter<T>> params, Rule rule)
      : params_(std::move(params)),
        rule_(std::make_unique<RuleHolder<Rule>>(std::move(rule), params_)) {}

  /// Optimizes every parameter of `source` (a ModelNN) with `rule`.
  template <class Source, UpdateRule Rule>
    requires ParameterSource<Source, T> && std::same_as<typename Rule::Scalar, T>
  Optimizer(Source& source, Rule rule) : Optimizer(source.Parameters(), std::move(rule)) {}

  /// One update of every parameter from its current gradient: t += 1, then the rule.
  void Step() {
    ++step_;
    rule_->Step(params_, step_);
  }

  /// Number of Step() calls so far (t).
  std::int64_t StepCount() const { return step_; }
  T LearningRate() const { return rule_->LearningRate(); }
  /// Changes the learning rate used by the following steps; throws ArgumentError unless
  /// lr is finite and > 0.
  void SetLearningRate(T lr) { rule_->SetLearningRate(lr); }
  std::string Name() const { return rule_->Name(); }
  const std::vector<Parameter<T>>& Parameters() const { return params_; }

 private:
  struct RuleBase {
    virtual ~RuleBase() = default;
    virtual void Step(const std::vector<Parameter<T>>& params, std::int64_t step) = 0;
    virtual T LearningRate() const = 0;
    virtual void SetLearningRate(T lr) = 0;
    virtual std::string Name() const = 0;
  };

  template <class Rule>
  struct RuleHolder final : RuleBase {
    RuleHolder(Rule r, const std::vector<Parameter<T>>& params) : rule(std::move(r)) {
      states.reserve(params.size());
      for (const auto& p : params) {
        if (p.value == nullptr || p.grad == nullptr) {
          throw ArgumentError("Optimizer: parameter '" + p.name + "' has a null value or grad");
        }
        if (p.value->rows() != p.grad->rows() || p.value->cols() != p.grad->cols()) {
          throw ShapeError("Optimizer: parameter '" + p.name + "' is " +
                           std::to_string(p.value->rows()) + " x " +
                           std::to_string(p.value->cols()) + " but its gradient is " +
                           std::to_string(p.grad->rows()) + " x " +
                           std::to_string(p.grad->cols()));
        }
        states.push_back(rule.MakeState(*p.value));
      }
    }
    void Step(const std::vector<Parameter<T>>& params, std::int64_t step) override {
      for (std::size_t i = 0; i < params.size(); ++i) {
        rule.Update(*params[i].value, *params[i].grad, states[i], step);
      }
    }
    T LearningRate() const override { return rule.LearningRate(); }
    void SetLearningRate(T lr) override { rule.SetLearningRate(lr); }
    std::string Name() const override { return rule.Name(); }

    Rule rule;
    std::vector<typename Rule::State> states;
  };

  std::vector<Parameter<T>> params_;
  std::unique_ptr<RuleBase> rule_;
  std::int64_t step_ = 0;
};

template <UpdateRule Rule>
Optimizer(std::vector<Parameter<typename Rule::Scalar>>, Rule)
    -> Optimizer<typename Rule::Scalar>;
template <class Source, UpdateRule Rule>
Optimizer(Source&, Rule) -> Optimizer<typename Rule::Scalar>;

}  // namespace dlb
