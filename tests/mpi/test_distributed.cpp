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
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "dlb/core/threads.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/distributed/gradient_allreduce.hpp"
#include "dlb/distributed/sync_batch_norm.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/model/mlp.hpp"
#include "dlb/optimizers/make_optimizer.hpp"
#include "dlb/training/train.hpp"
#include "../support/helpers.hpp"
#include "world.hpp"

using dlb::Index;
using dlb::Matrix;

namespace {

constexpr int kClasses = 4;
constexpr Index kGlobalBatch = 16;  // divisible by 1, 2, 4, 8 and 16 ranks
constexpr int kEpochs = 2;          // 2 x 6 = 12 steps

/// 96 training and 40 validation samples of 4 Gaussian clusters in `features` dimensions.
struct Problem {
  Matrix<float> x_train, x_val;
  dlb::Labels y_train, y_val;
  Problem(Index features, std::uint64_t seed) {
    const auto all = dlb_test::MakeClusters<float>(features, 136, kClasses, seed);
    x_train = all.x.leftCols(96);
    y_train = all.y.head(96);
    x_val = all.x.rightCols(40);
    y_val = all.y.tail(40);
  }
};

/// The MLP 12-24-12-4 (or 12-`hidden`-4), Kaiming init from `seed`, no dropout.
dlb::ModelNN<float> MakeTestMlp(std::vector<Index> hidden = {24, 12}, std::uint64_t seed = 5) {
  return dlb::MakeMlp<float>(12, hidden, kClasses, dlb::Activation::ReLU, dlb::Init::Kaiming, seed);
}

/// One process's training run on `p`: `model` with `optimizer` (lr 1e-2), the training set in
/// global batches of 16 shuffled with seed 9, all of the validation set. With `communicator`
/// the training set is sharded over its ranks and, with `average`, GradientAllreduce
/// averages the gradients; with `average` false the shards train on their own (the negative
/// control).
struct Replica {
  Problem data;  // a copy: the DataSets keep references to it
  dlb::ModelNN<float> model;
  dlb::Optimizer<float> optimizer;
  dlb::DataSet<float> train, validation;
  dlb::CrossEntropyLoss<float> loss;
  std::optional<dlb::GradientAllreduce<float>> allreduce;

  Replica(const Problem& p, dlb::ModelNN<float> m, const std::string& optimizer_name,
          dlb::Communicator* communicator, bool average = true)
      : data(p),
        model(std::move(m)),
        optimizer(dlb::MakeOptimizer<float>(optimizer_name, model, 1e-2f)),
        train(data.x_train, data.y_train,
              {.batch_size = kGlobalBatch, .drop_last = true, .seed = 9}),
        validation(data.x_val, data.y_val, {.batch_size = 40, .shuffle = false}) {
    if (communicator == nullptr) return;
    train.SetShard(communicator->Rank(), communicator->Size());
    if (average) allreduce.emplace(*communicator);
  }

  /// TrainModel for `epochs` with the allreduce (if any) first, then `extra`.
  dlb::TrainResult Train(int epochs = kEpochs, std::vector<dlb::Callback<float>*> extra = {}) {
    if (allreduce) extra.insert(extra.begin(), &*allreduce);
    return dlb::TrainModel(model, train, validation, loss, optimizer, {.epochs = epochs}, extra);
  }

  /// Copies of the parameters.
  std::vector<Matrix<float>> Weights() {
    std::vector<Matrix<float>> weights;
    for (const auto& parameter : model.Parameters()) weights.push_back(*parameter.value);
    return weights;
  }
};

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
  const Problem p(12, 17);
  for (const std::string optimizer : {"sgd", "momentum", "adam"}) {
    CAPTURE(optimizer, world.Rank(), world.Size());
    Replica single(p, MakeTestMlp(), optimizer, nullptr);
    Replica parallel(p, MakeTestMlp(), optimizer, &world);
    const dlb::TrainResult single_result = single.Train();
    const dlb::TrainResult parallel_result = parallel.Train();

    const double difference = MaxRelativeDifference(single.Weights(), parallel.Weights());
    CHECK(difference <= 1e-5);
    if (world.IsRoot()) {  // for the README: ctest -V -R "mpi: test_distributed"
      std::printf("MLP, %s, %d ranks: max relative difference %.2g\n", optimizer.c_str(),
                  world.Size(), difference);
    }
    CHECK(SameOnAllRanks(parallel.Weights()));

    // The history is the single run's: the loss to rounding, the accuracy exactly (every
    // sample counted once, by the rank whose shard holds it).
    REQUIRE(parallel_result.history.size() == single_result.history.size());
    for (std::size_t e = 0; e < single_result.history.size(); ++e) {
      const dlb::EpochStats& s = single_result.history[e];
      const dlb::EpochStats& d = parallel_result.history[e];
      CHECK(d.train_loss == Approx(s.train_loss).epsilon(1e-5));
      CHECK(d.train_score == s.train_score);
      CHECK(d.val_loss == Approx(s.val_loss).epsilon(1e-5));
      CHECK(d.val_score == s.val_score);
    }

    // One fused allreduce per step of every parameter value, the loss and the sample count.
    CHECK(parallel.allreduce->BytesPerStep() == (parallel.model.NumParameters() + 2) * 4);
    CHECK(parallel.allreduce->Steps() == kEpochs * 96 / kGlobalBatch);

    // The comparison can fail: training moved the weights far beyond the tolerance, and
    // ranks that do not average their gradients end elsewhere.
    CHECK(MaxRelativeDifference(single.Weights(), Replica(p, MakeTestMlp(), optimizer, nullptr).Weights()) > 1e-2);
    if (world.Size() > 1) {
      Replica alone(p, MakeTestMlp(), optimizer, &world, /*average=*/false);
      alone.Train();
      CHECK(MaxRelativeDifference(single.Weights(), alone.Weights()) > 1e-3);
    }
  }
}

TEST_CASE("Communicator::AllGather gives every rank every rank's text, lengths differing") {
  dlb::Communicator& world = dlb_test::World();
  // Rank r sends "rank r" followed by r x's, and an empty text on rank 1.
  const std::string mine = world.Rank() == 1 ? std::string()
                                             : "rank " + std::to_string(world.Rank()) +
                                                   std::string(static_cast<std::size_t>(world.Rank()), 'x');
  const std::vector<std::string> all = world.AllGather(mine);
  REQUIRE(all.size() == static_cast<std::size_t>(world.Size()));
  for (int r = 0; r < world.Size(); ++r) {
    const std::string expected =
        r == 1 ? std::string() : "rank " + std::to_string(r) + std::string(static_cast<std::size_t>(r), 'x');
    CHECK(all[static_cast<std::size_t>(r)] == expected);
  }
}

TEST_CASE("GradientAllreduce gives every rank rank 0's initial weights") {
  dlb::Communicator& world = dlb_test::World();
  // Each rank seeds its replica differently; the first step must start from rank 0's.
  Replica replica(Problem(12, 17), MakeTestMlp({8}, 100 + world.Rank()), "sgd", &world);
  replica.Train(1);
  CHECK(SameOnAllRanks(replica.Weights()));
}

TEST_CASE("GradientAllreduce rejects ranks whose models differ, on every rank") {
  dlb::Communicator& world = dlb_test::World();
  if (world.Size() < 2) return;
  Replica replica(Problem(12, 17), MakeTestMlp({world.IsRoot() ? 8 : 9}), "sgd", &world);
  REQUIRE_THROWS_MATCHES(
      replica.Train(1), dlb::ArgumentError,
      dlb_test::MessageContains({"the ranks' models differ: between 140 and 157 parameter values",
                                 "every rank must build the same model"}));
}

TEST_CASE("A data-parallel step allocates nothing after the first batch") {
  // The program is built with EIGEN_RUNTIME_NO_MALLOC: an Eigen allocation while it is
  // forbidden fails an assertion. Forbidden from the end of batch 1 to the end of the last
  // batch: gather, forward, backward, the allreduce, the guard and the step of batches 2..6.
  dlb::Communicator& world = dlb_test::World();
  const int threads = dlb::NumThreads();
  dlb::SetNumThreads(1);  // Eigen's parallel GEMM allocates per product (see test_no_alloc)
  Replica replica(Problem(12, 17), MakeTestMlp(), "adam", &world);
  dlb::LambdaCallback<float> forbid;
  Index checked = 0;
  forbid.on_batch_end = [&](dlb::TrainingContext<float>& context) {
    if (context.batch > 1) ++checked;
    Eigen::internal::set_is_malloc_allowed(context.batch == context.batches);
  };
  replica.Train(1, {&forbid});
  Eigen::internal::set_is_malloc_allowed(true);
  dlb::SetNumThreads(threads);
  CHECK(checked == 96 / kGlobalBatch - 1);
  CHECK(replica.allreduce->Steps() == 96 / kGlobalBatch);
}

namespace {

/// A small CNN on 1 x 8 x 8 images: Conv(1->4, 3x3, pad 1)-BN-ReLU-MaxPool 2-Linear(64->4),
/// the layer kinds of the example's CNN without its dropout (whose masks cannot match one
/// process's). With `communicator`, batch norm is synchronised across its ranks. The
/// convolution has no bias: batch norm subtracts it again, so its gradient is 0 up to
/// rounding, and Adam would turn that rounding into steps of the full learning rate.
dlb::ModelNN<float> MakeCnn(dlb::Communicator* communicator) {
  dlb::ModelNN<float> model(dlb::Shape{1, 8, 8}, 5);
  model.Add(dlb::Conv2D<float>(dlb::Conv2DOptions(1, 4, 3).Padding(1).Bias(false)))
      .Add(dlb::BatchNorm2D<float>(4))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Linear<float>(4 * 4 * 4, kClasses));
  if (communicator != nullptr) REQUIRE(dlb::SyncBatchNorm(model, *communicator) == 1);
  return model;
}

/// The CNN's parameters and batch-norm buffers after kEpochs of Adam on the global batch;
/// with `communicator` as a Replica, with batch norm synchronised when `sync`.
std::vector<Matrix<float>> TrainCnn(dlb::Communicator* communicator, bool sync = true) {
  Replica replica(Problem(64, 23), MakeCnn(sync ? communicator : nullptr), "adam", communicator);
  replica.Train();
  std::vector<Matrix<float>> values = replica.Weights();
  auto& norm = replica.model.LayerAt<dlb::BatchNorm2D<float>>(1);
  values.push_back(norm.RunningMean());
  values.push_back(norm.RunningVar());
  return values;
}

}  // namespace

TEST_CASE("Two ranks with synchronised batch norm reproduce the single-process CNN run") {
  dlb::Communicator& world = dlb_test::World();
  const std::vector<Matrix<float>> single = TrainCnn(nullptr);
  const std::vector<Matrix<float>> parallel = TrainCnn(&world);
  // Parameters, running mean and running variance alike.
  const double difference = MaxRelativeDifference(single, parallel);
  CHECK(difference <= 1e-5);
  if (world.IsRoot()) {
    std::printf("CNN, adam, %d ranks: max relative difference %.2g\n", world.Size(), difference);
  }
  CHECK(SameOnAllRanks(parallel));
  if (world.Size() > 1) {
    // Batch norm kept per rank normalises each shard by its own statistics: another run.
    CHECK(MaxRelativeDifference(single, TrainCnn(&world, /*sync=*/false)) > 1e-3);
  }
}
