#pragma once
/// \file
/// A named trainable tensor together with its gradient: what optimizers update and what a
/// saved model stores.

#include <cstdint>
#include <string>
#include <vector>

#include "dlb/core/types.hpp"

namespace dlb {

/// Non-owning handle to one parameter block of a layer.
///
/// Represents: `*value` (the parameter, e.g. a weight matrix out x in) and `*grad` (the
/// gradient of the loss with respect to it, same shape, written by the layer's Backward).
/// The pointers stay valid as long as the layer (or the ModelNN holding it) lives and no
/// layer is added to or removed from the model.
template <Scalar T>
struct Parameter {
  std::string name;  ///< "weight", "bias"; a ModelNN prefixes the layer index: "0.weight".
  Matrix<T>* value;
  Matrix<T>* grad;
  /// PyTorch's shape of the tensor when it is not {rows, cols} (or {rows} for a column), e.g.
  /// {out, in, kh, kw} for a convolution weight stored as out x (in kh kw). See StateRef.
  std::vector<std::int64_t> shape = {};
};

}  // namespace dlb
