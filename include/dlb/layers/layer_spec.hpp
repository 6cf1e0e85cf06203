#pragma once
/// \file
/// LayerSpec: a layer's type and arguments, and for a block of layers its named children:
/// enough to build the layer again (what a saved model's architecture lists).

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace dlb {

/// One argument's value: a whole number, a real number or a name.
using SpecValue = std::variant<std::int64_t, double, std::string>;

/// Represents: the type name a layer registry knows ("Linear", "Conv2D", "Residual"), the
/// named arguments in the order the layer's options declare them ({"in", 784}, {"out", 350},
/// {"init", "kaiming"}), and, for a block that holds layers (Sequential, Residual, Concat),
/// its children in order, each under the name that prefixes its state ("conv1",
/// "downsample", "0"). Built-in layers produce it from their options (see LayerOptions).
struct LayerSpec {
  std::string type;
  std::vector<std::pair<std::string, SpecValue>> args;
  std::vector<std::pair<std::string, LayerSpec>> children = {};

  bool operator==(const LayerSpec&) const = default;
};

}  // namespace dlb
