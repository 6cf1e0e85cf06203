// Checkpoints: resuming after epoch k of n reproduces the uninterrupted n-epoch run bit for
// bit with every optimizer (model with dropout, shuffled data, a callback with state), the
// file holds what the format promises, and a checkpoint that does not fit the run is a
// FileError that leaves every object as it was.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dlb/serialization/checkpoint.hpp"
#include "dlb/serialization/model_file.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/optimizers/make_optimizer.hpp"
#include "dlb/training/early_stopping.hpp"
#include "dlb/training/train.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb_test::MessageContains;

struct TempDir : dlb_test::TempDir {
  TempDir() : dlb_test::TempDir("dlb_test_checkpoint_") {}
};

constexpr dlb::Index kFeatures = 8;
constexpr int kClasses = 4;

/// A callback whose state steers training: each epoch starts at lr = base * 0.8^epochs_seen,
/// so a resumed run that lost the counter would train differently. It counts batches too.
class DecayCallback : public dlb::Callback<float> {
 public:
  explicit DecayCallback(double base, std::string name = "decay")
      : base_(base), name_(std::move(name)) {}
  void OnEpochBegin(dlb::TrainingContext<float>& context) override {
    context.optimizer.SetLearningRate(static_cast<float>(base_ * std::pow(0.8, epochs_seen_)));
  }
  void OnBatchEnd(dlb::TrainingContext<float>&) override { ++batches_; }
  void OnEpochEnd(dlb::TrainingContext<float>&, dlb::EpochStats&) override { ++epochs_seen_; }
  std::vector<dlb::StateRef<float>> State() override {
    return {{"epochs_seen", &epochs_seen_}, {"batches", &batches_}};
  }
  std::string StateName() const override { return name_; }

  std::int64_t epochs_seen_ = 0;
  std::int64_t batches_ = 0;

 private:
  double base_;
  std::string name_;
};

/// Everything one training run owns, built from a seed (initial weights, dropout masks and
/// shuffling all follow from it).
struct Run {
  Run(const dlb_test::Clusters<float>& data, const std::string& optimizer_name, std::uint64_t seed,
      dlb::Index hidden = 16, dlb::Index batch = 16)
      : Run(data, optimizer_name, MakeModel(seed, hidden), seed, batch) {}

  Run(const dlb_test::Clusters<float>& data, const std::string& optimizer_name,
      dlb::ModelNN<float> initial, std::uint64_t seed, dlb::Index batch = 16)
      : model(std::move(initial)),
        optimizer(dlb::MakeOptimizer<float>(optimizer_name, model.Parameters())),
        train(data.x, data.y, {.batch_size = batch, .drop_last = true, .seed = seed}),
        validation(data.x, data.y, {.batch_size = 32, .shuffle = false}),
        decay(dlb::DefaultLearningRate(optimizer_name)) {}

  static dlb::ModelNN<float> MakeModel(std::uint64_t seed, dlb::Index hidden) {
    dlb::ModelNN<float> model(kFeatures, seed);
    model.Add(dlb::Linear<float>(kFeatures, hidden))
        .Add(dlb::ReLU<float>())
        .Add(dlb::Dropout<float>(0.2f))
        .Add(dlb::Linear<float>(hidden, kClasses));
    return model;
  }

  /// A convnet on the features read as 2 x 2 x 2 images, with batch norm over channels and
  /// over features and dropout: running statistics and batch counters join the state.
  static dlb::ModelNN<float> MakeConvnet(std::uint64_t seed) {
    dlb::ModelNN<float> model(dlb::Shape(2, 2, 2), seed);
    model.Add(dlb::Conv2D<float>(dlb::Conv2DOptions(2, 4, 2).Padding(1)))  // 4 x 3 x 3
        .Add(dlb::BatchNorm2D<float>(4))
        .Add(dlb::ReLU<float>())
        .Add(dlb::MaxPool2D<float>(2))  // 4 x 1 x 1
        .Add(dlb::BatchNorm1D<float>(4))
        .Add(dlb::Dropout<float>(0.2f))
        .Add(dlb::Linear<float>(4, kClasses));
    return model;
  }

  dlb::TrainResult Train(int initial_epoch, int epochs, std::vector<dlb::Callback<float>*> extra = {}) {
    std::vector<dlb::Callback<float>*> callbacks = {&decay};
    callbacks.insert(callbacks.end(), extra.begin(), extra.end());
    return dlb::TrainModel(model, train, validation, loss, optimizer,
                           {.epochs = epochs, .initial_epoch = initial_epoch}, callbacks);
  }

  dlb::TrainingState<float> State() { return {model, optimizer, train, {&decay}}; }

  dlb::ModelNN<float> model;
  dlb::Optimizer<float> optimizer;
  dlb::DataSet<float> train;
  dlb::DataSet<float> validation;
  DecayCallback decay;
  dlb::CrossEntropyLoss<float> loss;
};

const dlb_test::Clusters<float>& Data() {
  static const auto data = dlb_test::MakeClusters<float>(kFeatures, 96, kClasses, 5, 1.0, 1.5);
  return data;
}

bool SameState(const dlb::StateDict& a, const dlb::StateDict& b) {
  if (a.Size() != b.Size()) return false;
  for (std::size_t i = 0; i < a.Size(); ++i) {
    const auto& [name_a, tensor_a] = a.Entries()[i];
    const auto& [name_b, tensor_b] = b.Entries()[i];
    if (name_a != name_b || tensor_a.dtype != tensor_b.dtype || tensor_a.shape != tensor_b.shape ||
        tensor_a.data != tensor_b.data) {
      UNSCOPED_INFO("differs at " << name_a);
      return false;
    }
  }
  return true;
}

/// Reads `path`, lets `change` edit it, writes it back.
void Rewrite(const std::string& path, const std::function<void(dlb::Safetensors&)>& change) {
  dlb::Safetensors file = dlb::ReadSafetensors(path);
  change(file);
  dlb::WriteSafetensors(path, file.tensors, file.metadata);
}

/// RestoreCheckpoint into `run` must throw a FileError naming the file and every fragment,
/// and leave the run's model, optimizer, data order and callback state as they were.
void RequireRestoreRejected(const std::string& path, Run& run, std::initializer_list<std::string> fragments,
                            std::vector<dlb::Callback<float>*> callbacks = {}) {
  if (callbacks.empty()) callbacks = {&run.decay};
  const dlb::StateDict model = run.model.SaveState(dlb::StateScope::Checkpoint);
  const dlb::StateDict optimizer = run.optimizer.SaveState();
  const dlb::StateDict data = run.train.SaveState();
  const std::int64_t epochs_seen = run.decay.epochs_seen_;
  std::vector<std::string> all(fragments);
  all.push_back(path);
  try {
    dlb::RestoreCheckpoint(path, dlb::TrainingState<float>{run.model, run.optimizer, run.train, callbacks});
    FAIL("the checkpoint was accepted");
  } catch (const dlb::FileError& error) {
    INFO(error.what());
    CHECK(error.Path() == path);
    for (const std::string& fragment : all) CHECK_THAT(error.what(), Catch::Contains(fragment));
  }
  CHECK(SameState(run.model.SaveState(dlb::StateScope::Checkpoint), model));
  CHECK(SameState(run.optimizer.SaveState(), optimizer));
  CHECK(SameState(run.train.SaveState(), data));
  CHECK(run.decay.epochs_seen_ == epochs_seen);
}

}  // namespace

TEST_CASE("checkpoint: resuming after epoch 2 of 4 reproduces the uninterrupted run bit for bit",
          "[checkpoint]") {
  for (const auto name : dlb::kOptimizerNames) {
    const std::string optimizer(name);
    INFO("optimizer " << optimizer);
    TempDir dir;
    const std::string path = dir / "checkpoint.safetensors";

    Run uninterrupted(Data(), optimizer, 1);
    const dlb::TrainResult full = uninterrupted.Train(0, 4);

    Run first(Data(), optimizer, 1);
    dlb::CheckpointCallback<float> checkpoints(path, {&first.decay});
    first.Train(0, 2, {&checkpoints});

    // Another seed: every restored value must come from the file.
    Run resumed(Data(), optimizer, 777);
    const dlb::CheckpointInfo info = dlb::RestoreCheckpoint(path, resumed.State());
    CHECK(info.epoch == 2);
    REQUIRE(info.history.size() == 2);
    CHECK(info.history[1].train_loss == full.history[1].train_loss);
    CHECK(info.history[1].val_score == full.history[1].val_score);
    const dlb::TrainResult rest = resumed.Train(info.epoch, 4);

    REQUIRE(rest.history.size() == 2);
    CHECK(rest.history[0].epoch == 3);
    CHECK(rest.history[1].train_loss == full.history[3].train_loss);
    CHECK(SameState(resumed.model.SaveState(dlb::StateScope::Checkpoint),
                    uninterrupted.model.SaveState(dlb::StateScope::Checkpoint)));
    CHECK(SameState(resumed.optimizer.SaveState(), uninterrupted.optimizer.SaveState()));
    CHECK(SameState(resumed.train.SaveState(), uninterrupted.train.SaveState()));
    CHECK(resumed.decay.epochs_seen_ == 4);
    CHECK(resumed.decay.batches_ == uninterrupted.decay.batches_);
  }
}

TEST_CASE("checkpoint: a convnet with batch norm resumes bit for bit, running statistics included",
          "[checkpoint]") {
  TempDir dir;
  const std::string path = dir / "checkpoint.safetensors";
  Run uninterrupted(Data(), "adam", Run::MakeConvnet(1), 1);
  uninterrupted.Train(0, 4);

  Run first(Data(), "adam", Run::MakeConvnet(1), 1);
  dlb::CheckpointCallback<float> checkpoints(path, {&first.decay});
  first.Train(0, 2, {&checkpoints});
  const dlb::Safetensors file = dlb::ReadSafetensors(path);
  for (const char* name : {"1.running_mean", "1.running_var", "1.num_batches_tracked",
                           "4.running_var"}) {
    INFO(name);
    CHECK(file.tensors.Contains(name));
  }

  Run resumed(Data(), "adam", Run::MakeConvnet(777), 777);
  const dlb::CheckpointInfo info = dlb::RestoreCheckpoint(path, resumed.State());
  REQUIRE(info.epoch == 2);
  resumed.Train(info.epoch, 4);
  CHECK(SameState(resumed.model.SaveState(dlb::StateScope::Checkpoint),
                  uninterrupted.model.SaveState(dlb::StateScope::Checkpoint)));
  CHECK(SameState(resumed.optimizer.SaveState(), uninterrupted.optimizer.SaveState()));
  // The test can fail: two more epochs moved the running statistics.
  CHECK_FALSE(SameState(first.model.SaveState(dlb::StateScope::Checkpoint),
                        uninterrupted.model.SaveState(dlb::StateScope::Checkpoint)));
}

TEST_CASE("checkpoint: a convnet trained on augmented batches resumes bit for bit",
          "[checkpoint][augmentation]") {
  // The features read as 2 x 2 x 2 images: crop by up to 1 pixel, flip, erase. The resumed
  // run is built with other seeds (shuffle and augmentation): the checkpoint must restore
  // both, the augmentation's epoch included.
  TempDir dir;
  const std::string path = dir / "checkpoint.safetensors";
  auto augment = [](Run& run, std::uint64_t seed) {
    dlb::RandomErasing erase;
    erase.p = 0.5;
    erase.scale_min = 0.25;
    erase.scale_max = 0.5;
    run.train.SetAugmentation(dlb::Augmentation<float>(
        {2, 2, 2}, {dlb::RandomCrop{1}, dlb::HorizontalFlip{0.5}, erase}, seed));
  };
  Run uninterrupted(Data(), "adam", Run::MakeConvnet(1), 1);
  augment(uninterrupted, 1);
  uninterrupted.Train(0, 4);

  Run first(Data(), "adam", Run::MakeConvnet(1), 1);
  augment(first, 1);
  dlb::CheckpointCallback<float> checkpoints(path, {&first.decay});
  first.Train(0, 2, {&checkpoints});
  const dlb::Safetensors file = dlb::ReadSafetensors(path);
  CHECK(file.tensors.Contains("data.augmentation_epoch"));
  CHECK(file.tensors.Contains("data.augmentation_seed"));

  Run resumed(Data(), "adam", Run::MakeConvnet(777), 777);
  augment(resumed, 777);
  const dlb::CheckpointInfo info = dlb::RestoreCheckpoint(path, resumed.State());
  REQUIRE(info.epoch == 2);
  resumed.Train(info.epoch, 4);
  CHECK(SameState(resumed.model.SaveState(dlb::StateScope::Checkpoint),
                  uninterrupted.model.SaveState(dlb::StateScope::Checkpoint)));
  CHECK(SameState(resumed.optimizer.SaveState(), uninterrupted.optimizer.SaveState()));
  CHECK(SameState(resumed.train.SaveState(), uninterrupted.train.SaveState()));

  // Negative control: the same run without augmentation ends elsewhere.
  Run plain(Data(), "adam", Run::MakeConvnet(1), 1);
  plain.Train(0, 4);
  CHECK_FALSE(SameState(plain.model.SaveState(dlb::StateScope::Checkpoint),
                        uninterrupted.model.SaveState(dlb::StateScope::Checkpoint)));
  // A checkpoint of an augmented run does not load into a run without augmentation.
  Run unaugmented(Data(), "adam", Run::MakeConvnet(777), 777);
  CHECK_THROWS_WITH(dlb::RestoreCheckpoint(path, unaugmented.State()),
                    Catch::Contains("augmentation_epoch"));
}

TEST_CASE("checkpoint: early stopping resumes with the best epoch's weights, as the uninterrupted "
          "run ends", "[checkpoint]") {
  // The validation loss is scripted so that epoch 2 of 5 is the best: the uninterrupted run
  // ends with epoch 2's weights put back. Interrupted after epoch 3, the resumed run must end
  // with the same model, bit for bit, although epoch 2 was trained by the interrupted run.
  // The convnet adds integer buffers (num_batches_tracked) to the weights.
  const std::vector<double> losses = {1.0, 0.5, 0.7, 0.8, 0.9};
  dlb::LambdaCallback<float> scripted;
  scripted.on_epoch_end = [&](auto& context, auto& stats) {
    stats.val_loss = losses.at(static_cast<std::size_t>(context.epoch - 1));
  };
  for (const bool convnet : {false, true}) {
    INFO((convnet ? "convnet" : "mlp"));
    TempDir dir;
    const std::string path = dir / "checkpoint.safetensors";
    const auto make = [&](std::uint64_t seed) {
      return std::make_unique<Run>(Data(), "adam",
                                   convnet ? Run::MakeConvnet(seed) : Run::MakeModel(seed, 16), seed);
    };
    const dlb::EarlyStoppingOptions options{.patience = 10, .restore_best = true};

    const auto uninterrupted = make(1);
    dlb::EarlyStopping<float> early(options);
    uninterrupted->Train(0, 5, {&scripted, &early});
    REQUIRE(early.RestoredEpoch() == 2);

    const auto first = make(1);
    dlb::EarlyStopping<float> first_early(options);
    dlb::CheckpointCallback<float> checkpoints(path, {&first->decay, &first_early});
    first->Train(0, 3, {&scripted, &first_early, &checkpoints});
    CHECK(dlb::ReadSafetensors(path).tensors.Contains(
        convnet ? "callbacks.early_stopping.best_weights.1.num_batches_tracked"
                : "callbacks.early_stopping.best_weights.0.weight"));

    const auto resumed = make(777);
    dlb::EarlyStopping<float> resumed_early(options);
    const dlb::CheckpointInfo info = dlb::RestoreCheckpoint(
        path, dlb::TrainingState<float>{resumed->model, resumed->optimizer, resumed->train,
                                       {&resumed->decay, &resumed_early}});
    REQUIRE(info.epoch == 3);
    CHECK(resumed_early.BestEpoch() == 2);
    resumed->Train(info.epoch, 5, {&scripted, &resumed_early});
    CHECK(resumed_early.RestoredEpoch() == 2);
    CHECK(SameState(resumed->model.SaveState(dlb::StateScope::Checkpoint),
                    uninterrupted->model.SaveState(dlb::StateScope::Checkpoint)));
  }
}

TEST_CASE("checkpoint: without the data order the resumed run differs (the test can fail)",
          "[checkpoint]") {
  TempDir dir;
  const std::string path = dir / "checkpoint.safetensors";
  Run uninterrupted(Data(), "adam", 1);
  uninterrupted.Train(0, 4);
  Run first(Data(), "adam", 1);
  first.Train(0, 2);
  dlb::SaveCheckpoint(path, first.State(), 2);

  // Restore everything but the DataSet's generator and order.
  Run partial(Data(), "adam", 777);
  const dlb::Safetensors file = dlb::ReadSafetensors(path);
  partial.model.LoadState(file.tensors.Without({"optimizer.", "data.", "callbacks."}),
                          dlb::StateScope::Checkpoint);
  partial.optimizer.LoadState(file.tensors.WithPrefix("optimizer."));
  partial.decay.epochs_seen_ = 2;
  partial.Train(2, 4);
  CHECK_FALSE(SameState(partial.model.SaveState(), uninterrupted.model.SaveState()));

  // And with it, the same.
  Run resumed(Data(), "adam", 777);
  dlb::RestoreCheckpoint(path, resumed.State());
  resumed.Train(2, 4);
  CHECK(SameState(resumed.model.SaveState(), uninterrupted.model.SaveState()));
}

TEST_CASE("checkpoint: the file holds model, optimizer, data order, generators, callbacks and epoch",
          "[checkpoint]") {
  TempDir dir;
  const std::string path = dir / "checkpoint.safetensors";
  Run run(Data(), "adam", 3);
  dlb::CheckpointCallback<float> checkpoints(path, {&run.decay});
  run.Train(0, 3, {&checkpoints});

  const dlb::Safetensors file = dlb::ReadSafetensors(path);
  for (const char* name : {"0.weight", "0.bias", "2.generator", "3.weight", "3.bias",
                           "optimizer.0.weight.exp_avg", "optimizer.0.weight.exp_avg_sq",
                           "optimizer.3.bias.exp_avg", "optimizer.step", "optimizer.lr",
                           "data.generator", "data.order", "callbacks.decay.epochs_seen",
                           "callbacks.decay.batches"}) {
    INFO(name);
    CHECK(file.tensors.Contains(name));
  }
  CHECK(file.tensors.At("optimizer.step").Values<std::int64_t>() ==
        std::vector<std::int64_t>{run.optimizer.StepCount()});
  CHECK(file.tensors.At("optimizer.0.weight.exp_avg").shape == std::vector<std::int64_t>{16, kFeatures});
  CHECK(file.tensors.At("data.order").shape == std::vector<std::int64_t>{96});
  CHECK(file.tensors.At("callbacks.decay.epochs_seen").Values<std::int64_t>() == std::vector<std::int64_t>{3});
  CHECK(file.metadata.at("format") == "dlblocks.checkpoint");
  CHECK(file.metadata.at("epoch") == "3");
  CHECK(file.metadata.at("optimizer") == "Adam");
  CHECK(file.metadata.at("train_batch_size") == "16");
  CHECK(nlohmann::json::parse(file.metadata.at("history")).size() == 3);

  // A checkpoint is also a model file: LoadModel and LoadWeights read its model part.
  dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(path);
  run.model.SetMode(dlb::Mode::Inference);
  const dlb::Matrix<float> expected = run.model.Forward(Data().x);
  CHECK((loaded.Predict(Data().x).array() == expected.array()).all());
  Run other(Data(), "sgd", 9);
  dlb::LoadWeights(other.model, path);
  CHECK(SameState(other.model.SaveState(dlb::StateScope::Checkpoint),
                  run.model.SaveState(dlb::StateScope::Checkpoint)));
}

TEST_CASE("checkpoint: a resumed run's checkpoints keep the earlier epochs' history", "[checkpoint]") {
  TempDir dir;
  const std::string path = dir / "checkpoint.safetensors";
  Run first(Data(), "momentum", 2);
  dlb::CheckpointCallback<float> checkpoints(path, {&first.decay});
  first.Train(0, 2, {&checkpoints});

  Run resumed(Data(), "momentum", 2);
  const dlb::CheckpointInfo info = dlb::RestoreCheckpoint(path, resumed.State());
  dlb::CheckpointCallback<float> more(path, {&resumed.decay});
  more.SetEarlierHistory(info.history);
  resumed.Train(info.epoch, 3, {&more});
  const dlb::CheckpointInfo last = dlb::RestoreCheckpoint(path, resumed.State());
  CHECK(last.epoch == 3);
  REQUIRE(last.history.size() == 3);
  CHECK(last.history[0].epoch == 1);
  CHECK(last.history[0].train_loss == info.history[0].train_loss);
  CHECK(last.history[2].epoch == 3);
}

TEST_CASE("checkpoint: checkpoints that do not fit the run are rejected and change nothing",
          "[checkpoint][bad input]") {
  TempDir dir;
  const std::string path = dir / "checkpoint.safetensors";
  const auto fresh = [&] {
    Run run(Data(), "adam", 4);
    run.Train(0, 1);
    dlb::SaveCheckpoint(path, run.State(), 1);
  };
  Run target(Data(), "adam", 8);
  target.Train(0, 1);  // non-trivial state to keep

  fresh();
  Run sgd(Data(), "sgd", 8);
  RequireRestoreRejected(path, sgd, {"written with the optimizer Adam, this run has SGD"});
  Run batch32(Data(), "adam", 8, 16, 32);
  RequireRestoreRejected(path, batch32, {"written with the batch size 16, this run has 32"});
  Run wider(Data(), "adam", 8, 20);
  RequireRestoreRejected(path, wider, {"'0.weight'", "expected F32 or F64 [20, 8], found F32 [16, 8]"});
  DecayCallback other(1, "other");
  RequireRestoreRejected(path, target,
                         {"'callbacks.decay.epochs_seen' is the state of a callback 'decay'"}, {&other});

  // A later part (the data order, a second callback) fails after the model and the optimizer
  // were restored: they are put back.
  Rewrite(path, [](dlb::Safetensors& f) {
    dlb::StateDict tensors;
    for (const auto& [name, tensor] : f.tensors.Entries()) {
      tensors.Insert(name, name == "data.order"
                               ? dlb::Tensor::FromValues(dlb::DType::I64, {96}, std::vector<std::int64_t>(96, 0))
                               : tensor);
    }
    f.tensors = tensors;
  });
  RequireRestoreRejected(path, target, {"saved order is not a permutation of the 96 samples"});
  fresh();
  DecayCallback second(1, "second");
  RequireRestoreRejected(path, target, {"callback 'second'", "missing callbacks.second.epochs_seen, callbacks.second.batches"},
                         {&target.decay, &second});

  fresh();
  Rewrite(path, [](dlb::Safetensors& f) {
    dlb::StateDict tensors;
    for (const auto& [name, tensor] : f.tensors.Entries()) {
      if (name == "optimizer.0.weight.exp_avg") {
        std::vector<float> values = tensor.Values<float>();
        values[5] = std::numeric_limits<float>::infinity();
        tensors.Insert(name, dlb::Tensor::FromValues(dlb::DType::F32, tensor.shape, values));
      } else {
        tensors.Insert(name, tensor);
      }
    }
    f.tensors = tensors;
  });
  RequireRestoreRejected(path, target, {"tensor 'optimizer.0.weight.exp_avg' holds an infinity at element 5"});

  fresh();
  Rewrite(path, [](dlb::Safetensors& f) { f.tensors = f.tensors.Without({"optimizer.step"}); });
  RequireRestoreRejected(path, target, {"Optimizer::LoadState", "missing step"});
  // Finite but impossible optimizer state: refused naming the tensor, not resumed to diverge
  // in the first step and be blamed on the learning rate.
  fresh();
  Rewrite(path, [](dlb::Safetensors& f) {
    *f.tensors.Find("optimizer.step") = dlb::Tensor::FromValues(dlb::DType::I64, {}, std::vector<std::int64_t>{-1});
  });
  RequireRestoreRejected(path, target, {"Optimizer::LoadState: state 'step' is -1", "corrupt"});
  fresh();
  Rewrite(path, [](dlb::Safetensors& f) {
    dlb::Tensor& tensor = *f.tensors.Find("optimizer.3.bias.exp_avg_sq");
    std::vector<float> values = tensor.Values<float>();
    values[2] = -0.25f;
    tensor = dlb::Tensor::FromValues(dlb::DType::F32, tensor.shape, values);
  });
  RequireRestoreRejected(path, target, {"state '3.bias.exp_avg_sq': element 2 is -0.25", ">= 0"});
  fresh();
  Rewrite(path, [](dlb::Safetensors& f) { f.metadata["epoch"] = "-1"; });
  RequireRestoreRejected(path, target, {"metadata 'epoch' is '-1'"});
  fresh();
  Rewrite(path, [](dlb::Safetensors& f) { f.metadata["history"] = "[{\"epoch\": 1}]"; });
  RequireRestoreRejected(path, target, {"metadata 'history'"});
  fresh();
  Rewrite(path, [](dlb::Safetensors& f) { f.metadata["format_version"] = "7"; });
  RequireRestoreRejected(path, target, {"format version 7"});

  // A model file is not a checkpoint.
  dlb::Save(target.model, path);
  RequireRestoreRejected(path, target, {"not a training checkpoint", "'dlblocks.model'"});
}

TEST_CASE("checkpoint: callbacks need distinct state names", "[checkpoint]") {
  TempDir dir;
  Run run(Data(), "sgd", 1);
  DecayCallback twin(1);
  REQUIRE_THROWS_MATCHES(
      dlb::SaveCheckpoint(dir / "c", dlb::TrainingState<float>{run.model, run.optimizer, run.train, {&run.decay, &twin}}, 0),
      dlb::ArgumentError, MessageContains({"two callbacks have the StateName() 'decay'"}));
  DecayCallback dotted(1, "a.b");
  REQUIRE_THROWS_MATCHES(
      dlb::SaveCheckpoint(dir / "c", dlb::TrainingState<float>{run.model, run.optimizer, run.train, {&dotted}}, 0),
      dlb::ArgumentError, MessageContains({"without '.'", "'a.b'"}));
}
