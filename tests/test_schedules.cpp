// Learning-rate schedules: over whole runs, the rate of every step equals the one computed
// here from torch.optim.lr_scheduler's own step-by-step (chainable) formulas, to float
// rounding; schedules resume from their State(); bad settings are rejected with messages.

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <numbers>
#include <vector>

#include "dlb/core/state.hpp"
#include "dlb/training/lr_schedule.hpp"
#include "dlb/training/one_cycle_lr.hpp"
#include "dlb/training/reduce_lr_on_plateau.hpp"
#include "dlb/training/train.hpp"
#include "support/helpers.hpp"
#include "support/training_run.hpp"

using Catch::Matchers::WithinRel;
using dlb_test::MessageContains;
using dlb_test::ScriptedValidation;
using dlb_test::TrainingRun;

namespace {

constexpr double kBase = 0.1;  // TrainingRun's SGD rate is 0.1f: the schedules' base_lr
constexpr double kFloatRounding = 1e-6;

/// The rate of every optimizer step and of every epoch (EpochStats::lr) of one TrainModel call.
struct Rates {
  std::vector<double> steps;
  std::vector<double> epochs;
};

/// Trains `run` with `schedule` (after the callbacks `before`) and records the rates.
Rates Train(TrainingRun& run, dlb::Callback<float>& schedule, int epochs, int initial_epoch = 0,
            std::vector<dlb::Callback<float>*> before = {}) {
  Rates rates;
  dlb::LambdaCallback<float> recorder;
  recorder.after_backward = [&](auto& context) {
    rates.steps.push_back(static_cast<double>(context.optimizer.LearningRate()));
  };
  std::vector<dlb::Callback<float>*> callbacks = std::move(before);
  callbacks.push_back(&schedule);
  callbacks.push_back(&recorder);
  const dlb::TrainResult result =
      dlb::TrainModel(run.model, run.train, run.validation, run.loss, run.optimizer,
                      {.epochs = epochs, .initial_epoch = initial_epoch}, callbacks);
  for (const auto& stats : result.history) rates.epochs.push_back(stats.lr);
  return rates;
}

/// Trains `epochs` epochs as a run resumed from a checkpoint would: `first` until epoch
/// `split`, where a callback stops the run, then `second`, which gets first's State()
/// through a StateDict, from initial_epoch = split on the same model and optimizer.
/// Returns the rates of both parts, joined.
Rates TrainWithCheckpoint(TrainingRun& run, dlb::LrSchedule<float>& first,
                          dlb::LrSchedule<float>& second, int epochs, int split,
                          std::vector<dlb::Callback<float>*> before = {}) {
  dlb::LambdaCallback<float> stop;
  stop.on_epoch_end = [&](auto& context, auto&) {
    if (context.epoch == split) context.RequestStop("checkpoint");
  };
  std::vector<dlb::Callback<float>*> first_callbacks = before;
  first_callbacks.push_back(&stop);
  Rates rates = Train(run, first, epochs, 0, first_callbacks);
  dlb::StateDict saved;
  dlb::CollectState(first.State(), dlb::StateScope::Checkpoint, saved, "callbacks.lr_schedule.");
  dlb::RestoreState(second.State(), dlb::StateScope::Checkpoint, saved, second.Name(),
                    "callbacks.lr_schedule.");
  const Rates rest = Train(run, second, epochs, split, before);
  rates.steps.insert(rates.steps.end(), rest.steps.begin(), rest.steps.end());
  rates.epochs.insert(rates.epochs.end(), rest.epochs.begin(), rest.epochs.end());
  return rates;
}

void RequireRates(const std::vector<double>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO("index " << i);
    CHECK_THAT(actual[i], WithinRel(expected[i], kFloatRounding));
  }
}

// torch's chainable get_lr() of each scheduler, applied once per epoch from the base rate;
// element k is the rate of epoch k (0-based), as the optimizer holds it after k step() calls.

std::vector<double> TorchStepLR(int epochs, int step_size, double gamma) {
  std::vector<double> lr;
  double current = kBase;
  for (int k = 0; k < epochs; ++k) {
    if (k != 0 && k % step_size == 0) current *= gamma;
    lr.push_back(current);
  }
  return lr;
}

std::vector<double> TorchMultiStepLR(int epochs, const std::vector<int>& milestones, double gamma) {
  std::vector<double> lr;
  double current = kBase;
  for (int k = 0; k < epochs; ++k) {
    for (int m : milestones) {
      if (m == k) current *= gamma;  // a milestone given twice multiplies twice (torch's Counter)
    }
    lr.push_back(current);
  }
  return lr;
}

std::vector<double> TorchExponentialLR(int epochs, double gamma) {
  std::vector<double> lr;
  double current = kBase;
  for (int k = 0; k < epochs; ++k) {
    if (k != 0) current *= gamma;
    lr.push_back(current);
  }
  return lr;
}

/// CosineAnnealingLR.get_lr, the recursive form, starting from `start` at local epoch 0.
std::vector<double> TorchCosineLR(int epochs, int t_max, double eta_min, double base = kBase) {
  const double pi = std::numbers::pi;
  std::vector<double> lr;
  double current = base;
  for (int k = 0; k < epochs; ++k) {
    if (k == 0) {
      current = base;
    } else if ((k - 1 - t_max) % (2 * t_max) == 0) {
      current = current + (base - eta_min) * (1 - std::cos(pi / t_max)) / 2;
    } else {
      current = (1 + std::cos(pi * k / t_max)) / (1 + std::cos(pi * (k - 1) / t_max)) *
                    (current - eta_min) +
                eta_min;
    }
    lr.push_back(current);
  }
  return lr;
}

/// LinearLR.get_lr (end_factor 1) for the first `total_iters` epochs.
std::vector<double> TorchLinearLR(int epochs, double start_factor, int total_iters) {
  std::vector<double> lr;
  double current = kBase;
  for (int k = 0; k < epochs; ++k) {
    if (k == 0) {
      current = kBase * start_factor;
    } else if (k <= total_iters) {
      current *= 1 + (1 - start_factor) / (total_iters * start_factor + (k - 1) * (1 - start_factor));
    }
    lr.push_back(current);
  }
  return lr;
}

/// OneCycleLR.get_lr for step `step` of `total` (two phases).
double TorchOneCycle(std::int64_t step, std::int64_t total, double max_lr, double pct_start,
                     bool cos, double div_factor = 25, double final_div_factor = 1e4) {
  const double initial = max_lr / div_factor;
  const double min_lr = initial / final_div_factor;
  struct Phase {
    double end_step, start_lr, end_lr;
  };
  const Phase phases[2] = {{pct_start * static_cast<double>(total) - 1, initial, max_lr},
                           {static_cast<double>(total) - 1, max_lr, min_lr}};
  double start_step = 0;
  for (int i = 0; i < 2; ++i) {
    if (static_cast<double>(step) <= phases[i].end_step || i == 1) {
      const double pct = (static_cast<double>(step) - start_step) / (phases[i].end_step - start_step);
      const double start = phases[i].start_lr, end = phases[i].end_lr;
      return cos ? end + (start - end) / 2 * (std::cos(std::numbers::pi * pct) + 1)
                 : (end - start) * pct + start;
    }
    start_step = phases[i].end_step;
  }
  return 0;
}

/// ReduceLROnPlateau.step(metric) over the scripted metrics; element k is the rate of epoch k.
std::vector<double> TorchPlateau(const std::vector<double>& metrics, const dlb::PlateauOptions& o) {
  const bool min_mode = o.monitor == dlb::Monitor::ValLoss;
  const bool rel = o.threshold_mode == dlb::ThresholdMode::Relative;
  double best = min_mode ? INFINITY : -INFINITY;
  int bad = 0, cooldown_counter = 0;
  double lr = kBase;
  std::vector<double> rates;
  for (double a : metrics) {
    rates.push_back(lr);
    bool better;
    if (min_mode) {
      better = rel ? a < best * (1 - o.threshold) : a < best - o.threshold;
    } else {
      better = rel ? a > best * (o.threshold + 1) : a > best + o.threshold;
    }
    if (better) {
      best = a;
      bad = 0;
    } else {
      ++bad;
    }
    if (cooldown_counter > 0) {
      --cooldown_counter;
      bad = 0;
    }
    if (bad > o.patience) {
      const double new_lr = std::max(lr * o.factor, o.min_lr);
      if (lr - new_lr > o.eps) lr = new_lr;
      cooldown_counter = o.cooldown;
      bad = 0;
    }
  }
  return rates;
}

/// Every step of an epoch runs at the epoch's rate: repeats each of `per_epoch` `batches` times.
std::vector<double> PerStep(const std::vector<double>& per_epoch, int batches) {
  std::vector<double> steps;
  for (double rate : per_epoch) steps.insert(steps.end(), static_cast<std::size_t>(batches), rate);
  return steps;
}

}  // namespace

TEST_CASE("StepLR follows torch over a whole run", "[schedules]") {
  TrainingRun run;  // 20 samples in batches of 5: 4 steps per epoch
  dlb::StepLR<float> schedule(3, 0.5);
  const Rates rates = Train(run, schedule, 12);
  const auto expected = TorchStepLR(12, 3, 0.5);
  RequireRates(rates.epochs, expected);
  RequireRates(rates.steps, PerStep(expected, 4));
  CHECK(schedule.Name() == "StepLR(step_size=3, gamma=0.5)");
}

TEST_CASE("MultiStepLR follows torch, unsorted and repeated milestones included", "[schedules]") {
  TrainingRun run;
  dlb::MultiStepLR<float> schedule({7, 2, 5, 5}, 0.3);
  const Rates rates = Train(run, schedule, 10);
  RequireRates(rates.epochs, TorchMultiStepLR(10, {7, 2, 5, 5}, 0.3));
  CHECK(schedule.Name() == "MultiStepLR(milestones=[2,5,5,7], gamma=0.3)");
}

TEST_CASE("ExponentialLR follows torch over a whole run", "[schedules]") {
  TrainingRun run;
  dlb::ExponentialLR<float> schedule(0.8);
  RequireRates(Train(run, schedule, 15).epochs, TorchExponentialLR(15, 0.8));
}

TEST_CASE("CosineAnnealingLR's closed form equals torch's recursion, past T_max too", "[schedules]") {
  TrainingRun run;
  dlb::CosineAnnealingLR<float> schedule(6, 0.01);
  RequireRates(Train(run, schedule, 20).epochs, TorchCosineLR(20, 6, 0.01));
}

TEST_CASE("CosineAnnealingLR to eta_min 0 within the run fails before training", "[schedules]") {
  TrainingRun run;
  const dlb::StateDict before = run.model.SaveState();
  dlb::CosineAnnealingLR<float> schedule(5);  // lr(5) = 0: epoch 6
  REQUIRE_THROWS_MATCHES(Train(run, schedule, 8), dlb::ArgumentError,
                         MessageContains({"CosineAnnealingLR(T_max=5, eta_min=0)",
                                          "learning rate of epoch 6 would be 0", "> 0"}));
  CHECK(run.optimizer.StepCount() == 0);
  // T_max equal to the run's epochs never reaches 0.
  dlb::CosineAnnealingLR<float> fits(8);
  TrainingRun run2;
  CHECK(Train(run2, fits, 8).epochs.back() > 0);
}

TEST_CASE("LinearWarmup then cosine is torch's SequentialLR of LinearLR and CosineAnnealingLR",
          "[schedules]") {
  TrainingRun run;
  dlb::LinearWarmup<float> schedule(3, std::make_unique<dlb::CosineAnnealingLR<float>>(5, 0.001));
  const Rates rates = Train(run, schedule, 9);
  std::vector<double> expected = TorchLinearLR(3, 1.0 / 4, 3);  // default start factor 1/(W+1)
  for (double rate : TorchCosineLR(6, 5, 0.001)) expected.push_back(rate);  // step(0) at milestone 3
  RequireRates(rates.epochs, expected);
  // The even ramp of the default start factor: base/4, base/2, 3 base/4, then base.
  CHECK_THAT(rates.epochs[0], WithinRel(kBase / 4, kFloatRounding));
  CHECK_THAT(rates.epochs[2], WithinRel(3 * kBase / 4, kFloatRounding));
  CHECK_THAT(rates.epochs[3], WithinRel(kBase, kFloatRounding));
}

TEST_CASE("LinearWarmup alone ends on the base rate; an explicit start factor", "[schedules]") {
  TrainingRun run;
  dlb::LinearWarmup<float> schedule(4, nullptr, 0.1);
  RequireRates(Train(run, schedule, 7).epochs, TorchLinearLR(7, 0.1, 4));
}

TEST_CASE("LinearWarmup then StepLR: the step schedule counts from the end of the warm-up",
          "[schedules]") {
  TrainingRun run;
  dlb::LinearWarmup<float> schedule(2, std::make_unique<dlb::StepLR<float>>(2, 0.5));
  std::vector<double> expected = TorchLinearLR(2, 1.0 / 3, 2);
  for (double rate : TorchStepLR(5, 2, 0.5)) expected.push_back(rate);
  RequireRates(Train(run, schedule, 7).epochs, expected);
}

TEST_CASE("LinearWarmup then ReduceLROnPlateau: the plateau watches only the epochs after it",
          "[schedules]") {
  TrainingRun run;
  dlb::PlateauOptions options;
  options.patience = 1;
  options.factor = 0.5;
  dlb::LinearWarmup<float> schedule(2, std::make_unique<dlb::ReduceLROnPlateau<float>>(options));
  ScriptedValidation script;
  // Epochs 1-2 are the warm-up (their rising losses must not count), then the plateau's own.
  script.values = {5, 6, 1, 1, 1, 1, 0.5, 0.5};
  const Rates rates = Train(run, schedule, 8, 0, {&script});
  std::vector<double> expected = TorchLinearLR(2, 1.0 / 3, 2);
  for (double rate : TorchPlateau({1, 1, 1, 1, 0.5, 0.5}, options)) expected.push_back(rate);
  RequireRates(rates.epochs, expected);
  CHECK(rates.epochs[6] < kBase);  // the plateau did reduce: the test is not vacuous
}

TEST_CASE("OneCycleLR follows torch step by step (cos and linear)", "[schedules]") {
  for (const bool cos : {true, false}) {
    for (const int epochs : {5, 7}) {
      INFO((cos ? "cos" : "linear") << ", " << epochs << " epochs");
      TrainingRun run(18, 6);  // 3 steps per epoch: 15 steps (phase end 3.5) or 21 (5.3)
      dlb::OneCycleOptions options;
      options.anneal = cos ? dlb::Anneal::Cos : dlb::Anneal::Linear;
      dlb::OneCycleLR<float> schedule(options);
      const Rates rates = Train(run, schedule, epochs);
      const std::int64_t total = 3 * epochs;
      REQUIRE(schedule.TotalSteps() == total);
      std::vector<double> expected;
      for (std::int64_t s = 0; s < total; ++s) expected.push_back(TorchOneCycle(s, total, kBase, 0.3, cos));
      RequireRates(rates.steps, expected);
      // EpochStats::lr is the rate of the epoch's last step.
      for (int e = 0; e < epochs; ++e) {
        CHECK(rates.epochs[static_cast<std::size_t>(e)] == rates.steps[static_cast<std::size_t>(3 * e + 2)]);
      }
      CHECK_THAT(rates.steps.front(), WithinRel(kBase / 25, kFloatRounding));
      CHECK_THAT(rates.steps.back(), WithinRel(kBase / 25 / 1e4, kFloatRounding));
    }
  }
}

TEST_CASE("OneCycleLR with explicit settings and total steps", "[schedules]") {
  TrainingRun run(18, 6);
  dlb::OneCycleOptions options;
  options.pct_start = 0.25;
  options.div_factor = 10;
  options.final_div_factor = 100;
  options.total_steps = 20;  // longer than the 4 x 3 steps of the run: the cycle is not finished
  dlb::OneCycleLR<float> schedule(options);
  const Rates rates = Train(run, schedule, 4);
  std::vector<double> expected;
  for (std::int64_t s = 0; s < 12; ++s) expected.push_back(TorchOneCycle(s, 20, kBase, 0.25, true, 10, 100));
  RequireRates(rates.steps, expected);
}

TEST_CASE("OneCycleLR rejects a run longer than its cycle and a cycle too short", "[schedules]") {
  TrainingRun run(18, 6);
  dlb::OneCycleOptions options;
  options.total_steps = 10;
  dlb::OneCycleLR<float> short_cycle(options);
  REQUIRE_THROWS_MATCHES(Train(run, short_cycle, 4), dlb::ArgumentError,
                         MessageContains({"OneCycleLR", "12 steps", "total_steps is 10"}));
  dlb::OneCycleOptions tiny;
  tiny.pct_start = 0.1;  // 0.1 x 3 steps: the rising phase would be empty
  dlb::OneCycleLR<float> no_phase(tiny);
  REQUIRE_THROWS_MATCHES(Train(run, no_phase, 1), dlb::ArgumentError,
                         MessageContains({"OneCycleLR", "pct_start 0.1 of 3 steps"}));
}

TEST_CASE("Rates that a float cannot hold late in the run fail before the first step", "[schedules]") {
  // final_div_factor 1e300: min_lr = 0.1 / 25 / 1e300 is 0 as a float, the rate of the
  // cycle's last step (epoch 5 of 5). Found before training, not after 4 epochs of it.
  TrainingRun run(18, 6);
  dlb::OneCycleOptions options;
  options.final_div_factor = 1e300;
  dlb::OneCycleLR<float> one_cycle(options);
  REQUIRE_THROWS_MATCHES(Train(run, one_cycle, 5), dlb::ArgumentError,
                         MessageContains({"OneCycleLR", "learning rate of epoch 5 would be 0"}));
  CHECK(run.optimizer.StepCount() == 0);
  // The same cycle after a warm-up (its first epoch is then epoch 2).
  TrainingRun run2(18, 6);
  dlb::LinearWarmup<float> warm_cycle(1, std::make_unique<dlb::OneCycleLR<float>>(options));
  REQUIRE_THROWS_MATCHES(Train(run2, warm_cycle, 5), dlb::ArgumentError,
                         MessageContains({"OneCycleLR", "learning rate of epoch 5 would be 0"}));
  CHECK(run2.optimizer.StepCount() == 0);
  // A base rate of 1e300 reached after a one-epoch warm-up from 1e300 x 1e-300 = 1: as a
  // float it is inf, from epoch 2 on, alone and followed by a plateau schedule.
  TrainingRun run3;
  dlb::LinearWarmup<float> warm_constant(1, nullptr, 1e-300);
  warm_constant.SetBaseLearningRate(1e300);
  REQUIRE_THROWS_MATCHES(Train(run3, warm_constant, 3), dlb::ArgumentError,
                         MessageContains({"LinearWarmup", "learning rate of epoch 2 would be inf"}));
  CHECK(run3.optimizer.StepCount() == 0);
  TrainingRun run4;
  dlb::LinearWarmup<float> warm_plateau(1, std::make_unique<dlb::ReduceLROnPlateau<float>>(),
                                        1e-300);
  warm_plateau.SetBaseLearningRate(1e300);
  REQUIRE_THROWS_MATCHES(Train(run4, warm_plateau, 3), dlb::ArgumentError,
                         MessageContains({"ReduceLROnPlateau", "learning rate of epoch 2 would be inf"}));
  CHECK(run4.optimizer.StepCount() == 0);
}

TEST_CASE("OneCycleLR resumes from its state in the middle of the cycle", "[schedules]") {
  TrainingRun whole(18, 6);
  dlb::OneCycleLR<float> uninterrupted;
  const Rates all = Train(whole, uninterrupted, 5);

  // 2 epochs of the 5-epoch cycle, then a fresh object from the saved state.
  TrainingRun resumed_run(18, 6);
  dlb::OneCycleLR<float> before_checkpoint;
  dlb::OneCycleLR<float> after_checkpoint;
  const Rates rates = TrainWithCheckpoint(resumed_run, before_checkpoint, after_checkpoint, 5, 2);
  RequireRates(rates.steps, all.steps);
}

TEST_CASE("ReduceLROnPlateau's defaults are torch's: 10 bad epochs tolerated, factor 0.1",
          "[schedules]") {
  TrainingRun run;
  dlb::ReduceLROnPlateau<float> schedule;
  ScriptedValidation script;
  script.values.assign(25, 1.0);  // never improves after epoch 1
  const Rates rates = Train(run, schedule, 25, 0, {&script});
  for (int e = 1; e <= 25; ++e) {
    INFO("epoch " << e);
    const double expected = e <= 12 ? kBase : e <= 23 ? kBase * 0.1 : kBase * 0.01;
    CHECK_THAT(rates.epochs[static_cast<std::size_t>(e - 1)], WithinRel(expected, kFloatRounding));
  }
  // A relative improvement of less than 1e-4 is not one.
  TrainingRun run2;
  dlb::ReduceLROnPlateau<float> schedule2;
  script.values.assign(13, 1.0 - 0.5e-4);  // 0.5e-4 below the best of epoch 1 (1.0)
  script.values[0] = 1.0;
  CHECK_THAT(Train(run2, schedule2, 13, 0, {&script}).epochs.back(), WithinRel(kBase * 0.1, kFloatRounding));
}

TEST_CASE("ReduceLROnPlateau follows torch with cooldown, thresholds, min_lr and max mode",
          "[schedules]") {
  const std::vector<double> losses = {1.0, 0.9, 0.95, 0.92, 0.91, 0.8, 0.85, 0.86, 0.87, 0.88,
                                      0.89, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76, 0.77, 0.78};
  struct Case {
    const char* name;
    dlb::PlateauOptions options;
  };
  std::vector<Case> cases;
  dlb::PlateauOptions o;
  o.patience = 1;
  o.factor = 0.5;
  cases.push_back({"patience 1", o});
  o.cooldown = 2;
  cases.push_back({"cooldown 2", o});
  o.threshold = 0.05;
  cases.push_back({"threshold 5% rel", o});
  o.threshold_mode = dlb::ThresholdMode::Absolute;
  o.threshold = 0.02;
  cases.push_back({"threshold 0.02 abs", o});
  o.min_lr = 0.03;
  cases.push_back({"min_lr 0.03", o});
  o.monitor = dlb::Monitor::ValScore;
  cases.push_back({"max mode", o});
  o.threshold_mode = dlb::ThresholdMode::Relative;
  o.threshold = 0.01;
  o.min_lr = 0;
  o.cooldown = 0;
  cases.push_back({"max mode rel", o});
  for (const Case& c : cases) {
    INFO(c.name);
    TrainingRun run;
    dlb::ReduceLROnPlateau<float> schedule(c.options);
    ScriptedValidation script;
    script.values = losses;
    script.score = c.options.monitor == dlb::Monitor::ValScore;
    const Rates rates = Train(run, schedule, static_cast<int>(losses.size()), 0, {&script});
    const auto expected = TorchPlateau(losses, c.options);
    RequireRates(rates.epochs, expected);
    CHECK(expected.back() < kBase);  // every case reduces at least once
  }
}

TEST_CASE("ReduceLROnPlateau resumes its counters from a checkpoint of its State()", "[schedules]") {
  dlb::PlateauOptions options;
  options.patience = 2;
  options.factor = 0.5;
  options.cooldown = 1;
  const std::vector<double> losses = {1, 0.9, 0.95, 0.96, 0.97, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86};
  ScriptedValidation script;
  script.values = losses;

  TrainingRun whole;
  dlb::ReduceLROnPlateau<float> uninterrupted(options);
  const Rates all = Train(whole, uninterrupted, 12, 0, {&script});
  REQUIRE(all.epochs.back() < kBase / 2);

  for (const int split : {4, 7}) {
    INFO("checkpoint after epoch " << split);
    TrainingRun run;
    dlb::ReduceLROnPlateau<float> first(options);
    dlb::ReduceLROnPlateau<float> second(options);
    // The optimizer keeps its (reduced) rate across the checkpoint, as a restored one would.
    RequireRates(TrainWithCheckpoint(run, first, second, 12, split, {&script}).epochs, all.epochs);
  }
  dlb::StateDict names;
  dlb::CollectState(uninterrupted.State(), dlb::StateScope::Checkpoint, names);
  for (const char* name : {"base_lr", "best", "num_bad_epochs", "cooldown_counter"}) {
    CHECK(names.Contains(name));
  }
}

TEST_CASE("Epoch schedules resume from base_lr in their state", "[schedules]") {
  TrainingRun whole;
  dlb::StepLR<float> uninterrupted(2, 0.5);
  const Rates all = Train(whole, uninterrupted, 6);

  // After epoch 3 the optimizer's rate is base * 0.5: without the saved base_lr the resumed
  // schedule would start from that.
  TrainingRun run;
  dlb::StepLR<float> first(2, 0.5);
  dlb::StepLR<float> second(2, 0.5);
  RequireRates(TrainWithCheckpoint(run, first, second, 6, 3).epochs, all.epochs);
  CHECK(second.BaseLearningRate() == first.BaseLearningRate());
}

TEST_CASE("A schedule's base rate can be set instead of taken from the optimizer", "[schedules]") {
  TrainingRun run;
  dlb::ExponentialLR<float> schedule(0.5);
  schedule.SetBaseLearningRate(0.4);
  const Rates rates = Train(run, schedule, 3);
  RequireRates(rates.epochs, {0.4, 0.2, 0.1});
  REQUIRE_THROWS_MATCHES(schedule.SetBaseLearningRate(0), dlb::ArgumentError,
                         MessageContains({"ExponentialLR(gamma=0.5)", "base learning rate", "got 0"}));
}

TEST_CASE("Schedules reject invalid settings with the value and the rule", "[schedules]") {
  using dlb::ArgumentError;
  REQUIRE_THROWS_MATCHES(dlb::StepLR<float>(0), ArgumentError,
                         MessageContains({"StepLR: step_size must be >= 1, got 0"}));
  REQUIRE_THROWS_MATCHES(dlb::StepLR<float>(2, -0.5), ArgumentError,
                         MessageContains({"StepLR: gamma must be finite and > 0, got -0.5"}));
  REQUIRE_THROWS_MATCHES(dlb::ExponentialLR<float>(NAN), ArgumentError,
                         MessageContains({"ExponentialLR: gamma", "got nan"}));
  REQUIRE_THROWS_MATCHES(dlb::MultiStepLR<float>({3, -1}), ArgumentError,
                         MessageContains({"MultiStepLR: a milestone must be >= 0, got -1"}));
  REQUIRE_THROWS_MATCHES(dlb::CosineAnnealingLR<float>(0), ArgumentError,
                         MessageContains({"CosineAnnealingLR: T_max must be >= 1, got 0"}));
  REQUIRE_THROWS_MATCHES(dlb::CosineAnnealingLR<float>(5, -1), ArgumentError,
                         MessageContains({"eta_min must be finite and >= 0, got -1"}));
  REQUIRE_THROWS_MATCHES(dlb::LinearWarmup<float>(0), ArgumentError,
                         MessageContains({"LinearWarmup: warmup_epochs must be >= 1, got 0"}));
  REQUIRE_THROWS_MATCHES(dlb::LinearWarmup<float>(2, nullptr, 1.5), ArgumentError,
                         MessageContains({"start_factor must be in (0, 1], got 1.5"}));
  dlb::OneCycleOptions one_cycle;
  one_cycle.pct_start = 1;
  REQUIRE_THROWS_MATCHES(dlb::OneCycleLR<float>(one_cycle), ArgumentError,
                         MessageContains({"OneCycleLR: pct_start must be in (0, 1), got 1"}));
  one_cycle.pct_start = 0.3;
  one_cycle.div_factor = 0;
  REQUIRE_THROWS_MATCHES(dlb::OneCycleLR<float>(one_cycle), ArgumentError,
                         MessageContains({"div_factor must be finite and > 0, got 0"}));
  dlb::PlateauOptions plateau;
  plateau.factor = 1;
  REQUIRE_THROWS_MATCHES(dlb::ReduceLROnPlateau<float>(plateau), ArgumentError,
                         MessageContains({"ReduceLROnPlateau: factor must be in (0, 1), got 1"}));
  plateau.factor = 0.5;
  plateau.patience = -1;
  REQUIRE_THROWS_MATCHES(dlb::ReduceLROnPlateau<float>(plateau), ArgumentError,
                         MessageContains({"patience must be >= 0, got -1"}));
  plateau.patience = 0;
  plateau.eps = -1e-9;
  REQUIRE_THROWS_MATCHES(dlb::ReduceLROnPlateau<float>(plateau), ArgumentError,
                         MessageContains({"eps must be finite and >= 0, got -1e-09"}));
}
