// Training loop: end-to-end runs on separable synthetic data, the history and log format,
// pass statistics, and divergence detection with parameter restoration.

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <optional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/metrics/accuracy.hpp"
#include "dlb/model/model.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/adamw.hpp"
#include "dlb/optimizers/momentum.hpp"
#include "dlb/optimizers/nesterov.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/optimizers/sgd.hpp"
#include "dlb/training/divergence_guard.hpp"
#include "dlb/training/callback.hpp"
#include "dlb/training/train.hpp"
#include "support/helpers.hpp"

using Catch::Matchers::Contains;
using dlb::Index;
using dlb::Labels;
using dlb::Matrix;
using dlb_test::What;

namespace {

constexpr Index kFeatures = 16;
constexpr int kClasses = 4;

/// 1600 training and 400 validation samples of 4 Gaussian clusters in 16 dimensions, drawn
/// around the same centres (one data set split by columns).
struct Problem {
  Matrix<float> x_train, x_val;
  Labels y_train, y_val;
  Problem() {
    const auto all = dlb_test::MakeClusters<float>(kFeatures, 2000, kClasses, 31);
    x_train = all.x.leftCols(1600);
    y_train = all.y.head(1600);
    x_val = all.x.rightCols(400);
    y_val = all.y.tail(400);
  }
};

void BuildClassifier(dlb::ModelNN<float>& model) {
  model.Add(dlb::Linear<float>(kFeatures, 32))
      .Add(dlb::ReLU<float>())
      .Add(dlb::Linear<float>(32, kClasses));
}

bool AllParametersFinite(dlb::ModelNN<float>& model) {
  for (const auto& p : model.Parameters()) {
    if (!p.value->allFinite()) return false;
  }
  return true;
}

/// True when both models hold bitwise the same parameters.
bool ParameterValuesEqual(dlb::ModelNN<float>& a, dlb::ModelNN<float>& b) {
  const auto pa = a.Parameters(), pb = b.Parameters();
  if (pa.size() != pb.size()) return false;
  for (std::size_t k = 0; k < pa.size(); ++k) {
    if (*pa[k].value != *pb[k].value) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("FormatEpoch produces the notebook's line") {
  const dlb::EpochStats stats{.epoch = 3,
                              .train_loss = 0.345,
                              .val_loss = 0.371,
                              .train_score = 0.874,
                              .val_score = 0.866,
                              .seconds = 1.234};
  CHECK(dlb::FormatEpoch(stats, 10) ==
        "Epoch    3 / 10: | Train Loss:  0.345 | Val Loss:  0.371 | Train Acc:  0.874 | "
        "Val Acc:  0.866 | Epoch Time:  1.234 |");
  const dlb::EpochStats wide{.epoch = 120,
                             .train_loss = 12.5,
                             .val_loss = 0.0004,
                             .train_score = 1.0,
                             .val_score = 0.0,
                             .seconds = 65.4321};
  CHECK(dlb::FormatEpoch(wide, 1000) ==
        "Epoch  120 / 1000: | Train Loss: 12.500 | Val Loss:  0.000 | Train Acc:  1.000 | "
        "Val Acc:  0.000 | Epoch Time: 65.432 |");
  // A huge but finite loss (a double model on its way to diverging) is printed in full
  // (1e250 is just below 10^250 as a double, so it prints as 9999...).
  const dlb::EpochStats huge{.epoch = 1,
                             .train_loss = 1e250,
                             .val_loss = 2.0,
                             .train_score = 0.5,
                             .val_score = 0.25,
                             .seconds = 1.5};
  const std::string line = dlb::FormatEpoch(huge, 2);
  CHECK_THAT(line, Catch::Matchers::StartsWith("Epoch    1 / 2: | Train Loss: 9999") &&
                       Catch::Matchers::EndsWith(
                           " | Val Loss:  2.000 | Train Acc:  0.500 | Val Acc:  0.250 | "
                           "Epoch Time:  1.500 |"));
  CHECK(line.size() > 250);
}

TEST_CASE("TrainModel reaches >= 95% validation accuracy on separable clusters") {
  const Problem problem;
  struct Case {
    const char* name;
    std::function<dlb::Optimizer<float>(dlb::ModelNN<float>&)> make;
  };
  const Case cases[] = {
      {"SGD", [](auto& m) { return dlb::Optimizer<float>(m, dlb::SGD<float>(0.05f)); }},
      {"Momentum",
       [](auto& m) { return dlb::Optimizer<float>(m, dlb::Momentum<float>(0.01f, 0.9f)); }},
      {"Nesterov",
       [](auto& m) { return dlb::Optimizer<float>(m, dlb::Nesterov<float>(0.01f, 0.9f)); }},
      {"Adam", [](auto& m) { return dlb::Optimizer<float>(m, dlb::Adam<float>(0.01f)); }},
      {"AdamW", [](auto& m) { return dlb::Optimizer<float>(m, dlb::AdamW<float>(0.01f)); }},
  };
  constexpr int kEpochs = 3;
  for (const Case& c : cases) {
    INFO("optimizer " << c.name);
    dlb::ModelNN<float> model(kFeatures, 11);
    BuildClassifier(model);
    dlb::DataSet<float> train(problem.x_train, problem.y_train,
                              {.batch_size = 32, .drop_last = true, .seed = 12});
    dlb::DataSet<float> val(problem.x_val, problem.y_val, {.batch_size = 100, .shuffle = false});
    dlb::CrossEntropyLoss<float> loss;
    dlb::Optimizer<float> optimizer = c.make(model);
    model.SetMode(dlb::Mode::Inference);
    const double untrained = dlb::ScoreAccLogits(model.Forward(problem.x_val), problem.y_val);
    CHECK(untrained < 0.6);  // the accuracy below is learned, not given
    std::ostringstream log;
    dlb::TrainOptions options;
    options.epochs = kEpochs;
    options.log = &log;
    const auto history = dlb::TrainModel(model, train, val, loss, optimizer, options).history;

    REQUIRE(history.size() == kEpochs);
    CHECK(optimizer.StepCount() == kEpochs * train.NumBatches());
    std::string expected_log;
    for (int e = 0; e < kEpochs; ++e) {
      const dlb::EpochStats& s = history[static_cast<std::size_t>(e)];
      CHECK(s.epoch == e + 1);
      CHECK(std::isfinite(s.train_loss));
      CHECK(std::isfinite(s.val_loss));
      CHECK(s.train_loss > 0);
      CHECK(s.val_loss > 0);
      CHECK((s.train_score >= 0 && s.train_score <= 1));
      CHECK((s.val_score >= 0 && s.val_score <= 1));
      CHECK(s.seconds >= 0);
      expected_log += dlb::FormatEpoch(s, kEpochs) + "\n";
    }
    CHECK(log.str() == expected_log);
    CHECK(history.back().train_loss < history.front().train_loss);
    CHECK(history.back().val_score >= 0.95);
    // The reported validation numbers are those of the final model.
    model.SetMode(dlb::Mode::Inference);
    const Matrix<float> logits = model.Forward(problem.x_val);
    CHECK(history.back().val_score == Approx(dlb::ScoreAccLogits(logits, problem.y_val)));
    CHECK(history.back().val_loss ==
          Approx(loss.Value(logits, problem.y_val)).epsilon(1e-5));
  }
}

TEST_CASE("Evaluate and TrainEpoch: loss and score are the sample-weighted means of the pass") {
  const auto data = dlb_test::MakeClusters<float>(kFeatures, 10, kClasses, 41);
  dlb::ModelNN<float> model(kFeatures, 2);
  BuildClassifier(model);
  dlb::CrossEntropyLoss<float> loss;
  model.SetMode(dlb::Mode::Inference);
  const Matrix<float> logits = model.Forward(data.x);
  const double full_loss = loss.Value(logits, data.y);
  const double full_score = dlb::ScoreAccLogits(logits, data.y);

  // Batches of 3, 3, 3, 1: an unweighted mean of batch losses would differ.
  dlb::DataSet<float> all(data.x, data.y, {.batch_size = 3, .seed = 5});
  const dlb::PassResult pass = dlb::Evaluate(model, all, loss);
  CHECK(pass.samples == 10);
  CHECK(pass.loss == Approx(full_loss).epsilon(1e-6));
  CHECK(pass.score == Approx(full_score).epsilon(1e-12));

  dlb::DataSet<float> dropping(data.x, data.y,
                               {.batch_size = 3, .shuffle = false, .drop_last = true});
  CHECK(dlb::Evaluate(model, dropping, loss).samples == 9);

  // A training pass steps once per batch, in training mode, and its running statistics are
  // the pass's weighted means.
  dlb::Optimizer<float> optimizer(model, dlb::SGD<float>(0.01f));
  const auto before = *model.Parameters()[0].value;
  const std::vector<dlb::EpochStats> history;
  dlb::TrainingContext<float> context{model, optimizer, all, history};
  context.epoch = 1;
  const dlb::PassResult fit = dlb::TrainEpoch(context, loss);
  CHECK(optimizer.StepCount() == 4);
  CHECK(fit.samples == 10);
  CHECK(context.batch == 4);
  CHECK(context.batches == 4);
  CHECK(*model.Parameters()[0].value != before);
  CHECK(model.GetMode() == dlb::Mode::Train);

  dlb::TrainOptions options;
  options.epochs = 0;
  REQUIRE_THROWS_MATCHES(dlb::TrainModel(model, all, all, loss, optimizer, options),
                         dlb::ArgumentError, What(Contains("epochs")));
  options.epochs = 3;
  options.initial_epoch = 4;
  REQUIRE_THROWS_MATCHES(dlb::TrainModel(model, all, all, loss, optimizer, options),
                         dlb::ArgumentError, What(Contains("initial_epoch 4")));
}

TEST_CASE("TrainModel with BatchNorm: a kept last batch of one sample is a clear error, not NaN") {
  // 10 samples in batches of 3: drop_last = false (the default) keeps a last batch of 1, on
  // which BatchNorm's unbiased running variance (n/(n-1) times the batch's) divides by 0;
  // torch raises there, and so must we, naming the way out. drop_last = true trains (the
  // negative control).
  const auto data = dlb_test::MakeClusters<float>(kFeatures, 10, kClasses, 43);
  for (const bool drop_last : {false, true}) {
    CAPTURE(drop_last);
    dlb::ModelNN<float> model(kFeatures, 3);
    model.Add(dlb::Linear<float>(kFeatures, 8))
        .Add(dlb::BatchNorm1D<float>(8))
        .Add(dlb::ReLU<float>())
        .Add(dlb::Linear<float>(8, kClasses));
    dlb::Optimizer<float> optimizer(model, dlb::SGD<float>(0.1f));
    dlb::CrossEntropyLoss<float> loss;
    dlb::DataSet<float> train(data.x, data.y, {.batch_size = 3, .drop_last = drop_last});
    dlb::DataSet<float> validation(data.x, data.y, {.batch_size = 10, .shuffle = false});
    const auto run = [&] {
      dlb::TrainModel(model, train, validation, loss, optimizer, {.epochs = 1});
    };
    if (drop_last) {
      CHECK_NOTHROW(run());
      CHECK(AllParametersFinite(model));
    } else {
      CHECK_THROWS_MATCHES(run(), dlb::ShapeError,
                           What(Contains("BatchNorm1D(8): training needs more than one value") &&
                                Contains("got 1") && Contains("drop_last")));
    }
  }
}

TEST_CASE("TrainModel: a diverging run throws DivergenceError and keeps finite parameters") {
  // Unnormalised features (x 1000) and SGD with lr 1e6 blow up within a few batches.
  Problem problem;
  problem.x_train *= 1000.0f;
  dlb::ModelNN<float> model(kFeatures, 3);
  BuildClassifier(model);
  dlb::DataSet<float> train(problem.x_train, problem.y_train,
                            {.batch_size = 32, .drop_last = true, .seed = 4});
  dlb::DataSet<float> val(problem.x_val, problem.y_val, {.batch_size = 100, .shuffle = false});
  dlb::CrossEntropyLoss<float> loss;
  dlb::Optimizer<float> optimizer(model, dlb::SGD<float>(1e6f));
  dlb::TrainOptions options;
  options.epochs = 3;

  bool thrown = false;
  try {
    dlb::TrainModel(model, train, val, loss, optimizer, options);
  } catch (const dlb::DivergenceError& e) {
    thrown = true;
    INFO(e.what());
    CHECK(e.Epoch() >= 1);
    CHECK(e.Epoch() <= 3);
    CHECK(e.BatchNumber() >= 1);
    CHECK(e.BatchNumber() <= train.NumBatches());
    CHECK_THAT(std::string(e.what()),
               Contains("training diverged at epoch " + std::to_string(e.Epoch()) + ", batch " +
                        std::to_string(e.BatchNumber()) + ": "));
  }
  REQUIRE(thrown);
  CHECK(AllParametersFinite(model));

  SECTION("without the guard the same run does not throw and reports a non-finite loss") {
    dlb::ModelNN<float> unguarded(kFeatures, 3);
    BuildClassifier(unguarded);
    dlb::Optimizer<float> sgd(unguarded, dlb::SGD<float>(1e6f));
    dlb::DataSet<float> train2(problem.x_train, problem.y_train,
                               {.batch_size = 32, .drop_last = true, .seed = 4});
    options.guard_divergence = false;
    std::vector<dlb::EpochStats> history;
    REQUIRE_NOTHROW(history = dlb::TrainModel(unguarded, train2, val, loss, sgd, options).history);
    CHECK_FALSE(std::isfinite(history.back().train_loss));
  }
}

TEST_CASE("DivergenceGuard: checks loss, gradients and parameters, restores the last values") {
  Matrix<float> w = Matrix<float>::Ones(2, 2), gw = Matrix<float>::Zero(2, 2);
  Matrix<float> b = Matrix<float>::Zero(2, 1), gb = Matrix<float>::Zero(2, 1);
  dlb::DivergenceGuard<float> guard({{"0.weight", &w, &gw}, {"0.bias", &b, &gb}});
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();

  CHECK(dlb::AllFinite(w));
  CHECK_FALSE(dlb::AllFinite(Matrix<float>::Constant(2, 2, inf)));
  Matrix<float> one_nan = Matrix<float>::Zero(3, 3);
  one_nan(2, 1) = nan;
  CHECK_FALSE(dlb::AllFinite(one_nan));

  CHECK_NOTHROW(guard.CheckLoss(1.5, 1, 1));
  REQUIRE_THROWS_MATCHES(guard.CheckLoss(std::nan(""), 2, 5), dlb::DivergenceError,
                         What(Contains("epoch 2, batch 5") && Contains("loss")));
  bool thrown = false;
  try {
    guard.CheckLoss(INFINITY, 4, 9);
  } catch (const dlb::DivergenceError& e) {
    thrown = true;
    CHECK(e.Epoch() == 4);
    CHECK(e.BatchNumber() == 9);
  }
  CHECK(thrown);

  CHECK_NOTHROW(guard.CheckGradients(1, 1));
  gb(1) = nan;
  REQUIRE_THROWS_MATCHES(guard.CheckGradients(1, 2), dlb::DivergenceError,
                         What(Contains("0.bias")));
  gb(1) = 0;

  guard.Snapshot();
  w(0, 0) = 5;  // a finite "update": kept
  CHECK_NOTHROW(guard.CheckParametersOrRestore(1, 3));
  CHECK(w(0, 0) == 5);
  guard.Snapshot();
  w(1, 1) = inf;  // a non-finite update: every parameter goes back to the snapshot
  b(0) = 7;
  REQUIRE_THROWS_MATCHES(guard.CheckParametersOrRestore(1, 4), dlb::DivergenceError,
                         What(Contains("0.weight") && Contains("restored")));
  Matrix<float> expected = Matrix<float>::Ones(2, 2);
  expected(0, 0) = 5;
  CHECK(w == expected);
  CHECK(b.isZero(0));
}

TEST_CASE("TrainModel: callbacks see every moment in order and can stop training") {
  const Problem problem;
  dlb::ModelNN<float> model(kFeatures, 5);
  BuildClassifier(model);
  dlb::DataSet<float> train(problem.x_train, problem.y_train,
                            {.batch_size = 400, .drop_last = true, .seed = 6});  // 4 batches
  dlb::DataSet<float> val(problem.x_val, problem.y_val, {.batch_size = 100, .shuffle = false});
  dlb::CrossEntropyLoss<float> loss;
  dlb::Optimizer<float> optimizer(model, dlb::SGD<float>(0.05f));

  std::vector<std::string> events;
  struct Recorder : dlb::Callback<float> {
    std::vector<std::string>* events;
    int stop_after_epoch = 0;
    void OnTrainBegin(dlb::TrainingContext<float>&) override { events->push_back("begin"); }
    void OnEpochBegin(dlb::TrainingContext<float>& c) override {
      events->push_back("epoch " + std::to_string(c.epoch));
    }
    void AfterBackward(dlb::TrainingContext<float>& c) override {
      // Gradients are ready and the step has not run yet.
      CHECK(c.optimizer.StepCount() == (c.epoch - 1) * c.batches + c.batch - 1);
      events->push_back("backward " + std::to_string(c.batch));
    }
    void OnBatchEnd(dlb::TrainingContext<float>& c) override {
      CHECK(c.optimizer.StepCount() == (c.epoch - 1) * c.batches + c.batch);
      CHECK(c.running.samples == 400 * c.batch);
      events->push_back("batch " + std::to_string(c.batch));
    }
    void OnEpochEnd(dlb::TrainingContext<float>& c, dlb::EpochStats& stats) override {
      CHECK(&stats == &c.history.back());
      CHECK(stats.lr == Approx(0.05));
      events->push_back("end " + std::to_string(stats.epoch));
      if (stats.epoch == stop_after_epoch) c.RequestStop("enough");
    }
    void OnTrainEnd(dlb::TrainingContext<float>&) override { events->push_back("done"); }
  } recorder;
  recorder.events = &events;
  recorder.stop_after_epoch = 2;
  dlb::TrainOptions options;
  options.epochs = 5;
  const dlb::TrainResult result = dlb::TrainModel(model, train, val, loss, optimizer, options, {&recorder});
  const std::vector<std::string> expected = {
      "begin",   "epoch 1",    "backward 1", "batch 1", "backward 2", "batch 2",
      "backward 3", "batch 3", "backward 4", "batch 4", "end 1",      "epoch 2",
      "backward 1", "batch 1", "backward 2", "batch 2", "backward 3", "batch 3",
      "backward 4", "batch 4", "end 2",      "done"};
  CHECK(events == expected);
  CHECK(result.history.size() == 2);
  REQUIRE(result.stop_reason.has_value());
  CHECK(*result.stop_reason == "enough");

  // A stop requested in the middle of an epoch ends it after that batch.
  dlb::LambdaCallback<float> mid_epoch;
  mid_epoch.on_batch_end = [](dlb::TrainingContext<float>& c) {
    if (c.batch == 2) c.RequestStop("mid-epoch");
  };
  const auto steps = optimizer.StepCount();
  const auto stopped = dlb::TrainModel(model, train, val, loss, optimizer, options, {&mid_epoch});
  CHECK(optimizer.StepCount() == steps + 2);
  CHECK(stopped.history.size() == 1);
  CHECK(stopped.stop_reason == std::optional<std::string>("mid-epoch"));
}

TEST_CASE("Resuming from the saved states after epoch k reproduces the uninterrupted run bitwise") {
  const Problem problem;
  auto build = [] {
    dlb::ModelNN<float> model(kFeatures, 21);
    model.Add(dlb::Linear<float>(kFeatures, 32)).Add(dlb::ReLU<float>())
        .Add(dlb::Dropout<float>(0.2f)).Add(dlb::Linear<float>(32, kClasses));
    return model;
  };
  dlb::DataSet<float> val(problem.x_val, problem.y_val, {.batch_size = 100, .shuffle = false});
  dlb::CrossEntropyLoss<float> loss;
  dlb::TrainOptions options;
  options.epochs = 4;

  dlb::ModelNN<float> straight = build();
  dlb::DataSet<float> straight_train(problem.x_train, problem.y_train,
                                     {.batch_size = 64, .drop_last = true, .seed = 22});
  dlb::Optimizer<float> straight_opt(straight, dlb::Adam<float>(1e-2f));
  dlb::TrainModel(straight, straight_train, val, loss, straight_opt, options);

  // Two epochs, then everything a checkpoint holds is copied out ...
  dlb::ModelNN<float> first = build();
  dlb::DataSet<float> first_train(problem.x_train, problem.y_train,
                                  {.batch_size = 64, .drop_last = true, .seed = 22});
  dlb::Optimizer<float> first_opt(first, dlb::Adam<float>(1e-2f));
  options.epochs = 2;
  dlb::TrainModel(first, first_train, val, loss, first_opt, options);
  const dlb::StateDict model_state = first.SaveState(dlb::StateScope::Checkpoint);
  const dlb::StateDict optimizer_state = first_opt.SaveState();
  const dlb::StateDict data_state = first_train.SaveState();

  // ... and restored into fresh objects built with other seeds, which train epochs 3 and 4.
  dlb::ModelNN<float> resumed(kFeatures, 99);
  resumed.Add(dlb::Linear<float>(kFeatures, 32)).Add(dlb::ReLU<float>())
      .Add(dlb::Dropout<float>(0.2f)).Add(dlb::Linear<float>(32, kClasses));
  dlb::DataSet<float> resumed_train(problem.x_train, problem.y_train,
                                    {.batch_size = 64, .drop_last = true, .seed = 98});
  dlb::Optimizer<float> resumed_opt(resumed, dlb::Adam<float>(0.5f));
  resumed.LoadState(model_state, dlb::StateScope::Checkpoint);
  resumed_opt.LoadState(optimizer_state);
  resumed_train.LoadState(data_state);
  CHECK(resumed_opt.StepCount() == first_opt.StepCount());
  CHECK(resumed_opt.LearningRate() == 1e-2f);
  options.epochs = 4;
  options.initial_epoch = 2;
  const auto rest = dlb::TrainModel(resumed, resumed_train, val, loss, resumed_opt, options);
  CHECK(rest.history.front().epoch == 3);
  CHECK(ParameterValuesEqual(resumed, straight));
}

TEST_CASE("DataSet::LoadState rejects an order that is not a permutation") {
  const Problem problem;
  dlb::DataSet<float> data(problem.x_val, problem.y_val,
                           {.batch_size = 100, .drop_last = true, .seed = 1});
  dlb::StateDict state = data.SaveState();
  auto order = state.At("order").Values<std::int64_t>();
  order[3] = order[4];  // a duplicate
  *state.Find("order") = dlb::Tensor::FromValues(dlb::DType::I64, {400}, order);
  const dlb::StateDict good = data.SaveState();
  REQUIRE_THROWS_MATCHES(data.LoadState(state), dlb::StateError,
                         What(Contains("not a permutation of the 400 samples")));
  CHECK(data.SaveState().At("order").data == good.At("order").data);  // unchanged
  order.pop_back();
  *state.Find("order") = dlb::Tensor::FromValues(dlb::DType::I64, {399}, order);
  REQUIRE_THROWS_AS(data.LoadState(state), dlb::StateError);
}
