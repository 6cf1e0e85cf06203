#pragma once
/// \file
/// Choosing an update rule by name at run time (command-line tools, configuration files).

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/adamw.hpp"
#include "dlb/optimizers/momentum.hpp"
#include "dlb/optimizers/nesterov.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/optimizers/sgd.hpp"

namespace dlb {

/// Names MakeOptimizer accepts.
inline constexpr std::array<std::string_view, 5> kOptimizerNames = {"sgd", "momentum", "nesterov",
                                                                    "adam", "adamw"};

/// The usual learning rate of each rule on the notebook's problem: SGD 0.2, Momentum and
/// Nesterov 0.05 (with beta 0.9), Adam and AdamW 1e-3. Throws ArgumentError for another name.
inline double DefaultLearningRate(std::string_view name) {
  if (name == "sgd") return 0.2;
  if (name == "momentum" || name == "nesterov") return 0.05;
  if (name == "adam" || name == "adamw") return 1e-3;
  throw ArgumentError("unknown optimizer '" + std::string(name) +
                      "'; expected sgd, momentum, nesterov, adam or adamw");
}

namespace internal {
template <Scalar T, class Source>
Optimizer<T> MakeOptimizerFor(std::string_view name, Source&& source, std::optional<T> lr,
                              std::optional<T> weight_decay) {
  const T default_rate = static_cast<T>(DefaultLearningRate(name));  // validates the name
  const T rate = lr.value_or(default_rate);
  const T decay = weight_decay.value_or(T(0));
  Source&& s = std::forward<Source>(source);  // used by exactly one branch below
  if (name == "sgd") return Optimizer<T>(std::forward<Source>(s), SGD<T>(rate, decay));
  if (name == "momentum") return Optimizer<T>(std::forward<Source>(s), Momentum<T>(rate, T(0.9), decay));
  if (name == "nesterov") return Optimizer<T>(std::forward<Source>(s), Nesterov<T>(rate, T(0.9), decay));
  if (name == "adam") {
    return Optimizer<T>(std::forward<Source>(s), Adam<T>(rate, T(0.9), T(0.999), T(1e-8), decay));
  }
  return Optimizer<T>(std::forward<Source>(s),
                      AdamW<T>(rate, T(0.9), T(0.999), T(1e-8), weight_decay.value_or(T(1e-2))));
}
}  // namespace internal

/// An Optimizer over `params` with the rule called `name` (see kOptimizerNames), learning
/// rate `lr` (DefaultLearningRate(name) when empty), the rule's default betas, and
/// `weight_decay` (AdamW: decoupled, default 1e-2 when empty; others: L2, default 0).
template <Scalar T = float>
Optimizer<T> MakeOptimizer(std::string_view name, std::vector<Parameter<T>> params,
                           std::optional<T> lr = std::nullopt,
                           std::optional<T> weight_decay = std::nullopt) {
  return internal::MakeOptimizerFor<T>(name, std::move(params), lr, weight_decay);
}

/// The same over every parameter of `source` (a ModelNN, or anything that lists its
/// parameters: see ParameterSource); built from a ModelNN, the optimizer also refuses to step
/// once layers were added to the model after it was built.
template <Scalar T = float, class Source>
  requires ParameterSource<Source, T>
Optimizer<T> MakeOptimizer(std::string_view name, Source& source,
                           std::optional<T> lr = std::nullopt,
                           std::optional<T> weight_decay = std::nullopt) {
  return internal::MakeOptimizerFor<T>(name, source, lr, weight_decay);
}

}  // namespace dlb
