#pragma once
/// \file
/// Training checkpoints: everything needed to resume a run and reproduce the uninterrupted
/// run bit for bit, in one safetensors file, written atomically (every epoch by
/// CheckpointCallback).
///
/// A checkpoint is a model file (see dlb/serialization/model_file.hpp, so LoadModel and
/// predict_fashion_mnist read it too) with format "dlblocks.checkpoint" and more state:
/// - tensors:
///     "<layer>.<name>"             the model, StateScope::Checkpoint: parameters, buffers and
///                                  resume-only state such as a Dropout layer's generator
///     "optimizer.<param>.<state>"  the optimizer: "optimizer.0.weight.exp_avg" ...,
///                                  "optimizer.step" (I64) and "optimizer.lr" (F64)
///     "data.generator", "data.order"  the training DataSet's shuffling generator and order
///     "callbacks.<StateName()>.<name>"  each callback's State(), after PrepareState(model)
///                                  (EarlyStopping's includes the best epoch's weights)
/// - metadata, besides a model file's:
///     epoch             the number of epochs completed
///     optimizer         the update rule's name ("Adam"), checked on restore
///     train_samples     samples and batch size of the training DataSet, checked on restore
///     train_batch_size
///     history           JSON array of the finished epochs' rows (EpochStats)
///
/// Resuming: build the same model, optimizer, data sets and callbacks as the interrupted
/// run, call RestoreCheckpoint, then TrainModel with TrainOptions::initial_epoch = the
/// returned epoch.

#include <climits>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/linkage.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/data/standardize.hpp"
#include "dlb/serialization/model_file.hpp"
#include "dlb/io/safetensors.hpp"
#include "dlb/model/model.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/training/callback.hpp"

namespace dlb {

/// The live objects a checkpoint covers (references; nothing is copied).
template <Scalar T>
struct TrainingState {
  ModelNN<T>& model;
  Optimizer<T>& optimizer;
  DataSet<T>& train;
  /// Callbacks whose State() is saved, under "callbacks.<StateName()>."; those with no
  /// state are skipped. StateName()s must be distinct, non-empty and without '.'.
  std::vector<Callback<T>*> callbacks = {};
};

/// What RestoreCheckpoint read besides the state it restored.
struct CheckpointInfo {
  int epoch = 0;                    ///< epochs completed: pass as TrainOptions::initial_epoch
  std::vector<EpochStats> history;  ///< the rows of those epochs, as saved
  Metadata metadata;                ///< all of the file's metadata
};

/// Writes a checkpoint of `state` after `epoch` completed epochs to `path` (see the file
/// comment), with the rows of `history` and, when given, the standardizer of the inputs.
/// Atomic: `path` holds the previous checkpoint or the complete new one, never a mix.
/// Throws ArgumentError when a layer has no Spec(), a value is NaN or infinite, the
/// callbacks' state names clash or the standardizer does not fit; FileError when the file
/// cannot be written.
template <Scalar T>
void SaveCheckpoint(const std::string& path, const TrainingState<T>& state, int epoch,
                    const std::vector<EpochStats>& history = {},
                    const std::type_identity_t<Standardizer<T>>* standardizer = nullptr);

/// Restores `state` (model, optimizer, training DataSet and the callbacks' State()) from the
/// checkpoint at `path`; returns the number of completed epochs and the saved history.
/// All or nothing: on any error every object is left as it was.
/// Throws FileError, naming the file and what is wrong, for a bad file (see
/// ReadSafetensors), a file that is not a checkpoint, a newer format version, another
/// architecture, optimizer, training-set size or batch size than this run's, missing or
/// unexpected tensors (all listed) or state for a callback this run does not have, a dtype
/// or shape that does not fit, NaN or infinite values, or a saved order that is not a
/// permutation of the training samples.
template <Scalar T>
CheckpointInfo RestoreCheckpoint(const std::string& path, const TrainingState<T>& state);

/// Writes a checkpoint at the end of every epoch, replacing the previous one atomically.
///
/// Put it last in TrainModel's callbacks, so that the other callbacks' OnEpochEnd updates
/// are in the checkpoint. `callbacks` are those whose State() it saves (usually all the
/// others), `standardizer` the input preprocessing to store. When resuming, call
/// SetEarlierHistory(info.history) so that later checkpoints keep the earlier epochs' rows.
template <Scalar T>
class CheckpointCallback : public Callback<T> {
 public:
  explicit CheckpointCallback(std::string path, std::vector<Callback<T>*> callbacks = {},
                              const Standardizer<T>* standardizer = nullptr)
      : path_(std::move(path)), callbacks_(std::move(callbacks)), standardizer_(standardizer) {}

  /// Rows of the epochs before this TrainModel call (from RestoreCheckpoint).
  void SetEarlierHistory(std::vector<EpochStats> history) { earlier_ = std::move(history); }

  const std::string& Path() const { return path_; }

  void OnEpochEnd(TrainingContext<T>& context, EpochStats& /*stats*/) override {
    std::vector<EpochStats> history = earlier_;
    history.insert(history.end(), context.history.begin(), context.history.end());
    SaveCheckpoint(path_, TrainingState<T>{context.model, context.optimizer, context.train, callbacks_},
                   context.epoch, history, standardizer_);
  }

 private:
  std::string path_;
  std::vector<Callback<T>*> callbacks_;
  const Standardizer<T>* standardizer_;
  std::vector<EpochStats> earlier_;
};

/// DLB_COMPILED_CHECKPOINT(EXTERN, T): dlb::compiled's instantiations of this header when it
/// was built with nlohmann-json (src/compiled/serialization.cpp, DLB_COMPILED_SERIALIZATION).
#define DLB_COMPILED_CHECKPOINT(EXTERN, T)                                                      \
  EXTERN template void SaveCheckpoint<T>(const std::string&, const TrainingState<T>&, int,     \
                                         const std::vector<EpochStats>&, const Standardizer<T>*); \
  EXTERN template CheckpointInfo RestoreCheckpoint<T>(const std::string&, const TrainingState<T>&); \
  EXTERN template class CheckpointCallback<T>;
#if defined(DLB_COMPILED_SERIALIZATION) && !defined(DLB_COMPILED_DEFINITIONS)
DLB_COMPILED_CHECKPOINT(extern, float)
DLB_COMPILED_CHECKPOINT(extern, double)
#endif

}  // namespace dlb

#if DLB_SERIALIZATION_DEFINITIONS
#include "dlb/serialization/impl/checkpoint.ipp"
#endif
