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
#include "dlb/metrics/target_metrics.hpp"
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

namespace internal {

/// Throws ArgumentError unless loss L takes the targets `data` holds: class labels need a
/// Loss, real-valued targets a TargetLoss (MseLoss is both). `who` names the caller.
template <AnyLoss L, Scalar T>
void CheckLossFitsData(const DataSet<T>& data, const char* who) {
  if (data.HasLabels() && !Loss<L>) {
    throw ArgumentError(std::string(who) + ": the loss takes real-valued targets but the data set "
                        "holds class labels; use CrossEntropyLoss or MseLoss, or give the DataSet a "
                        "target matrix");
  }
  if (!data.HasLabels() && !TargetLoss<L>) {
    throw ArgumentError(std::string(who) + ": the loss takes class labels but the data set holds "
                        "real-valued targets (" + std::to_string(data.NumTargets()) +
                        " per sample); use MseLoss or BCEWithLogitsLoss");
  }
}

/// The loss of a batch against whichever targets it holds, with dL/doutputs in `d`.
template <AnyLoss L, Scalar T>
double ComputeLoss(L& loss, const Matrix<T>& outputs, const Batch<T>& batch, Matrix<T>& d) {
  if (batch.targets.rows() > 0) {
    if constexpr (TargetLoss<L>) return static_cast<double>(loss.Compute(outputs, batch.targets, d));
  } else {
    if constexpr (Loss<L>) return static_cast<double>(loss.Compute(outputs, batch.y, d));
  }
  throw ArgumentError("ComputeLoss: the loss does not take this batch's kind of targets");
}

/// The loss of a batch without the gradient.
template <AnyLoss L, Scalar T>
double LossValue(L& loss, const Matrix<T>& outputs, const Batch<T>& batch) {
  if (batch.targets.rows() > 0) {
    if constexpr (TargetLoss<L>) return static_cast<double>(loss.Value(outputs, batch.targets));
  } else {
    if constexpr (Loss<L>) return static_cast<double>(loss.Value(outputs, batch.y));
  }
  throw ArgumentError("LossValue: the loss does not take this batch's kind of targets");
}

/// A pass's running loss and score: accuracy for class labels; for real-valued targets the
/// score the loss asks for (TargetScoreOf: R^2 by default, or element-wise accuracy) and
/// MSE/MAE. Allocates only in Start (real-valued targets, when their count changes).
template <Scalar T>
class PassMeter {
 public:
  template <AnyLoss L>
  void Start(const DataSet<T>& data) {
    kind_ = data.HasLabels() ? ScoreKind::Accuracy : TargetScoreOf<L>();
    targets_ = !data.HasLabels();
    if (targets_) regression_.Reset(data.NumTargets());
    loss_sum_ = 0;
    correct_ = samples_ = elements_ = 0;
  }

  void Add(const Matrix<T>& outputs, const Batch<T>& batch, double batch_loss) {
    const Index n = batch.x.cols();
    loss_sum_ += batch_loss * static_cast<double>(n);
    samples_ += n;
    if (!targets_) {
      correct_ += CountCorrect(outputs, batch.y);
      return;
    }
    regression_.Add(outputs, batch.targets);
    if (kind_ == ScoreKind::BinaryAccuracy) {
      correct_ += CountBinaryCorrect(outputs, batch.targets);
      elements_ += batch.targets.size();
    }
  }

  PassResult Result() const {
    PassResult result;
    result.samples = samples_;
    result.kind = kind_;
    if (samples_ == 0) return result;
    result.loss = loss_sum_ / static_cast<double>(samples_);
    if (!targets_) {
      result.score = static_cast<double>(correct_) / static_cast<double>(samples_);
      return result;
    }
    result.mse = regression_.Mse();
    result.mae = regression_.Mae();
    result.score = kind_ == ScoreKind::BinaryAccuracy
                       ? static_cast<double>(correct_) / static_cast<double>(elements_)
                       : regression_.R2();
    return result;
  }

 private:
  ScoreKind kind_ = ScoreKind::Accuracy;
  bool targets_ = false;
  RegressionMeter regression_;
  double loss_sum_ = 0;
  Index correct_ = 0, samples_ = 0, elements_ = 0;
};

}  // namespace internal

/// Mean loss and score of `model` over `data` in Mode::Inference (no updates): accuracy for
/// class labels; for real-valued targets R^2 (or the loss's kTargetScore) with MSE and MAE
/// (PassResult). Throws ArgumentError when the loss does not take the data's targets.
template <Scalar T, AnyLoss L>
PassResult Evaluate(ModelNN<T>& model, DataSet<T>& data, L& loss) {
  internal::CheckLossFitsData<L>(data, "Evaluate");
  model.SetMode(Mode::Inference);
  internal::PassMeter<T> meter;
  meter.template Start<L>(data);
  for (const auto& batch : data) {
    const Matrix<T>& logits = model.Forward(batch.x);
    meter.Add(logits, batch, internal::LossValue(loss, logits, batch));
  }
  return meter.Result();
}

namespace internal {

/// TrainEpoch's loop; `step_lr` receives the learning rate of each step as it is taken.
template <Scalar T, AnyLoss L>
PassResult TrainPass(TrainingContext<T>& context, L& loss, const std::vector<Callback<T>*>& callbacks,
                     DivergenceGuard<T>* guard, double& step_lr) {
  CheckLossFitsData<L>(context.train, "TrainEpoch");
  ModelNN<T>& model = context.model;
  model.SetMode(Mode::Train);
  const auto start = std::chrono::steady_clock::now();
  PassMeter<T> meter;
  meter.template Start<L>(context.train);
  context.batches = context.train.NumBatches();
  context.batch = 0;
  context.running = {};
  for (const auto& batch : context.train) {
    ++context.batch;
    const Matrix<T>& logits = model.Forward(batch.x);
    context.batch_loss = ComputeLoss(loss, logits, batch, context.dlogits);
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
    meter.Add(logits, batch, context.batch_loss);
    context.running = meter.Result();
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
template <Scalar T, AnyLoss L>
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
/// The data sets hold class labels or real-valued targets (DataSet); the loss must take them
/// (a Loss for labels, a TargetLoss for targets), and the scores fit them (PassResult).
/// Throws DivergenceError (parameters left at their last finite values) when guarded
/// training stops producing finite numbers, ArgumentError for an invalid epoch range or a
/// loss that does not take the data's targets.
template <Scalar T, AnyLoss L>
TrainResult TrainModel(ModelNN<T>& model, DataSet<T>& train, DataSet<T>& validation, L& loss,
                       Optimizer<T>& optimizer, const TrainOptions& options = {},
                       const std::vector<Callback<T>*>& callbacks = {}) {
  if (options.epochs < 1 || options.initial_epoch < 0 || options.initial_epoch > options.epochs) {
    throw ArgumentError("TrainModel: need epochs >= 1 and 0 <= initial_epoch <= epochs, got epochs " +
                        std::to_string(options.epochs) + ", initial_epoch " +
                        std::to_string(options.initial_epoch));
  }
  internal::CheckLossFitsData<L>(train, "TrainModel (training data)");
  internal::CheckLossFitsData<L>(validation, "TrainModel (validation data)");
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
    result.history.push_back(
        {epoch, step_lr, fit.loss, val.loss, fit.score, val.score, elapsed.count(), fit.kind});
    context.batch = 0;
    for (Callback<T>* callback : hooks) callback->OnEpochEnd(context, result.history.back());
    if (context.stop_reason) break;
  }
  for (Callback<T>* callback : hooks) callback->OnTrainEnd(context);
  result.stop_reason = context.stop_reason;
  return result;
}

}  // namespace dlb
