#pragma once
/// \file
/// The library's own parallel loops: matrix products split into blocks and element-wise
/// passes split into column ranges, one range per thread. With several threads this keeps
/// every part of a training step on every core, where a threaded BLAS would parallelize only
/// the products (and, on matrices this small, poorly).
///
/// Without OpenMP (the target is built with it when CMake finds it) everything runs on the
/// calling thread.

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dlb/core/types.hpp"

namespace dlb {

namespace internal {
/// Threads the library's parallel loops use; set by SetNumThreads.
inline int& ParallelThreads() {
  static int threads = 1;
  return threads;
}
}  // namespace internal

/// Upper bound on the parts ParallelRanges splits into (and on per-part scratch arrays).
inline constexpr int kMaxParallelParts = 64;

/// Splits 0 .. n-1 into P contiguous ranges and calls f(part, begin, length) for each, on P
/// threads at once. P = min(NumThreads, n, kMaxParallelParts), and 1 when the loop is too
/// small to pay for waking threads (n * cost_per_item < 2^15), when already inside a parallel
/// region, or without OpenMP. Returns P. `f` must not throw.
template <class F>
int ParallelRanges(Index n, Index cost_per_item, F&& f) {
  if (n <= 0) return 0;
#ifdef _OPENMP
  const Index threads = std::min<Index>({internal::ParallelThreads(), n, kMaxParallelParts});
  if (threads > 1 && n * cost_per_item >= (Index{1} << 15) && !omp_in_parallel()) {
#pragma omp parallel num_threads(static_cast<int>(threads))
    {
      const Index part = omp_get_thread_num(), parts = omp_get_num_threads();
      const Index begin = n * part / parts, end = n * (part + 1) / parts;
      if (end > begin) f(static_cast<int>(part), begin, end - begin);
    }
    return static_cast<int>(threads);
  }
#endif
  f(0, Index{0}, n);
  return 1;
}

}  // namespace dlb
