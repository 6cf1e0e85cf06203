#pragma once
/// \file
/// EarlyStopping: stops training when the validation loss or accuracy stops improving, and
/// puts back the best epoch's weights.

#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/training/callback.hpp"
#include "dlb/training/monitor.hpp"

namespace dlb {

namespace internal {

/// Owned copies of the pieces of state some views show (a model's weights): the same names,
/// types and shapes, held here, so that they can be copied from and back to the live state
/// and listed as StateRefs of their own (saved in and restored from a checkpoint).
template <Scalar T>
class StateCopy {
 public:
  /// Takes the layout and the current values of `refs`.
  void Shape(const std::vector<StateRef<T>>& refs) {
    slots_.clear();
    slots_.reserve(refs.size());
    for (const StateRef<T>& ref : refs) {
      std::visit(
          [&](auto* live) {
            using V = std::remove_pointer_t<decltype(live)>;
            slots_.push_back({ref.name, ref.shape, Value(std::in_place_type<V>, *live)});
          },
          ref.value);
    }
  }

  bool Empty() const { return slots_.empty(); }

  /// Whether `refs` have this copy's layout: the same names and types in the same order, and
  /// matrices and lists of the same sizes.
  bool Fits(const std::vector<StateRef<T>>& refs) const {
    if (refs.size() != slots_.size() || slots_.empty()) return false;
    for (std::size_t i = 0; i < refs.size(); ++i) {
      if (refs[i].name != slots_[i].name || refs[i].value.index() != slots_[i].value.index()) return false;
      const bool same_size = std::visit(
          [&](auto* live) {
            using V = std::remove_pointer_t<decltype(live)>;
            const V& copy = std::get<V>(slots_[i].value);
            if constexpr (std::is_same_v<V, Matrix<T>>) {
              return copy.rows() == live->rows() && copy.cols() == live->cols();
            } else if constexpr (std::is_same_v<V, std::vector<std::int64_t>>) {
              return copy.size() == live->size();
            } else {
              return true;
            }
          },
          refs[i].value);
      if (!same_size) return false;
    }
    return true;
  }

  /// Copies the live values of `refs` in (Fits(refs) must hold).
  void CopyFrom(const std::vector<StateRef<T>>& refs) {
    for (std::size_t i = 0; i < refs.size(); ++i) {
      std::visit(
          [&](auto* live) {
            using V = std::remove_pointer_t<decltype(live)>;
            std::get<V>(slots_[i].value) = *live;
          },
          refs[i].value);
    }
  }

  /// Copies the held values back into the live state `refs` (Fits(refs) must hold).
  void CopyTo(const std::vector<StateRef<T>>& refs) const {
    for (std::size_t i = 0; i < refs.size(); ++i) {
      std::visit(
          [&](auto* live) {
            using V = std::remove_pointer_t<decltype(live)>;
            *live = std::get<V>(slots_[i].value);
          },
          refs[i].value);
    }
  }

  /// Views of the held copies, named prefix + the original name, of kind `kind`, with the
  /// original PyTorch shapes. Valid until the next Shape().
  std::vector<StateRef<T>> Refs(const std::string& prefix, StateKind kind) {
    std::vector<StateRef<T>> refs;
    refs.reserve(slots_.size());
    for (Slot& slot : slots_) {
      std::visit([&](auto& copy) { refs.push_back({prefix + slot.name, &copy, kind, slot.shape}); },
                 slot.value);
    }
    return refs;
  }

 private:
  using Value = std::variant<Matrix<T>, std::int64_t, double, Generator, std::vector<std::int64_t>>;
  struct Slot {
    std::string name;
    std::vector<std::int64_t> shape;
    Value value;
  };
  std::vector<Slot> slots_;
};

}  // namespace internal

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
/// State(): "best", "best_epoch", "wait" and, with restore_best, the copy of the best epoch's
/// weights as "best_weights.<model's name>" (all StateKind::Resume) for checkpoints, so that
/// a run resumed from a checkpoint ends with the same weights as the uninterrupted run, even
/// when the best epoch came before the interruption. The copy takes the model's names and
/// shapes from PrepareState (which SaveCheckpoint and RestoreCheckpoint call) or when training
/// begins; before that State() lists only the three counters.
/// Cost: memory for one copy of the weights; one copy per improving epoch, none per batch.
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

  /// Keeps the best weights held so far (restored from a checkpoint, or from an earlier
  /// TrainModel call with this object), like Best() and BestEpoch().
  void OnTrainBegin(TrainingContext<T>& context) override {
    stopped_epoch_ = 0;
    restored_epoch_ = 0;
    PrepareState(context.model);
  }

  /// With restore_best, gives the copy of the best weights the layout of `model`'s weights
  /// (unless it has it already, as after RestoreCheckpoint).
  void PrepareState(ModelNN<T>& model) override {
    if (!options_.restore_best) return;
    const std::vector<StateRef<T>> weights = WeightRefs(model);
    if (!best_weights_.Fits(weights)) best_weights_.Shape(weights);
  }

  void OnEpochEnd(TrainingContext<T>& context, EpochStats& stats) override {
    const double current = MonitoredValue(options_.monitor, stats);
    if (Improves(options_.monitor, ThresholdMode::Absolute, options_.min_delta, current, best_)) {
      best_ = current;
      best_epoch_ = context.epoch;
      wait_ = 0;
      if (options_.restore_best) best_weights_.CopyFrom(WeightRefs(context.model));
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
    if (!options_.restore_best || best_epoch_ <= 0 || best_epoch_ == context.epoch) return;
    const std::vector<StateRef<T>> weights = WeightRefs(context.model);
    if (!best_weights_.Fits(weights)) return;  // the model changed shape: nothing to put back
    best_weights_.CopyTo(weights);
    restored_epoch_ = static_cast<int>(best_epoch_);
  }

  std::vector<StateRef<T>> State() override {
    std::vector<StateRef<T>> refs = {{"best", &best_, StateKind::Resume},
                                     {"best_epoch", &best_epoch_, StateKind::Resume},
                                     {"wait", &wait_, StateKind::Resume}};
    if (options_.restore_best) {
      for (StateRef<T>& ref : best_weights_.Refs("best_weights.", StateKind::Resume)) {
        refs.push_back(std::move(ref));
      }
    }
    return refs;
  }
  std::string StateName() const override { return "early_stopping"; }

 private:
  EarlyStoppingOptions options_;
  double best_;
  std::int64_t best_epoch_ = 0;
  std::int64_t wait_ = 0;
  /// The model's weights: parameters and buffers (StateScope::Weights), not its resume-only
  /// state such as a dropout generator.
  static std::vector<StateRef<T>> WeightRefs(ModelNN<T>& model) {
    std::vector<StateRef<T>> weights;
    for (StateRef<T>& ref : model.State()) {
      if (ref.kind != StateKind::Resume) weights.push_back(std::move(ref));
    }
    return weights;
  }

  int stopped_epoch_ = 0;
  int restored_epoch_ = 0;
  internal::StateCopy<T> best_weights_;  // valid when best_epoch_ > 0
};

}  // namespace dlb
