#pragma once
/// \file
/// One knob for the threads the matrix products use, whichever engine runs them: Eigen's own
/// GEMM (OpenMP) and, when built with EIGEN_USE_BLAS, the BLAS library's thread pool.

#include <Eigen/Core>

#include <dlfcn.h>

#include "dlb/core/error.hpp"

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

/// Sets the number of threads used by matrix products (Eigen and, if loaded, the BLAS).
/// threads >= 1; throws ArgumentError otherwise.
inline void SetNumThreads(int threads) {
  if (threads < 1) {
    throw ArgumentError("SetNumThreads: threads must be >= 1, got " + std::to_string(threads));
  }
  Eigen::setNbThreads(threads);
  internal::SetBlasThreads(threads);
}

/// Threads Eigen's own products use (1 when built without OpenMP).
inline int NumThreads() { return Eigen::nbThreads(); }

}  // namespace dlb
