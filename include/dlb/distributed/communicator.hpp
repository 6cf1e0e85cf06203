#pragma once
/// \file
/// The processes of a data-parallel job (MPI ranks) and what they do together: sum buffers
/// across ranks (allreduce), copy rank 0's buffer to every rank (broadcast), and stop together
/// when one of them fails. Needs MPI: link dlb::mpi (CMake option DLB_MPI); the rest of the
/// library never includes this header.

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <exception>
#include <ostream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

namespace internal {

/// The MPI datatype of T (float, double, long double, int64, int).
template <class T>
MPI_Datatype MpiType() {
  if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, long double>) return MPI_LONG_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int64_t>) return MPI_INT64_T;
  else if constexpr (std::is_same_v<T, int>) return MPI_INT;
  else if constexpr (std::is_same_v<T, char>) return MPI_CHAR;
  else static_assert(sizeof(T) == 0, "dlb::Communicator: no MPI datatype for this type");
}

/// Communicators alive in this process, and whether the first of them started MPI (then the
/// last one to go finalizes it).
struct MpiUsers {
  int count = 0;
  bool started_here = false;
};
inline MpiUsers& Users() {
  static MpiUsers users;
  return users;
}

}  // namespace internal

/// One process's place in an MPI job: its rank among Size() ranks, with private duplicates of
/// MPI_COMM_WORLD (one for training traffic, one for agreeing on failures, so the two never
/// match each other's messages).
///
/// Lifetime: the first Communicator of a process starts MPI unless the program already did
/// (MPI_Init_thread with MPI_THREAD_FUNNELED: only the thread that created it calls MPI; the
/// library's OpenMP threads never do); when MPI was started here, the last Communicator to be
/// destroyed finalizes it. Create it early in main, on every rank, and let it outlive the
/// training. MPI's own errors (a lost peer, a broken link) keep MPI's default handler, which
/// ends the whole job with MPI's message.
class Communicator {
 public:
  /// Starts MPI if needed. Throws Error when MPI cannot be started or was already finalized.
  Communicator() {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (finalized) throw Error("dlb::Communicator: MPI was already finalized in this process");
    if (!initialized) {
      int provided = 0;
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        throw Error("dlb::Communicator: MPI_Init_thread failed");
      }
      internal::Users().started_here = true;
    }
    ++internal::Users().count;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_dup(MPI_COMM_WORLD, &failure_comm_);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  ~Communicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Comm_free(&comm_);
    MPI_Comm_free(&failure_comm_);
    internal::MpiUsers& users = internal::Users();
    if (--users.count == 0 && users.started_here) {
      users.started_here = false;
      MPI_Finalize();
    }
  }

  /// This process's rank, 0 .. Size()-1.
  int Rank() const { return rank_; }
  /// Number of ranks in the job.
  int Size() const { return size_; }
  /// Rank 0, the one that prints and saves.
  bool IsRoot() const { return rank_ == 0; }
  /// The communicator training traffic goes over (a duplicate of MPI_COMM_WORLD).
  MPI_Comm Handle() const { return comm_; }

  /// data[0 .. count-1] = the element-wise sum over all ranks of their data (in place,
  /// MPI_Allreduce with MPI_SUM). Collective: every rank calls it with the same count. Every
  /// rank receives the same bits.
  template <class T>
  void SumInPlace(T* data, Index count) {
    AllreduceInPlace(data, count, MPI_SUM);
  }

  /// In-place MPI_Allreduce with `op` (MPI_SUM, MPI_MIN, MPI_MAX), split into calls of at most
  /// INT_MAX elements. Collective.
  template <class T>
  void AllreduceInPlace(T* data, Index count, MPI_Op op) {
    for (Index done = 0; done < count;) {
      const int part = static_cast<int>(std::min<Index>(count - done, INT_MAX));
      MPI_Allreduce(MPI_IN_PLACE, data + done, part, internal::MpiType<T>(), op, comm_);
      done += part;
    }
  }

  /// data[0 .. count-1] = rank `root`'s data on every rank (MPI_Bcast). Collective.
  template <class T>
  void Broadcast(T* data, Index count, int root = 0) {
    for (Index done = 0; done < count;) {
      const int part = static_cast<int>(std::min<Index>(count - done, INT_MAX));
      MPI_Bcast(data + done, part, internal::MpiType<T>(), root, comm_);
      done += part;
    }
  }

  /// Every rank's `text`, indexed by rank (MPI_Allgather of the lengths, then
  /// MPI_Allgatherv of the bytes): what ranks compare to agree on something, e.g. that they
  /// were started with the same settings. Collective; the texts may differ in length. Throws
  /// ArgumentError when the texts together exceed INT_MAX bytes.
  std::vector<std::string> AllGather(const std::string& text) {
    std::int64_t length = static_cast<std::int64_t>(text.size());
    std::vector<std::int64_t> lengths(static_cast<std::size_t>(size_));
    MPI_Allgather(&length, 1, MPI_INT64_T, lengths.data(), 1, MPI_INT64_T, comm_);
    std::vector<int> counts(lengths.size()), offsets(lengths.size());
    std::int64_t total = 0;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      if (total + lengths[r] > INT_MAX) {
        throw ArgumentError("Communicator::AllGather: the texts of all ranks exceed " +
                            std::to_string(INT_MAX) + " bytes");
      }
      counts[r] = static_cast<int>(lengths[r]);
      offsets[r] = static_cast<int>(total);
      total += lengths[r];
    }
    std::string all(static_cast<std::size_t>(total), '\0');
    MPI_Allgatherv(text.data(), static_cast<int>(text.size()), MPI_CHAR, all.data(), counts.data(),
                   offsets.data(), MPI_CHAR, comm_);
    std::vector<std::string> texts;
    for (std::size_t r = 0; r < lengths.size(); ++r) {
      texts.push_back(all.substr(static_cast<std::size_t>(offsets[r]), static_cast<std::size_t>(counts[r])));
    }
    return texts;
  }

  /// Waits until every rank has called it. Collective.
  void Barrier() { MPI_Barrier(comm_); }

  /// Ends every process of the job now with exit status `code` (MPI_Abort).
  [[noreturn]] void Abort(int code) noexcept {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::terminate();  // MPI_Abort does not return; this is for the compiler
  }

  /// What a rank does after it caught an error that ends its training: makes sure every rank
  /// stops, and that the message is printed.
  ///
  /// Every rank that fails calls it. When every rank calls it within `wait` of each other
  /// (a failure all ranks see, such as a divergence: they all hold the same averaged
  /// gradients and weights), rank 0 writes `message` to `err`, another rank writes its own
  /// message only when it differs from rank 0's, and the call returns `exit_code` on every
  /// rank, which then ends normally. Otherwise (a failure on some ranks only, while the
  /// others wait in a collective) this rank writes "rank R of N: <message>" to `err` and
  /// calls MPI_Abort(exit_code), which ends every process of the job. Never hangs: a lone
  /// failure ends the job after `wait`, which must exceed how far apart the ranks can reach
  /// the same failure (a rank loading its data later than another, on a loaded machine).
  int StopOnFailure(const std::string& message, std::ostream& err, int exit_code,
                    std::chrono::milliseconds wait = std::chrono::seconds(30)) {
    MPI_Request request;
    MPI_Ibarrier(failure_comm_, &request);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    int all_failed = 0;
    while (true) {
      MPI_Test(&request, &all_failed, MPI_STATUS_IGNORE);
      if (all_failed || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!all_failed) {
      err << "rank " << rank_ << " of " << size_ << ": " << message << std::flush;
      Abort(exit_code);
    }
    std::int64_t length = static_cast<std::int64_t>(message.size());
    MPI_Bcast(&length, 1, MPI_INT64_T, 0, failure_comm_);
    std::string root_message = message;
    root_message.resize(static_cast<std::size_t>(length));
    MPI_Bcast(root_message.data(), static_cast<int>(std::min<std::int64_t>(length, INT_MAX)),
              MPI_CHAR, 0, failure_comm_);
    if (IsRoot()) {
      err << message << std::flush;
    } else if (root_message != message) {
      err << "rank " << rank_ << " of " << size_ << ": " << message << std::flush;
    }
    return exit_code;
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm failure_comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace dlb
