// Real-valued targets: DataSet batches of a target matrix, TrainModel/Evaluate with MseLoss
// (regression, R^2/MSE/MAE) and BCEWithLogitsLoss (multi-label, element accuracy), the
// metrics by hand, and the errors for a loss that does not take the data's targets.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "dlb/layers/activations.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/losses/bce_with_logits.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/losses/mse.hpp"
#include "dlb/metrics/target_metrics.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/make_optimizer.hpp"
#include "dlb/training/progress.hpp"
#include "dlb/training/train.hpp"
#include "support/helpers.hpp"

using dlb::Index;
using dlb::Matrix;

namespace {

/// x uniform in [-1, 1]^2 (2 x n), y = (sin(2 x0) + x1^2, x0 - x1) (2 x n).
struct Regression {
  Matrix<float> x, y;
  explicit Regression(Index n, std::uint64_t seed) : x(dlb_test::RandomMatrix<float>(2, n, seed)), y(2, n) {
    for (Index j = 0; j < n; ++j) {
      y(0, j) = std::sin(2 * x(0, j)) + x(1, j) * x(1, j);
      y(1, j) = x(0, j) - x(1, j);
    }
  }
};

dlb::ModelNN<float> SmallNet(Index in, Index out, std::uint64_t seed) {
  dlb::ModelNN<float> model(in, seed);
  model.Add(dlb::Linear<float>(in, 32)).Add(dlb::Tanh<float>()).Add(dlb::Linear<float>(32, out));
  return model;
}

}  // namespace

TEST_CASE("targets: a DataSet of a target matrix gives each sample's column with its features",
          "[targets]") {
  Matrix<float> x(1, 10), y(2, 10);
  for (Index j = 0; j < 10; ++j) x(0, j) = static_cast<float>(j), y(0, j) = 10.0f * j, y(1, j) = -1.0f * j;
  for (const bool shuffle : {false, true}) {
    dlb::DataSet<float> data(x, y, {.batch_size = 4, .shuffle = shuffle, .seed = 3});
    CHECK(data.Kind() == dlb::TargetKind::Values);
    CHECK_FALSE(data.HasLabels());
    CHECK(data.NumTargets() == 2);
    Index seen = 0;
    for (const auto& batch : data) {
      REQUIRE(batch.targets.rows() == 2);
      REQUIRE(batch.targets.cols() == batch.x.cols());
      CHECK(batch.y.size() == 0);
      for (Index j = 0; j < batch.x.cols(); ++j) {
        CHECK(batch.targets(0, j) == 10.0f * batch.x(0, j));
        CHECK(batch.targets(1, j) == -batch.x(0, j));
      }
      seen += batch.x.cols();
    }
    CHECK(seen == 10);
  }
  Matrix<float> wrong(2, 9), empty(0, 10);
  CHECK_THROWS_AS(dlb::DataSet<float>(x, wrong, {.batch_size = 4}), dlb::ShapeError);
  CHECK_THROWS_AS(dlb::DataSet<float>(x, empty, {.batch_size = 4}), dlb::ShapeError);
}

TEST_CASE("targets: RegressionMeter and CountBinaryCorrect by hand", "[targets]") {
  Matrix<double> z(1, 4), y(1, 4);
  z << 1, 2, 3, 5;
  y << 1, 3, 3, 3;
  dlb::RegressionMeter meter;
  meter.Reset(1);
  meter.Add(z.leftCols(2), y.leftCols(2));
  meter.Add(z.rightCols(2), y.rightCols(2));
  // Errors 0, -1, 0, 2: MSE 5/4, MAE 3/4; mean(y) = 2.5, SS_tot = 2.25 + .25 + .25 + .25 = 3.
  CHECK(meter.Mse() == Approx(1.25));
  CHECK(meter.Mae() == Approx(0.75));
  CHECK(meter.R2() == Approx(1 - 5.0 / 3.0));
  meter.Reset(1);
  meter.Add(y, y);
  CHECK(meter.R2() == 1.0);
  Matrix<double> logits(2, 2), targets(2, 2);
  logits << 1, -1, -2, 0.5;
  targets << 1, 1, 0, 0;
  CHECK(dlb::CountBinaryCorrect(logits, targets) == 2);  // (1,1) right, (-1,1) wrong, (-2,0) right, (.5,0) wrong
}

TEST_CASE("targets: TrainModel fits a regression with MseLoss and reports R^2, MSE and MAE",
          "[targets]") {
  const Regression train(512, 1), test(256, 2);
  dlb::DataSet<float> train_set(train.x, train.y, {.batch_size = 32, .drop_last = true, .seed = 1});
  dlb::DataSet<float> test_set(test.x, test.y, {.batch_size = 64, .shuffle = false});
  dlb::ModelNN<float> model = SmallNet(2, 2, 1);
  dlb::Optimizer<float> optimizer = dlb::MakeOptimizer<float>("adam", model, 0.01f);
  dlb::MseLoss<float> loss;
  const dlb::PassResult before = dlb::Evaluate(model, test_set, loss);
  const dlb::TrainResult result = dlb::TrainModel(model, train_set, test_set, loss, optimizer, {.epochs = 30});
  const dlb::PassResult after = dlb::Evaluate(model, test_set, loss);
  CHECK(after.kind == dlb::ScoreKind::R2);
  CHECK(result.history.back().score_kind == dlb::ScoreKind::R2);
  CHECK(after.mse == Approx(after.loss).epsilon(1e-5));  // MseLoss is the mean over elements
  CHECK(after.mae > 0);
  CHECK(after.mae < std::sqrt(after.mse) + 1e-9);  // MAE <= RMSE
  CHECK(after.score > 0.95);
  CHECK(before.score < 0.5);  // the test can fail: untrained, R^2 is low
  CHECK(after.loss < before.loss / 10);
  CHECK(dlb::FormatEpoch(result.history.back(), 30).find("Val R2:") != std::string::npos);
}

TEST_CASE("targets: multi-label training with BCEWithLogitsLoss reports element accuracy",
          "[targets]") {
  // Three labels per sample: x0 > 0, x1 > 0, x0 + x1 > 0.5.
  Matrix<float> x = dlb_test::RandomMatrix<float>(2, 512, 5), y(3, 512);
  for (Index j = 0; j < x.cols(); ++j) {
    y(0, j) = x(0, j) > 0, y(1, j) = x(1, j) > 0, y(2, j) = x(0, j) + x(1, j) > 0.5f;
  }
  dlb::DataSet<float> train(x, y, {.batch_size = 32, .drop_last = true, .seed = 5});
  dlb::DataSet<float> eval(x, y, {.batch_size = 128, .shuffle = false});
  dlb::ModelNN<float> model = SmallNet(2, 3, 5);
  dlb::Optimizer<float> optimizer = dlb::MakeOptimizer<float>("adam", model, 0.01f);
  dlb::BCEWithLogitsLoss<float> loss;
  const double chance = dlb::Evaluate(model, eval, loss).score;
  const dlb::TrainResult result = dlb::TrainModel(model, train, eval, loss, optimizer, {.epochs = 15});
  CHECK(result.history.back().score_kind == dlb::ScoreKind::BinaryAccuracy);
  CHECK(result.history.back().val_score > 0.95);
  CHECK(chance < 0.9);
  CHECK(dlb::FormatEpoch(result.history.back(), 15).find("Val Bin Acc:") != std::string::npos);
}

TEST_CASE("targets: a loss that does not take the data's targets is refused with a message",
          "[targets]") {
  const Regression data(64, 3);
  dlb::DataSet<float> values(data.x, data.y, {.batch_size = 16, .drop_last = true});
  Matrix<float> x = dlb_test::RandomMatrix<float>(2, 64, 4);
  dlb::Labels labels = dlb::Labels::Zero(64);
  dlb::DataSet<float> classes(x, labels, {.batch_size = 16, .drop_last = true});
  dlb::ModelNN<float> model = SmallNet(2, 2, 1);
  dlb::Optimizer<float> optimizer = dlb::MakeOptimizer<float>("sgd", model);
  dlb::CrossEntropyLoss<float> cross_entropy;
  dlb::BCEWithLogitsLoss<float> bce;
  CHECK_THROWS_WITH(dlb::TrainModel(model, values, values, cross_entropy, optimizer, {.epochs = 1}),
                    Catch::Contains("takes class labels but the data set holds real-valued targets"));
  CHECK_THROWS_WITH(dlb::Evaluate(model, classes, bce),
                    Catch::Contains("takes real-valued targets but the data set holds class labels"));
  // MseLoss takes both: on labels it regresses one-hot vectors and reports accuracy.
  dlb::MseLoss<float> mse;
  CHECK(dlb::Evaluate(model, classes, mse).kind == dlb::ScoreKind::Accuracy);
  CHECK(dlb::Evaluate(model, values, mse).kind == dlb::ScoreKind::R2);
}
