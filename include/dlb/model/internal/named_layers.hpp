#include "dlb/core/internal/header_check.hpp"
#pragma once
/// \file
/// NamedLayers: the ordered, named children of a block (Sequential, Concat), and what every
/// block does with them the same way: checked names, deep copies, the shape errors of a
/// child, state names prefixed by the child's name, initialisation and specs in order.

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer_spec.hpp"
#include "dlb/model/internal/any_layer.hpp"

namespace dlb::internal {

/// The longest name a child of a block may have.
inline constexpr std::size_t kMaxChildNameLength = 64;

/// Throws ArgumentError unless `name` can name a child: 1 to 64 letters, digits, '_' or '-'
/// (no '.', which separates the parts of a state name, and nothing a terminal would
/// interpret, since names come from files too). `who` names the block in the message.
inline void RequireChildName(const std::string& who, const std::string& name) {
  const bool valid = !name.empty() && name.size() <= kMaxChildNameLength &&
                     std::all_of(name.begin(), name.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '_' || c == '-';
                     });
  if (!valid) {
    std::string shown;
    for (char c : name.substr(0, kMaxChildNameLength)) {
      shown += (c >= 0x20 && c < 0x7f) ? std::string(1, c) : std::string("?");
    }
    throw ArgumentError(who + ": the layer name '" + shown + "'" +
                        (name.size() > kMaxChildNameLength ? "..." : "") +
                        " is not 1 to 64 letters, digits, '_' or '-'");
  }
}

/// Runs f() and turns a ShapeError it throws into a LayerShapeError naming the child
/// `name` (`layer`): a child's own LayerShapeError gets the child's name prefixed to its path.
template <Scalar T, class F>
decltype(auto) ForChild(const std::string& name, const AnyLayer<T>& layer, F&& f) {
  try {
    return f();
  } catch (const LayerShapeError& error) {
    throw LayerShapeError(name + "." + error.Path(), error.LayerName(), error.Problem());
  } catch (const ShapeError& error) {
    throw LayerShapeError(name, layer.Name(), error.what());
  }
}

/// The named children of a block, in order.
template <Scalar T>
class NamedLayers {
 public:
  struct Node {
    std::string name;
    LayerPointer<T> layer;
  };

  NamedLayers() = default;
  NamedLayers(const NamedLayers& other) {
    for (const Node& node : other.nodes_) nodes_.push_back({node.name, node.layer->Clone()});
  }
  NamedLayers& operator=(const NamedLayers& other) {
    if (this != &other) *this = NamedLayers(other);
    return *this;
  }
  NamedLayers(NamedLayers&&) noexcept = default;
  NamedLayers& operator=(NamedLayers&&) noexcept = default;

  std::size_t Size() const { return nodes_.size(); }
  bool Empty() const { return nodes_.empty(); }
  Node& operator[](std::size_t i) { return nodes_[i]; }
  const Node& operator[](std::size_t i) const { return nodes_[i]; }
  std::vector<Node>& Nodes() { return nodes_; }
  const std::vector<Node>& Nodes() const { return nodes_; }

  /// The name the next child gets when none is given: its index.
  std::string NextIndexName() const { return std::to_string(nodes_.size()); }

  /// Throws ArgumentError when `name` is invalid or already taken in this block.
  void RequireNewName(const std::string& who, const std::string& name) const {
    RequireChildName(who, name);
    for (const Node& node : nodes_) {
      if (node.name == name) {
        throw ArgumentError(who + ": two layers are named '" + name +
                            "'; the names of a block's layers must differ");
      }
    }
  }

  void Append(std::string name, LayerPointer<T> layer) {
    nodes_.push_back({std::move(name), std::move(layer)});
  }

  /// Every child's parameters, named "<child>.<name>".
  std::vector<Parameter<T>> Parameters() {
    std::vector<Parameter<T>> all;
    for (Node& node : nodes_) {
      for (auto& p : node.layer->Parameters()) {
        p.name = node.name + "." + p.name;
        all.push_back(std::move(p));
      }
    }
    return all;
  }

  /// Every child's state in PyTorch's state_dict order (AnyLayer::AllState), named
  /// "<child>.<name>".
  std::vector<StateRef<T>> State() {
    std::vector<StateRef<T>> all;
    for (Node& node : nodes_) {
      for (auto& ref : node.layer->AllState()) {
        ref.name = node.name + "." + ref.name;
        all.push_back(std::move(ref));
      }
    }
    return all;
  }

  void Init(Generator& gen) {
    for (Node& node : nodes_) node.layer->Init(gen);
  }

  std::vector<Child<T>> Children() {
    std::vector<Child<T>> children;
    for (Node& node : nodes_) children.push_back({node.name, node.layer.get()});
    return children;
  }

  /// The children's specs, in order. Throws ArgumentError naming a child without Spec().
  std::vector<std::pair<std::string, LayerSpec>> Specs() const {
    std::vector<std::pair<std::string, LayerSpec>> specs;
    for (const Node& node : nodes_) {
      std::optional<LayerSpec> spec = node.layer->Spec();
      if (!spec) {
        throw ArgumentError("layer " + node.name + " (" + node.layer->Name() +
                            ") has no Spec(), so a file cannot say how to rebuild it; give the "
                            "layer type `LayerSpec Spec() const` (or Options) and register it in "
                            "a LayerRegistry");
      }
      specs.emplace_back(node.name, std::move(*spec));
    }
    return specs;
  }

  /// The values per sample of every child (see AnyLayer::ValuesPerSample).
  Index ValuesPerSample(const std::string& who) const {
    Index values = 0;
    for (const Node& node : nodes_) {
      values = CheckedAdd(values, node.layer->ValuesPerSample(), who + ": the memory per sample");
    }
    return values;
  }

 private:
  std::vector<Node> nodes_;
};

}  // namespace dlb::internal
