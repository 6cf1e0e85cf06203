#pragma once
// Training control for the example programs: the flags for learning-rate schedules, warm-up,
// early stopping, a held-out validation split and the history file; the data sets they
// imply; the callbacks they build; and the lines that report them. Only the library's public
// API is used.

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <dlb/io.hpp>  // <dlb/dlb.hpp> and the data files

#include "common/experiment.hpp"

namespace control {

/// The control flags; empty optionals take the defaults described in AddFlags.
struct Settings {
  std::string schedule = "none";
  std::optional<int> step_size;
  double gamma = 0.1;
  std::optional<int> t_max;
  double eta_min = 0;
  dlb::OneCycleOptions one_cycle;
  dlb::PlateauOptions plateau;
  int warmup_epochs = 0;
  std::optional<int> patience;
  double min_delta = 0;
  std::string monitor = "val_loss";
  std::optional<double> val_split;
  std::string history;
  std::string progress = "auto";
};

inline const std::vector<std::string> kSchedules = {"none", "step", "cosine", "onecycle", "plateau"};

/// A finite number within (lo, hi), [lo, hi), ... as `lo_closed` / `hi_closed` say.
inline CLI::Validator NumberIn(double lo, bool lo_closed, double hi, bool hi_closed,
                               const std::string& description) {
  return CLI::Validator(
      [=](std::string& text) {
        try {
          std::size_t used = 0;
          const double v = std::stod(text, &used);
          const bool above = lo_closed ? v >= lo : v > lo;
          const bool below = hi_closed ? v <= hi : v < hi;
          if (used == text.size() && std::isfinite(v) && above && below) return std::string();
        } catch (const std::exception&) {
        }
        return "expected " + description + ", got '" + text + "'";
      },
      "NUMBER", description);
}

/// Registers the control flags. `with_history`: the --history flag (compare_optimizers has
/// its own --csv).
inline void AddFlags(CLI::App& app, Settings& c, bool with_history = true) {
  const double inf = INFINITY;
  const auto group = "Training control";
  app.add_option("--schedule", c.schedule,
                 "Learning-rate schedule (torch.optim.lr_scheduler's formulas), from --lr")
      ->check(CLI::IsMember(kSchedules))
      ->capture_default_str()
      ->group(group);
  app.add_option("--step-size", c.step_size,
                 "step: multiply the rate by --gamma every N epochs (default: a third of the "
                 "epochs after the warm-up)")
      ->check(CLI::Range(1, 1000000))
      ->group(group);
  app.add_option("--gamma", c.gamma, "step: the factor")
      ->check(NumberIn(0, false, inf, false, "a finite number > 0"))
      ->capture_default_str()
      ->group(group);
  app.add_option("--t-max", c.t_max,
                 "cosine: epochs from the base rate down to --eta-min (default: the epochs after "
                 "the warm-up)")
      ->check(CLI::Range(1, 1000000))
      ->group(group);
  app.add_option("--eta-min", c.eta_min, "cosine: the lowest rate")
      ->check(NumberIn(0, true, inf, false, "a finite number >= 0"))
      ->capture_default_str()
      ->group(group);
  app.add_option("--pct-start", c.one_cycle.pct_start,
                 "onecycle: fraction of the steps rising to --lr (the peak)")
      ->check(NumberIn(0, false, 1, false, "a number in (0, 1)"))
      ->capture_default_str()
      ->group(group);
  app.add_option("--div-factor", c.one_cycle.div_factor, "onecycle: initial rate = --lr / this")
      ->check(NumberIn(0, false, inf, false, "a finite number > 0"))
      ->capture_default_str()
      ->group(group);
  app.add_option("--final-div-factor", c.one_cycle.final_div_factor,
                 "onecycle: final rate = initial rate / this")
      ->check(NumberIn(0, false, inf, false, "a finite number > 0"))
      ->capture_default_str()
      ->group(group);
  app.add_option("--plateau-factor", c.plateau.factor,
                 "plateau: multiply the rate by this when --monitor stops improving")
      ->check(NumberIn(0, false, 1, false, "a number in (0, 1)"))
      ->capture_default_str()
      ->group(group);
  app.add_option("--plateau-patience", c.plateau.patience,
                 "plateau: epochs without improvement before a reduction")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str()
      ->group(group);
  app.add_option("--warmup-epochs", c.warmup_epochs,
                 "Linear warm-up: N epochs at 1/(N+1) ... N/(N+1) of --lr, then the schedule")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str()
      ->group(group);
  app.add_option("--patience", c.patience,
                 "Early stopping: stop after N epochs without improvement of --monitor and put "
                 "back the best epoch's weights")
      ->check(CLI::Range(0, 1000000))
      ->group(group);
  app.add_option("--min-delta", c.min_delta, "Early stopping: the least change that counts")
      ->check(NumberIn(0, true, inf, false, "a finite number >= 0"))
      ->capture_default_str()
      ->group(group);
  app.add_option("--monitor", c.monitor, "What early stopping and plateau watch")
      ->check(CLI::IsMember({"val_loss", "val_acc"}))
      ->capture_default_str()
      ->group(group);
  app.add_option("--val-split", c.val_split,
                 "Hold out this stratified fraction of the training set as the per-epoch "
                 "validation set and score the test set once at the end (default: the test set "
                 "validates every epoch, as in the notebook)")
      ->check(NumberIn(0, false, 1, false, "a fraction in (0, 1)"))
      ->group(group);
  if (with_history) {
    app.add_option("--history", c.history,
                   "Write one CSV row per epoch (epoch,lr,train_loss,val_loss,train_acc,val_acc,"
                   "seconds) to this file")
        ->check(experiment::kOutputFile)
        ->group(group);
  }
}

/// Registers --progress auto|live|summary (train_fashion_mnist's; compare_optimizers prints
/// a table instead).
inline void AddProgressFlag(CLI::App& app, Settings& c) {
  app.add_option("--progress", c.progress,
                 "The live line during each epoch (batch, samples/s, loss, time left): auto "
                 "shows it on a terminal (under mpirun only when mpirun's own output is a "
                 "terminal), live always, summary never (the epoch lines only)")
      ->check(CLI::IsMember({"auto", "live", "summary"}))
      ->capture_default_str()
      ->group("Training control");
}

/// --progress as TrainOptions::progress.
inline dlb::ProgressMode ProgressMode(const Settings& c) {
  if (c.progress == "live") return dlb::ProgressMode::Live;
  if (c.progress == "summary") return dlb::ProgressMode::Summary;
  return dlb::ProgressMode::Auto;
}

/// The checks between flags that CLI11 cannot express. Prints the error (experiment::UsageError)
/// and returns 2 when the flags do not fit together.
inline std::optional<int> Check(const CLI::App& app, const Settings& c,
                                const experiment::Settings& s) {
  std::string error;
  const auto given = [&](const char* flag) { return app.count(flag) > 0; };
  const std::vector<std::pair<const char*, const char*>> owners = {
      {"--step-size", "step"},      {"--gamma", "step"},
      {"--t-max", "cosine"},        {"--eta-min", "cosine"},
      {"--pct-start", "onecycle"},  {"--div-factor", "onecycle"},
      {"--final-div-factor", "onecycle"},
      {"--plateau-factor", "plateau"}, {"--plateau-patience", "plateau"}};
  for (const auto& [flag, schedule] : owners) {
    if (given(flag) && c.schedule != schedule && error.empty()) {
      error = std::string(flag) + " applies to --schedule " + schedule + ", not " + c.schedule;
    }
  }
  if (error.empty() && c.warmup_epochs >= s.epochs) {
    error = "--warmup-epochs " + std::to_string(c.warmup_epochs) + " leaves no epoch of the " +
            std::to_string(s.epochs) + " (--epochs) after the warm-up";
  }
  if (error.empty() && c.warmup_epochs > 0 && c.schedule == "onecycle") {
    error = "--warmup-epochs does not combine with --schedule onecycle, which warms up by itself "
            "(--pct-start)";
  }
  if (error.empty() && given("--min-delta") && !c.patience) error = "--min-delta needs --patience";
  if (error.empty() && given("--monitor") && !c.patience && c.schedule != "plateau") {
    error = "--monitor needs --patience or --schedule plateau";
  }
  const int after_warmup = s.epochs - c.warmup_epochs;
  if (error.empty() && c.schedule == "cosine" && c.eta_min == 0 && c.t_max &&
      *c.t_max < after_warmup) {
    error = "--t-max " + std::to_string(*c.t_max) + " with --eta-min 0 brings the rate to 0 at "
            "epoch " + std::to_string(c.warmup_epochs + *c.t_max + 1) +
            "; give --t-max >= " + std::to_string(after_warmup) + " or --eta-min > 0";
  }
  if (error.empty()) return std::nullopt;
  return experiment::UsageError(app, error);
}

/// The data of a run: the training part, the per-epoch validation images and the test set.
/// With --val-split the validation images are a stratified part of the training set and
/// the standardisation statistics come from the remaining training images only.
struct RunData {
  dlb::FashionMnist<float> data;  // training part and test set, standardised
  dlb::Matrix<float> val_images;   // empty without --val-split
  dlb::Labels val_labels;
  dlb::Standardizer<float> standardizer;  // fitted on the training part; saved with the model
  bool HeldOut() const { return val_images.cols() > 0; }
};

inline RunData LoadRunData(const experiment::Settings& s, const Settings& c) {
  RunData run;
  // Image models standardise per channel: their augmentation moves pixels.
  const bool per_channel = s.model != "mlp";
  if (!c.val_split) {
    run.data = experiment::LoadData(s.data, &run.standardizer, per_channel);
    return run;
  }
  run.data = dlb::LoadFashionMnist<float>(s.data);
  dlb::Generator gen(s.seed);
  dlb::Split<float> split =
      dlb::StratifiedSplit(run.data.train_images, run.data.train_labels, *c.val_split, gen);
  run.data.train_images = std::move(split.train_x);
  run.data.train_labels = std::move(split.train_y);
  run.val_images = std::move(split.test_x);
  run.val_labels = std::move(split.test_y);
  experiment::FitStandardizer(run.standardizer, run.data.train_images, per_channel);
  for (dlb::Matrix<float>* images : {&run.data.train_images, &run.val_images, &run.data.test_images}) {
    run.standardizer.Transform(*images);
  }
  return run;
}

/// The batches of a run: the notebook's training and validation batches (experiment::Batches),
/// and with --val-split the test batches, scored once at the end.
struct RunSets {
  experiment::Batches batches;
  std::optional<dlb::DataSet<float>> test;
  /// The set the final model is scored on: the test images.
  dlb::DataSet<float>& Test() { return test ? *test : batches.validation; }
};

inline RunSets MakeSets(const RunData& run, const experiment::Settings& s) {
  RunSets sets{experiment::MakeBatches(run.data, s), std::nullopt};
  if (run.HeldOut()) {
    const auto batch = [&](const dlb::Matrix<float>& x) { return std::min<dlb::Index>(s.batch, x.cols()); };
    sets.test = std::move(sets.batches.validation);
    sets.batches.validation = dlb::DataSet<float>(
        run.val_images, run.val_labels, {.batch_size = batch(run.val_images), .shuffle = false});
  }
  return sets;
}

/// "0.1", "1e-08": a number as the flags would take it.
inline std::string Number(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

/// Which images validate each epoch, as a line for the program's header.
inline std::string ValidationLine(const RunData& run, const Settings& c) {
  if (!run.HeldOut()) {
    return "Validation: the " + std::to_string(run.data.test_images.cols()) +
           " test images after every epoch, as in the notebook (--val-split F holds out part of "
           "the training set instead)";
  }
  return "Validation: " + std::to_string(run.val_images.cols()) +
         " images held out of the training set (stratified, --val-split " +
         Number(*c.val_split) + "); the " +
         std::to_string(run.data.test_images.cols()) + " test images are scored once, at the end";
}

/// The callbacks of one run, in the order they run: schedule, early stopping, history file.
struct RunCallbacks {
  std::unique_ptr<dlb::LrSchedule<float>> schedule;
  std::unique_ptr<dlb::EarlyStopping<float>> early_stopping;
  std::unique_ptr<dlb::HistoryCsvLogger<float>> history;

  std::vector<dlb::Callback<float>*> List() const {
    std::vector<dlb::Callback<float>*> list;
    for (dlb::Callback<float>* callback :
         {static_cast<dlb::Callback<float>*>(schedule.get()),
          static_cast<dlb::Callback<float>*>(early_stopping.get()),
          static_cast<dlb::Callback<float>*>(history.get())}) {
      if (callback != nullptr) list.push_back(callback);
    }
    return list;
  }
};

inline RunCallbacks MakeCallbacks(const Settings& c, int epochs) {
  const dlb::Monitor monitor = c.monitor == "val_acc" ? dlb::Monitor::ValScore : dlb::Monitor::ValLoss;
  const int after_warmup = epochs - c.warmup_epochs;
  RunCallbacks callbacks;
  std::unique_ptr<dlb::LrSchedule<float>> schedule;
  if (c.schedule == "step") {
    schedule = std::make_unique<dlb::StepLR<float>>(c.step_size.value_or(std::max(1, after_warmup / 3)),
                                                    c.gamma);
  } else if (c.schedule == "cosine") {
    schedule = std::make_unique<dlb::CosineAnnealingLR<float>>(c.t_max.value_or(after_warmup), c.eta_min);
  } else if (c.schedule == "onecycle") {
    schedule = std::make_unique<dlb::OneCycleLR<float>>(c.one_cycle);
  } else if (c.schedule == "plateau") {
    dlb::PlateauOptions plateau = c.plateau;
    plateau.monitor = monitor;
    schedule = std::make_unique<dlb::ReduceLROnPlateau<float>>(plateau);
  }
  if (c.warmup_epochs > 0) {
    schedule = std::make_unique<dlb::LinearWarmup<float>>(c.warmup_epochs, std::move(schedule));
  }
  callbacks.schedule = std::move(schedule);
  if (c.patience) {
    callbacks.early_stopping = std::make_unique<dlb::EarlyStopping<float>>(dlb::EarlyStoppingOptions{
        .monitor = monitor, .patience = *c.patience, .min_delta = c.min_delta, .restore_best = true});
  }
  if (!c.history.empty()) callbacks.history = std::make_unique<dlb::HistoryCsvLogger<float>>(c.history);
  return callbacks;
}

/// Header lines: how the rate moves and when training stops early.
inline void PrintControl(std::ostream& out, const RunCallbacks& callbacks, float lr) {
  out << "Learning rate: "
      << (callbacks.schedule ? callbacks.schedule->Name() + " from " : std::string("constant "))
      << lr << "\n";
  if (const auto* early = callbacks.early_stopping.get()) {
    out << "Early stopping: after " << early->Options().patience << " epoch(s) without "
        << dlb::MonitorName(early->Options().monitor) << " improving by more than "
        << early->Options().min_delta << ", then the best epoch's weights are put back\n";
  }
}

/// After training: why it stopped early and which weights the model holds, then the test
/// accuracy of the final model ("Test accuracy: 0.8955"). Returns that accuracy.
inline double PrintOutcome(std::ostream& out, const dlb::TrainResult& result,
                           const RunCallbacks& callbacks, dlb::ModelNN<float>& model,
                           RunSets& sets, dlb::CrossEntropyLoss<float>& loss) {
  if (result.stop_reason) out << "Stopped after epoch " << result.history.back().epoch << ": " << *result.stop_reason << "\n";
  if (const auto* early = callbacks.early_stopping.get(); early && early->RestoredEpoch() > 0) {
    out << "Restored the weights of epoch " << early->RestoredEpoch() << " ("
        << dlb::MonitorName(early->Options().monitor) << " " << early->Best() << ")\n";
  }
  if (callbacks.history) out << "History written to " << callbacks.history->Path() << "\n";
  const dlb::PassResult test = dlb::Evaluate(model, sets.Test(), loss);
  char line[64];
  std::snprintf(line, sizeof line, "Test accuracy: %.4f\n", test.score);
  out << line;
  return test.score;
}

}  // namespace control
