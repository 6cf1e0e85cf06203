#pragma once
/// \file
/// The training loop: TrainEpoch (one pass with updates), Evaluate (one pass without) and
/// TrainModel (epochs of both, with callbacks), plus the notebook's epoch line.

#include <chrono>
#include <cstdio>
#include <initializer_list>
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

namespace dlb {

/// How TrainModel runs.
struct TrainOptions {
  int epochs = 10;  ///< the last epoch to run (1-based)
  /// Epochs already done (when resuming from a checkpoint): training starts at
  /// initial_epoch + 1. The data order and generators must have been restored too.
  int initial_epoch = 0;
  std::ostream* log = nullptr;  ///< where the per-epoch line goes; null prints nothing
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

/// One training pass over context.train in Mode::Train: per batch Forward, loss, Backward,
/// the callbacks' AfterBackward, the guard's checks (when `guard` is given), the optimizer
/// step and the callbacks' OnBatchEnd. Stops early, after a batch, when a callback requests
/// it. Throws DivergenceError (guarded) when the loss or an update stops being finite.
template <Scalar T, Loss L>
PassResult TrainEpoch(TrainingContext<T>& context, L& loss,
                      const std::vector<Callback<T>*>& callbacks = {},
                      std::type_identity_t<DivergenceGuard<T>>* guard = nullptr) {
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

/// The notebook's line: "Epoch    3 / 10: | Train Loss:  0.345 | Val Loss:  0.371 |
/// Train Score:  0.874 | Val Score:  0.866 | Epoch Time:  1.234 |".
/// The line is never truncated, however large the numbers.
inline std::string FormatEpoch(const EpochStats& s, int epochs) {
  auto print = [&](char* out, std::size_t size) {
    return std::snprintf(
        out, size,
        "Epoch %4d / %d: | Train Loss: %6.3f | Val Loss: %6.3f | Train Score: %6.3f | "
        "Val Score: %6.3f | Epoch Time: %6.3f |",
        s.epoch, epochs, s.train_loss, s.val_loss, s.train_score, s.val_score, s.seconds);
  };
  std::string line(static_cast<std::size_t>(print(nullptr, 0)), '\0');
  print(line.data(), line.size() + 1);  // the +1 is the terminator std::string already holds
  return line;
}

/// Trains from epoch options.initial_epoch + 1 to options.epochs: each epoch a training pass
/// over `train` (with updates) and a validation pass over `validation`, with the callbacks'
/// hooks (see Callback for their order); prints FormatEpoch lines to options.log. Stops
/// early when a callback asks (TrainResult::stop_reason says why). Throws DivergenceError
/// (parameters left at their last finite values) when guarded training stops producing
/// finite numbers, ArgumentError for an invalid epoch range.
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
  TrainingContext<T> context{model, optimizer, train, result.history};
  context.epochs = options.epochs;
  DivergenceGuard<T> guard(optimizer.Parameters());
  for (Callback<T>* callback : callbacks) callback->OnTrainBegin(context);
  for (int epoch = options.initial_epoch + 1; epoch <= options.epochs; ++epoch) {
    context.epoch = epoch;
    const auto start = std::chrono::steady_clock::now();
    for (Callback<T>* callback : callbacks) callback->OnEpochBegin(context);
    const PassResult fit = TrainEpoch(context, loss, callbacks, options.guard_divergence ? &guard : nullptr);
    const PassResult val = Evaluate(model, validation, loss);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    result.history.push_back({epoch, static_cast<double>(optimizer.LearningRate()), fit.loss,
                              val.loss, fit.score, val.score, elapsed.count()});
    context.batch = 0;
    for (Callback<T>* callback : callbacks) callback->OnEpochEnd(context, result.history.back());
    if (options.log != nullptr) {
      *options.log << FormatEpoch(result.history.back(), options.epochs) << '\n' << std::flush;
    }
    if (context.stop_reason) break;
  }
  for (Callback<T>* callback : callbacks) callback->OnTrainEnd(context);
  result.stop_reason = context.stop_reason;
  return result;
}

}  // namespace dlb
