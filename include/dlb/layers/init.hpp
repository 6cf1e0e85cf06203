#pragma once
/// \file
/// Weight initialisation schemes for layers with a weight matrix.

#include <cmath>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer_options.hpp"

namespace dlb {

/// How a weight matrix W (fan_out x fan_in) is drawn: W_ij ~ N(0, std^2) with
///   Const:   std = the given init_std,
///   Kaiming: std = sqrt(2 / fan_in)   (He et al. 2015, for ReLU networks),
///   Xavier:  std = sqrt(1 / fan_in)   (LeCun/Glorot-style, for tanh/sigmoid networks).
enum class Init { Const, Kaiming, Xavier };

/// "const", "kaiming", "xavier": the names a saved architecture uses.
inline const char* InitName(Init scheme) {
  switch (scheme) {
    case Init::Const: return "const";
    case Init::Kaiming: return "kaiming";
    case Init::Xavier: return "xavier";
  }
  return "?";
}

/// The Init called `name` (see InitName); throws ArgumentError for another name.
inline Init ParseInit(const std::string& name) {
  for (Init scheme : {Init::Const, Init::Kaiming, Init::Xavier}) {
    if (name == InitName(scheme)) return scheme;
  }
  throw ArgumentError("unknown weight initialisation '" + name +
                      "'; expected const, kaiming or xavier");
}

/// Throws ArgumentError "<who>: init_std must be finite and >= 0, got x" otherwise.
inline void RequireInitStd(const std::string& who, double init_std) {
  if (!(init_std >= 0) || !std::isfinite(init_std)) {
    throw ArgumentError(who + ": init_std must be finite and >= 0, got " + std::to_string(init_std));
  }
}

/// An Init argument of a layer's options is saved as its name ("kaiming").
inline void AppendSpecArgument(LayerSpec& spec, const std::string& name, Init value) {
  spec.args.emplace_back(name, std::string(InitName(value)));
}
inline void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required, Init& value) {
  if (required || args.Has(name)) value = ParseInit(args.Text(name));
}

/// The standard deviation `scheme` gives a weight matrix with `fan_in` inputs.
template <Scalar T>
T InitStd(Init scheme, Index fan_in, T init_std) {
  switch (scheme) {
    case Init::Const: return init_std;
    case Init::Kaiming: return static_cast<T>(std::sqrt(2.0 / static_cast<double>(fan_in)));
    case Init::Xavier: return static_cast<T>(std::sqrt(1.0 / static_cast<double>(fan_in)));
  }
  throw ArgumentError("InitStd: unknown Init value " + std::to_string(static_cast<int>(scheme)));
}

/// Fills `weight` (fan_out x fan_in) with N(0, InitStd(scheme, fan_in, init_std)^2) draws
/// from `gen`, column by column.
template <Scalar T>
void InitializeWeights(Matrix<T>& weight, Init scheme, T init_std, Generator& gen) {
  const T std_dev = InitStd(scheme, weight.cols(), init_std);
  for (Index j = 0; j < weight.cols(); ++j)
    for (Index i = 0; i < weight.rows(); ++i) weight(i, j) = std_dev * SampleNormal<T>(gen);
}

}  // namespace dlb
