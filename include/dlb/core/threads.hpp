#pragma once
/// \file
/// One knob for the threads a training step uses, whichever engine runs the products.
///
/// The library starts with the CPUs this process may use (its affinity mask and cgroup CPU
/// quota), or DLB_NUM_THREADS / OMP_NUM_THREADS when set (core/cpu_count.hpp);
/// SetNumThreads overrides that.

#include <Eigen/Core>

#include <string>

#include "dlb/core/blas.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"

namespace dlb {

/// Sets the number of threads of the library's parallel loops (products, element-wise
/// passes, optimizer updates, batch gathering) and of Eigen's own products.
///
/// The library splits each product into blocks itself, on its own thread pool, and the BLAS,
/// if one is loaded, is told to use one thread per call (a BLAS pool inside each block would
/// oversubscribe the cores). Takes effect from the next parallel loop; may be called from any
/// thread. threads >= 1; throws ArgumentError otherwise. Counts above kMaxParallelParts are
/// accepted, but no loop is split into more than kMaxParallelParts parts.
inline void SetNumThreads(int threads) {
  if (threads < 1) {
    throw ArgumentError("SetNumThreads: threads must be >= 1, got " + std::to_string(threads));
  }
  internal::RequestedThreads().store(threads, std::memory_order_relaxed);
  Eigen::setNbThreads(threads);
  internal::SetBlasThreads(1);
}

/// Threads the library's parallel loops use: SetNumThreads's count, or until it is called the
/// default (the CPUs this process may use, or DLB_NUM_THREADS / OMP_NUM_THREADS).
inline int NumThreads() { return internal::ParallelThreads(); }

/// The default NumThreads() of this process, whatever SetNumThreads set since: to go back to
/// it, SetNumThreads(DefaultNumThreads()).
inline int DefaultNumThreads() { return internal::DefaultThreads(); }

}  // namespace dlb
