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

/// An Optimizer over `params` with the rule called `name` (see kOptimizerNames), learning
/// rate `lr` (DefaultLearningRate(name) when empty), the rule's default betas, and
/// `weight_decay` (AdamW: decoupled, default 1e-2 when empty; others: L2, default 0).
template <Scalar T = float>
Optimizer<T> MakeOptimizer(std::string_view name, std::vector<Parameter<T>> params,
                           std::optional<T> lr = std::nullopt,
                           std::optional<T> weight_decay = std::nullopt) {
  const T default_rate = static_cast<T>(DefaultLearningRate(name));  // validates the name
  const T rate = lr.value_or(default_rate);
  const T decay = weight_decay.value_or(T(0));
  if (name == "sgd") return Optimizer<T>(std::move(params), SGD<T>(rate, decay));
  if (name == "momentum") return Optimizer<T>(std::move(params), Momentum<T>(rate, T(0.9), decay));
  if (name == "nesterov") return Optimizer<T>(std::move(params), Nesterov<T>(rate, T(0.9), decay));
  if (name == "adam") {
    return Optimizer<T>(std::move(params), Adam<T>(rate, T(0.9), T(0.999), T(1e-8), decay));
  }
  return Optimizer<T>(std::move(params),
                      AdamW<T>(rate, T(0.9), T(0.999), T(1e-8), weight_decay.value_or(T(1e-2))));
}

}  // namespace dlb
