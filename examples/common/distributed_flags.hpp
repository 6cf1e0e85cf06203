#pragma once
// --distributed for the example programs: data-parallel training over the MPI ranks of
// `mpirun -np N train_fashion_mnist --distributed ...`. The global batch stays --batch; each
// rank trains on its 1/N of every batch, the gradients are averaged (dlb::GradientAllreduce),
// and only rank 0 prints. Without MPI in the build (CMake option DLB_MPI off) the flag is a
// usage error that says how to get it.
//
// Usage in a main (the catch blocks need the object, so it lives outside the try):
//   experiment::Distributed distributed;
//   distributed.AddFlags(app);
//   ... parse ...
//   try {
//     distributed.Start(app, settings);       // MPI, stdout of ranks > 0 silenced, --threads
//     if (!distributed.IsRoot()) ... clear the output file flags: only rank 0 writes files ...
//     ... distributed.Shard(train_set); distributed.SynchronizeBatchNorm(model) ...
//     TrainModel(..., distributed.Callbacks(other_callbacks));
//   } catch (const dlb::Error& e) {
//     return distributed.Fail(std::string("program: error: ") + e.what() + "\n", 1);
//   }

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <dlb/dlb.hpp>

#ifdef DLB_HAVE_MPI
#include <dlb/distributed/communicator.hpp>
#include <dlb/distributed/gradient_allreduce.hpp>
#include <dlb/distributed/sync_batch_norm.hpp>
#endif

#include "experiment.hpp"

namespace experiment {

/// Whether this build can run --distributed.
#ifdef DLB_HAVE_MPI
inline constexpr bool kHaveMpi = true;
#else
inline constexpr bool kHaveMpi = false;
#endif

/// What the gradient average did so far (all zero when not distributed).
struct AllreduceStats {
  dlb::Index bytes_per_step = 0;  ///< each rank's contribution to one step's allreduce
  std::int64_t steps = 0;         ///< allreduce calls
  double seconds = 0;             ///< wall time in them, waiting for other ranks included
};

/// The run's place in a data-parallel job: one process (the default) or rank r of N.
class Distributed {
 public:
  /// Registers --distributed (a usage error, exit code 2, in a build without MPI).
  void AddFlags(CLI::App& app) {
    app.add_flag_callback(
        "--distributed",
        [this] {
          if (!kHaveMpi) {
            throw CLI::ValidationError("--distributed",
                                       "this build has no MPI: configure with -DDLB_MPI=ON "
                                       "(Debian packages libopenmpi-dev and openmpi-bin)");
          }
          enabled_ = true;
        },
        "Data-parallel training over the ranks of `mpirun -np N ...`: each rank trains on 1/N "
        "of every --batch (the global batch, which N must divide) and only rank 0 prints. "
        "--threads is per rank; by default the cores of a host are shared by its ranks");
  }

  /// With --distributed: starts MPI, sends the standard output of every rank but 0 to
  /// /dev/null and, unless --threads was given, gives each rank its share of the host's
  /// cores. Without: nothing.
  void Start([[maybe_unused]] const CLI::App& app, [[maybe_unused]] Settings& settings) {
#ifdef DLB_HAVE_MPI
    if (!enabled_) return;
    communicator_ = std::make_unique<dlb::Communicator>();
    if (!communicator_->IsRoot() && std::freopen("/dev/null", "w", stdout) == nullptr) {
      throw dlb::Error("--distributed: cannot silence the standard output of rank " +
                       std::to_string(communicator_->Rank()));
    }
    if (app.count("--threads") == 0) {
      MPI_Comm host;
      int ranks_on_host = 1;
      MPI_Comm_split_type(communicator_->Handle(), MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host);
      MPI_Comm_size(host, &ranks_on_host);
      MPI_Comm_free(&host);
      settings.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_on_host);
    }
#endif
  }

  bool Enabled() const { return enabled_; }
  /// Rank 0, or the single process: the one that prints and saves.
  bool IsRoot() const {
#ifdef DLB_HAVE_MPI
    if (communicator_) return communicator_->IsRoot();
#endif
    return true;
  }
  int Ranks() const {
#ifdef DLB_HAVE_MPI
    if (communicator_) return communicator_->Size();
#endif
    return 1;
  }

  /// Gives this rank its shard of every global batch of `train` (dlb::ArgumentError when
  /// the batch does not divide by the number of ranks).
  void Shard([[maybe_unused]] dlb::DataSet<float>& train) {
#ifdef DLB_HAVE_MPI
    if (!communicator_) return;
    try {
      train.SetShard(communicator_->Rank(), communicator_->Size());
    } catch (const dlb::ArgumentError& e) {
      throw dlb::ArgumentError("--batch " + std::to_string(train.BatchSize()) + " with " +
                               std::to_string(communicator_->Size()) + " ranks: " + e.what());
    }
#endif
  }

  /// Makes the batch-norm layers of `model` normalise over the global batch (dlb::SyncBatchNorm)
  /// when distributed, so that N ranks train what one process trains on the same batches.
  void SynchronizeBatchNorm([[maybe_unused]] dlb::ModelNN<float>& model) {
#ifdef DLB_HAVE_MPI
    if (communicator_) dlb::SyncBatchNorm(model, *communicator_);
#endif
  }

  /// The callbacks to give TrainModel: the gradient average first when distributed, then
  /// `others`.
  std::vector<dlb::Callback<float>*> Callbacks(std::vector<dlb::Callback<float>*> others = {}) {
#ifdef DLB_HAVE_MPI
    if (communicator_) {
      if (!allreduce_) allreduce_ = std::make_unique<dlb::GradientAllreduce<float>>(*communicator_);
      others.insert(others.begin(), allreduce_.get());
    }
#endif
    return others;
  }

  AllreduceStats Allreduce() const {
#ifdef DLB_HAVE_MPI
    if (allreduce_) return {allreduce_->BytesPerStep(), allreduce_->Steps(), allreduce_->AllreduceSeconds()};
#endif
    return {};
  }

  /// "2 ranks x 128 samples of each batch of 256, 1 thread each, 1.6 MB allreduced per step"
  /// for the run summary; empty when not distributed.
  std::string Describe(int batch, dlb::Index parameters) const {
    if (!enabled_) return "";
    const double megabytes = static_cast<double>(parameters + 2) * 4 / 1e6;
    char line[160];
    std::snprintf(line, sizeof line,
                  "Data parallel: %d rank(s) x %d samples of each batch of %d, %.2f MB allreduced "
                  "per step\n",
                  Ranks(), batch / Ranks(), batch, megabytes);
    return line;
  }

  /// Reports an error that ended this rank's run and returns `code` for main to return.
  /// Single process: prints `message` to stderr. Distributed: see
  /// dlb::Communicator::StopOnFailure (printed once when every rank failed alike, otherwise
  /// by the failing rank, which then ends the whole job).
  int Fail(const std::string& message, int code) {
#ifdef DLB_HAVE_MPI
    if (communicator_) return communicator_->StopOnFailure(message, std::cerr, code);
#endif
    std::cerr << message;
    return code;
  }

 private:
  bool enabled_ = false;
#ifdef DLB_HAVE_MPI
  std::unique_ptr<dlb::Communicator> communicator_;
  std::unique_ptr<dlb::GradientAllreduce<float>> allreduce_;
#endif
};

}  // namespace experiment
