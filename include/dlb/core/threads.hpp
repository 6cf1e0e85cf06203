#pragma once
/// \file
/// One knob for the threads a training step uses, whichever engine runs the products.

#include <Eigen/Core>

#include <string>

#include "dlb/core/blas.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"

namespace dlb {

/// Sets the number of threads of the library's parallel loops (products, element-wise
/// passes, optimizer updates, batch gathering) and of Eigen's own products.
///
/// With OpenMP the library splits each product into blocks itself and the BLAS, if one is
/// loaded, is told to use one thread per call (a BLAS pool inside each block would
/// oversubscribe the cores); without OpenMP the BLAS gets `threads`. threads >= 1; throws
/// ArgumentError otherwise.
inline void SetNumThreads(int threads) {
  if (threads < 1) {
    throw ArgumentError("SetNumThreads: threads must be >= 1, got " + std::to_string(threads));
  }
  internal::ParallelThreads() = threads;
  Eigen::setNbThreads(threads);
#ifdef _OPENMP
  internal::SetBlasThreads(1);
#else
  internal::SetBlasThreads(threads);
#endif
}

/// Threads set by SetNumThreads (1 until it is called).
inline int NumThreads() { return internal::ParallelThreads(); }

}  // namespace dlb
