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
//     distributed.Start(app, settings);       // MPI, the ranks' flags compared, stdout of
//                                             // ranks > 0 silenced, --threads
//     if (!distributed.IsRoot()) ... clear the output file flags: only rank 0 writes files ...
//     ... distributed.Shard(train_set); distributed.SynchronizeBatchNorm(model) ...
//     TrainModel(..., distributed.Callbacks(other_callbacks));
//   } catch (const experiment::RankMismatch& e) {  // ranks started with different flags
//     return distributed.Fail(std::string("program: error: ") + e.what() + "\n", 2);
//   } catch (const dlb::Error& e) {
//     return distributed.Fail(std::string("program: error: ") + e.what() + "\n", 1);
//   }

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <dlb/serialization.hpp>  // <dlb/dlb.hpp>, data files, model files and checkpoints
#include <dlb/io/safetensors.hpp>

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

/// Ranks of one job that were started with different settings (another --epochs, --resume on
/// one rank only) or loaded different data: a usage error, found alike on every rank, which
/// the program reports once and ends with exit code 2.
class RankMismatch : public dlb::ArgumentError {
 public:
  using dlb::ArgumentError::ArgumentError;
};

/// One thing every rank must agree on: `key` identifies it, `text` says it as a message
/// would ("--epochs 3", "no --resume", "600 training images").
struct RankFact {
  std::string key;
  std::string text;
};

/// The flags each rank may give differently: its own threads and progress display, where its
/// copy of the data lies (RequireSameOnAllRanks compares what was loaded instead), and the
/// outputs only rank 0 writes. Every other flag must be the same on every rank: a different
/// --epochs or --batch makes the ranks' collective calls disagree (a hang, or an MPI error)
/// and a different --seed, --lr or --optimizer trains silently wrong.
inline const std::vector<std::string> kPerRankFlags = {
    "--help", "--threads", "--progress", "--data", "--save", "--checkpoint", "--history"};

namespace internal {

/// FNV-1a, 64 bits: a fingerprint of bytes for telling files apart (not a defence against
/// anyone crafting a collision).
inline std::uint64_t Fnv1a64(const char* bytes, std::size_t n,
                             std::uint64_t hash = 14695981039346656037ULL) {
  for (std::size_t i = 0; i < n; ++i) {
    hash ^= static_cast<unsigned char>(bytes[i]);
    hash *= 1099511628211ULL;
  }
  return hash;
}

/// What the checkpoint at `path` is, for comparing the ranks' --resume files whatever their
/// paths: "a checkpoint after epoch 2 (12345 bytes, FNV-1a 64 0123456789abcdef)". A file that
/// cannot be read or is no checkpoint is described by its error, so that ranks differ there
/// too (and RestoreCheckpoint reports it later when they agree).
inline std::string CheckpointIdentity(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "an unreadable file";
  std::uint64_t hash = 14695981039346656037ULL;
  std::uint64_t size = 0;
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    hash = Fnv1a64(buffer.data(), n, hash);
    size += n;
  }
  std::string epoch = "?";
  try {
    const dlb::Metadata metadata = dlb::ReadSafetensors(path).metadata;
    if (const auto it = metadata.find("epoch"); it != metadata.end()) epoch = it->second;
  } catch (const dlb::Error& error) {
    epoch = "? (" + std::string(error.what()) + ")";
  }
  char text[128];
  std::snprintf(text, sizeof text, " (%llu bytes, FNV-1a 64 %016llx)",
                static_cast<unsigned long long>(size), static_cast<unsigned long long>(hash));
  return "a checkpoint after epoch " + epoch + text;
}

/// The settings of a run as every rank must have them: each flag of `app` but kPerRankFlags,
/// as given ("--epochs 3") or "no --epochs", and --resume by the checkpoint's identity.
inline std::vector<RankFact> SettingsFacts(const CLI::App& app) {
  std::vector<RankFact> facts;
  for (const CLI::Option* option : app.get_options()) {
    const std::string flag = option->get_name();
    if (std::find(kPerRankFlags.begin(), kPerRankFlags.end(), flag) != kPerRankFlags.end()) continue;
    if (option->count() == 0) {
      facts.push_back({flag, "no " + flag});
    } else if (flag == "--resume") {
      facts.push_back({flag, "--resume of " + CheckpointIdentity(option->as<std::string>())});
    } else {
      std::string text = flag;  // with no value for a flag such as --distributed
      if (option->get_type_size() != 0) {
        for (const std::string& value : option->results()) text += " " + value;
      }
      facts.push_back({flag, text});
    }
  }
  return facts;
}

/// Length-prefixed, so that any text survives: "<length>:<text>" per field.
inline std::string EncodeFacts(const std::vector<RankFact>& facts) {
  std::string encoded;
  for (const RankFact& fact : facts) {
    for (const std::string* field : {&fact.key, &fact.text}) {
      encoded += std::to_string(field->size()) + ":" + *field;
    }
  }
  return encoded;
}

inline std::vector<RankFact> DecodeFacts(const std::string& encoded) {
  std::vector<RankFact> facts;
  std::size_t at = 0;
  const auto field = [&] {
    const std::size_t colon = encoded.find(':', at);
    const std::size_t length = std::stoull(encoded.substr(at, colon - at));
    at = colon + 1 + length;
    return encoded.substr(colon + 1, length);
  };
  while (at < encoded.size()) {
    RankFact fact;
    fact.key = field();
    fact.text = field();
    facts.push_back(std::move(fact));
  }
  return facts;
}

}  // namespace internal

/// The first disagreement among the ranks' facts (`per_rank[r]` are rank r's), as
/// "rank 0 has --epochs 1, rank 1 has --epochs 3", or "" when every rank has rank 0's facts.
/// Every rank that calls it with the same `per_rank` gets the same answer.
inline std::string FirstDifference(const std::vector<std::vector<RankFact>>& per_rank) {
  if (per_rank.empty()) return "";
  const std::vector<RankFact>& root = per_rank[0];
  const auto find = [](const std::vector<RankFact>& facts, const std::string& key) -> const RankFact* {
    for (const RankFact& fact : facts) {
      if (fact.key == key) return &fact;
    }
    return nullptr;
  };
  for (std::size_t r = 1; r < per_rank.size(); ++r) {
    const std::string rank = "rank " + std::to_string(r);
    for (const RankFact& fact : root) {
      const RankFact* other = find(per_rank[r], fact.key);
      if (other == nullptr || other->text != fact.text) {
        return "rank 0 has " + fact.text + ", " + rank + " has " +
               (other == nullptr ? "nothing for " + fact.key : other->text);
      }
    }
    for (const RankFact& fact : per_rank[r]) {
      if (find(root, fact.key) == nullptr) {
        return "rank 0 has nothing for " + fact.key + ", " + rank + " has " + fact.text;
      }
    }
  }
  return "";
}

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

  /// With --distributed: starts MPI, checks that every rank was started with the same
  /// settings (RankMismatch on every rank, naming the first flag that differs, unless all
  /// flags but kPerRankFlags agree and a --resume checkpoint is the same file on every rank),
  /// sends the standard output of every rank but 0 to /dev/null and, unless --threads was
  /// given, gives each rank its share of the host's cores. Without: nothing.
  void Start([[maybe_unused]] const CLI::App& app, [[maybe_unused]] Settings& settings) {
#ifdef DLB_HAVE_MPI
    if (!enabled_) return;
    communicator_ = std::make_unique<dlb::Communicator>();
    std::string per_rank;
    for (const std::string& flag : kPerRankFlags) {
      if (flag != "--help" && app.get_option_no_throw(flag) != nullptr) {
        per_rank += (per_rank.empty() ? "" : ", ") + flag;
      }
    }
    RequireSameOnAllRanks(internal::SettingsFacts(app),
                          "the ranks were started with different settings",
                          "give every rank the same flags (only " + per_rank + " may differ)");
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

  /// When distributed: throws RankMismatch on every rank unless every rank passed the same
  /// `facts` ("<what>: rank 0 has ..., rank 1 has ...; <advice>"). Collective: every rank
  /// calls it with its own facts, in the same place. Not distributed: nothing.
  void RequireSameOnAllRanks([[maybe_unused]] const std::vector<RankFact>& facts,
                             [[maybe_unused]] const std::string& what,
                             [[maybe_unused]] const std::string& advice) {
#ifdef DLB_HAVE_MPI
    if (!communicator_) return;
    std::vector<std::vector<RankFact>> per_rank;
    for (const std::string& encoded : communicator_->AllGather(internal::EncodeFacts(facts))) {
      per_rank.push_back(internal::DecodeFacts(encoded));
    }
    if (const std::string difference = FirstDifference(per_rank); !difference.empty()) {
      throw RankMismatch(what + ": " + difference + "; " + advice);
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
