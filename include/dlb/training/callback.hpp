#pragma once
/// \file
/// Callbacks: the hooks of the training loop. Schedules, early stopping, checkpoints,
/// progress display and the distributed gradient average are all callbacks, and a user's
/// own hook is written the same way.

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/targets.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/model/model.hpp"
#include "dlb/optimizers/optimizer.hpp"

namespace dlb {

/// Mean loss and score of one pass, weighted by batch size. The score fits the targets
/// (`kind`): accuracy for class labels; for real-valued targets R^2, or the element-wise
/// accuracy with a loss that says so (BCEWithLogitsLoss), and then also MSE and MAE.
struct PassResult {
  double loss = 0;   ///< (1/S) sum over batches of n_b * loss_b, S = samples seen
  double score = 0;  ///< see `kind`: by default the fraction of the S samples classified correctly
  Index samples = 0;
  ScoreKind kind = ScoreKind::Accuracy;
  double mse = 0;  ///< real-valued targets: mean squared error per element (0 for labels)
  double mae = 0;  ///< real-valued targets: mean absolute error per element (0 for labels)
};

/// One row of the training history.
struct EpochStats {
  int epoch = 0;  ///< 1-based
  double lr = 0;  ///< learning rate of the epoch's last step
  double train_loss = 0, val_loss = 0;
  double train_score = 0, val_score = 0;
  double seconds = 0;  ///< wall time of the training and validation passes
  ScoreKind score_kind = ScoreKind::Accuracy;  ///< what the scores measure (PassResult::kind)
};

/// What a callback sees and may change: the model, the optimizer, the training data and the
/// position in the run. Valid for the duration of one TrainModel call.
template <Scalar T>
struct TrainingContext {
  TrainingContext(ModelNN<T>& model_, Optimizer<T>& optimizer_, DataSet<T>& train_,
                  const std::vector<EpochStats>& history_)
      : model(model_), optimizer(optimizer_), train(train_), history(history_) {}

  ModelNN<T>& model;
  Optimizer<T>& optimizer;
  DataSet<T>& train;
  const std::vector<EpochStats>& history;  ///< the epochs finished so far
  int epochs = 0;        ///< the planned last epoch
  int epoch = 0;         ///< the current epoch, 1-based
  Index batches = 0;     ///< training batches per epoch
  Index batch = 0;       ///< the current batch within the epoch, 1-based (0 between epochs)
  double batch_loss = 0;     ///< loss of the current batch (after its forward pass)
  Index batch_samples = 0;   ///< samples in the current batch
  PassResult running;        ///< the epoch's training loss and accuracy so far
  double epoch_seconds = 0;  ///< wall time since the epoch began
  Matrix<T> dlogits;         ///< dL/dlogits of the current batch (reused from batch to batch)

  /// Asks TrainModel to stop after the current batch; `reason` is reported in its result.
  void RequestStop(std::string reason) {
    if (!stop_reason) stop_reason = std::move(reason);
  }
  std::optional<std::string> stop_reason;
};

/// A hook into TrainModel. Every method has an empty default: override the moments you need.
///
/// Order within one epoch: OnEpochBegin; per batch: forward and loss, backward,
/// AfterBackward (gradients ready, before the step: gradient averaging, clipping), the
/// divergence guard, the optimizer step, OnBatchEnd (per-batch schedules, progress); then
/// the validation pass and OnEpochEnd (epoch schedules, early stopping, checkpoints,
/// history). Callbacks run in the order they are given. A callback that keeps state across
/// epochs (a plateau counter, a best score) exposes it through State() so that checkpoints
/// save and restore it.
template <Scalar T>
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void OnTrainBegin(TrainingContext<T>& /*context*/) {}
  virtual void OnEpochBegin(TrainingContext<T>& /*context*/) {}
  virtual void AfterBackward(TrainingContext<T>& /*context*/) {}
  virtual void OnBatchEnd(TrainingContext<T>& /*context*/) {}
  /// `stats` is the epoch's row, already in context.history; a callback may fill columns.
  virtual void OnEpochEnd(TrainingContext<T>& /*context*/, EpochStats& /*stats*/) {}
  virtual void OnTrainEnd(TrainingContext<T>& /*context*/) {}
  /// State to save in checkpoints, named relative to the callback.
  virtual std::vector<StateRef<T>> State() { return {}; }
  /// Called with the model being trained before SaveCheckpoint and RestoreCheckpoint read
  /// State(): a callback whose state mirrors the model (EarlyStopping's copy of the best
  /// epoch's weights) gives that state the model's names and shapes here, so that a fresh
  /// callback can receive it from a checkpoint before training begins. Must not change how
  /// the callback trains. Default: nothing.
  virtual void PrepareState(ModelNN<T>& /*model*/) {}
  /// A name for the callback's state in a checkpoint ("callbacks.<StateName()>.").
  virtual std::string StateName() const { return "callback"; }
};

/// A callback made of lambdas, for quick hooks:
/// `dlb::LambdaCallback<float> hook; hook.on_epoch_end = [](auto& context, auto& stats) {...};`
template <Scalar T>
struct LambdaCallback : Callback<T> {
  std::function<void(TrainingContext<T>&)> on_epoch_begin;
  std::function<void(TrainingContext<T>&)> after_backward;
  std::function<void(TrainingContext<T>&)> on_batch_end;
  std::function<void(TrainingContext<T>&, EpochStats&)> on_epoch_end;
  std::function<void(TrainingContext<T>&)> on_train_end;

  void OnEpochBegin(TrainingContext<T>& c) override { if (on_epoch_begin) on_epoch_begin(c); }
  void AfterBackward(TrainingContext<T>& c) override { if (after_backward) after_backward(c); }
  void OnBatchEnd(TrainingContext<T>& c) override { if (on_batch_end) on_batch_end(c); }
  void OnEpochEnd(TrainingContext<T>& c, EpochStats& s) override { if (on_epoch_end) on_epoch_end(c, s); }
  void OnTrainEnd(TrainingContext<T>& c) override { if (on_train_end) on_train_end(c); }
};

}  // namespace dlb
