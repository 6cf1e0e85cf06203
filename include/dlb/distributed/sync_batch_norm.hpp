#pragma once
/// \file
/// Batch normalisation over the global batch in data-parallel training (torch's
/// SyncBatchNorm): every batch-norm layer of a model sums its batch statistics across ranks.

#include <string>

#include "dlb/core/types.hpp"
#include "dlb/distributed/communicator.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/model/model.hpp"

namespace dlb {

/// Makes every layer of `model` that computes batch statistics (BatchNorm1D, BatchNorm2D, or
/// a layer of yours with SetStatisticsReducer: see dlb::BatchStatisticsLayer), inside blocks
/// too, compute them over the whole global batch instead of this rank's shard: installs a
/// statistics reducer (see BatchNorm) that sums the layer's buffer of 2C + 1 doubles across
/// the ranks with MPI_Allreduce, once in each training Forward and once in each training
/// Backward. With equal shards, the replicas then compute what one process computes on the
/// global batch, running statistics included, so they stay identical. Returns the number of
/// layers it synchronised.
///
/// Without it each rank normalises over its own shard (torch's default under
/// DistributedDataParallel): cheaper, but the batch statistics, and thus the gradients, differ
/// from one process's, and each rank's running statistics are its own.
/// Cost: 2 x (number of batch-norm layers) small allreduces per step, bound by latency.
/// Requires: `communicator` outlives the model's training; every rank runs the same training
/// Forward and Backward calls (inference needs no communication).
template <Scalar T>
Index SyncBatchNorm(ModelNN<T>& model, Communicator& communicator) {
  const StatisticsReducer reducer = [&communicator](double* sums, Index count) {
    communicator.SumInPlace(sums, count);
  };
  Index synced = 0;
  model.VisitLayers([&](const std::string&, internal::AnyLayer<T>& layer, int) {
    if (layer.SetStatisticsReducer(reducer)) ++synced;
  });
  return synced;
}

}  // namespace dlb
