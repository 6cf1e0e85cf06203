// EarlyStopping: on a run made to overfit it stops at the epoch the rule gives and puts back
// the best epoch's weights, buffers included; scripted validation values check the rule's
// details (min_delta, patience, accuracy, restoring at the end of a run that was not stopped).

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dlb/core/state.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/training/early_stopping.hpp"
#include "dlb/training/train.hpp"
#include "support/helpers.hpp"
#include "support/training_run.hpp"

using Catch::Matchers::WithinRel;
using dlb::Index;
using dlb::Matrix;
using dlb_test::MessageContains;
using dlb_test::ScriptedValidation;
using dlb_test::TrainingRun;

namespace {

/// Identity in the forward pass that, in Mode::Train, keeps an exponential running mean of
/// its input per feature as a buffer: stands in for batch norm's running statistics.
class RunningMean {
 public:
  using Scalar = float;
  explicit RunningMean(Index features) : mean_(Matrix<float>::Zero(features, 1)) {}
  std::string Name() const { return "RunningMean"; }
  dlb::Shape OutputShape(const dlb::Shape& input) const { return input; }
  void Forward(const dlb::ConstMatrixRef<float>& x, Matrix<float>& y, dlb::Mode mode) {
    y = x;
    if (mode == dlb::Mode::Train) mean_ = 0.9f * mean_ + 0.1f * x.rowwise().mean();
  }
  void Backward(const dlb::ConstMatrixRef<float>&, const dlb::ConstMatrixRef<float>&,
                const dlb::ConstMatrixRef<float>& dy, Matrix<float>* dx) {
    if (dx != nullptr) *dx = dy;
  }
  std::vector<dlb::StateRef<float>> State() { return {{"running_mean", &mean_, dlb::StateKind::Buffer}}; }

 private:
  Matrix<float> mean_;
};

bool SameState(const dlb::StateDict& a, const dlb::StateDict& b) {
  if (a.Size() != b.Size()) return false;
  for (std::size_t i = 0; i < a.Size(); ++i) {
    const auto& [name_a, tensor_a] = a.Entries()[i];
    const auto& [name_b, tensor_b] = b.Entries()[i];
    if (name_a != name_b || tensor_a.shape != tensor_b.shape || tensor_a.data != tensor_b.data) return false;
  }
  return true;
}

/// Keeps a copy of the model's weights after every epoch.
struct Snapshots : dlb::Callback<float> {
  std::vector<dlb::StateDict> after_epoch;
  void OnEpochEnd(dlb::TrainingContext<float>& context, dlb::EpochStats&) override {
    after_epoch.push_back(context.model.SaveState(dlb::StateScope::Weights));
  }
};

/// The rule applied to a finished history: the epoch that stops (0: none) and the best one.
struct Expected {
  int stop = 0;
  int best = 0;
};
Expected ApplyRule(const std::vector<dlb::EpochStats>& history, int patience, double min_delta) {
  Expected expected;
  double best = 1e300;
  int wait = 0;
  for (const auto& stats : history) {
    if (stats.val_loss < best - min_delta) {
      best = stats.val_loss;
      expected.best = stats.epoch;
      wait = 0;
    } else if (++wait >= patience) {
      expected.stop = stats.epoch;
      break;
    }
  }
  return expected;
}

}  // namespace

TEST_CASE("EarlyStopping stops an overfitting run at the right epoch and restores the best "
          "weights and buffers", "[early_stopping]") {
  // 40 training samples, 30% of their labels noise, and a wide network: the validation loss
  // falls while the signal is learnt, then rises as the noise is memorised.
  auto train_data = dlb_test::ClassificationData(40, 7, /*noise=*/0.3);
  auto validation_data = dlb_test::ClassificationData(60, 8);
  dlb::ModelNN<float> model(dlb::Shape(4), 3);
  model.Add(dlb::Linear<float>(4, 64)).Add(dlb::ReLU<float>()).Add(RunningMean(64))
      .Add(dlb::Linear<float>(64, 3));
  dlb::Optimizer optimizer(model, dlb::SGD<float>(0.05f));
  dlb::CrossEntropyLoss<float> loss;
  dlb::DataSet<float> train(train_data.first, train_data.second,
                            {.batch_size = 8, .drop_last = true, .seed = 3});
  dlb::DataSet<float> validation(validation_data.first, validation_data.second,
                                 {.batch_size = 30, .shuffle = false});

  const int patience = 4;
  const double min_delta = 1e-3;
  Snapshots snapshots;
  dlb::EarlyStopping<float> early({.monitor = dlb::Monitor::ValLoss,
                                   .patience = patience,
                                   .min_delta = min_delta,
                                   .restore_best = true});
  const int max_epochs = 200;
  const dlb::TrainResult result = dlb::TrainModel(model, train, validation, loss, optimizer,
                                                  {.epochs = max_epochs}, {&snapshots, &early});

  const Expected expected = ApplyRule(result.history, patience, min_delta);
  INFO("best epoch " << expected.best << ", stop " << expected.stop);
  // The run did overfit: it learnt for a while, then got worse, and stopped well before the end.
  REQUIRE(expected.best > 5);
  REQUIRE(expected.stop == expected.best + patience);
  REQUIRE(expected.stop < max_epochs);
  REQUIRE(result.history.back().val_loss > result.history[static_cast<std::size_t>(expected.best - 1)].val_loss);

  CHECK(static_cast<int>(result.history.size()) == expected.stop);
  CHECK(early.StoppedEpoch() == expected.stop);
  CHECK(early.BestEpoch() == expected.best);
  CHECK(early.RestoredEpoch() == expected.best);
  REQUIRE(result.stop_reason.has_value());
  CHECK_THAT(*result.stop_reason,
             Catch::Matchers::Contains("early stopping: val_loss has not improved by more than 0.001 "
                                       "for 4 epochs (best ") &&
                 Catch::Matchers::Contains("at epoch " + std::to_string(expected.best) + ")"));

  // The model holds exactly the weights and the buffer it had after the best epoch...
  const dlb::StateDict now = model.SaveState();
  CHECK(SameState(now, snapshots.after_epoch[static_cast<std::size_t>(expected.best - 1)]));
  // ...which differ from those of the last epoch, buffer included.
  const dlb::StateDict& last = snapshots.after_epoch.back();
  CHECK(now.At("2.running_mean").data != last.At("2.running_mean").data);
  CHECK(now.At("0.weight").data != last.At("0.weight").data);
  // And it scores the best epoch's validation loss again.
  CHECK_THAT(dlb::Evaluate(model, validation, loss).loss,
             WithinRel(result.history[static_cast<std::size_t>(expected.best - 1)].val_loss, 1e-12));
}

TEST_CASE("EarlyStopping on accuracy: an improvement must exceed min_delta", "[early_stopping]") {
  TrainingRun run;
  ScriptedValidation script;
  script.score = true;
  script.values = {0.5, 0.6, 0.605, 0.6, 0.7, 0.8};  // 0.605 is within min_delta of 0.6
  Snapshots snapshots;
  dlb::EarlyStopping<float> early(
      {.monitor = dlb::Monitor::ValScore, .patience = 2, .min_delta = 0.01, .restore_best = true});
  const auto result = dlb::TrainModel(run.model, run.train, run.validation, run.loss, run.optimizer,
                                      {.epochs = 6}, {&script, &snapshots, &early});
  CHECK(result.history.size() == 4);
  CHECK(early.StoppedEpoch() == 4);
  CHECK(early.BestEpoch() == 2);
  CHECK(early.Best() == 0.6);
  CHECK(early.RestoredEpoch() == 2);
  CHECK(SameState(run.model.SaveState(), snapshots.after_epoch[1]));
  CHECK_THAT(*result.stop_reason, Catch::Matchers::Contains("val_acc has not improved by more than "
                                                            "0.01 for 2 epochs (best 0.6000 at epoch 2)"));
}

TEST_CASE("EarlyStopping restores the best weights when the run ends without a stop",
          "[early_stopping]") {
  TrainingRun run;
  ScriptedValidation script;
  script.values = {1.0, 0.5, 0.6, 0.7};
  Snapshots snapshots;
  dlb::EarlyStopping<float> early({.patience = 5});
  const auto result = dlb::TrainModel(run.model, run.train, run.validation, run.loss, run.optimizer,
                                      {.epochs = 4}, {&script, &snapshots, &early});
  CHECK(result.history.size() == 4);
  CHECK_FALSE(result.stop_reason.has_value());
  CHECK(early.StoppedEpoch() == 0);
  CHECK(early.RestoredEpoch() == 2);
  CHECK(SameState(run.model.SaveState(), snapshots.after_epoch[1]));
}

TEST_CASE("EarlyStopping keeps the weights when the last epoch is the best or restore_best is "
          "off", "[early_stopping]") {
  SECTION("the last epoch is the best") {
    TrainingRun run;
    ScriptedValidation script;
    script.values = {1.0, 0.9, 0.8};
    Snapshots snapshots;
    dlb::EarlyStopping<float> early({.patience = 1});
    dlb::TrainModel(run.model, run.train, run.validation, run.loss, run.optimizer, {.epochs = 3},
                    {&script, &snapshots, &early});
    CHECK(early.RestoredEpoch() == 0);
    CHECK(SameState(run.model.SaveState(), snapshots.after_epoch.back()));
  }
  SECTION("patience 0 stops at the first epoch without improvement; restore_best off") {
    TrainingRun run;
    ScriptedValidation script;
    script.values = {1.0, 0.9, 0.95, 0.5};
    Snapshots snapshots;
    dlb::EarlyStopping<float> early({.patience = 0, .restore_best = false});
    const auto result = dlb::TrainModel(run.model, run.train, run.validation, run.loss,
                                        run.optimizer, {.epochs = 4}, {&script, &snapshots, &early});
    CHECK(result.history.size() == 3);
    CHECK(early.StoppedEpoch() == 3);
    CHECK(early.RestoredEpoch() == 0);
    CHECK(SameState(run.model.SaveState(), snapshots.after_epoch.back()));
  }
}

TEST_CASE("EarlyStopping's counters are its State(); bad settings are rejected", "[early_stopping]") {
  TrainingRun run;
  ScriptedValidation script;
  script.values = {1.0, 0.5, 0.7};
  dlb::EarlyStopping<float> early({.patience = 3});
  dlb::TrainModel(run.model, run.train, run.validation, run.loss, run.optimizer, {.epochs = 3},
                  {&script, &early});
  dlb::StateDict state;
  dlb::CollectState(early.State(), dlb::StateScope::Checkpoint, state, "callbacks.early_stopping.");
  CHECK(early.StateName() == "early_stopping");
  CHECK(state.At("callbacks.early_stopping.best").Values<double>() == std::vector<double>{0.5});
  CHECK(state.At("callbacks.early_stopping.best_epoch").Values<std::int64_t>() ==
        std::vector<std::int64_t>{2});
  CHECK(state.At("callbacks.early_stopping.wait").Values<std::int64_t>() == std::vector<std::int64_t>{1});

  REQUIRE_THROWS_MATCHES(dlb::EarlyStopping<float>({.patience = -1}), dlb::ArgumentError,
                         MessageContains({"EarlyStopping: patience must be >= 0, got -1"}));
  REQUIRE_THROWS_MATCHES(dlb::EarlyStopping<float>({.min_delta = -0.1}), dlb::ArgumentError,
                         MessageContains({"EarlyStopping: min_delta must be finite and >= 0, got -0.1"}));
}
