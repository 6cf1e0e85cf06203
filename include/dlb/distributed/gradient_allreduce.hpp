#pragma once
/// \file
/// Data-parallel training: the callback that averages every rank's gradients before the
/// optimizer step, so that all ranks take the step of the global batch.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/types.hpp"
#include "dlb/distributed/communicator.hpp"
#include "dlb/training/callback.hpp"

namespace dlb {

/// Averages the gradients of all ranks after every backward pass (data parallelism).
///
/// Each rank trains a replica of the model on its shard of every global batch
/// (DataSet::SetShard). With n_r the samples of rank r's shard, L_r its mean loss and g_r
/// its gradient of L_r (the mean over its shard) for a parameter, the global batch of
/// n = sum_r n_r samples has the mean loss L = sum_r n_r L_r / n and the gradient
///   g = sum_r n_r g_r / n,
/// which is what AfterBackward leaves in every parameter's gradient on every rank. It packs
/// [n_r g_1 ... n_r g_K, n_r L_r, n_r] (P + 2 elements for P parameter values) into one
/// buffer allocated once, sums it across ranks with one MPI_Allreduce and unpacks
/// g = sum / n. All ranks receive the same bits, so identical replicas take identical
/// optimizer steps and stay identical; the divergence guard, which runs after the callbacks,
/// sees the same gradients on every rank and therefore fires on all of them together.
/// context.batch_loss becomes the global batch's mean loss L.
///
/// OnTrainBegin takes the optimizer's parameters, checks that every rank has the same number
/// of parameter values (ArgumentError on every rank otherwise) and copies rank 0's parameters
/// to all ranks, so that the replicas start identical. OnEpochEnd replaces the epoch's
/// Train Loss and Train Score by their values over all ranks' samples (one allreduce of 3
/// numbers); put this callback first so that the others see those.
///
/// Requires: every rank runs the same TrainModel (same model structure, optimizer, epochs and
/// number of batches per epoch, which sharding guarantees) with a Communicator over the same
/// ranks. The validation set is not sharded: every rank evaluates all of it and gets the same
/// numbers (the replicas are identical). Non-trainable state (batch-norm running statistics)
/// is not touched here.
/// Ensures: no allocation per step; one MPI_Allreduce per step of BytesPerStep() bytes.
template <Scalar T>
class GradientAllreduce : public Callback<T> {
 public:
  explicit GradientAllreduce(Communicator& communicator) : communicator_(&communicator) {}

  void OnTrainBegin(TrainingContext<T>& context) override { Attach(context.optimizer.Parameters()); }

  /// Averages the gradients across ranks (see the class comment).
  void AfterBackward(TrainingContext<T>& context) override {
    if (buffer_.size() == 0) Attach(context.optimizer.Parameters());
    const T samples = static_cast<T>(context.batch_samples);
    Index offset = 0;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const Matrix<T>& grad = *params_[i].grad;
      if (grad.size() != sizes_[i]) {
        throw ShapeError("GradientAllreduce: the gradient of " + params_[i].name + " has " +
                         std::to_string(grad.size()) + " elements, " +
                         std::to_string(sizes_[i]) + " when training began");
      }
      T* out = buffer_.data() + offset;
      ParallelRanges(grad.size(), 1, [&](int, Index begin, Index length) {
        Eigen::Map<Vector<T>>(out + begin, length) =
            samples * Eigen::Map<const Vector<T>>(grad.data() + begin, length);
      });
      offset += sizes_[i];
    }
    buffer_(offset) = samples * static_cast<T>(context.batch_loss);
    buffer_(offset + 1) = samples;

    const auto start = std::chrono::steady_clock::now();
    communicator_->SumInPlace(buffer_.data(), buffer_.size());
    allreduce_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++steps_;

    const T total = buffer_(offset + 1);
    const T inverse = T(1) / total;
    offset = 0;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      Matrix<T>& grad = *params_[i].grad;
      const T* in = buffer_.data() + offset;
      ParallelRanges(grad.size(), 1, [&](int, Index begin, Index length) {
        Eigen::Map<Vector<T>>(grad.data() + begin, length) =
            inverse * Eigen::Map<const Vector<T>>(in + begin, length);
      });
      offset += sizes_[i];
    }
    context.batch_loss = static_cast<double>(buffer_(offset)) / static_cast<double>(total);
  }

  /// The epoch's training loss and accuracy over all ranks' samples.
  void OnEpochEnd(TrainingContext<T>& context, EpochStats& stats) override {
    const double samples = static_cast<double>(context.running.samples);
    double sums[3] = {context.running.loss * samples, context.running.score * samples, samples};
    communicator_->SumInPlace(sums, 3);
    if (sums[2] > 0) {
      stats.train_loss = sums[0] / sums[2];
      stats.train_score = sums[1] / sums[2];
    }
  }

  /// Bytes each rank contributes to the allreduce per step: (P + 2) * sizeof(T), P the
  /// number of parameter values (0 before training began).
  Index BytesPerStep() const { return buffer_.size() * static_cast<Index>(sizeof(T)); }
  /// Allreduce calls made, and the wall time spent in them (waiting for slower ranks
  /// included).
  std::int64_t Steps() const { return steps_; }
  double AllreduceSeconds() const { return allreduce_seconds_; }

 private:
  /// Takes `params`, sizes the fused buffer, checks the parameter count against every rank's
  /// and copies rank 0's values to all ranks. Collective.
  void Attach(const std::vector<Parameter<T>>& params) {
    params_ = params;
    sizes_.clear();
    Index total = 0;
    for (const Parameter<T>& p : params_) {
      sizes_.push_back(p.value->size());
      total += p.value->size();
    }
    std::int64_t range[2] = {-static_cast<std::int64_t>(total), static_cast<std::int64_t>(total)};
    communicator_->AllreduceInPlace(range, 2, MPI_MAX);  // {-min, max} over the ranks
    if (-range[0] != range[1]) {
      throw ArgumentError("GradientAllreduce: the ranks' models differ: between " +
                          std::to_string(-range[0]) + " and " + std::to_string(range[1]) +
                          " parameter values (this rank has " + std::to_string(total) +
                          "); every rank must build the same model");
    }
    buffer_.resize(total + 2);
    for (const Parameter<T>& p : params_) communicator_->Broadcast(p.value->data(), p.value->size());
  }

  Communicator* communicator_;
  std::vector<Parameter<T>> params_;
  std::vector<Index> sizes_;
  Vector<T> buffer_;
  std::int64_t steps_ = 0;
  double allreduce_seconds_ = 0;
};

}  // namespace dlb
