#pragma once
/// \file
/// EarlyStopping: stops training when the validation loss or accuracy stops improving, and
/// puts back the best epoch's weights.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/training/callback.hpp"
#include "dlb/training/monitor.hpp"

namespace dlb {

/// EarlyStopping's settings.
struct EarlyStoppingOptions {
  Monitor monitor = Monitor::ValLoss;
  /// Epochs without improvement after which training stops (Keras' patience).
  int patience = 5;
  /// An epoch improves only when it beats the best by more than min_delta (absolute, Keras'
  /// min_delta): val_loss < best - min_delta, or val_acc > best + min_delta.
  double min_delta = 0;
  /// When training ends, put back the weights of the best epoch (parameters and buffers such
  /// as batch-norm statistics: ModelNN::SaveState(StateScope::Weights)).
  bool restore_best = true;
};

/// Stops training after `patience` epochs in a row without improvement of the watched value
/// (Keras' EarlyStopping):
///   at the end of each epoch, with v its watched value:
///     if Improves(v, best) by more than min_delta: best = v, best_epoch = epoch, wait = 0
///                                                   (and, with restore_best, a copy of the
///                                                   model's weights is kept)
///     else: wait += 1; if wait >= patience: request a stop
/// and, with restore_best, at the end of training (stopped early or not) the model gets the
/// best epoch's weights back unless the last epoch was the best. TrainResult::history keeps
/// every epoch that ran; BestEpoch() and RestoredEpoch() say which one the model now holds.
/// State(): "best", "best_epoch", "wait" (StateKind::Resume) for checkpoints. The copy of the
/// best weights is not part of it: after a resumption the weights can only be restored to a
/// best epoch reached after it (RestoredEpoch() stays 0 otherwise).
/// Cost: one copy of the weights per improving epoch (ModelNN::SaveState), none per batch.
template <Scalar T>
class EarlyStopping : public Callback<T> {
 public:
  /// Throws ArgumentError unless patience >= 0 and min_delta is finite and >= 0.
  explicit EarlyStopping(EarlyStoppingOptions options = {})
      : options_(options), best_(WorstValue(options.monitor)) {
    internal::RequireSetting(options.patience >= 0, "EarlyStopping", "patience", ">= 0",
                           options.patience);
    internal::RequireSetting(std::isfinite(options.min_delta) && options.min_delta >= 0,
                           "EarlyStopping", "min_delta", "finite and >= 0", options.min_delta);
  }

  const EarlyStoppingOptions& Options() const { return options_; }
  /// The best watched value so far (+inf / -inf before the first epoch).
  double Best() const { return best_; }
  /// The epoch that reached Best() (0 before the first epoch).
  int BestEpoch() const { return static_cast<int>(best_epoch_); }
  /// The epoch at which this callback stopped training, 0 if it did not.
  int StoppedEpoch() const { return stopped_epoch_; }
  /// The epoch whose weights were put back at the end of training, 0 if none were.
  int RestoredEpoch() const { return restored_epoch_; }

  void OnTrainBegin(TrainingContext<T>& /*context*/) override {
    stopped_epoch_ = 0;
    restored_epoch_ = 0;
    best_weights_ = StateDict();
  }

  void OnEpochEnd(TrainingContext<T>& context, EpochStats& stats) override {
    const double current = MonitoredValue(options_.monitor, stats);
    if (Improves(options_.monitor, ThresholdMode::Absolute, options_.min_delta, current, best_)) {
      best_ = current;
      best_epoch_ = context.epoch;
      wait_ = 0;
      if (options_.restore_best) best_weights_ = context.model.SaveState(StateScope::Weights);
      return;
    }
    ++wait_;
    if (wait_ >= options_.patience) {
      stopped_epoch_ = context.epoch;
      char best[32];
      std::snprintf(best, sizeof best, "%.4f", best_);
      context.RequestStop("early stopping: " + MonitorName(options_.monitor) +
                          " has not improved by more than " + internal::ShortNumber(options_.min_delta) +
                          " for " + std::to_string(wait_) + " epoch" + (wait_ == 1 ? "" : "s") +
                          " (best " + best + " at epoch " + std::to_string(best_epoch_) + ")");
    }
  }

  void OnTrainEnd(TrainingContext<T>& context) override {
    if (!options_.restore_best || best_weights_.Empty() || best_epoch_ == context.epoch) return;
    context.model.LoadState(best_weights_, StateScope::Weights);
    restored_epoch_ = static_cast<int>(best_epoch_);
  }

  std::vector<StateRef<T>> State() override {
    return {{"best", &best_, StateKind::Resume},
            {"best_epoch", &best_epoch_, StateKind::Resume},
            {"wait", &wait_, StateKind::Resume}};
  }
  std::string StateName() const override { return "early_stopping"; }

 private:
  EarlyStoppingOptions options_;
  double best_;
  std::int64_t best_epoch_ = 0;
  std::int64_t wait_ = 0;
  int stopped_epoch_ = 0;
  int restored_epoch_ = 0;
  StateDict best_weights_;
};

}  // namespace dlb
