// After a warm-up batch, a training step (batch gather, forward, loss, backward, optimizer
// step, divergence checks) and an inference forward of the same batch size must not allocate
// heap memory, on every engine the build has for the products (Eigen's kernels always, the
// BLAS when it is linked) and on one and on two threads: neither through Eigen (caught where
// it happens, below) nor anywhere else (a std::string built for an error that is not thrown,
// a std::vector, a std::function: counted by the replaced operator new of
// support/allocation_counter.hpp).
//
// EIGEN_RUNTIME_NO_MALLOC makes every Eigen allocation call eigen_assert(is_malloc_allowed()).
// eigen_assert is defined here to throw, so the check works whether or not NDEBUG is defined
// (Release builds) and a failure is reported by Catch with the failing expression instead of
// aborting the whole program. Both macros must precede every include.
#include "support/eigen_no_malloc.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <optional>
#include <vector>

#include "dlb/core/blas_engine.hpp"
#include "dlb/core/threads.hpp"
#include "dlb/data/augmentation.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/losses/mse.hpp"
#include "dlb/metrics/accuracy.hpp"
#include "dlb/model/mlp.hpp"
#include "dlb/model/model.hpp"
#include "dlb/model/predictor.hpp"
#include "dlb/model/resnet.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/adamw.hpp"
#include "dlb/optimizers/momentum.hpp"
#include "dlb/optimizers/nesterov.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/optimizers/sgd.hpp"
#include "dlb/training/divergence_guard.hpp"
#include "support/allocation_counter.hpp"
#include "support/helpers.hpp"

using dlb::Index;
using dlb::Labels;
using dlb::Matrix;

namespace {

/// Forbids Eigen heap allocations for its lifetime, re-allowing them even when a check throws,
/// and counts every other heap allocation (operator new from any thread: a std::string, a
/// std::vector, a std::function), which HeapAllocations() reports: a scope's code must leave
/// it at 0. Read it into a variable before checking it, as Catch's own bookkeeping may
/// allocate.
struct NoMallocScope {
  long heap_at_start = dlb_test::Allocations();
  NoMallocScope() { Eigen::internal::set_is_malloc_allowed(false); }
  ~NoMallocScope() { Eigen::internal::set_is_malloc_allowed(true); }
  long HeapAllocations() const { return dlb_test::Allocations() - heap_at_start; }
  NoMallocScope(const NoMallocScope&) = delete;
  NoMallocScope& operator=(const NoMallocScope&) = delete;
};

/// Sets the library's thread count for its lifetime.
struct Threads {
  int saved = dlb::NumThreads();
  explicit Threads(int n) { dlb::SetNumThreads(n); }
  ~Threads() { dlb::SetNumThreads(saved); }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
};

/// Runs dlb::Gemm's products on one engine for its lifetime.
struct EngineScope {
  std::optional<dlb::GemmEngine> saved = dlb::GemmEngineOverride();
  explicit EngineScope(dlb::GemmEngine engine) { dlb::SetGemmEngine(engine); }
  ~EngineScope() { dlb::SetGemmEngine(saved); }
  EngineScope(const EngineScope&) = delete;
  EngineScope& operator=(const EngineScope&) = delete;
};

/// Every engine this build can run products on.
std::vector<dlb::GemmEngine> Engines() {
  if (dlb::kHaveBlas) return {dlb::GemmEngine::Eigen, dlb::GemmEngine::Blas};
  return {dlb::GemmEngine::Eigen};
}

const char* EngineName(dlb::GemmEngine engine) {
  return engine == dlb::GemmEngine::Blas ? "BLAS" : "Eigen";
}

// Small widths (784-64-32-32-10, batch 32) keep the every-layer cases fast; the notebook's
// full network is the last case.
constexpr Index kInputs = 784, kClasses = 10, kSamples = 96, kBatch = 32;

struct Fixture {
  Matrix<float> x = dlb_test::RandomMatrix<float>(kInputs, kSamples, 1);
  Labels y = Labels(kSamples);
  dlb::ModelNN<float> model{kInputs, 7};
  Fixture() {
    for (Index j = 0; j < kSamples; ++j) y(j) = static_cast<dlb::Label>(j % kClasses);
    // Every built-in layer type, so each one's forward and backward are covered.
    model.Add(dlb::Linear<float>(kInputs, 64))
        .Add(dlb::ReLU<float>())
        .Add(dlb::Linear<float>(64, 32))
        .Add(dlb::Tanh<float>())
        .Add(dlb::Dropout<float>(0.2f))
        .Add(dlb::LeakyReLU<float>(0.1f))
        .Add(dlb::Linear<float>(32, 32))
        .Add(dlb::Sigmoid<float>())
        .Add(dlb::Linear<float>(32, kClasses));
  }
};

}  // namespace

TEST_CASE("no-alloc harness: an Eigen allocation is caught while forbidden") {
  {
    NoMallocScope scope;
    REQUIRE_THROWS_AS(Matrix<double>(50, 50), dlb_test::EigenAssertion);
  }
  CHECK_NOTHROW(Matrix<double>(50, 50));
}

namespace {
/// One engine and thread count: a warm-up batch, then two epochs of training steps and an
/// inference pass with Eigen allocations forbidden; `augmented`: the batches augmented on the
/// fly (crop, flip, erasing of the 784 inputs read as 28 x 28 images).
void CheckTrainingAllocatesNothing(dlb::GemmEngine engine, int threads, bool augmented) {
  INFO("engine " << EngineName(engine) << ", " << threads << " thread(s)"
                 << (augmented ? ", augmented" : ""));
  EngineScope engine_scope(engine);
  Threads thread_scope(threads);
  Fixture f;
  dlb::DataSet<float> data(f.x, f.y, {.batch_size = kBatch, .drop_last = true, .seed = 3});
  if (augmented) {
    data.SetAugmentation(dlb::Augmentation<float>({1, 28, 28}, dlb::ParseAugmentation("crop:2,flip,erase:0.5"), 3));
  }
  dlb::CrossEntropyLoss<float> loss;
  dlb::Optimizer<float> adam(f.model, dlb::Adam<float>(1e-3f));
  dlb::DivergenceGuard<float> guard(adam.Parameters());
  Matrix<float> dlogits;

  auto train_step = [&](Index b, int epoch, bool guarded) {
    const auto batch = data.GetBatch(b);
    const Matrix<float>& logits = f.model.Forward(batch.x);
    const double value = loss.Compute(logits, batch.y, dlogits);
    if (guarded) guard.CheckLoss(value, epoch, b + 1);
    f.model.Backward(dlogits);
    if (guarded) {
      guard.CheckGradients(epoch, b + 1);
      guard.Snapshot();
    }
    adam.Step();
    if (guarded) guard.CheckParametersOrRestore(epoch, b + 1);
    return value;
  };

  // Warm-up: sizes every buffer (activations, gradients, dlogits, the guard's snapshot).
  data.StartEpoch();
  train_step(0, 1, true);
  f.model.SetMode(dlb::Mode::Inference);
  f.model.Forward(data.GetBatch(0).x);
  f.model.SetMode(dlb::Mode::Train);

  std::vector<double> losses;
  losses.reserve(16);
  long heap = 0;
  {
    NoMallocScope scope;
    for (int epoch = 1; epoch <= 2; ++epoch) {
      data.StartEpoch();
      for (Index b = 0; b < data.NumBatches(); ++b) {
        losses.push_back(train_step(b, epoch, /*guarded=*/b % 2 == 0));
      }
    }
    f.model.SetMode(dlb::Mode::Inference);
    for (Index b = 0; b < data.NumBatches(); ++b) {
      const auto batch = data.GetBatch(b);
      const Matrix<float>& logits = f.model.Forward(batch.x);
      losses.push_back(loss.Value(logits, batch.y));
      losses.push_back(static_cast<double>(dlb::CountCorrect(logits, batch.y)));
    }
    f.model.SetMode(dlb::Mode::Train);
    heap = scope.HeapAllocations();
  }
  CHECK(heap == 0);
  CHECK(adam.StepCount() == 1 + 2 * data.NumBatches());
  for (double v : losses) CHECK(std::isfinite(v));
}
}  // namespace

TEST_CASE("a training step and an inference forward allocate nothing after a warm-up batch") {
  for (dlb::GemmEngine engine : Engines()) {
    for (int threads : {1, 2}) {
      for (bool augmented : {false, true}) CheckTrainingAllocatesNothing(engine, threads, augmented);
    }
  }
}

TEST_CASE("every update rule steps without allocating") {
  Fixture f;
  dlb::CrossEntropyLoss<float> loss;
  Matrix<float> dlogits;
  const auto x = f.x.leftCols(kBatch);
  const Labels y = f.y.head(kBatch);
  loss.Compute(f.model.Forward(x), y, dlogits);
  f.model.Backward(dlogits);

  dlb::Optimizer<float> sgd(f.model, dlb::SGD<float>(1e-3f, 1e-4f));
  dlb::Optimizer<float> momentum(f.model, dlb::Momentum<float>(1e-3f, 0.9f, 1e-4f));
  dlb::Optimizer<float> nesterov(f.model, dlb::Nesterov<float>(1e-3f, 0.9f, 1e-4f));
  dlb::Optimizer<float> adam(f.model, dlb::Adam<float>(1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f));
  dlb::Optimizer<float> adamw(f.model, dlb::AdamW<float>(1e-3f));
  dlb::Optimizer<float> plain_sgd(f.model, dlb::SGD<float>(1e-3f));
  long heap = 0;
  {
    NoMallocScope scope;
    for (int k = 0; k < 2; ++k) {
      sgd.Step();
      plain_sgd.Step();
      momentum.Step();
      nesterov.Step();
      adam.Step();
      adamw.Step();
    }
    heap = scope.HeapAllocations();
  }
  CHECK(heap == 0);
  CHECK(adamw.StepCount() == 2);
}

TEST_CASE("the MSE loss computes without allocating after the first call") {
  Fixture f;
  dlb::MseLoss<float> mse;
  Matrix<float> doutputs;
  const auto x = f.x.leftCols(kBatch);
  const Labels y = f.y.head(kBatch);
  const Matrix<float> targets = Matrix<float>::Zero(kClasses, kBatch);
  const Matrix<float> logits = f.model.Forward(x);
  mse.Compute(logits, y, doutputs);
  long heap = 0;
  {
    NoMallocScope scope;
    mse.Compute(logits, y, doutputs);
    mse.Value(logits, y);
    mse.Compute(logits, targets, doutputs);
    mse.Value(logits, targets);
    heap = scope.HeapAllocations();
  }
  CHECK(heap == 0);
}

namespace {

// Trains `model` on `data` for two epochs and runs inference on every batch, after a warm-up
// step, with allocations forbidden; each step as TrainEpoch runs it (forward, loss, divergence
// checks, backward, Adam). Checks the number of optimizer steps.
void TrainWithoutAllocating(dlb::ModelNN<float>& model, dlb::DataSet<float>& data) {
  dlb::CrossEntropyLoss<float> loss;
  dlb::Optimizer<float> adam(model, dlb::Adam<float>(1e-3f));
  dlb::DivergenceGuard<float> guard(adam.Parameters());
  Matrix<float> dlogits;
  auto step = [&](Index b) {
    const auto batch = data.GetBatch(b);
    const double value = loss.Compute(model.Forward(batch.x), batch.y, dlogits);
    guard.CheckLoss(value, 1, b + 1);
    model.Backward(dlogits);
    guard.CheckGradients(1, b + 1);
    guard.Snapshot();
    adam.Step();
    guard.CheckParametersOrRestore(1, b + 1);
  };
  data.StartEpoch();
  step(0);
  model.SetMode(dlb::Mode::Inference);
  model.Forward(data.GetBatch(0).x);
  model.SetMode(dlb::Mode::Train);
  long heap = 0;
  {
    NoMallocScope scope;
    for (int epoch = 0; epoch < 2; ++epoch) {
      data.StartEpoch();
      for (Index b = 0; b < data.NumBatches(); ++b) step(b);
    }
    model.SetMode(dlb::Mode::Inference);
    for (Index b = 0; b < data.NumBatches(); ++b) model.Forward(data.GetBatch(b).x);
    heap = scope.HeapAllocations();
  }
  CHECK(heap == 0);
  CHECK(adam.StepCount() == 1 + 2 * data.NumBatches());
}

}  // namespace

// The notebook's full network, whose products are far larger than Eigen's stack packing limit
// (a 350 x 784 weight times a 784 x 256 batch): Eigen's kernels pack into dlb::Gemm's
// per-thread workspace, the BLAS into buffers of its own.
TEST_CASE("the notebook's network trains without allocating, on every engine and two threads") {
  constexpr Index kNotebookBatch = 256, kNotebookSamples = 3 * kNotebookBatch;
  const Matrix<float> x = dlb_test::RandomMatrix<float>(kInputs, kNotebookSamples, 5);
  Labels y(kNotebookSamples);
  for (Index j = 0; j < kNotebookSamples; ++j) y(j) = static_cast<dlb::Label>(j % kClasses);
  for (dlb::GemmEngine engine : Engines()) {
    for (int threads : {1, 2}) {
      INFO("engine " << EngineName(engine) << ", " << threads << " thread(s)");
      EngineScope engine_scope(engine);
      Threads thread_scope(threads);
      dlb::ModelNN<float> model = dlb::MakeMlp<float>(kInputs, {350, 250, 150, 50}, kClasses);
      dlb::DataSet<float> data(x, y, {.batch_size = kNotebookBatch, .drop_last = true, .seed = 11});
      TrainWithoutAllocating(model, data);
    }
  }
}

// Convolutional layers (issue 7), in cases of their own below the MLP's.
namespace {

// Every convolutional layer type on 1 x 8 x 8 images.
dlb::ModelNN<float> SmallConvnet() {
  dlb::ModelNN<float> model(dlb::Shape(1, 8, 8), 5);
  model.Add(dlb::Conv2D<float>(1, 4, 3, 1, 1))
      .Add(dlb::BatchNorm2D<float>(4))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Conv2D<float>(dlb::Conv2DOptions(4, 6, {3, 2}).Stride(2).Padding(1)))
      .Add(dlb::AvgPool2D<float>(dlb::Size2D(1, 2), 1))
      .Add(dlb::GlobalAvgPool<float>())
      .Add(dlb::Linear<float>(6, 8))
      .Add(dlb::BatchNorm1D<float>(8))
      .Add(dlb::ReLU<float>())
      .Add(dlb::Dropout<float>(0.2f))
      .Add(dlb::Linear<float>(8, kClasses));
  return model;
}

// The Fashion-MNIST convnet of train_fashion_mnist --model cnn.
dlb::ModelNN<float> FashionMnistConvnet() {
  dlb::ModelNN<float> model(dlb::Shape(1, 28, 28), 6);
  model.Add(dlb::Conv2D<float>(1, 32, 3, 1, 1))
      .Add(dlb::BatchNorm2D<float>(32))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Conv2D<float>(32, 64, 3, 1, 1))
      .Add(dlb::BatchNorm2D<float>(64))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Linear<float>(3136, 128))
      .Add(dlb::ReLU<float>())
      .Add(dlb::Dropout<float>(0.3f))
      .Add(dlb::Linear<float>(128, kClasses));
  return model;
}

// TrainWithoutAllocating on two epochs of three batches of `x` (labels j mod kClasses).
void TrainConvnetWithoutAllocating(dlb::ModelNN<float> model, const Matrix<float>& x) {
  Labels y(x.cols());
  for (Index j = 0; j < y.size(); ++j) y(j) = static_cast<dlb::Label>(j % kClasses);
  dlb::DataSet<float> data(x, y, {.batch_size = x.cols() / 3, .drop_last = true, .seed = 22});
  TrainWithoutAllocating(model, data);
}

}  // namespace

TEST_CASE("a convnet of every convolutional layer type trains without allocating, on every "
          "engine and two threads") {
  const Matrix<float> x = dlb_test::RandomMatrix<float>(64, kSamples, 21);
  for (dlb::GemmEngine engine : Engines()) {
    for (int threads : {1, 2}) {
      INFO("engine " << EngineName(engine) << ", " << threads << " thread(s)");
      EngineScope engine_scope(engine);
      Threads thread_scope(threads);
      TrainConvnetWithoutAllocating(SmallConvnet(), x);
    }
  }
}

TEST_CASE("the Fashion-MNIST convnet trains without allocating on two threads, on every engine") {
  const Matrix<float> x = dlb_test::RandomMatrix<float>(784, 3 * kBatch, 23);
  for (dlb::GemmEngine engine : Engines()) {
    INFO("engine " << EngineName(engine));
    EngineScope engine_scope(engine);
    Threads thread_scope(2);
    TrainConvnetWithoutAllocating(FashionMnistConvnet(), x);
  }
}

TEST_CASE("a residual network trains without allocating with its layers timed") {
  // ModelNN::SetLayerTiming: two clock reads per layer and pass, and nothing allocated.
  dlb::ModelNN<float> model = dlb::MakeResNet<float>(
      {.input = dlb::Shape(1, 8, 8), .classes = kClasses, .widths = {4, 8}, .blocks_per_stage = 1}, 9);
  model.SetLayerTiming(true);
  const Matrix<float> x = dlb_test::RandomMatrix<float>(64, kSamples, 25);
  TrainConvnetWithoutAllocating(std::move(model), x);
}

TEST_CASE("Predictor::Predict into the caller's matrix allocates nothing after a warm-up call") {
  dlb::ModelNN<float> model(dlb::Shape(1, 8, 8), 3);
  model.Add(dlb::Conv2D<float>(dlb::Conv2DOptions(1, 4, 3).Padding(1)))
      .Add(dlb::BatchNorm2D<float>(4))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Linear<float>(64, 10));
  const dlb::Predictor<float> predictor(model);
  const Matrix<float> x = dlb_test::RandomMatrix<float>(64, 16, 5);
  Matrix<float> logits;
  predictor.Predict(x, logits);  // warm-up: the workspace's buffers and logits are sized
  const Matrix<float> expected = logits;
  long heap = 0;
  {
    NoMallocScope scope;
    for (int call = 0; call < 3; ++call) predictor.Predict(x, logits);
    heap = scope.HeapAllocations();
  }
  CHECK(heap == 0);
  CHECK((logits.array() == expected.array()).all());
  // The control: a result matrix of the wrong size must be allocated, which the scope
  // refuses (the workspace's pass itself allocates nothing and stays usable).
  Matrix<float> fresh;
  {
    NoMallocScope scope;
    CHECK_THROWS_AS(predictor.Predict(x, fresh), dlb_test::EigenAssertion);
  }
  predictor.Predict(x, fresh);
  CHECK((fresh.array() == expected.array()).all());
}
