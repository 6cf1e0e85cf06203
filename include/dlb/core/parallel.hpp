#pragma once
/// \file
/// The library's own parallel loops: matrix products split into blocks and element-wise
/// passes split into column ranges, run by a pool of threads of the library's own. With several
/// threads this keeps every part of a training step on every core, where a threaded BLAS would
/// parallelize only the products (and, on matrices this small, poorly).
///
/// How the pool behaves, and why (issue 17; numbers in bench/README.md, "Contention"):
///  - Parts are claimed, not assigned. ParallelRanges cuts 0 .. n-1 into P parts, one per
///    thread, and every thread of the job (the caller included) takes the next unclaimed part
///    until none is left. A worker that the kernel has not scheduled yet, because other
///    processes hold the cores, costs nothing: the caller runs its part instead. With
///    OpenMP's static split each product waited for its slowest thread, and under load that
///    thread is often one that is not running.
///  - Threads poll briefly (SpinMicroseconds, 200 us by default), then sleep in the kernel.
///    Polling keeps the hand-over between the many small loops of a training step (about 36
///    per step of the MLP, one every ~75 us) fast, on a quiet machine and under load alike: a
///    polling worker is there when the next loop starts. Sleeping after that bounds what an
///    idle pool costs the other processes to 200 us of CPU per thread per pause.
///  - The split depends only on n, cost_per_item and the thread count, never on which thread
///    ran a part, so per-part sums combined in part order are bit-identical from run to run.
///
/// The pool is shared by the process and used by one caller at a time: a second user thread
/// that calls ParallelRanges while another one's loop runs gets the same parts, run one after
/// another on its own thread (same numbers, no waiting, no deadlock). A call from inside a
/// part (nested) runs its whole range inline as one part. So several user threads may call
/// the library at once; each call is parallel when the pool is free.
///
/// The pool does not need OpenMP: a build without it (DLB_OPENMP=OFF) runs the same parallel
/// loops. OpenMP, when linked, is left to Eigen's own product expressions.
///
/// The pool itself (ThreadPool, RunParts) is in impl/parallel.ipp: a program that links
/// dlb::compiled reads only the declarations here (see dlb/core/linkage.hpp).

#include <algorithm>
#include <atomic>
#include <memory>
#include <type_traits>

#include "dlb/core/blas.hpp"
#include "dlb/core/cpu_count.hpp"
#include "dlb/core/linkage.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Upper bound on the parts ParallelRanges splits into (and on per-part scratch arrays).
inline constexpr int kMaxParallelParts = 64;

namespace internal {

/// The count SetNumThreads stored; 0 until it is called.
inline std::atomic<int>& RequestedThreads() {
  static std::atomic<int> threads{0};
  return threads;
}

/// The thread count a process starts with (DetectThreadCount: DLB_NUM_THREADS,
/// OMP_NUM_THREADS, affinity mask, cgroup quota), decided at the first call. Sets what
/// SetNumThreads(count) would: Eigen's own products get `count` threads and the BLAS one per
/// call (its products run inside the library's parts, which already fill the cores).
inline int DefaultThreads() {
  static const int threads = [] {
    const int count = DetectThreadCount();
    Eigen::setNbThreads(count);
    SetBlasThreads(1);
    return count;
  }();
  return threads;
}

/// Threads the library's parallel loops use: SetNumThreads's count, or DefaultThreads().
inline int ParallelThreads() {
  const int requested = RequestedThreads().load(std::memory_order_relaxed);
  return requested > 0 ? requested : DefaultThreads();
}

/// True on a thread while it runs a part of a parallel loop: loops started there run inline.
inline bool& InParallelPart() {
  thread_local bool inside = false;
  return inside;
}

/// Parts a loop over n items of `cost_per_item` element-wise operations each is split into:
/// min(ParallelThreads(), n, kMaxParallelParts), or 1 when the loop is too small to pay for
/// the hand-over (n * cost_per_item < 2^15) or already inside a part.
inline int PartsFor(Index n, Index cost_per_item) {
  if (n < 2 || n * cost_per_item < (Index{1} << 15) || InParallelPart()) return 1;
  return static_cast<int>(std::min<Index>({ParallelThreads(), n, kMaxParallelParts}));
}

/// The signature of a part of a parallel loop: run(context, part).
using PartFunction = void (*)(void* context, int part);

/// Runs run(context, part) for part 0 .. parts-1 on the process's pool of threads (the calling
/// thread is one of them), or one part after another on the calling thread when another
/// thread holds the pool. Requires parts >= 2. Defined in impl/parallel.ipp with the pool.
DLB_INLINE void RunParts(int parts, PartFunction run, void* context);

}  // namespace internal

/// Splits 0 .. n-1 into P contiguous ranges and calls f(part, begin, length) once for each
/// part in 0 .. P-1, on up to P threads at once (the calling thread is one of them).
///
/// P = min(NumThreads(), n, kMaxParallelParts), and 1 when the loop is too small to pay for
/// the hand-over to other threads (n * cost_per_item < 2^15) or when called from inside a part
/// (nested loops run inline). Part p covers [n p / P, n (p+1) / P): the split depends only on
/// n, cost_per_item and the thread count, never on which thread runs which part, so per-part
/// results combined in part order are the same on every run. Returns P (0 when n <= 0).
///
/// When another thread's loop holds the process's pool, the P parts run one after another on
/// the calling thread. If f throws, parts not yet started are skipped and the exception is
/// rethrown once every started part has returned.
template <class F>
int ParallelRanges(Index n, Index cost_per_item, F&& f) {
  if (n <= 0) return 0;
  const int parts = internal::PartsFor(n, cost_per_item);
  if (parts == 1) {
    f(0, Index{0}, n);
    return 1;
  }
  struct Job {
    std::remove_reference_t<F>* f;
    Index n;
    int parts;
  };
  Job job{std::addressof(f), n, parts};
  internal::RunParts(
      parts,
      [](void* context, int part) {
        const Job& j = *static_cast<const Job*>(context);
        const Index begin = j.n * part / j.parts, end = j.n * (part + 1) / j.parts;
        (*j.f)(part, begin, end - begin);
      },
      &job);
  return parts;
}

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/core/impl/parallel.ipp"
#endif
