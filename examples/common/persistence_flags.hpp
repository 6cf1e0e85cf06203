#pragma once
// The example trainer's --save, --checkpoint and --resume: writing the trained model,
// a checkpoint after every epoch, and continuing an interrupted run from one. Only the
// library's public API (dlb/io/) is used.

#include <CLI/CLI.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <dlb/serialization.hpp>  // <dlb/dlb.hpp>, data files, model files and checkpoints
#include <dlb/io/same_file.hpp>

#include "common/experiment.hpp"

namespace persistence {

/// The file flags; an empty path means the flag was not given.
struct Flags {
  std::string save;
  std::string checkpoint;
  std::string resume;
};

inline void AddFlags(CLI::App& app, Flags& flags) {
  app.add_option("--save", flags.save,
                 "Write the trained model to this safetensors file (predict_fashion_mnist "
                 "--model, dlb::LoadModel, or PyTorch's load_state_dict)")
      ->check(experiment::kOutputFile);
  app.add_option("--checkpoint", flags.checkpoint,
                 "Write a checkpoint to this file after every epoch (replaced atomically)")
      ->check(experiment::kOutputFile);
  app.add_option("--resume", flags.resume,
                 "Continue the run saved in this checkpoint; give the interrupted run's flags, "
                 "--epochs being the total")
      ->check(CLI::ExistingFile);
}

/// A file a run reads or writes, as a flag names it.
struct FileUse {
  std::string flag;   ///< "--save", "--data"
  std::string path;   ///< as given (empty: the flag was not given)
  bool output = false;
  /// The flag of an input this output may be the same file as ("--resume" for --checkpoint:
  /// the checkpoint is read whole before the first one is written); empty for none.
  std::string may_replace = {};
};

/// The files of the Fashion-MNIST directory `dir` that a run may read (each of the four
/// names, raw or with .gz appended, where it exists), as inputs of the flag --data.
inline std::vector<FileUse> DataFiles(const std::string& dir) {
  std::vector<FileUse> files;
  for (const char* name : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    for (const char* suffix : {"", ".gz"}) {
      const std::string path = (std::filesystem::path(dir) / (std::string(name) + suffix)).string();
      std::error_code error;
      if (std::filesystem::exists(path, error)) files.push_back({"--data", path, false});
    }
  }
  return files;
}

/// The files of a training run: --save, --checkpoint (which may replace the --resume
/// checkpoint), `history` (--history), the --resume checkpoint and the files of the data
/// directory `data`.
inline std::vector<FileUse> TrainingFiles(const Flags& flags, const std::string& history,
                                          const std::string& data) {
  std::vector<FileUse> files = {{"--save", flags.save, true},
                                {"--checkpoint", flags.checkpoint, true, "--resume"},
                                {"--history", history, true},
                                {"--resume", flags.resume, false}};
  for (FileUse& file : DataFiles(data)) files.push_back(std::move(file));
  return files;
}

/// Refuses, before any work, a run whose outputs would destroy each other or its inputs: two
/// outputs that are the same file (--save x --checkpoint ./x: the last writer wins), or an
/// output that is one of the inputs (--save over a --data file, --history over the --resume
/// checkpoint), unless the output's may_replace names that input. "The same file" is
/// dlb::SameFile's: hard and symbolic links and spellings such as ./x all count. Prints the
/// error (experiment::UsageError) and returns 2; nothing when the files are distinct.
inline std::optional<int> CheckDistinctFiles(const CLI::App& app, std::vector<FileUse> files) {
  std::erase_if(files, [](const FileUse& file) { return file.path.empty(); });
  try {
    std::vector<dlb::FileIdentity> identities;
    for (const FileUse& file : files) identities.push_back(dlb::IdentifyFile(file.path));
    for (std::size_t i = 0; i < files.size(); ++i) {
      for (std::size_t j = 0; j < files.size(); ++j) {
        const FileUse& a = files[i];
        const FileUse& b = files[j];
        // Each pair once: outputs against later outputs, and outputs against every input.
        if (!a.output || (b.output && j <= i) || identities[i] != identities[j]) continue;
        if (!b.output && a.may_replace == b.flag) continue;
        const std::string spelled = a.path == b.path ? a.path : a.path + " and " + b.path;
        return experiment::UsageError(
            app, b.output ? a.flag + " and " + b.flag + " name the same file (" + spelled +
                                "): each output needs a file of its own"
                          : a.flag + " " + a.path + " would overwrite the " + b.flag +
                                " input " + b.path + (a.path == b.path ? "" : " (the same file)") +
                                "; write it somewhere else");
      }
    }
  } catch (const dlb::FileError& error) {
    return experiment::UsageError(app, error.what());
  }
  return std::nullopt;
}

/// Saving and resuming for one training run.
class Session {
 public:
  /// `standardizer` (the inputs' preprocessing, stored in the files) must outlive the session.
  Session(Flags flags, const dlb::Standardizer<float>& standardizer)
      : flags_(std::move(flags)), standardizer_(standardizer) {}

  /// With --resume, restores the checkpoint into `state` (model, optimizer, training data
  /// and callbacks), prints the saved epochs' lines and returns the number of epochs done
  /// (0 without --resume). Throws FileError when the checkpoint does not fit this run's
  /// flags, ArgumentError when it already completed `epochs` epochs.
  int Resume(const dlb::TrainingState<float>& state, int epochs) {
    if (flags_.resume.empty()) return 0;
    const dlb::CheckpointInfo info = dlb::RestoreCheckpoint(flags_.resume, state);
    if (info.epoch >= epochs) {
      throw dlb::ArgumentError("--resume " + flags_.resume + ": the checkpoint has completed " +
                               std::to_string(info.epoch) + " epoch(s), so --epochs " +
                               std::to_string(epochs) + " leaves none to train; pass a larger --epochs");
    }
    std::cout << "Resumed from " << flags_.resume << " after epoch " << info.epoch << "\n";
    for (const dlb::EpochStats& row : info.history) {
      std::cout << dlb::FormatEpoch(row, epochs) << " (from the checkpoint)\n";
    }
    earlier_ = info.history;
    return info.epoch;
  }

  /// The rows of the epochs the checkpoint completed (empty without --resume), for the
  /// history file (dlb::HistoryCsvLogger::SetEarlierHistory), so that it holds every epoch.
  const std::vector<dlb::EpochStats>& EarlierHistory() const { return earlier_; }

  /// The callbacks for TrainModel: `others`, then (with --checkpoint) the checkpoint writer,
  /// which saves their state too.
  std::vector<dlb::Callback<float>*> Callbacks(std::vector<dlb::Callback<float>*> others = {}) {
    if (!flags_.checkpoint.empty()) {
      checkpoint_.emplace(flags_.checkpoint, others, &standardizer_);
      checkpoint_->SetEarlierHistory(earlier_);
      others.push_back(&*checkpoint_);
      std::cout << "Checkpoint after every epoch: " << flags_.checkpoint << "\n";
    }
    return others;
  }

  /// With --save, writes `model` and the preprocessing.
  void Save(dlb::ModelNN<float>& model) {
    if (flags_.save.empty()) return;
    dlb::Save(model, flags_.save, &standardizer_);
    std::cout << "Model saved to " << flags_.save << " (predict_fashion_mnist --model "
              << flags_.save << ")\n";
  }

 private:
  Flags flags_;
  const dlb::Standardizer<float>& standardizer_;
  std::optional<dlb::CheckpointCallback<float>> checkpoint_;
  std::vector<dlb::EpochStats> earlier_;
};

}  // namespace persistence
