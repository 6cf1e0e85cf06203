#pragma once
/// \file
/// LayerRegistry: from a layer's type name and arguments (a LayerSpec) back to the layer,
/// blocks and the layers inside them included, so that a saved architecture can be rebuilt
/// with no code (LoadModel).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/layers/layer_spec.hpp"
#include "dlb/model/builtin_layers.hpp"
#include "dlb/model/model.hpp"

namespace dlb {

/// Bounds on what a LayerRegistry builds from specs read from a file, each checked before
/// anything is allocated; building counts them down (LoadModel sets them from LoadOptions).
struct BuildBudget {
  /// Values of state (parameters and buffers) the layers may still allocate; none: no limit.
  std::optional<std::int64_t> state_values;
  /// Layers (blocks and the layers inside them) that may still be built.
  std::int64_t layers = std::numeric_limits<std::int64_t>::max();
  /// How many blocks deep layers may still nest.
  int depth = 64;
  /// Values of state the layers built so far announced (counted whether or not limited).
  std::int64_t reserved = 0;
};

/// A map from layer type names to factories that build the layer a LayerSpec describes.
///
/// Represents: one factory per type name. DefaultLayerRegistry() holds the built-in layers
/// (BuiltinLayers). Extend it with your own layer types: a type with Options (see
/// dlb/layers/layer_options.hpp) registers with `Register<MyLayer<float>>()`; any other type
/// with a factory that reads its arguments:
/// ```
///   dlb::DefaultLayerRegistry<float>().Register("Scale", [](const dlb::LayerArgs& args) {
///     return Scale<float>(args.Real("factor"));
///   });
/// ```
/// (the layer then needs `LayerSpec Spec() const` to be saved).
/// Not thread-safe while being changed: register before loading models concurrently.
template <Scalar T>
class LayerRegistry {
 public:
  /// Builds the layer of `args`' spec; `build_child` builds a child spec (for blocks).
  using Factory = std::function<internal::LayerPointer<T>(
      const LayerArgs& args, const internal::BuildChild<T>& build_child)>;

  /// Registers the layer type L under L::Options::kType: its factory reads the options from
  /// the spec (OptionsFromArgs), refuses unknown arguments, checks the state they imply
  /// against the budget (Options::TensorShapes) before constructing L. A block type
  /// (Sequential, Residual, Concat) is rebuilt by its static FromSpec, children included.
  template <class L>
  void Register() {
    static_assert(Layer<L> && std::is_same_v<typename L::Scalar, T>,
                  "LayerRegistry<T>::Register<L>: L must be a dlb::Layer with Scalar T");
    using O = typename L::Options;
    SetFactory(O::kType, [](const LayerArgs& args, const internal::BuildChild<T>& build_child) {
      if constexpr (requires { L::FromSpec(args, build_child); }) {
        L layer = L::FromSpec(args, build_child);
        args.RequireAllRead();
        return internal::MakeLayerPointer(std::move(layer));
      } else {
        RequireNoChildren(args);
        const O options = OptionsFromArgs<O>(args);
        args.RequireAllRead();
        options.Validate();
        RequireRepresentableState(options);
        args.RequireStateSize(options.TensorShapes());
        return internal::MakeLayerPointer(L(options));
      }
    });
  }

  /// Registers (or replaces) the factory of `type`: `build(args)` returns the layer (any type
  /// satisfying dlb::Layer with Scalar T). A factory of a layer that allocates state should
  /// call args.RequireStateSize with its shapes first.
  template <class Build>
  void Register(const std::string& type, Build build) {
    SetFactory(type, [build = std::move(build)](const LayerArgs& args,
                                                const internal::BuildChild<T>&) {
      RequireNoChildren(args);
      auto layer = build(args);
      args.RequireAllRead();
      return internal::MakeLayerPointer(std::move(layer));
    });
  }

  bool Contains(const std::string& type) const { return FindFactory(type) != nullptr; }

  /// The registered type names, sorted.
  std::vector<std::string> Types() const {
    std::vector<std::string> types;
    for (const auto& [type, factory] : factories_) types.push_back(type);
    return types;
  }

  /// The layer `spec` describes, its children built recursively, within `budget` (which is
  /// counted down). Throws ArgumentError for an unknown type (listing the known ones), a
  /// missing, mistyped, invalid or unknown argument, a bad child, or a budget exceeded; a
  /// child's error names its path ("layer 'downsample.0': ...").
  internal::LayerPointer<T> Build(const LayerSpec& spec, BuildBudget& budget) const {
    if (budget.layers <= 0) {
      throw ArgumentError("more layers than the limit allows (LoadOptions::max_layers)");
    }
    if (budget.depth <= 0) {
      throw ArgumentError("blocks nested deeper than the limit allows (LoadOptions::max_depth)");
    }
    --budget.layers;
    const Factory* build_layer = FindFactory(spec.type);
    if (build_layer == nullptr) {
      std::string known;
      for (const auto& [type, factory] : factories_) known += (known.empty() ? "" : ", ") + type;
      throw ArgumentError("unknown layer type '" + spec.type + "'; known types: " + known +
                          " (register others with LayerRegistry::Register)");
    }
    const LayerArgs args(spec, budget.state_values);
    const internal::BuildChild<T> build_child = [&](const std::string& name, const LayerSpec& child) {
      --budget.depth;
      try {
        auto layer = Build(child, budget);
        ++budget.depth;
        return layer;
      } catch (const ArgumentError& error) {
        ++budget.depth;
        const std::string message = error.what();
        throw ArgumentError(message.rfind("layer '", 0) == 0
                                ? "layer '" + name + "." + message.substr(7)
                                : "layer '" + name + "' (" + child.type + "): " + message);
      }
    };
    internal::LayerPointer<T> layer = (*build_layer)(args, build_child);
    if (budget.state_values) *budget.state_values -= args.Reserved();
    budget.reserved += args.Reserved();
    return layer;
  }

  /// Appends the layer `spec` describes to `model` under `name` (its index when empty);
  /// returns the values of state its factory announced. `state_limit` bounds them.
  /// Throws ArgumentError (see Build) or ShapeError (from ModelNN::Add) when the layer does
  /// not accept the previous layer's output; the model is unchanged then.
  std::int64_t AddTo(ModelNN<T>& model, const LayerSpec& spec,
                     std::optional<std::int64_t> state_limit = std::nullopt,
                     std::string name = "") const {
    BuildBudget budget;
    budget.state_values = state_limit;
    internal::LayerPointer<T> layer = Build(spec, budget);
    model.AddPointer(name.empty() ? std::to_string(model.NumLayers()) : std::move(name),
                     std::move(layer));
    return budget.reserved;
  }

 private:
  static void RequireNoChildren(const LayerArgs& args) {
    if (!args.Spec().children.empty()) {
      throw ArgumentError(args.Type() + " holds no layers, but the spec lists " +
                          std::to_string(args.Spec().children.size()));
    }
  }

  /// The factory of `type`, or nullptr.
  const Factory* FindFactory(const std::string& type) const {
    const auto it = LowerBound(type);
    return it != factories_.end() && it->first == type ? &it->second : nullptr;
  }
  /// Registers or replaces the factory of `type`, keeping factories_ sorted by type.
  void SetFactory(const std::string& type, Factory factory) {
    const auto it = LowerBound(type);
    if (it != factories_.end() && it->first == type) {
      factories_[static_cast<std::size_t>(it - factories_.begin())].second = std::move(factory);
    } else {
      factories_.emplace(it, type, std::move(factory));
    }
  }
  typename std::vector<std::pair<std::string, Factory>>::const_iterator LowerBound(
      const std::string& type) const {
    return std::lower_bound(factories_.begin(), factories_.end(), type,
                            [](const auto& entry, const std::string& key) { return entry.first < key; });
  }

  // Sorted by type name: a short list, looked up once per layer of a file, listed in order in
  // messages (a sorted vector rather than std::map, whose header every program would parse).
  std::vector<std::pair<std::string, Factory>> factories_;
};

/// Registers every layer type of `list` in `registry` (see BuiltinLayers).
template <Scalar T, class... Layers>
void RegisterLayers(LayerRegistry<T>& registry, LayerList<Layers...> /*list*/) {
  (registry.template Register<Layers>(), ...);
}

/// The process-wide registry LoadModel uses by default, holding the built-in layers
/// (BuiltinLayers<T>). Register your own layer types in it.
template <Scalar T>
LayerRegistry<T>& DefaultLayerRegistry() {
  static LayerRegistry<T> registry = [] {
    LayerRegistry<T> built_in;
    RegisterLayers(built_in, BuiltinLayers<T>{});
    return built_in;
  }();
  return registry;
}

}  // namespace dlb
