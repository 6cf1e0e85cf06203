#pragma once
/// \file
/// LayerSpec: a layer's type and constructor arguments, enough to build the layer again
/// (what a saved model's architecture lists).

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace dlb {

/// One constructor argument's value: a whole number, a real number or a name.
using SpecValue = std::variant<std::int64_t, double, std::string>;

/// Represents: the type name a layer registry knows ("Linear", "Conv2D") and the named
/// constructor arguments in constructor order ({"in", 784}, {"out", 350},
/// {"init", "kaiming"}). Built-in layers provide it through `LayerSpec Spec() const`.
struct LayerSpec {
  std::string type;
  std::vector<std::pair<std::string, SpecValue>> args;

  bool operator==(const LayerSpec&) const = default;
};

}  // namespace dlb
