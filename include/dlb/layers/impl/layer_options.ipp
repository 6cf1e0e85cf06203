#pragma once
// The definitions of dlb/layers/layer_options.hpp: included by that header where it holds
// them (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).
// They build and read the spec's argument list (a vector of name and variant pairs), whose
// instantiations every program that includes the layers would otherwise compile again.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <variant>

#include "dlb/layers/layer_options.hpp"

namespace dlb {

DLB_INLINE bool LayerArgs::Has(const std::string& name) const { return Find(name) != nullptr; }

DLB_INLINE std::int64_t LayerArgs::Int(const std::string& name) const {
  return Get<std::int64_t>(name, "a whole number");
}
DLB_INLINE std::int64_t LayerArgs::Int(const std::string& name, std::int64_t fallback) const {
  return Has(name) ? Int(name) : fallback;
}

DLB_INLINE double LayerArgs::Real(const std::string& name) const {
  if (const auto* value = Find(name); value && std::holds_alternative<std::int64_t>(*value)) {
    return static_cast<double>(std::get<std::int64_t>(*value));
  }
  return Get<double>(name, "a number");
}
DLB_INLINE double LayerArgs::Real(const std::string& name, double fallback) const {
  return Has(name) ? Real(name) : fallback;
}

DLB_INLINE std::string LayerArgs::Text(const std::string& name) const {
  return Get<std::string>(name, "a name");
}
DLB_INLINE std::string LayerArgs::Text(const std::string& name, const std::string& fallback) const {
  return Has(name) ? Text(name) : fallback;
}

DLB_INLINE void LayerArgs::RequireStateSize(const StateShapes& shapes) const {
  const std::int64_t limit =
      state_limit_ ? std::max<std::int64_t>(*state_limit_, 0) : std::numeric_limits<std::int64_t>::max();
  std::int64_t total = 0;
  bool over = false;
  std::string shapes_text;
  for (const auto& shape : shapes) {
    const Index count = ProductOrInvalid(shape);
    over = over || count < 0 || count > limit - total;
    if (!over) total += count;
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    shapes_text += (shapes_text.empty() ? "" : " + ") + text + "]";
  }
  if (over) {
    throw ArgumentError(spec_.type + " with these arguments holds " + shapes_text +
                        " values, more than " +
                        (state_limit_ ? "the saved tensors account for (" + std::to_string(limit) +
                                            " values left)"
                                      : std::string("a tensor can hold (2^48)")));
  }
  reserved_ += total;
}

DLB_INLINE void LayerArgs::RequireAllRead() const {
  std::string unread;
  for (std::size_t i = 0; i < spec_.args.size(); ++i) {
    if (read_[i] == 0) unread += (unread.empty() ? "'" : ", '") + spec_.args[i].first + "'";
  }
  if (!unread.empty()) throw ArgumentError(spec_.type + ": unknown argument(s) " + unread);
}

DLB_INLINE const SpecValue* LayerArgs::Find(const std::string& name) const {
  const SpecValue* found = nullptr;
  for (std::size_t i = 0; i < spec_.args.size(); ++i) {
    if (spec_.args[i].first != name) continue;
    read_[i] = 1;
    if (found == nullptr) found = &spec_.args[i].second;
  }
  return found;
}

DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, Index value) {
  spec.args.emplace_back(name, std::int64_t{value});
}
DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, double value) {
  spec.args.emplace_back(name, value);
}
DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, bool value) {
  spec.args.emplace_back(name, std::int64_t{value ? 1 : 0});
}
DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, const std::string& value) {
  spec.args.emplace_back(name, value);
}
DLB_INLINE void AppendSpecArgument(LayerSpec& spec, const std::string& name, Size2D value) {
  spec.args.emplace_back(name + "_height", std::int64_t{value.height});
  spec.args.emplace_back(name + "_width", std::int64_t{value.width});
}

DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, Index& value) {
  if (required || args.Has(name)) value = args.Int(name);
}
DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, double& value) {
  if (required || args.Has(name)) value = args.Real(name);
}
DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, bool& value) {
  if (!required && !args.Has(name)) return;
  const std::int64_t flag = args.Int(name);
  if (flag != 0 && flag != 1) {
    throw ArgumentError(args.Type() + ": argument '" + name + "' must be 0 or 1, got " +
                        std::to_string(flag));
  }
  value = flag == 1;
}
DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required,
                                 std::string& value) {
  if (required || args.Has(name)) value = args.Text(name);
}
DLB_INLINE void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, Size2D& value) {
  ReadSpecArgument(args, name + "_height", required, value.height);
  ReadSpecArgument(args, name + "_width", required, value.width);
}

}  // namespace dlb
