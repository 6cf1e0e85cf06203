#pragma once
/// \file
/// ReduceLROnPlateau: torch.optim.lr_scheduler.ReduceLROnPlateau as a callback.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/training/lr_schedule.hpp"
#include "dlb/training/monitor.hpp"

namespace dlb {

/// ReduceLROnPlateau's settings; the defaults are torch's (mode "min" on the validation loss).
struct PlateauOptions {
  Monitor monitor = Monitor::ValLoss;
  double factor = 0.1;     ///< new_lr = max(lr * factor, min_lr)
  int patience = 10;       ///< epochs without improvement tolerated before a reduction
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::Relative;
  int cooldown = 0;        ///< epochs after a reduction during which bad epochs are not counted
  double min_lr = 0;
  double eps = 1e-8;       ///< a reduction smaller than eps is skipped
};

/// torch.optim.lr_scheduler.ReduceLROnPlateau, stepped at the end of every epoch with the
/// watched validation value v (OnEpochEnd):
///   if Improves(v, best) (monitor.hpp: loss, rel: v < best * (1 - threshold)):
///       best = v, bad = 0            else: bad += 1
///   if cooldown_counter > 0: cooldown_counter -= 1, bad = 0
///   if bad > patience:
///       new_lr = max(lr * factor, min_lr); if lr - new_lr > eps: lr = new_lr
///       cooldown_counter = cooldown, bad = 0
/// with best = +inf (a loss) or -inf (a score) at the start. The new rate applies from the
/// next epoch on. A rate that would reach 0 in T is not applied (the optimizer needs lr > 0).
/// State(): "base_lr", "best", "num_bad_epochs", "cooldown_counter" (StateKind::Resume), so a
/// checkpoint resumes the count.
template <Scalar T>
class ReduceLROnPlateau : public LrSchedule<T> {
 public:
  /// Throws ArgumentError unless 0 < factor < 1, patience >= 0, threshold >= 0,
  /// cooldown >= 0, min_lr >= 0 and eps >= 0 (all finite).
  explicit ReduceLROnPlateau(PlateauOptions options = {})
      : options_(options), best_(WorstValue(options.monitor)) {
    const char* what = "ReduceLROnPlateau";
    internal::RequireSetting(options.factor > 0 && options.factor < 1, what, "factor", "in (0, 1)",
                           options.factor);
    internal::RequireSetting(options.patience >= 0, what, "patience", ">= 0", options.patience);
    internal::RequireSetting(std::isfinite(options.threshold) && options.threshold >= 0, what,
                           "threshold", "finite and >= 0", options.threshold);
    internal::RequireSetting(options.cooldown >= 0, what, "cooldown", ">= 0", options.cooldown);
    internal::RequireSetting(std::isfinite(options.min_lr) && options.min_lr >= 0, what, "min_lr",
                           "finite and >= 0", options.min_lr);
    internal::RequireSetting(std::isfinite(options.eps) && options.eps >= 0, what, "eps",
                           "finite and >= 0", options.eps);
  }

  std::string Name() const override {
    return "ReduceLROnPlateau(monitor=" + MonitorName(options_.monitor) +
           ", factor=" + internal::ShortNumber(options_.factor) +
           ", patience=" + std::to_string(options_.patience) +
           ", threshold=" + internal::ShortNumber(options_.threshold) +
           (options_.threshold_mode == ThresholdMode::Relative ? " rel" : " abs") +
           ", cooldown=" + std::to_string(options_.cooldown) +
           ", min_lr=" + internal::ShortNumber(options_.min_lr) + ")";
  }

  double Best() const { return best_; }
  std::int64_t NumBadEpochs() const { return num_bad_epochs_; }
  std::int64_t CooldownCounter() const { return cooldown_counter_; }

  /// Checks the base rate, which the schedule's first epoch sets, before the first step (the
  /// reductions never go to 0: a rate that would is not applied).
  void OnTrainBegin(TrainingContext<T>& context) override {
    LrSchedule<T>::OnTrainBegin(context);
    if (this->FirstEpoch() <= context.epochs) {
      this->CheckRate(this->BaseLearningRate(), this->FirstEpoch());
    }
  }

  /// At the schedule's first epoch, the base rate (the rate a warm-up ended on).
  void OnEpochBegin(TrainingContext<T>& context) override {
    if (this->ScheduleEpoch(context) == 0) this->Apply(context, this->BaseLearningRate());
  }

  void OnEpochEnd(TrainingContext<T>& context, EpochStats& stats) override {
    if (!this->Active(context)) return;
    const double current = MonitoredValue(options_.monitor, stats);
    if (Improves(options_.monitor, options_.threshold_mode, options_.threshold, current, best_)) {
      best_ = current;
      num_bad_epochs_ = 0;
    } else {
      ++num_bad_epochs_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      num_bad_epochs_ = 0;
    }
    if (num_bad_epochs_ > options_.patience) {
      const double old_lr = static_cast<double>(context.optimizer.LearningRate());
      const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
      if (old_lr - new_lr > options_.eps && static_cast<T>(new_lr) > T(0)) {
        context.optimizer.SetLearningRate(static_cast<T>(new_lr));
      }
      cooldown_counter_ = options_.cooldown;
      num_bad_epochs_ = 0;
    }
  }

  std::vector<StateRef<T>> State() override {
    std::vector<StateRef<T>> refs = LrSchedule<T>::State();
    refs.push_back({"best", &best_, StateKind::Resume});
    refs.push_back({"num_bad_epochs", &num_bad_epochs_, StateKind::Resume});
    refs.push_back({"cooldown_counter", &cooldown_counter_, StateKind::Resume});
    return refs;
  }

 private:
  PlateauOptions options_;
  double best_;
  std::int64_t num_bad_epochs_ = 0;
  std::int64_t cooldown_counter_ = 0;
};

}  // namespace dlb
