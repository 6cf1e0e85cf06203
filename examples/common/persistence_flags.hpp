#pragma once
// The example trainer's --save, --checkpoint and --resume: writing the trained model,
// a checkpoint after every epoch, and continuing an interrupted run from one. Only the
// library's public API (dlb/io/) is used.

#include <CLI/CLI.hpp>

#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <dlb/dlb.hpp>

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
