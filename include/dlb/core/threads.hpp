#pragma once
/// \file
/// One knob for the threads a training step uses, whichever engine runs the products.

#include <Eigen/Core>

#include <dlfcn.h>

#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"

namespace dlb {

namespace internal {
// OpenBLAS and BLIS size their pools through their own entry points. They are looked up at
// run time so that a program linked to the reference BLAS (or to none) still builds and runs.
inline void SetBlasThreads(int threads) {
  using SetThreadsFn = void (*)(int);
  for (const char* symbol : {"openblas_set_num_threads", "bli_thread_set_num_threads"}) {
    if (void* fn = dlsym(RTLD_DEFAULT, symbol)) {
      reinterpret_cast<SetThreadsFn>(fn)(threads);
    }
  }
}
}  // namespace internal

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
