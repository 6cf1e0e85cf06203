#pragma once
/// \file
/// A layer's options struct: the one description of its arguments, from which everything
/// else about them follows.
///
/// A built-in layer L has `using Options = LOptions;`, a struct of plain members with their
/// defaults and chainable setters (`Conv2DOptions(1, 32, 3).Padding(1)`, libtorch's style),
/// which declares once, in `Arguments()`, the name under which each member is saved and
/// whether a saved spec must give it:
/// ```
///   struct ScaleOptions {
///     double factor = 1;
///     static constexpr const char* kType = "Scale";
///     static constexpr auto Arguments() { return std::tuple{Required("factor", &ScaleOptions::factor)}; }
///     void Validate() const { if (!(factor > 0)) throw ArgumentError("Scale: ..."); }
///     StateShapes TensorShapes() const { return {}; }  // shapes of the state it allocates
///   };
/// ```
/// From that description follow: the layer's constructor (`L(const Options&)`, which calls
/// Validate), its `Spec()` (SpecOf), the registry's factory (OptionsFromArgs), the registry's
/// bound on the state a file may make it allocate (TensorShapes(), checked before anything is
/// allocated), and the attributes of its ONNX export. Argument values may be whole numbers
/// (Index), reals (double), booleans (saved as 0 or 1), names (std::string), a Size2D
/// (saved as name_height and name_width) or an enum with AppendSpecArgument/ReadSpecArgument
/// overloads (Init, ActivationKind).

#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/linkage.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"
#include "dlb/layers/layer_spec.hpp"

namespace dlb {

/// The shapes (torch's dimensions) of the tensors of state a layer allocates: parameters and
/// buffers. E.g. {{out, in}, {out}} for a Linear layer.
using StateShapes = std::vector<std::vector<std::int64_t>>;

/// The arguments of one LayerSpec, read with checks: what a registry's factory reads.
///
/// Represents: the spec's named arguments, which of them were read, and optionally a limit on
/// how many values of state the layers built from a file may still allocate (set by LoadModel
/// to what the file's tensors can account for, so that a forged architecture cannot make a
/// constructor allocate more than the file's size).
/// Every getter throws ArgumentError naming the layer type and the argument when it is missing
/// (and has no fallback) or of the wrong kind.
class LayerArgs {
 public:
  explicit LayerArgs(const LayerSpec& spec,
                     std::optional<std::int64_t> state_limit = std::nullopt)
      : spec_(spec), state_limit_(state_limit), read_(spec.args.size(), 0) {}

  const std::string& Type() const { return spec_.type; }
  const LayerSpec& Spec() const { return spec_; }
  DLB_INLINE bool Has(const std::string& name) const;

  /// A whole-number argument.
  DLB_INLINE std::int64_t Int(const std::string& name) const;
  DLB_INLINE std::int64_t Int(const std::string& name, std::int64_t fallback) const;
  /// A real argument; a whole number is accepted too.
  DLB_INLINE double Real(const std::string& name) const;
  DLB_INLINE double Real(const std::string& name, double fallback) const;
  /// A text argument (an initialisation scheme's name ...).
  DLB_INLINE std::string Text(const std::string& name) const;
  DLB_INLINE std::string Text(const std::string& name, const std::string& fallback) const;

  /// Called by a factory before it builds a layer that allocates state of these shapes; adds
  /// their number of values to Reserved(). Throws ArgumentError when the total exceeds the
  /// limit given at construction (none: no limit) or a shape's size overflows.
  DLB_INLINE void RequireStateSize(const StateShapes& shapes) const;

  /// Values of state announced through RequireStateSize so far.
  std::int64_t Reserved() const { return reserved_; }

  /// Throws ArgumentError naming every argument never read (a misspelt or unsupported
  /// argument would otherwise be ignored silently).
  DLB_INLINE void RequireAllRead() const;

 private:
  /// The first argument called `name` (none: nullptr); marks every argument of that name read.
  DLB_INLINE const SpecValue* Find(const std::string& name) const;

  /// The argument `name` as a V; throws ArgumentError saying it must be `kind` otherwise.
  template <class V>
  V Get(const std::string& name, const char* kind) const;

  const LayerSpec& spec_;
  std::optional<std::int64_t> state_limit_;
  mutable std::vector<char> read_;  // read_[i]: whether spec_.args[i] was read
  mutable std::int64_t reserved_ = 0;
};

template <class V>
V LayerArgs::Get(const std::string& name, const char* kind) const {
  const SpecValue* value = Find(name);
  if (value == nullptr) throw ArgumentError(spec_.type + ": missing argument '" + name + "'");
  if (!std::holds_alternative<V>(*value)) {
    throw ArgumentError(spec_.type + ": argument '" + name + "' must be " + kind);
  }
  return std::get<V>(*value);
}

/// One argument of a layer's options: the name a spec stores it under, the member that holds
/// it, and whether a spec must give it (otherwise the member's default stays).
template <class Options, class Value>
struct Argument {
  const char* name;
  Value Options::*member;
  bool required;
};

/// An argument a spec must give (`Required("in", &LinearOptions::in)`).
template <class Options, class Value>
constexpr Argument<Options, Value> Required(const char* name, Value Options::*member) {
  return {name, member, true};
}
/// An argument with a default (`Optional("init", &LinearOptions::init)`).
template <class Options, class Value>
constexpr Argument<Options, Value> Optional(const char* name, Value Options::*member) {
  return {name, member, false};
}

// How each kind of argument value is written to and read from a spec. Enum types add their
// own overloads of both next to their definition (found by argument-dependent lookup).

DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, Index value);
DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, double value);
DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, bool value);
DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, const std::string& value);
/// A Size2D as two whole numbers, name_height and name_width.
DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, Size2D value);

DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, Index& value);
DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, double& value);
/// A boolean, saved as 0 or 1: another number throws ArgumentError.
DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, bool& value);
DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required,
                                 std::string& value);
DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, Size2D& value);

/// Satisfied by a layer's options struct (see the file comment).
template <class O>
concept LayerOptions = std::default_initializable<O> && std::copy_constructible<O> &&
    requires(const O& options) {
      { O::kType } -> std::convertible_to<const char*>;
      O::Arguments();
      options.Validate();
      { options.TensorShapes() } -> std::convertible_to<StateShapes>;
    };

/// The spec of a layer with these options: its type and every argument, in declaration order.
template <LayerOptions O>
LayerSpec SpecOf(const O& options) {
  LayerSpec spec{O::kType, {}};
  std::apply([&](const auto&... argument) {
    (AppendSpecArgument(spec, argument.name, options.*(argument.member)), ...);
  }, O::Arguments());
  return spec;
}

/// The options `args` describe: the defaults, overwritten by each argument the spec gives.
/// Throws ArgumentError for a missing required argument or a value of the wrong kind (not for
/// unknown arguments: see LayerArgs::RequireAllRead; nor for invalid values: see Validate).
template <LayerOptions O>
O OptionsFromArgs(const LayerArgs& args) {
  O options;
  std::apply([&](const auto&... argument) {
    (ReadSpecArgument(args, argument.name, argument.required, options.*(argument.member)), ...);
  }, O::Arguments());
  return options;
}

/// `value` as T; throws ArgumentError "<who>: <what> must be a finite number that a float can
/// hold, got 1e+300" unless it is finite and within T's range (an option stored as double
/// that a float layer would turn into an infinity).
template <Scalar T>
T RepresentableAs(const std::string& who, const std::string& what, double value) {
  if (!std::isfinite(value) || std::abs(value) > static_cast<double>(std::numeric_limits<T>::max())) {
    throw ArgumentError(who + ": " + what + " must be a finite number that a " +
                        (sizeof(T) == 4 ? "float" : "double") + " can hold, got " +
                        std::to_string(value));
  }
  return static_cast<T>(value);
}

/// Throws ArgumentError, naming the layer type, unless every state shape of `options` has a
/// size a tensor can hold (see kMaxValues): so that a constructor never computes a wrapped
/// size from arguments such as Conv2D(2^40, 1, 2^20).
template <LayerOptions O>
void RequireRepresentableState(const O& options) {
  for (const auto& shape : options.TensorShapes()) {
    if (ProductOrInvalid(shape) < 0) {
      std::string text;
      for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? " x " : "") + std::to_string(shape[i]);
      throw ArgumentError(std::string(O::kType) + ": a tensor of " + text +
                          " values is out of range (the limit is 2^48)");
    }
  }
}

/// A type name usable as a template argument: `NoArgumentOptions<"ReLU">`.
template <std::size_t N>
struct FixedName {
  char text[N];
  constexpr FixedName(const char (&name)[N]) {  // NOLINT(google-explicit-constructor)
    for (std::size_t i = 0; i < N; ++i) text[i] = name[i];
  }
};

/// The options of a layer that takes no arguments and holds no state (ReLU, GlobalAvgPool).
template <FixedName kName>
struct NoArgumentOptions {
  static constexpr const char* kType = kName.text;
  static constexpr auto Arguments() { return std::tuple{}; }
  void Validate() const {}
  StateShapes TensorShapes() const { return {}; }
};

/// The base of a layer described by options O: keeps the validated options and gives the
/// layer GetOptions() and Spec().
template <LayerOptions O>
class DescribedBy {
 public:
  using Options = O;
  /// The options the layer was built with.
  const O& GetOptions() const { return options_; }
  /// The type and arguments a saved architecture lists (SpecOf).
  LayerSpec Spec() const { return SpecOf(options_); }

 protected:
  /// Validates `options` (O::Validate, then RequireRepresentableState); throws ArgumentError.
  explicit DescribedBy(const O& options) : options_(options) {
    if constexpr (!std::is_empty_v<O>) {  // options without arguments have nothing to check
      options_.Validate();
      RequireRepresentableState(options_);
    }
  }

  O options_;
};

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/layers/impl/layer_options.ipp"
#endif
