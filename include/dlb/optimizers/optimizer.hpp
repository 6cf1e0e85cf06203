#pragma once
/// \file
/// The Optimizer: applies one UpdateRule to a set of parameters and owns their state.

#include <concepts>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/state.hpp"
#include "dlb/optimizers/update_rule.hpp"

namespace dlb {

/// Anything that lists its parameters: a ModelNN, or a user's own container.
template <class M, class T>
concept ParameterSource = requires(M& source) {
  { source.Parameters() } -> std::same_as<std::vector<Parameter<T>>>;
};

/// A parameter source that counts changes to its structure (ModelNN::StructureVersion).
template <class M>
concept VersionedSource = requires(const M& source) {
  { source.StructureVersion() } -> std::convertible_to<std::shared_ptr<const std::int64_t>>;
};

/// Moves a fixed set of parameters along their gradients with one update rule.
///
/// Represents: the parameter list, the rule (SGD, Momentum, Nesterov, Adam, AdamW or a
/// user's UpdateRule) and one rule State per parameter block, created at construction.
/// Step() advances the step counter t once and calls rule.Update(p, grad, state, t) for every
/// block, reading the gradients the last Backward wrote.
/// Requires: the parameters keep the shapes they had at construction, and, when built from a
/// ModelNN, no layer is added to it afterwards; Step() checks both (cheaply) and throws
/// ShapeError / Error instead of writing out of bounds or silently leaving layers untrained.
/// State: SaveState()/LoadState() cover the per-parameter state ("0.weight.exp_avg", the
/// names of torch.optim's state), the step counter "step" and the learning rate "lr".
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
  Optimizer(Source& source, Rule rule) : Optimizer(source.Parameters(), std::move(rule)) {
    if constexpr (VersionedSource<Source>) {
      structure_ = source.StructureVersion();
      structure_seen_ = *structure_;
    }
  }

  /// One update of every parameter from its current gradient: t += 1, then the rule.
  /// Throws Error when layers were added to the model after the optimizer was built, and
  /// ShapeError when a parameter or its gradient no longer has the shape it was built with;
  /// nothing is updated then.
  void Step() {
    CheckStructure();
    rule_->CheckShapes(params_);
    ++step_;
    rule_->Step(params_, step_);
  }

  /// The optimizer's state as views: each parameter's rule state named
  /// "<parameter>.<tensor>" ("0.weight.exp_avg"), then "step" and "lr".
  std::vector<StateRef<T>> State() {
    std::vector<StateRef<T>> refs = rule_->StateRefs(params_);
    refs.push_back({"step", &step_});
    refs.push_back({"lr", &lr_scratch_});
    return refs;
  }

  /// A copy of State().
  dlb::StateDict SaveState() {
    lr_scratch_ = static_cast<double>(LearningRate());
    dlb::StateDict state;
    CollectState(State(), StateScope::Checkpoint, state);
    return state;
  }

  /// Restores SaveState()'s copy. Throws StateError when it does not fit (listing missing and
  /// unexpected names, or naming a tensor of the wrong shape) or holds what no run of steps
  /// produces, naming the tensor: a step count < 0, or rule memory the rule's State::Validate
  /// refuses (Adam's exp_avg_sq < 0, a velocity that is not finite); ArgumentError when the
  /// saved learning rate is invalid. The optimizer is unchanged after any of these.
  void LoadState(const dlb::StateDict& state) {
    const dlb::StateDict before = SaveState();
    RestoreState(State(), StateScope::Checkpoint, state, "Optimizer::LoadState");
    try {
      try {
        if (step_ < 0 || step_ == std::numeric_limits<std::int64_t>::max()) {
          throw StateError("state 'step' is " + std::to_string(step_) +
                           ", expected a whole number >= 0 (the steps taken) and below 2^63 - 1; "
                           "the saved optimizer state is corrupt");
        }
        rule_->ValidateStates(params_);
      } catch (const StateError& error) {
        throw StateError(std::string("Optimizer::LoadState: ") + error.what());
      }
      SetLearningRate(static_cast<T>(lr_scratch_));
    } catch (...) {
      RestoreState(State(), StateScope::Checkpoint, before, "Optimizer::LoadState");
      throw;
    }
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
  void CheckStructure() const {
    if (structure_ && *structure_ != structure_seen_) {
      throw Error("Optimizer::Step: layers were added to the model after this optimizer was "
                  "built for its " + std::to_string(params_.size()) +
                  " parameter blocks; their parameters would never be trained. Build the "
                  "optimizer after the last ModelNN::Add");
    }
  }

  struct RuleBase {
    virtual ~RuleBase() = default;
    virtual void CheckShapes(const std::vector<Parameter<T>>& params) const = 0;
    virtual void ValidateStates(const std::vector<Parameter<T>>& params) const = 0;
    virtual std::vector<StateRef<T>> StateRefs(const std::vector<Parameter<T>>& params) = 0;
    virtual void Step(const std::vector<Parameter<T>>& params, std::int64_t step) = 0;
    virtual T LearningRate() const = 0;
    virtual void SetLearningRate(T lr) = 0;
    virtual std::string Name() const = 0;
  };

  template <class Rule>
  struct RuleHolder final : RuleBase {
    RuleHolder(Rule r, const std::vector<Parameter<T>>& params);
    void CheckShapes(const std::vector<Parameter<T>>& params) const override {
      for (std::size_t i = 0; i < params.size(); ++i) {
        const auto [rows, cols] = shapes[i];
        const Matrix<T>& value = *params[i].value;
        const Matrix<T>& grad = *params[i].grad;
        if (value.rows() != rows || value.cols() != cols || grad.rows() != rows ||
            grad.cols() != cols) {
          throw ShapeError("Optimizer::Step: parameter '" + params[i].name + "' was " +
                           std::to_string(rows) + " x " + std::to_string(cols) +
                           " when the optimizer was built, but it is now " +
                           std::to_string(value.rows()) + " x " + std::to_string(value.cols()) +
                           " with a " + std::to_string(grad.rows()) + " x " +
                           std::to_string(grad.cols()) + " gradient");
        }
      }
    }
    void ValidateStates(const std::vector<Parameter<T>>& params) const override {
      if constexpr (internal::SelfValidatingState<typename Rule::State>) {
        for (std::size_t i = 0; i < params.size(); ++i) states[i].Validate(params[i].name);
      }
    }
    std::vector<StateRef<T>> StateRefs(const std::vector<Parameter<T>>& params) override {
      std::vector<StateRef<T>> refs;
      for (std::size_t i = 0; i < params.size(); ++i) {
        for (auto& ref : states[i].Tensors()) {
          ref.name = params[i].name + "." + ref.name;
          if (ref.shape.empty()) ref.shape = params[i].shape;
          refs.push_back(std::move(ref));
        }
      }
      return refs;
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
    std::vector<std::pair<Index, Index>> shapes;  // each parameter's rows x cols at construction
  };

  std::vector<Parameter<T>> params_;
  std::unique_ptr<RuleBase> rule_;
  std::int64_t step_ = 0;
  double lr_scratch_ = 0;  // the learning rate as saved state (SaveState/LoadState)
  std::shared_ptr<const std::int64_t> structure_;
  std::int64_t structure_seen_ = 0;
};

// Defined outside the class so that it is not inline: a program that links dlb::compiled,
// which declares each rule's holder extern, takes it from the library (a member defined in
// the class would be instantiated wherever it is called).
template <Scalar T>
template <class Rule>
Optimizer<T>::RuleHolder<Rule>::RuleHolder(Rule r, const std::vector<Parameter<T>>& params)
    : rule(std::move(r)) {
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
    shapes.emplace_back(p.value->rows(), p.value->cols());
  }
}

template <UpdateRule Rule>
Optimizer(std::vector<Parameter<typename Rule::Scalar>>, Rule)
    -> Optimizer<typename Rule::Scalar>;
template <class Source, UpdateRule Rule>
Optimizer(Source&, Rule) -> Optimizer<typename Rule::Scalar>;

}  // namespace dlb
