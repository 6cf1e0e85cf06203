#pragma once
/// \file
/// Learning-rate schedules with the formulas of torch.optim.lr_scheduler, written as
/// callbacks: LrSchedule (the base every schedule shares), EpochLrSchedule (a closed form
/// stepped once per epoch) with StepLR, MultiStepLR, ExponentialLR and CosineAnnealingLR, and
/// LinearWarmup, which puts a linear warm-up in front of any schedule. OneCycleLR (stepped per
/// batch, one_cycle_lr.hpp) and ReduceLROnPlateau (reduce_lr_on_plateau.hpp) share the base.
///
/// Conventions, as in torch:
/// - base_lr is the optimizer's learning rate when training first begins (torch's
///   initial_lr), unless SetBaseLearningRate gave another;
/// - k is the 0-based index of an epoch within the schedule: the first epoch trains with
///   lr(0), the second with lr(1), ... (torch: one scheduler.step() after each epoch);
/// - the rate is applied through Optimizer::SetLearningRate, as the scalar type T.
/// Closed forms are set at OnEpochBegin from k alone, so a run resumed at epoch
/// initial_epoch + 1 continues the same sequence; base_lr is in State() for checkpoints.
/// Every schedule checks at OnTrainBegin that each rate it will set during the run is, as T,
/// finite and > 0 (ArgumentError otherwise), so that a bad setting fails before the first
/// step instead of epochs into the run.
///
/// Usage:
/// ```
///   dlb::CosineAnnealingLR<float> cosine(/*t_max=*/10);
///   dlb::TrainModel(model, train, validation, loss, optimizer, {.epochs = 10}, {&cosine});
/// ```

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/training/callback.hpp"
#include "dlb/training/monitor.hpp"

namespace dlb {

/// The base of every learning-rate schedule: the base learning rate, the epoch at which the
/// schedule starts, and the way a rate reaches the optimizer.
///
/// Represents: base_lr (0 until training begins or SetBaseLearningRate is called) and
/// first_epoch, the 1-based epoch of the run that is the schedule's epoch k = 0 (1 unless a
/// LinearWarmup runs first). Before first_epoch the schedule leaves the rate alone.
/// State(): "base_lr" (StateKind::Resume), so that a checkpoint resumes the schedule even
/// though the optimizer's rate has moved on.
/// A schedule object serves one run (or one run and its resumptions): base_lr, once taken
/// from the optimizer, is kept.
template <Scalar T>
class LrSchedule : public Callback<T> {
 public:
  /// Describes the schedule and its settings, e.g. "StepLR(step_size=30, gamma=0.1)".
  virtual std::string Name() const = 0;

  /// torch's initial_lr: the rate the formulas start from; 0 before training begins unless set.
  double BaseLearningRate() const { return base_lr_; }
  /// Uses `lr` as the base rate instead of the optimizer's rate at the start of training.
  /// Throws ArgumentError unless lr is finite and > 0.
  void SetBaseLearningRate(double lr) {
    internal::RequireSetting(std::isfinite(lr) && lr > 0, Name(), "the base learning rate",
                           "finite and > 0", lr);
    base_lr_ = lr;
  }

  /// The epoch of the run (1-based) at which the schedule's epoch k = 0 begins.
  int FirstEpoch() const { return first_epoch_; }
  /// Starts the schedule at epoch `epoch` (>= 1) of the run; LinearWarmup sets this.
  void SetFirstEpoch(int epoch) {
    internal::RequireSetting(epoch >= 1, Name(), "the first epoch", ">= 1", epoch);
    first_epoch_ = epoch;
  }

  /// Takes base_lr from the optimizer unless it is set already (by SetBaseLearningRate or a
  /// checkpoint). Derived schedules that override this call it first.
  void OnTrainBegin(TrainingContext<T>& context) override {
    if (base_lr_ == 0) base_lr_ = static_cast<double>(context.optimizer.LearningRate());
  }

  std::vector<StateRef<T>> State() override {
    return {{"base_lr", &base_lr_, StateKind::Resume}};
  }
  std::string StateName() const override { return "lr_schedule"; }

 protected:
  /// The schedule's 0-based epoch index k of the context's current epoch (negative before
  /// FirstEpoch()).
  int ScheduleEpoch(const TrainingContext<T>& context) const {
    return context.epoch - first_epoch_;
  }
  bool Active(const TrainingContext<T>& context) const { return context.epoch >= first_epoch_; }

  /// Sets the optimizer's rate to `lr`. Throws ArgumentError naming the schedule and the
  /// epoch when lr, as T, is not finite and > 0 (an optimizer step needs a positive rate).
  void Apply(TrainingContext<T>& context, double lr) const {
    CheckRate(lr, context.epoch);
    context.optimizer.SetLearningRate(static_cast<T>(lr));
  }

  /// Throws ArgumentError unless `lr`, as T, is finite and > 0; `epoch` is the run's epoch
  /// it is meant for (named in the message).
  void CheckRate(double lr, int epoch) const {
    const T rate = static_cast<T>(lr);
    if (!(std::isfinite(rate) && rate > T(0))) {
      throw ArgumentError(Name() + ": the learning rate of epoch " + std::to_string(epoch) +
                          " would be " + internal::ShortNumber(static_cast<double>(rate)) +
                          " (base_lr " + internal::ShortNumber(base_lr_) +
                          "), but an optimizer step needs a finite rate > 0");
    }
  }

 private:
  double base_lr_ = 0;
  int first_epoch_ = 1;
};

/// A schedule given by a closed form lr(k, base_lr), applied at the beginning of each epoch.
/// OnTrainBegin checks the rate of every epoch up to the planned last one, so that a rate
/// that is not > 0 (cosine annealing to eta_min = 0 within the run) fails before training.
template <Scalar T>
class EpochLrSchedule : public LrSchedule<T> {
 public:
  /// The rate of the schedule's epoch k >= 0 for base rate `base_lr`.
  virtual double LearningRateAt(int k, double base_lr) const = 0;

  void OnTrainBegin(TrainingContext<T>& context) override {
    LrSchedule<T>::OnTrainBegin(context);
    for (int epoch = this->FirstEpoch(); epoch <= context.epochs; ++epoch) {
      this->CheckRate(LearningRateAt(epoch - this->FirstEpoch(), this->BaseLearningRate()), epoch);
    }
  }
  void OnEpochBegin(TrainingContext<T>& context) override {
    if (this->Active(context)) {
      this->Apply(context, LearningRateAt(this->ScheduleEpoch(context), this->BaseLearningRate()));
    }
  }
};

/// torch.optim.lr_scheduler.StepLR: lr(k) = base_lr * gamma^floor(k / step_size).
template <Scalar T>
class StepLR : public EpochLrSchedule<T> {
 public:
  /// Throws ArgumentError unless step_size >= 1 and gamma is finite and > 0.
  explicit StepLR(int step_size, double gamma = 0.1) : step_size_(step_size), gamma_(gamma) {
    internal::RequireSetting(step_size >= 1, "StepLR", "step_size", ">= 1", step_size);
    internal::RequireSetting(std::isfinite(gamma) && gamma > 0, "StepLR", "gamma", "finite and > 0",
                           gamma);
  }
  std::string Name() const override {
    return "StepLR(step_size=" + std::to_string(step_size_) +
           ", gamma=" + internal::ShortNumber(gamma_) + ")";
  }
  double LearningRateAt(int k, double base_lr) const override {
    return base_lr * std::pow(gamma_, k / step_size_);
  }

 private:
  int step_size_;
  double gamma_;
};

/// torch.optim.lr_scheduler.MultiStepLR:
/// lr(k) = base_lr * gamma^(number of milestones m with m <= k), milestones counted with
/// their multiplicity (torch's bisect_right over the sorted milestones).
template <Scalar T>
class MultiStepLR : public EpochLrSchedule<T> {
 public:
  /// Throws ArgumentError when a milestone is negative or gamma is not finite and > 0. The
  /// milestones may come in any order.
  explicit MultiStepLR(std::vector<int> milestones, double gamma = 0.1)
      : milestones_(std::move(milestones)), gamma_(gamma) {
    for (int m : milestones_) internal::RequireSetting(m >= 0, "MultiStepLR", "a milestone", ">= 0", m);
    internal::RequireSetting(std::isfinite(gamma) && gamma > 0, "MultiStepLR", "gamma",
                           "finite and > 0", gamma);
    std::sort(milestones_.begin(), milestones_.end());
  }
  std::string Name() const override {
    std::string list;
    for (int m : milestones_) list += (list.empty() ? "" : ",") + std::to_string(m);
    return "MultiStepLR(milestones=[" + list + "], gamma=" + internal::ShortNumber(gamma_) + ")";
  }
  double LearningRateAt(int k, double base_lr) const override {
    const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), k) - milestones_.begin();
    return base_lr * std::pow(gamma_, static_cast<double>(passed));
  }

 private:
  std::vector<int> milestones_;
  double gamma_;
};

/// torch.optim.lr_scheduler.ExponentialLR: lr(k) = base_lr * gamma^k.
template <Scalar T>
class ExponentialLR : public EpochLrSchedule<T> {
 public:
  /// Throws ArgumentError unless gamma is finite and > 0.
  explicit ExponentialLR(double gamma) : gamma_(gamma) {
    internal::RequireSetting(std::isfinite(gamma) && gamma > 0, "ExponentialLR", "gamma",
                           "finite and > 0", gamma);
  }
  std::string Name() const override { return "ExponentialLR(gamma=" + internal::ShortNumber(gamma_) + ")"; }
  double LearningRateAt(int k, double base_lr) const override {
    return base_lr * std::pow(gamma_, k);
  }

 private:
  double gamma_;
};

/// torch.optim.lr_scheduler.CosineAnnealingLR in torch's closed form:
/// lr(k) = eta_min + (base_lr - eta_min) * (1 + cos(pi * k / T_max)) / 2,
/// falling from base_lr at k = 0 to eta_min at k = T_max (and rising again after it, the
/// closed form being periodic with period 2 T_max). With eta_min = 0 the rate at k = T_max
/// is 0, which OnTrainBegin rejects if the run reaches it: choose T_max >= the epochs the
/// schedule runs, or eta_min > 0.
template <Scalar T>
class CosineAnnealingLR : public EpochLrSchedule<T> {
 public:
  /// Throws ArgumentError unless t_max >= 1 and eta_min is finite and >= 0.
  explicit CosineAnnealingLR(int t_max, double eta_min = 0) : t_max_(t_max), eta_min_(eta_min) {
    internal::RequireSetting(t_max >= 1, "CosineAnnealingLR", "T_max", ">= 1", t_max);
    internal::RequireSetting(std::isfinite(eta_min) && eta_min >= 0, "CosineAnnealingLR", "eta_min",
                           "finite and >= 0", eta_min);
  }
  std::string Name() const override {
    return "CosineAnnealingLR(T_max=" + std::to_string(t_max_) +
           ", eta_min=" + internal::ShortNumber(eta_min_) + ")";
  }
  double LearningRateAt(int k, double base_lr) const override {
    return eta_min_ + (base_lr - eta_min_) *
                          (1 + std::cos(std::numbers::pi * static_cast<double>(k) / t_max_)) / 2;
  }

 private:
  int t_max_;
  double eta_min_;
};

/// A linear warm-up over the first `warmup_epochs` epochs, then another schedule (or the
/// constant base rate):
///   k <  W: lr(k) = base_lr * (s + (1 - s) * k / W)     (torch's LinearLR with start_factor s,
///                                                        end_factor 1, total_iters W)
///   k >= W: the `then` schedule's lr(k - W), from the same base_lr
/// which is torch's SequentialLR([LinearLR(s, 1, W), then], milestones=[W]). The default
/// start factor s = 1 / (W + 1) makes an even ramp base/(W+1), 2 base/(W+1), ..., base.
/// The `then` schedule receives every hook from epoch W + 1 of the schedule on (its
/// FirstEpoch() is set accordingly), so a ReduceLROnPlateau after a warm-up watches only
/// the epochs after it, and a OneCycleLR spreads its cycle over the remaining epochs.
/// State(): "base_lr", then the `then` schedule's state prefixed "then.".
template <Scalar T>
class LinearWarmup : public LrSchedule<T> {
 public:
  /// Throws ArgumentError unless warmup_epochs >= 1 and 0 < start_factor <= 1.
  explicit LinearWarmup(int warmup_epochs, std::unique_ptr<LrSchedule<T>> then = nullptr,
                        std::optional<double> start_factor = std::nullopt)
      : warmup_epochs_(warmup_epochs),
        then_(std::move(then)),
        start_factor_(start_factor.value_or(1.0 / (warmup_epochs + 1.0))) {
    internal::RequireSetting(warmup_epochs >= 1, "LinearWarmup", "warmup_epochs", ">= 1", warmup_epochs);
    internal::RequireSetting(start_factor_ > 0 && start_factor_ <= 1, "LinearWarmup", "start_factor",
                           "in (0, 1]", start_factor_);
  }

  std::string Name() const override {
    return "LinearWarmup(warmup_epochs=" + std::to_string(warmup_epochs_) +
           ", start_factor=" + internal::ShortNumber(start_factor_) + ")" +
           (then_ ? " then " + then_->Name() : "");
  }

  /// The rate of warm-up epoch k < W.
  double WarmupLearningRateAt(int k, double base_lr) const {
    return base_lr * (start_factor_ + (1 - start_factor_) * k / warmup_epochs_);
  }
  /// The schedule that follows the warm-up (null: the constant base rate).
  LrSchedule<T>* Then() const { return then_.get(); }

  void OnTrainBegin(TrainingContext<T>& context) override {
    LrSchedule<T>::OnTrainBegin(context);
    const int last_warmup_epoch = std::min(this->FirstEpoch() + warmup_epochs_ - 1, context.epochs);
    for (int epoch = this->FirstEpoch(); epoch <= last_warmup_epoch; ++epoch) {
      this->CheckRate(WarmupLearningRateAt(epoch - this->FirstEpoch(), this->BaseLearningRate()), epoch);
    }
    // Without a schedule after it, the base rate itself follows the warm-up: checked too, so
    // that a base rate a T cannot hold fails now rather than after the warm-up.
    if (!then_ && last_warmup_epoch < context.epochs) {
      this->CheckRate(this->BaseLearningRate(), last_warmup_epoch + 1);
    }
    if (then_) {
      then_->SetBaseLearningRate(this->BaseLearningRate());
      then_->SetFirstEpoch(this->FirstEpoch() + warmup_epochs_);
      then_->OnTrainBegin(context);
    }
  }
  void OnEpochBegin(TrainingContext<T>& context) override {
    if (!this->Active(context)) return;
    const int k = this->ScheduleEpoch(context);
    if (k < warmup_epochs_) {
      this->Apply(context, WarmupLearningRateAt(k, this->BaseLearningRate()));
    } else if (then_) {
      then_->OnEpochBegin(context);
    } else {
      this->Apply(context, this->BaseLearningRate());
    }
  }
  void AfterBackward(TrainingContext<T>& context) override {
    if (then_) then_->AfterBackward(context);
  }
  void OnBatchEnd(TrainingContext<T>& context) override {
    if (then_) then_->OnBatchEnd(context);
  }
  void OnEpochEnd(TrainingContext<T>& context, EpochStats& stats) override {
    if (then_) then_->OnEpochEnd(context, stats);
  }
  void OnTrainEnd(TrainingContext<T>& context) override {
    if (then_) then_->OnTrainEnd(context);
  }
  void PrepareState(ModelNN<T>& model) override {
    if (then_) then_->PrepareState(model);
  }
  std::vector<StateRef<T>> State() override {
    std::vector<StateRef<T>> refs = LrSchedule<T>::State();
    if (then_) {
      for (StateRef<T>& ref : then_->State()) {
        ref.name = "then." + ref.name;
        refs.push_back(std::move(ref));
      }
    }
    return refs;
  }

 private:
  int warmup_epochs_;
  std::unique_ptr<LrSchedule<T>> then_;
  double start_factor_;
};

}  // namespace dlb
