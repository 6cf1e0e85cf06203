#pragma once
/// \file
/// OneCycleLR: torch.optim.lr_scheduler.OneCycleLR's learning-rate cycle, stepped per batch.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"
#include "dlb/training/lr_schedule.hpp"

namespace dlb {

/// How OneCycleLR moves between two rates (torch's anneal_strategy).
enum class Anneal {
  Cos,     ///< end + (start - end) * (1 + cos(pi * pct)) / 2
  Linear,  ///< start + (end - start) * pct
};

/// OneCycleLR's settings; the defaults are torch's.
struct OneCycleOptions {
  double pct_start = 0.3;          ///< fraction of the steps spent rising to max_lr
  double div_factor = 25;          ///< initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;   ///< min_lr = initial_lr / final_div_factor
  Anneal anneal = Anneal::Cos;
  /// Steps of the whole cycle; 0: every training step of the run from FirstEpoch() on,
  /// (epochs - FirstEpoch() + 1) * batches per epoch (torch's epochs * steps_per_epoch).
  std::int64_t total_steps = 0;
};

/// torch.optim.lr_scheduler.OneCycleLR (two phases, three_phase=False), stepped after every
/// optimizer step. With max_lr = base_lr, N = total_steps, s the 0-based index of a step
/// within the cycle, initial_lr = max_lr / div_factor, min_lr = initial_lr / final_div_factor
/// and the phase boundary e = pct_start * N - 1 (a real number, as in torch):
///   s <= e: lr(s) = anneal(initial_lr, max_lr, s / e)
///   s >  e: lr(s) = anneal(max_lr, min_lr, (s - e) / (N - 1 - e))
/// Step s of the run's epoch E (1-based), batch b (1-based) is s = (E - FirstEpoch()) * B + b - 1
/// with B batches per epoch, so a resumed run continues the cycle.
/// Differences from torch: momentum cycling (cycle_momentum, base_momentum, max_momentum) is
/// left out; the optimizer's momentum or betas stay as they are. three_phase is not offered.
/// max_lr is the base rate: the optimizer's rate when training begins, or SetBaseLearningRate.
/// Throws ArgumentError when training begins and the run has more steps than total_steps,
/// when pct_start * N <= 1 or >= N (a phase would have no length), or when the rate of any
/// step of the run would not be finite and > 0 as T (a div_factor or final_div_factor so
/// large that a rate rounds to 0): before the first step, never in the middle of the run.
template <Scalar T>
class OneCycleLR : public LrSchedule<T> {
 public:
  /// Throws ArgumentError unless 0 < pct_start < 1, div_factor > 0, final_div_factor > 0
  /// (finite) and total_steps >= 0.
  explicit OneCycleLR(OneCycleOptions options = {}) : options_(options) {
    const auto finite_positive = [](double v) { return std::isfinite(v) && v > 0; };
    internal::RequireSetting(options.pct_start > 0 && options.pct_start < 1, "OneCycleLR", "pct_start",
                           "in (0, 1)", options.pct_start);
    internal::RequireSetting(finite_positive(options.div_factor), "OneCycleLR", "div_factor",
                           "finite and > 0", options.div_factor);
    internal::RequireSetting(finite_positive(options.final_div_factor), "OneCycleLR",
                           "final_div_factor", "finite and > 0", options.final_div_factor);
    internal::RequireSetting(options.total_steps >= 0, "OneCycleLR", "total_steps", ">= 0",
                           static_cast<double>(options.total_steps));
  }

  std::string Name() const override {
    return "OneCycleLR(pct_start=" + internal::ShortNumber(options_.pct_start) +
           ", div_factor=" + internal::ShortNumber(options_.div_factor) +
           ", final_div_factor=" + internal::ShortNumber(options_.final_div_factor) +
           ", anneal=" + (options_.anneal == Anneal::Cos ? "cos" : "linear") + ")";
  }

  /// The cycle's length N (known once training has begun, when total_steps was 0).
  std::int64_t TotalSteps() const { return total_steps_; }

  /// The rate of step s of a cycle of `total_steps` steps with max_lr `max_lr`.
  double LearningRateAt(std::int64_t s, std::int64_t total_steps, double max_lr) const {
    const double initial_lr = max_lr / options_.div_factor;
    const double min_lr = initial_lr / options_.final_div_factor;
    const double phase_end = options_.pct_start * static_cast<double>(total_steps) - 1;
    const double step = static_cast<double>(s);
    if (step <= phase_end) return Interpolate(initial_lr, max_lr, step / phase_end);
    return Interpolate(max_lr, min_lr,
                       (step - phase_end) / (static_cast<double>(total_steps) - 1 - phase_end));
  }

  void OnTrainBegin(TrainingContext<T>& context) override {
    LrSchedule<T>::OnTrainBegin(context);
    batches_ = context.train.NumBatches();
    const std::int64_t run_steps =
        static_cast<std::int64_t>(std::max(0, context.epochs - this->FirstEpoch() + 1)) * batches_;
    total_steps_ = options_.total_steps > 0 ? options_.total_steps : run_steps;
    if (run_steps > total_steps_) {
      throw ArgumentError("OneCycleLR: the run takes " + std::to_string(run_steps) + " steps (" +
                          std::to_string(context.epochs - this->FirstEpoch() + 1) + " epochs of " +
                          std::to_string(batches_) + " batches) but total_steps is " +
                          std::to_string(total_steps_));
    }
    const double phase_end = options_.pct_start * static_cast<double>(total_steps_) - 1;
    if (run_steps > 0 && !(phase_end > 0 && phase_end < static_cast<double>(total_steps_) - 1)) {
      throw ArgumentError("OneCycleLR: pct_start " + internal::ShortNumber(options_.pct_start) +
                          " of " + std::to_string(total_steps_) +
                          " steps leaves a phase without length; need 1 < pct_start * steps < "
                          "steps");
    }
    CheckRunRates(run_steps, phase_end);
  }
  void OnEpochBegin(TrainingContext<T>& context) override {
    if (this->Active(context)) SetStep(context, StepIndex(context, 0));
  }
  /// After step s the rate of step s + 1 is set (torch's scheduler.step() after
  /// optimizer.step()); nothing after the cycle's last step.
  void OnBatchEnd(TrainingContext<T>& context) override {
    if (!this->Active(context)) return;
    const std::int64_t next = StepIndex(context, context.batch);
    if (next < total_steps_) SetStep(context, next);
  }

 private:
  /// Throws ArgumentError (CheckRate) unless the rate of every step of the run, as T, is
  /// finite and > 0, so that a cycle whose last rate is 0 as a float (final_div_factor 1e300)
  /// fails before the first step rather than in the last epoch. Each phase is monotonic
  /// (anneal(a, b, pct) lies between a and b, the lower end exactly so), and rounding to T is
  /// monotonic, so checking the first and last step of each phase within the run checks them
  /// all, at a cost independent of the run's length.
  void CheckRunRates(std::int64_t run_steps, double phase_end) const {
    if (run_steps <= 0 || batches_ <= 0) return;
    const std::int64_t last = run_steps - 1;
    const std::int64_t rise_last = std::min(static_cast<std::int64_t>(std::floor(phase_end)), last);
    std::vector<std::int64_t> steps = {0, rise_last};
    if (rise_last < last) steps.insert(steps.end(), {rise_last + 1, last});
    for (const std::int64_t s : steps) {
      const int epoch = this->FirstEpoch() + static_cast<int>(s / static_cast<std::int64_t>(batches_));
      this->CheckRate(LearningRateAt(s, total_steps_, this->BaseLearningRate()), epoch);
    }
  }
  std::int64_t StepIndex(const TrainingContext<T>& context, Index batch) const {
    return static_cast<std::int64_t>(this->ScheduleEpoch(context)) * batches_ + batch;
  }
  void SetStep(TrainingContext<T>& context, std::int64_t s) {
    this->Apply(context, LearningRateAt(s, total_steps_, this->BaseLearningRate()));
  }
  double Interpolate(double start, double end, double pct) const {
    if (options_.anneal == Anneal::Linear) return start + (end - start) * pct;
    return end + (start - end) * (1 + std::cos(std::numbers::pi * pct)) / 2;
  }

  OneCycleOptions options_;
  std::int64_t total_steps_ = 0;
  Index batches_ = 0;
};

}  // namespace dlb
