#pragma once
/// \file
/// The training loop: TrainEpoch (one pass with updates), Evaluate (one pass without) and
/// TrainModel (epochs of both, with callbacks and the progress display).

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/losses/loss.hpp"
#include "dlb/metrics/accuracy.hpp"
#include "dlb/model/model.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/training/callback.hpp"
#include "dlb/training/divergence_guard.hpp"
#include "dlb/training/progress.hpp"

namespace dlb {

/// How TrainModel runs.
struct TrainOptions {
  int epochs = 10;  ///< the last epoch to run (1-based)
  /// Epochs already done (when resuming from a checkpoint): training starts at
  /// initial_epoch + 1. The data order and generators must have been restored too.
  int initial_epoch = 0;
  /// Where the progress goes (a ProgressLine after the other callbacks: the notebook's line
  /// after each epoch, FormatEpoch); null prints nothing.
  std::ostream* log = nullptr;
  /// Whether a live line shows each batch during the epoch; Auto: when `log` is a terminal.
  ProgressMode progress = ProgressMode::Auto;
  /// Check the loss and gradients every batch and undo a step that makes a parameter
  /// non-finite (see DivergenceGuard); the cost is about one extra read of the parameters.
  bool guard_divergence = true;
};

/// What TrainModel returns: one row per epoch run, and why it stopped early, if it did.
struct TrainResult {
  std::vector<EpochStats> history;
  std::optional<std::string> stop_reason;
};

/// Mean loss and accuracy of `model` over `data` in Mode::Inference (no updates).
template <Scalar T, Loss L>
PassResult Evaluate(ModelNN<T>& model, DataSet<T>& data, L& loss) {
  model.SetMode(Mode::Inference);
  double loss_sum = 0;
  Index correct = 0, samples = 0;
  for (const auto& batch : data) {
    const Matrix<T>& logits = model.Forward(batch.x);
    loss_sum += static_cast<double>(loss.Value(logits, batch.y)) * static_cast<double>(batch.x.cols());
    correct += CountCorrect(logits, batch.y);
    samples += batch.x.cols();
  }
  return {loss_sum / static_cast<double>(samples),
          static_cast<double>(correct) / static_cast<double>(samples), samples};
}

namespace internal {

/// TrainEpoch's loop; `step_lr` receives the learning rate of each step as it is taken.
template <Scalar T, Loss L>
PassResult TrainPass(TrainingContext<T>& context, L& loss, const std::vector<Callback<T>*>& callbacks,
                     DivergenceGuard<T>* guard, double& step_lr) {
  ModelNN<T>& model = context.model;
  model.SetMode(Mode::Train);
  const auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  Index correct = 0, samples = 0;
  context.batches = context.train.NumBatches();
  context.batch = 0;
  context.running = {};
  for (const auto& batch : context.train) {
    ++context.batch;
    const Matrix<T>& logits = model.Forward(batch.x);
    context.batch_loss = static_cast<double>(loss.Compute(logits, batch.y, context.dlogits));
    context.batch_samples = batch.x.cols();
    if (guard != nullptr) guard->CheckLoss(context.batch_loss, context.epoch, context.batch);
    model.Backward(context.dlogits);
    for (Callback<T>* callback : callbacks) callback->AfterBackward(context);
    if (guard != nullptr) {
      guard->CheckGradients(context.epoch, context.batch);
      guard->Snapshot();
    }
    step_lr = static_cast<double>(context.optimizer.LearningRate());
    context.optimizer.Step();
    if (guard != nullptr) guard->CheckParametersOrRestore(context.epoch, context.batch);
    loss_sum += context.batch_loss * static_cast<double>(batch.x.cols());
    correct += CountCorrect(logits, batch.y);
    samples += batch.x.cols();
    context.running = {loss_sum / static_cast<double>(samples),
                       static_cast<double>(correct) / static_cast<double>(samples), samples};
    context.epoch_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (Callback<T>* callback : callbacks) callback->OnBatchEnd(context);
    if (context.stop_reason) break;
  }
  return context.running;
}

}  // namespace internal

/// One training pass over context.train in Mode::Train: per batch Forward, loss, Backward,
/// the callbacks' AfterBackward, the guard's checks (when `guard` is given), the optimizer
/// step and the callbacks' OnBatchEnd. Stops early, after a batch, when a callback requests
/// it. Throws DivergenceError (guarded) when the loss or an update stops being finite.
template <Scalar T, Loss L>
PassResult TrainEpoch(TrainingContext<T>& context, L& loss,
                      const std::vector<Callback<T>*>& callbacks = {},
                      std::type_identity_t<DivergenceGuard<T>>* guard = nullptr) {
  double step_lr = 0;
  return internal::TrainPass(context, loss, callbacks, guard, step_lr);
}

/// Trains from epoch options.initial_epoch + 1 to options.epochs: each epoch a training pass
/// over `train` (with updates) and a validation pass over `validation`, with the callbacks'
/// hooks (see Callback for their order); with options.log, a ProgressLine runs after the
/// given callbacks and prints each epoch's FormatEpoch line (and, in ProgressMode::Live or
/// on a terminal, a live line during the epoch). EpochStats::lr is the learning rate of the
/// epoch's last step. Stops early when a callback asks (TrainResult::stop_reason says why).
/// Throws DivergenceError (parameters left at their last finite values) when guarded
/// training stops producing finite numbers, ArgumentError for an invalid epoch range.
template <Scalar T, Loss L>
TrainResult TrainModel(ModelNN<T>& model, DataSet<T>& train, DataSet<T>& validation, L& loss,
                       Optimizer<T>& optimizer, const TrainOptions& options = {},
                       const std::vector<Callback<T>*>& callbacks = {}) {
  if (options.epochs < 1 || options.initial_epoch < 0 || options.initial_epoch > options.epochs) {
    throw ArgumentError("TrainModel: need epochs >= 1 and 0 <= initial_epoch <= epochs, got epochs " +
                        std::to_string(options.epochs) + ", initial_epoch " +
                        std::to_string(options.initial_epoch));
  }
  TrainResult result;
  TrainingContext<T> context(model, optimizer, train, result.history);
  context.epochs = options.epochs;
  DivergenceGuard<T> guard(optimizer.Parameters());
  std::optional<ProgressLine<T>> progress;
  std::vector<Callback<T>*> hooks = callbacks;
  if (options.log != nullptr) {
    const bool live = options.progress == ProgressMode::Live ||
                      (options.progress == ProgressMode::Auto && IsTerminal(*options.log));
    hooks.push_back(&progress.emplace(*options.log, live));
  }
  for (Callback<T>* callback : hooks) callback->OnTrainBegin(context);
  for (int epoch = options.initial_epoch + 1; epoch <= options.epochs; ++epoch) {
    context.epoch = epoch;
    const auto start = std::chrono::steady_clock::now();
    for (Callback<T>* callback : hooks) callback->OnEpochBegin(context);
    double step_lr = static_cast<double>(optimizer.LearningRate());
    const PassResult fit = internal::TrainPass(context, loss, hooks,
                                             options.guard_divergence ? &guard : nullptr, step_lr);
    const PassResult val = Evaluate(model, validation, loss);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    result.history.push_back({epoch, step_lr, fit.loss, val.loss, fit.score, val.score, elapsed.count()});
    context.batch = 0;
    for (Callback<T>* callback : hooks) callback->OnEpochEnd(context, result.history.back());
    if (context.stop_reason) break;
  }
  for (Callback<T>* callback : hooks) callback->OnTrainEnd(context);
  result.stop_reason = context.stop_reason;
  return result;
}

}  // namespace dlb
