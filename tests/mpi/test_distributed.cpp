// Data-parallel training under mpirun: every rank trains a replica on its shard of each global
// batch with GradientAllreduce, and the replicas must end where one process training on the
// whole global batch ends, to float rounding.
//
// Every rank runs every check on data it agrees on with the other ranks (or with CHECK,
// which does not leave the test case), so a failure never leaves a rank waiting in a
// collective call that another rank skipped.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "dlb/core/threads.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/distributed/gradient_allreduce.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/model/mlp.hpp"
#include "dlb/optimizers/make_optimizer.hpp"
#include "dlb/training/train.hpp"
#include "../support/helpers.hpp"
#include "world.hpp"

using dlb::Index;
using dlb::Matrix;

namespace {

constexpr Index kFeatures = 12;
constexpr int kClasses = 4;
constexpr Index kGlobalBatch = 16;  // divisible by 1, 2, 4, 8 and 16 ranks
constexpr int kEpochs = 2;          // 2 x 6 = 12 steps

/// 96 training and 40 validation samples of 4 Gaussian clusters.
struct Problem {
  Matrix<float> x_train, x_val;
  dlb::Labels y_train, y_val;
  Problem() {
    const auto all = dlb_test::MakeClusters<float>(kFeatures, 136, kClasses, 17);
    x_train = all.x.leftCols(96);
    y_train = all.y.head(96);
    x_val = all.x.rightCols(40);
    y_val = all.y.tail(40);
  }
};

/// One training run's outcome: the final parameters and the history.
struct Run {
  std::vector<Matrix<float>> weights;
  dlb::TrainResult result;
  Index bytes_per_step = 0;
  std::int64_t allreduce_calls = 0;
};

/// Trains the MLP 12-24-12-4 (seed 5, no dropout) with `optimizer` for kEpochs on the
/// global batch, shuffled with seed 9. With `communicator` the training set is sharded over
/// its ranks and the gradients averaged; with `average` false the shards train on their own
/// (the negative control).
Run Train(const Problem& p, const std::string& optimizer, dlb::Communicator* communicator,
          bool average = true) {
  dlb::ModelNN<float> model = dlb::MakeMlp<float>(kFeatures, {24, 12}, kClasses,
                                                  dlb::Activation::ReLU, dlb::Init::Kaiming, 5);
  dlb::Optimizer<float> opt = dlb::MakeOptimizer<float>(optimizer, model.Parameters(), 1e-2f);
  dlb::DataSet<float> train(p.x_train, p.y_train, kGlobalBatch, true, true, 9);
  dlb::DataSet<float> validation(p.x_val, p.y_val, 40, false, false);
  dlb::CrossEntropyLoss<float> loss;
  std::vector<dlb::Callback<float>*> callbacks;
  std::optional<dlb::GradientAllreduce<float>> allreduce;
  if (communicator != nullptr) {
    train.SetShard(communicator->Rank(), communicator->Size());
    if (average) {
      allreduce.emplace(*communicator);
      callbacks.push_back(&*allreduce);
    }
  }
  Run run;
  run.result = dlb::TrainModel(model, train, validation, loss, opt, {.epochs = kEpochs}, callbacks);
  for (const auto& parameter : model.Parameters()) run.weights.push_back(*parameter.value);
  if (allreduce) {
    run.bytes_per_step = allreduce->BytesPerStep();
    run.allreduce_calls = allreduce->Steps();
  }
  return run;
}

/// max over tensors of max_i |a_i - b_i| / max_i |a_i|: the largest difference relative to the
/// scale of its tensor (an element near 0 has no meaningful relative difference of its own).
double MaxRelativeDifference(const std::vector<Matrix<float>>& a, const std::vector<Matrix<float>>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a[i].size() == b[i].size());
    const double scale = static_cast<double>(a[i].cwiseAbs().maxCoeff());
    const double diff = static_cast<double>((a[i] - b[i]).cwiseAbs().maxCoeff());
    worst = std::max(worst, diff / std::max(scale, 1e-30));
  }
  return worst;
}

/// True on every rank when `local` holds on every rank.
bool OnAllRanks(bool local) {
  int value = local ? 1 : 0;
  dlb_test::World().AllreduceInPlace(&value, 1, MPI_MIN);
  return value == 1;
}

/// True when every rank holds bit-identical weights.
bool SameOnAllRanks(const std::vector<Matrix<float>>& weights) {
  bool same = true;
  for (const Matrix<float>& w : weights) {
    Matrix<float> low = w, high = w;
    dlb_test::World().AllreduceInPlace(low.data(), low.size(), MPI_MIN);
    dlb_test::World().AllreduceInPlace(high.data(), high.size(), MPI_MAX);
    same = same && low == w && high == w;
  }
  return OnAllRanks(same);
}

}  // namespace

TEST_CASE("Two ranks reproduce the single-process run of the MLP to float rounding") {
  dlb::Communicator& world = dlb_test::World();
  const Problem p;
  for (const std::string optimizer : {"sgd", "momentum", "adam"}) {
    CAPTURE(optimizer, world.Rank(), world.Size());
    const Run single = Train(p, optimizer, nullptr);
    const Run parallel = Train(p, optimizer, &world);

    const double difference = MaxRelativeDifference(single.weights, parallel.weights);
    CHECK(difference <= 1e-5);
    CHECK(SameOnAllRanks(parallel.weights));

    // The history is the single run's: the loss to rounding, the accuracy exactly (every
    // sample counted once, by the rank whose shard holds it).
    REQUIRE(parallel.result.history.size() == single.result.history.size());
    for (std::size_t e = 0; e < single.result.history.size(); ++e) {
      const dlb::EpochStats& s = single.result.history[e];
      const dlb::EpochStats& d = parallel.result.history[e];
      CHECK(d.train_loss == Approx(s.train_loss).epsilon(1e-5));
      CHECK(d.train_score == s.train_score);
      CHECK(d.val_loss == Approx(s.val_loss).epsilon(1e-5));
      CHECK(d.val_score == s.val_score);
    }

    // One fused allreduce per step of every parameter value, the loss and the sample count.
    Index parameters = 0;
    for (const Matrix<float>& w : single.weights) parameters += w.size();
    CHECK(parallel.bytes_per_step == (parameters + 2) * 4);
    CHECK(parallel.allreduce_calls == kEpochs * 96 / kGlobalBatch);

    // The comparison can fail: training moved the weights far beyond the tolerance, and
    // ranks that do not average their gradients end elsewhere.
    const Run untrained = [&] {
      Run run;
      dlb::ModelNN<float> model = dlb::MakeMlp<float>(kFeatures, {24, 12}, kClasses,
                                                      dlb::Activation::ReLU, dlb::Init::Kaiming, 5);
      for (const auto& parameter : model.Parameters()) run.weights.push_back(*parameter.value);
      return run;
    }();
    CHECK(MaxRelativeDifference(single.weights, untrained.weights) > 1e-2);
    if (world.Size() > 1) {
      const Run alone = Train(p, optimizer, &world, /*average=*/false);
      CHECK(MaxRelativeDifference(single.weights, alone.weights) > 1e-3);
    }
  }
}

TEST_CASE("GradientAllreduce gives every rank rank 0's initial weights") {
  dlb::Communicator& world = dlb_test::World();
  const Problem p;
  // Each rank seeds its replica differently; the first step must start from rank 0's.
  dlb::ModelNN<float> model = dlb::MakeMlp<float>(kFeatures, {8}, kClasses, dlb::Activation::ReLU,
                                                  dlb::Init::Kaiming, 100 + world.Rank());
  dlb::Optimizer<float> opt = dlb::MakeOptimizer<float>("sgd", model.Parameters(), 1e-2f);
  dlb::DataSet<float> train(p.x_train, p.y_train, kGlobalBatch, true, true, 9);
  train.SetShard(world.Rank(), world.Size());
  dlb::DataSet<float> validation(p.x_val, p.y_val, 40, false, false);
  dlb::CrossEntropyLoss<float> loss;
  dlb::GradientAllreduce<float> allreduce(world);
  dlb::TrainModel(model, train, validation, loss, opt, {.epochs = 1}, {&allreduce});
  std::vector<Matrix<float>> weights;
  for (const auto& parameter : model.Parameters()) weights.push_back(*parameter.value);
  CHECK(SameOnAllRanks(weights));
}

TEST_CASE("GradientAllreduce rejects ranks whose models differ, on every rank") {
  dlb::Communicator& world = dlb_test::World();
  if (world.Size() < 2) return;
  const Problem p;
  const Index hidden = world.IsRoot() ? 8 : 9;
  dlb::ModelNN<float> model = dlb::MakeMlp<float>(kFeatures, {hidden}, kClasses,
                                                  dlb::Activation::ReLU, dlb::Init::Kaiming, 1);
  dlb::Optimizer<float> opt = dlb::MakeOptimizer<float>("sgd", model.Parameters(), 1e-2f);
  dlb::DataSet<float> train(p.x_train, p.y_train, kGlobalBatch, true, true, 9);
  train.SetShard(world.Rank(), world.Size());
  dlb::DataSet<float> validation(p.x_val, p.y_val, 40, false, false);
  dlb::CrossEntropyLoss<float> loss;
  dlb::GradientAllreduce<float> allreduce(world);
  REQUIRE_THROWS_MATCHES(
      dlb::TrainModel(model, train, validation, loss, opt, {.epochs = 1}, {&allreduce}),
      dlb::ArgumentError,
      dlb_test::MessageContains({"the ranks' models differ: between 140 and 157 parameter values",
                                 "every rank must build the same model"}));
}

TEST_CASE("A data-parallel step allocates nothing after the first batch") {
  // The program is built with EIGEN_RUNTIME_NO_MALLOC: an Eigen allocation while it is
  // forbidden fails an assertion. Forbidden from the end of batch 1 to the end of the last
  // batch: gather, forward, backward, the allreduce, the guard and the step of batches 2..6.
  dlb::Communicator& world = dlb_test::World();
  const Problem p;
  const int threads = dlb::NumThreads();
  dlb::SetNumThreads(1);  // Eigen's parallel GEMM allocates per product (see test_no_alloc)
  dlb::ModelNN<float> model = dlb::MakeMlp<float>(kFeatures, {24, 12}, kClasses,
                                                  dlb::Activation::ReLU, dlb::Init::Kaiming, 5);
  dlb::Optimizer<float> opt = dlb::MakeOptimizer<float>("adam", model.Parameters(), 1e-2f);
  dlb::DataSet<float> train(p.x_train, p.y_train, kGlobalBatch, true, true, 9);
  train.SetShard(world.Rank(), world.Size());
  dlb::DataSet<float> validation(p.x_val, p.y_val, 40, false, false);
  dlb::CrossEntropyLoss<float> loss;
  dlb::GradientAllreduce<float> allreduce(world);
  dlb::LambdaCallback<float> forbid;
  Index checked = 0;
  forbid.on_batch_end = [&](dlb::TrainingContext<float>& context) {
    if (context.batch > 1) ++checked;
    Eigen::internal::set_is_malloc_allowed(context.batch == context.batches);
  };
  dlb::TrainModel(model, train, validation, loss, opt, {.epochs = 1}, {&allreduce, &forbid});
  Eigen::internal::set_is_malloc_allowed(true);
  dlb::SetNumThreads(threads);
  CHECK(checked == 96 / kGlobalBatch - 1);
  CHECK(allreduce.Steps() == 96 / kGlobalBatch);
}
