#pragma once
/// \file
/// Shape rules shared by element-wise layers (activations, dropout): they accept any shape
/// and keep it.

#include "dlb/core/parallel.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Base of element-wise layers: any input shape, and the output has the same shape.
struct ElementwiseLayer {
  Shape OutputShape(const Shape& input) const { return input; }
};

/// Calls f(first_column, count) over blocks of columns of a rows x cols batch, one block per
/// thread (see ParallelRanges): element-wise passes split this way write disjoint columns.
template <class F>
void ForColumnBlocks(Index rows, Index cols, F&& f) {
  ParallelRanges(cols, rows, [&f](int, Index first, Index count) { f(first, count); });
}

}  // namespace dlb
