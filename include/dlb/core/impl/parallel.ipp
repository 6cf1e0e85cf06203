#pragma once
// The definitions of dlb/core/parallel.hpp: the process's pool of threads and RunParts, which
// hands a loop's parts to it. Included by that header where it holds them (header-only),
// compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp), so that a program
// linking the library reads neither the pool nor <thread>, <chrono> and the futex calls.

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "dlb/core/parallel.hpp"

namespace dlb::internal {

/// How long a thread polls for work, or for the end of a loop, before it sleeps in the kernel.
/// Measured (bench/README.md, "Contention"): under load 200 us was as fast as or faster than
/// 50 and 1000 us; sleeping at once (0) and OpenMP's passive policy were slower, and polling
/// with sched_yield slower still (it hands our time slices to the competing processes).
inline constexpr int kDefaultSpinMicroseconds = 200;

/// The polling time: DLB_SPIN_US (a whole number from 0 to 100000) if set, else
/// kDefaultSpinMicroseconds. Read once; an invalid value is ignored with a line on stderr.
inline std::chrono::microseconds SpinMicroseconds() {
  static const std::chrono::microseconds spin = [] {
    if (const char* text = std::getenv("DLB_SPIN_US")) {
      const std::string_view trimmed = TrimSpaces(text);
      if (trimmed == "0") return std::chrono::microseconds(0);
      if (const auto value = ParseThreadCount(trimmed, false); value && *value <= 100000) {
        return std::chrono::microseconds(*value);
      }
      std::fprintf(stderr,
                   "dlb: ignoring DLB_SPIN_US='%s': expected a whole number from 0 to 100000\n",
                   text);
    }
    return std::chrono::microseconds(kDefaultSpinMicroseconds);
  }();
  return spin;
}

/// A hint to the core that this thread is busy-waiting.
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

/// Polls `done()` for up to `budget`; returns its last value.
template <class Done>
bool SpinUntil(Done&& done, std::chrono::microseconds budget) {
  if (done()) return true;
  if (budget.count() == 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (true) {
    for (int i = 0; i < 32; ++i) {
      CpuRelax();
      if (done()) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
              std::atomic<std::uint32_t>::is_always_lock_free);

/// Sleeps while `word` holds `value` (it may also return spuriously).
inline void SleepWhileEqual(std::atomic<std::uint32_t>& word, std::uint32_t value) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, value, nullptr,
          nullptr, 0);
#else
  word.wait(value, std::memory_order_acquire);
#endif
}

/// Wakes up to `count` threads sleeping on `word`.
inline void WakeSleepers(std::atomic<std::uint32_t>& word, int count) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, count, nullptr,
          nullptr, 0);
#else
  if (count == 1) {
    word.notify_one();
  } else {
    word.notify_all();
  }
#endif
}

/// The process's worker threads and the one loop they run at a time.
///
/// Represents: workers_ threads that, with the caller, run the parts of the current job
/// (run_(context_, part) for part 0 .. parts-1, each exactly once). claim_ packs the job's
/// generation (bits 32-63), its part count (16-31) and the next unclaimed part (0-15), so a
/// claim is one compare-and-swap that fails for a finished or newer job. A thread reads
/// run_/context_ only after claiming a part, and the job cannot finish before that part does,
/// so they are stable while it reads them.
/// Thread safety: Run only between a successful TryAcquire and Release; at most one holder.
class ThreadPool {
 public:
  /// The process's pool. Never destroyed: workers sleep until the process ends (joining them
  /// at exit could wait forever in a forked child, which has no copies of them).
  static ThreadPool& Instance() {
    static ThreadPool* const pool = new ThreadPool();
    return *pool;
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Takes the pool for the calling thread; false when another thread holds it.
  bool TryAcquire() { return !busy_.exchange(true, std::memory_order_acquire); }
  void Release() { busy_.store(false, std::memory_order_release); }

  /// Runs run(context, part) for every part in 0 .. parts-1, on the calling thread and the
  /// workers, and returns when all have returned. Requires the pool held, 2 <= parts <=
  /// kMaxParallelParts, threads >= parts. Starts or stops workers first when threads - 1
  /// differs from the last call's (the only allocations). If a part throws, parts not yet
  /// started are skipped and the first exception is rethrown here after the others finished.
  void Run(int parts, int threads, PartFunction run, void* context) {
    SetWorkerCount(std::min(threads, kMaxParallelParts) - 1);
    run_ = run;
    context_ = context;
    error_ = nullptr;
    failed_.store(false, std::memory_order_relaxed);
    remaining_.store(static_cast<std::uint32_t>(parts), std::memory_order_relaxed);
    const std::uint32_t generation = generation_.load(std::memory_order_relaxed) + 1;
    claim_.store(std::uint64_t{generation} << 32 | static_cast<std::uint64_t>(parts) << 16,
                 std::memory_order_release);
    generation_.store(generation, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) WakeSleepers(generation_, parts - 1);
    RunClaimableParts();
    WaitForParts();
    if (failed_.load(std::memory_order_relaxed)) std::rethrow_exception(error_);
  }

 private:
  ThreadPool() { pthread_atfork(nullptr, nullptr, [] { Instance().ForgetWorkersInChild(); }); }

  /// Claims and runs parts of the current job until none is left unclaimed.
  void RunClaimableParts() noexcept {
    std::uint64_t state = claim_.load(std::memory_order_acquire);
    while (true) {
      const auto parts = static_cast<std::uint32_t>(state >> 16) & 0xffffu;
      const auto next = static_cast<std::uint32_t>(state) & 0xffffu;
      if (next >= parts) return;
      if (claim_.compare_exchange_weak(state, state + 1, std::memory_order_acquire,
                                       std::memory_order_acquire)) {
        RunPart(static_cast<int>(next));
        state = claim_.load(std::memory_order_acquire);
      }
    }
  }

  /// Runs one claimed part (unless an earlier one threw) and counts it done.
  void RunPart(int part) noexcept {
    if (!failed_.load(std::memory_order_relaxed)) {
      const bool outer = InParallelPart();
      InParallelPart() = true;
      try {
        run_(context_, part);
      } catch (...) {
        if (!failed_.exchange(true, std::memory_order_relaxed)) error_ = std::current_exception();
      }
      InParallelPart() = outer;
    }
    // After this decrement the job may be over: touch nothing of it any more.
    if (remaining_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        caller_sleeping_.load(std::memory_order_seq_cst)) {
      WakeSleepers(remaining_, 1);
    }
  }

  /// The caller's wait for the parts the workers claimed: polls, then sleeps.
  void WaitForParts() {
    if (SpinUntil([this] { return remaining_.load(std::memory_order_acquire) == 0; },
                  SpinMicroseconds())) {
      return;
    }
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    while (true) {
      const std::uint32_t left = remaining_.load(std::memory_order_seq_cst);
      if (left == 0) break;
      SleepWhileEqual(remaining_, left);
    }
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }

  /// A worker: runs claimable parts whenever the generation changes; polls for a new one,
  /// then sleeps until woken.
  void WorkerMain(std::uint32_t seen) {
    while (true) {
      RunClaimableParts();
      std::uint32_t now = seen;
      const auto changed = [&] {
        now = generation_.load(std::memory_order_acquire);
        return now != seen;
      };
      if (!SpinUntil(changed, SpinMicroseconds())) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        while ((now = generation_.load(std::memory_order_seq_cst)) == seen) {
          SleepWhileEqual(generation_, seen);
        }
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      seen = now;
      if (stop_.load(std::memory_order_acquire)) return;
    }
  }

  /// Makes `count` workers run (stops and restarts them when the count changes). A thread
  /// the system refuses leaves fewer workers: the caller then runs more parts itself.
  void SetWorkerCount(int count) {
    if (count == wanted_workers_) return;
    StopWorkers();
    wanted_workers_ = count;
    workers_.reserve(static_cast<std::size_t>(count));
    const std::uint32_t generation = generation_.load(std::memory_order_relaxed);
    for (int i = 0; i < count; ++i) {
      try {
        workers_.emplace_back([this, generation] { WorkerMain(generation); });
      } catch (const std::system_error&) {
        break;
      }
    }
  }

  /// Ends and joins every worker. Requires no job running.
  void StopWorkers() {
    if (workers_.empty()) return;
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    WakeSleepers(generation_, INT_MAX);
    for (std::thread& worker : workers_) worker.join();
    workers_.clear();
    stop_.store(false, std::memory_order_relaxed);
  }

  /// In a forked child, which has only the forking thread: forgets the parent's workers (their
  /// std::thread objects are leaked, not joined) so that the next loop starts new ones.
  void ForgetWorkersInChild() {
    static_cast<void>(new std::vector<std::thread>(std::move(workers_)));
    workers_.clear();
    wanted_workers_ = 0;
    sleepers_.store(0, std::memory_order_relaxed);
    caller_sleeping_.store(false, std::memory_order_relaxed);
    claim_.store(0, std::memory_order_relaxed);
    busy_.store(false, std::memory_order_relaxed);
  }

  static constexpr std::size_t kLine = 64;  // cache line: keep the words threads poll apart

  alignas(kLine) std::atomic<std::uint32_t> generation_{0};  // workers poll and sleep on it
  std::atomic<int> sleepers_{0};                              // workers asleep on generation_
  alignas(kLine) std::atomic<std::uint64_t> claim_{0};
  PartFunction run_ = nullptr;
  void* context_ = nullptr;
  alignas(kLine) std::atomic<std::uint32_t> remaining_{0};  // parts not finished
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  alignas(kLine) std::atomic<bool> busy_{false};
  std::atomic<bool> stop_{false};
  int wanted_workers_ = 0;
  std::vector<std::thread> workers_;
};

DLB_INLINE void RunParts(int parts, PartFunction run, void* context) {
  ThreadPool& pool = ThreadPool::Instance();
  struct InPart {  // nested loops inline, also on the caller's thread
    InPart() { InParallelPart() = true; }
    ~InPart() { InParallelPart() = false; }
    InPart(const InPart&) = delete;
    InPart& operator=(const InPart&) = delete;
  };
  if (!pool.TryAcquire()) {
    const InPart inside;
    for (int part = 0; part < parts; ++part) run(context, part);
    return;
  }
  struct Held {
    explicit Held(ThreadPool& held) : pool(held) {}
    ~Held() { pool.Release(); }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ThreadPool& pool;
  };
  const Held held(pool);
  // SetNumThreads may have lowered the count since PartsFor read it.
  pool.Run(parts, std::max(parts, ParallelThreads()), run, context);
}

}  // namespace dlb::internal
