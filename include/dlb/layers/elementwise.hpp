#pragma once
/// \file
/// Shape rules shared by element-wise layers (activations, dropout): they accept any number
/// of rows and keep it.

#include "dlb/core/types.hpp"

namespace dlb {

/// Base of element-wise layers: InputSize() is 0 ("any") and OutputSize(n) is n.
struct ElementwiseLayer {
  Index InputSize() const { return 0; }
  Index OutputSize(Index input_size) const { return input_size; }
};

}  // namespace dlb
