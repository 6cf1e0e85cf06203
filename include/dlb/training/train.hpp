#pragma once
/// \file
/// The notebook's training loop: RunEpoch (one pass over a data set) and TrainModel (epochs
/// of a training pass followed by a validation pass, printed as a table).

#include <chrono>
#include <cstdio>
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
#include "dlb/training/divergence_guard.hpp"

namespace dlb {

/// Mean loss and accuracy of one pass, weighted by batch size.
struct PassResult {
  double loss = 0;   ///< (1/S) sum over batches of n_b * loss_b, S = samples seen
  double score = 0;  ///< fraction of the S samples classified correctly
  Index samples = 0;
};

/// One row of the training history.
struct EpochStats {
  int epoch = 0;  ///< 1-based
  double train_loss = 0, val_loss = 0;
  double train_score = 0, val_score = 0;
  double seconds = 0;  ///< wall time of the training and validation passes
};

/// How TrainModel runs.
struct TrainOptions {
  int epochs = 10;
  std::ostream* log = nullptr;  ///< where the per-epoch line goes; null prints nothing
  /// Check the loss and gradients every batch and undo a step that makes a parameter
  /// non-finite (see DivergenceGuard); the cost is about one extra read of the parameters.
  bool guard_divergence = true;
};

/// One pass over `data`. In Mode::Train every batch runs Forward, loss, Backward and
/// optimizer->Step() (optimizer must not be null); in Mode::Inference only Forward and the
/// loss. Sets the model's mode. `epoch` only labels divergence errors.
/// Throws DivergenceError (training with a guard) when the loss or an update stops being finite.
template <Scalar T, Loss L>
PassResult RunEpoch(ModelNN<T>& model, DataSet<T>& data, L& loss,
                    std::type_identity_t<Optimizer<T>>* optimizer, Mode mode,
                    std::type_identity_t<DivergenceGuard<T>>* guard = nullptr, int epoch = 0) {
  if (mode == Mode::Train && optimizer == nullptr) {
    throw ArgumentError("RunEpoch: Mode::Train needs an optimizer");
  }
  model.SetMode(mode);
  double loss_sum = 0;
  Index correct = 0, samples = 0, batch_index = 0;
  Matrix<T> dlogits;  // allocated at the first batch, reused by the others
  for (const auto& batch : data) {
    ++batch_index;
    const Matrix<T>& logits = model.Forward(batch.x);
    double batch_loss;
    if (mode == Mode::Train) {
      batch_loss = loss.Compute(logits, batch.y, dlogits);
      if (guard != nullptr) guard->CheckLoss(batch_loss, epoch, batch_index);
      model.Backward(dlogits);
      if (guard != nullptr) {
        guard->CheckGradients(epoch, batch_index);
        guard->Snapshot();
      }
      optimizer->Step();
      if (guard != nullptr) guard->CheckParametersOrRestore(epoch, batch_index);
    } else {
      batch_loss = loss.Value(logits, batch.y);
    }
    loss_sum += batch_loss * static_cast<double>(batch.x.cols());
    correct += CountCorrect(logits, batch.y);
    samples += batch.x.cols();
  }
  return {loss_sum / static_cast<double>(samples),
          static_cast<double>(correct) / static_cast<double>(samples), samples};
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

/// Trains for options.epochs epochs: each epoch a training pass over `train` (with updates)
/// and a validation pass over `validation`; prints FormatEpoch lines to options.log and
/// returns the history. Throws DivergenceError (parameters left at their last finite
/// values) when guarded training stops producing finite numbers.
template <Scalar T, Loss L>
std::vector<EpochStats> TrainModel(ModelNN<T>& model, DataSet<T>& train, DataSet<T>& validation,
                                   L& loss, Optimizer<T>& optimizer,
                                   const TrainOptions& options = {}) {
  if (options.epochs < 1) {
    throw ArgumentError("TrainModel: epochs must be >= 1, got " + std::to_string(options.epochs));
  }
  std::vector<EpochStats> history;
  DivergenceGuard<T> guard(optimizer.Parameters());
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const PassResult fit = RunEpoch(model, train, loss, &optimizer, Mode::Train,
                                    options.guard_divergence ? &guard : nullptr, epoch);
    const PassResult val = RunEpoch(model, validation, loss, nullptr, Mode::Inference);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    history.push_back({epoch, fit.loss, val.loss, fit.score, val.score, elapsed.count()});
    if (options.log != nullptr) {
      *options.log << FormatEpoch(history.back(), options.epochs) << '\n' << std::flush;
    }
  }
  return history;
}

}  // namespace dlb
