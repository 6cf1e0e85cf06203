#pragma once
/// \file
/// Shape rules shared by element-wise layers (activations, dropout): they accept any number
/// of rows and keep it.

#include "dlb/core/parallel.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Base of element-wise layers: InputSize() is 0 ("any") and OutputSize(n) is n.
struct ElementwiseLayer {
  Index InputSize() const { return 0; }
  Index OutputSize(Index input_size) const { return input_size; }
};

/// Calls f(first_column, count) over blocks of columns of a rows x cols batch, one block per
/// thread (see ParallelRanges): element-wise passes split this way write disjoint columns.
template <class F>
void ForColumnBlocks(Index rows, Index cols, F&& f) {
  ParallelRanges(cols, rows, [&f](int, Index first, Index count) { f(first, count); });
}

}  // namespace dlb
