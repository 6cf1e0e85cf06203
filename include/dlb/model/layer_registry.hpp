#pragma once
/// \file
/// LayerRegistry: from a layer's type name and constructor arguments (a LayerSpec) back to
/// the layer, so that a saved architecture can be rebuilt with no code (LoadModel).

#include <cstdint>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/init.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_spec.hpp"
#include "dlb/layers/leaky_relu.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/relu.hpp"
#include "dlb/layers/sigmoid.hpp"
#include "dlb/layers/tanh.hpp"
#include "dlb/model/model.hpp"

namespace dlb {

/// The constructor arguments of one LayerSpec, read by a layer factory with checks.
///
/// Represents: the spec's named arguments, which of them were read, and optionally a limit
/// on how many values of state the layer may hold (set by LoadModel to what the file's
/// tensors can still account for, so that a forged architecture cannot make a constructor
/// allocate more than the file's size).
/// Every getter throws ArgumentError naming the layer type and the argument when it is
/// missing (and has no fallback) or of the wrong kind.
class LayerArgs {
 public:
  explicit LayerArgs(const LayerSpec& spec,
                     std::optional<std::int64_t> state_limit = std::nullopt)
      : spec_(spec), state_limit_(state_limit) {}

  const std::string& Type() const { return spec_.type; }

  /// A whole-number argument.
  std::int64_t Int(const std::string& name) const { return Get<std::int64_t>(name, "a whole number"); }
  std::int64_t Int(const std::string& name, std::int64_t fallback) const {
    return Has(name) ? Int(name) : fallback;
  }
  /// A real argument; a whole number is accepted too.
  double Real(const std::string& name) const {
    if (const auto* value = Find(name); value && std::holds_alternative<std::int64_t>(*value)) {
      return static_cast<double>(std::get<std::int64_t>(*value));
    }
    return Get<double>(name, "a number");
  }
  double Real(const std::string& name, double fallback) const {
    return Has(name) ? Real(name) : fallback;
  }
  /// A text argument (an initialisation scheme's name ...).
  std::string Text(const std::string& name) const { return Get<std::string>(name, "a name"); }
  std::string Text(const std::string& name, const std::string& fallback) const {
    return Has(name) ? Text(name) : fallback;
  }

  /// Called by a factory before it builds a layer that allocates state of these shapes
  /// (e.g. {{out, in}, {out}} for a Linear layer); adds their number of values to
  /// Reserved(). Throws ArgumentError when the total exceeds the limit given at
  /// construction (none: no limit).
  void RequireStateSize(const std::vector<std::vector<std::int64_t>>& shapes) const {
    // Saturating sums and products: anything above the limit is reported the same way.
    const std::uint64_t limit =
        state_limit_ ? static_cast<std::uint64_t>(std::max<std::int64_t>(*state_limit_, 0))
                     : static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::uint64_t total = 0;
    bool over = false;
    std::string shapes_text;
    for (const auto& shape : shapes) {
      std::uint64_t count = 1;
      for (std::int64_t extent : shape) {
        const auto size = static_cast<std::uint64_t>(std::max<std::int64_t>(extent, 0));
        if (size != 0 && count > limit / size) {
          over = true;
        } else {
          count *= size;
        }
      }
      over = over || total + count > limit;
      if (!over) total += count;
      shapes_text += (shapes_text.empty() ? "" : " + ") + ShapeText(shape);
    }
    if (over) {
      throw ArgumentError(spec_.type + " with these arguments holds " + shapes_text +
                          " values, more than the saved tensors account for (" +
                          std::to_string(limit) + " values left)");
    }
    reserved_ += static_cast<std::int64_t>(total);
  }

  /// Values of state announced through RequireStateSize so far.
  std::int64_t Reserved() const { return reserved_; }

  /// Throws ArgumentError naming every argument the factory never read (a misspelt or
  /// unsupported argument would otherwise be ignored silently).
  void RequireAllRead() const {
    std::string unread;
    for (const auto& [name, value] : spec_.args) {
      if (read_.count(name) == 0) unread += (unread.empty() ? "'" : ", '") + name + "'";
    }
    if (!unread.empty()) throw ArgumentError(spec_.type + ": unknown argument(s) " + unread);
  }

 private:
  bool Has(const std::string& name) const { return Find(name) != nullptr; }

  const SpecValue* Find(const std::string& name) const {
    for (const auto& [key, value] : spec_.args) {
      if (key == name) {
        read_.insert(name);
        return &value;
      }
    }
    return nullptr;
  }

  template <class V>
  V Get(const std::string& name, const char* kind) const {
    const SpecValue* value = Find(name);
    if (value == nullptr) throw ArgumentError(spec_.type + ": missing argument '" + name + "'");
    if (!std::holds_alternative<V>(*value)) {
      throw ArgumentError(spec_.type + ": argument '" + name + "' must be " + kind);
    }
    return std::get<V>(*value);
  }

  const LayerSpec& spec_;
  std::optional<std::int64_t> state_limit_;
  mutable std::set<std::string> read_;
  mutable std::int64_t reserved_ = 0;
};

/// A map from layer type names to factories that append the layer a LayerSpec describes to
/// a ModelNN<T>.
///
/// Represents: one factory per type name; the built-in layers are registered by
/// DefaultLayerRegistry(). Extend it with Register for your own layer types (which must
/// provide `LayerSpec Spec() const` to be saved):
/// ```
///   dlb::DefaultLayerRegistry<float>().Register("Scale", [](const dlb::LayerArgs& args) {
///     return Scale<float>(args.Real("factor"));
///   });
/// ```
/// Not thread-safe while being changed: register before loading models concurrently.
template <Scalar T>
class LayerRegistry {
 public:
  using Factory = std::function<void(ModelNN<T>&, const LayerArgs&)>;

  /// Registers (or replaces) the factory of `type`: `build(args)` returns the layer (any type
  /// satisfying dlb::Layer with Scalar T), which is appended with ModelNN::Add.
  template <class Build>
  void Register(const std::string& type, Build build) {
    factories_[type] = [build = std::move(build)](ModelNN<T>& model, const LayerArgs& args) {
      auto layer = build(args);
      args.RequireAllRead();  // before Add: a bad spec leaves the model as it was
      model.Add(std::move(layer));
    };
  }

  bool Contains(const std::string& type) const { return factories_.count(type) != 0; }

  /// The registered type names, sorted.
  std::vector<std::string> Types() const {
    std::vector<std::string> types;
    for (const auto& [type, factory] : factories_) types.push_back(type);
    return types;
  }

  /// Appends the layer `spec` describes to `model`; returns the values of state its factory
  /// announced (LayerArgs::Reserved). `state_limit` bounds them (see
  /// LayerArgs::RequireStateSize).
  /// Throws ArgumentError for an unknown type (listing the known ones), a missing, mistyped,
  /// invalid or unknown argument, or state above the limit; ShapeError (from ModelNN::Add)
  /// when the layer does not accept the previous layer's output. The model is unchanged then.
  std::int64_t AddTo(ModelNN<T>& model, const LayerSpec& spec,
                     std::optional<std::int64_t> state_limit = std::nullopt) const {
    const auto it = factories_.find(spec.type);
    if (it == factories_.end()) {
      std::string known;
      for (const auto& [type, factory] : factories_) known += (known.empty() ? "" : ", ") + type;
      throw ArgumentError("unknown layer type '" + spec.type + "'; known types: " + known +
                          " (register others with LayerRegistry::Register)");
    }
    const LayerArgs args(spec, state_limit);
    it->second(model, args);
    return args.Reserved();
  }

 private:
  std::map<std::string, Factory> factories_;
};

namespace internal {

/// A T argument that must be representable: a finite double that fits in T.
template <Scalar T>
T SpecReal(const LayerArgs& args, const std::string& name, double fallback) {
  const double value = args.Real(name, fallback);
  if (!std::isfinite(value) || std::abs(value) > static_cast<double>(std::numeric_limits<T>::max())) {
    throw ArgumentError(args.Type() + ": argument '" + name + "' must be a finite number, got " +
                        std::to_string(value));
  }
  return static_cast<T>(value);
}

template <Scalar T>
void RegisterBuiltinLayers(LayerRegistry<T>& registry) {
  registry.Register("Linear", [](const LayerArgs& args) {
    const std::int64_t in = args.Int("in"), out = args.Int("out");
    const Init init = ParseInit(args.Text("init", InitName(Init::Kaiming)));
    const T init_std = SpecReal<T>(args, "init_std", 0.01);
    args.RequireStateSize({{out, in}, {out}});
    return Linear<T>(in, out, init, init_std);
  });
  registry.Register("ReLU", [](const LayerArgs&) { return ReLU<T>(); });
  registry.Register("Sigmoid", [](const LayerArgs&) { return Sigmoid<T>(); });
  registry.Register("Tanh", [](const LayerArgs&) { return Tanh<T>(); });
  registry.Register("LeakyReLU", [](const LayerArgs& args) {
    return LeakyReLU<T>(SpecReal<T>(args, "alpha", 0.01));
  });
  registry.Register("Dropout", [](const LayerArgs& args) {
    return Dropout<T>(SpecReal<T>(args, "p", 0.5));
  });
}

}  // namespace internal

/// The process-wide registry LoadModel uses by default, holding the built-in layers: Linear,
/// ReLU, LeakyReLU, Sigmoid, Tanh and Dropout. Register your own layer types in it.
template <Scalar T>
LayerRegistry<T>& DefaultLayerRegistry() {
  static LayerRegistry<T> registry = [] {
    LayerRegistry<T> built_in;
    internal::RegisterBuiltinLayers(built_in);
    return built_in;
  }();
  return registry;
}

}  // namespace dlb
