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

#if !__has_include(<nlohmann/json.hpp>)
#error "dlb/serialization/checkpoint.hpp needs nlohmann-json's <nlohmann/json.hpp> (Debian: nlohmann-json3-dev); link the CMake target dlb::serialization"
#endif
#include <nlohmann/json.hpp>

#include "dlb/core/error.hpp"
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

namespace internal {

/// The callbacks that have state, checked for distinct, well-formed names.
template <Scalar T>
std::vector<Callback<T>*> CallbacksWithState(const std::vector<Callback<T>*>& callbacks) {
  std::vector<Callback<T>*> with_state;
  std::set<std::string> names;
  for (Callback<T>* callback : callbacks) {
    if (callback == nullptr || callback->State().empty()) continue;
    const std::string name = callback->StateName();
    if (name.empty() || name.find('.') != std::string::npos) {
      throw ArgumentError("checkpoint: a callback's StateName() must be non-empty and without "
                          "'.', got '" + name + "'");
    }
    if (!names.insert(name).second) {
      throw ArgumentError("checkpoint: two callbacks have the StateName() '" + name +
                          "'; give each callback with state a distinct name");
    }
    with_state.push_back(callback);
  }
  return with_state;
}

inline std::string CallbackPrefix(const std::string& name) { return "callbacks." + name + "."; }

/// Lets every callback shape its model-sized state (Callback::PrepareState) before its
/// State() is read.
template <Scalar T>
void PrepareCallbackState(const TrainingState<T>& state) {
  for (Callback<T>* callback : state.callbacks) {
    if (callback != nullptr) callback->PrepareState(state.model);
  }
}

inline std::string HistoryJson(const std::vector<EpochStats>& history) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const EpochStats& s : history) {
    rows.push_back({{"epoch", s.epoch}, {"lr", s.lr}, {"train_loss", s.train_loss},
                    {"val_loss", s.val_loss}, {"train_score", s.train_score},
                    {"val_score", s.val_score}, {"seconds", s.seconds}});
  }
  return rows.dump();  // a non-finite number is written as null
}

inline std::vector<EpochStats> ParseHistory(const std::string& path, const std::string& text) {
  const nlohmann::json rows = ParseMetadataJson(path, "history", text);
  const auto fail = [&]() -> void {
    throw FileError(path, std::nullopt,
                    "metadata 'history': expected an array of objects with a whole epoch and "
                    "the numbers lr, train_loss, val_loss, train_score, val_score, seconds");
  };
  if (!rows.is_array()) fail();
  std::vector<EpochStats> history;
  for (const auto& row : rows) {
    if (!row.is_object() || !row.contains("epoch") || !row["epoch"].is_number_integer() ||
        row["epoch"].get<std::int64_t>() < 0 || row["epoch"].get<std::int64_t>() > INT_MAX) {
      fail();
    }
    EpochStats stats;
    stats.epoch = static_cast<int>(row["epoch"].get<std::int64_t>());
    const auto number = [&](const char* key) {
      if (!row.contains(key)) fail();
      const auto& value = row[key];
      if (value.is_null()) return std::numeric_limits<double>::quiet_NaN();
      if (!value.is_number()) fail();
      return value.get<double>();
    };
    stats.lr = number("lr");
    stats.train_loss = number("train_loss");
    stats.val_loss = number("val_loss");
    stats.train_score = number("train_score");
    stats.val_score = number("val_score");
    stats.seconds = number("seconds");
    history.push_back(stats);
  }
  return history;
}

/// The whole-number metadata `key`, in [0, max]; throws FileError when absent or malformed.
inline std::int64_t MetadataCount(const std::string& path, const Metadata& metadata,
                                  const std::string& key, std::int64_t max) {
  const auto it = metadata.find(key);
  const std::string text = it == metadata.end() ? "" : it->second;
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoll(text) > max) {
    throw FileError(path, std::nullopt,
                    "metadata '" + key + "' is " +
                        (it == metadata.end() ? std::string("missing") : "'" + text + "'") +
                        ", expected a whole number from 0 to " + std::to_string(max));
  }
  return std::stoll(text);
}

/// Throws FileError when the checkpoint's `key` differs from this run's `value`.
inline void RequireSameSetting(const std::string& path, const Metadata& metadata,
                               const std::string& key, const std::string& value,
                               const std::string& what) {
  const auto it = metadata.find(key);
  if (it == metadata.end() || it->second != value) {
    throw FileError(path, std::nullopt,
                    "the checkpoint was written with " + what + " " +
                        (it == metadata.end() ? std::string("(missing)") : it->second) +
                        ", this run has " + value);
  }
}

}  // namespace internal

/// Writes a checkpoint of `state` after `epoch` completed epochs to `path` (see the file
/// comment), with the rows of `history` and, when given, the standardizer of the inputs.
/// Atomic: `path` holds the previous checkpoint or the complete new one, never a mix.
/// Throws ArgumentError when a layer has no Spec(), a value is NaN or infinite, the
/// callbacks' state names clash or the standardizer does not fit; FileError when the file
/// cannot be written.
template <Scalar T>
void SaveCheckpoint(const std::string& path, const TrainingState<T>& state, int epoch,
                    const std::vector<EpochStats>& history = {},
                    const std::type_identity_t<Standardizer<T>>* standardizer = nullptr) {
  if (epoch < 0) throw ArgumentError("SaveCheckpoint: epoch must be >= 0, got " + std::to_string(epoch));
  Metadata metadata = internal::ModelMetadata(state.model, standardizer, kCheckpointFormat);
  internal::AddExtraMetadata(metadata, {{"epoch", std::to_string(epoch)},
                                      {"optimizer", state.optimizer.Name()},
                                      {"train_samples", std::to_string(state.train.NumSamples())},
                                      {"train_batch_size", std::to_string(state.train.BatchSize())},
                                      {"history", internal::HistoryJson(history)}});
  StateDict tensors = state.model.SaveState(StateScope::Checkpoint);
  tensors.Merge(state.optimizer.SaveState(), "optimizer.");
  tensors.Merge(state.train.SaveState(), "data.");
  internal::PrepareCallbackState(state);
  for (Callback<T>* callback : internal::CallbacksWithState(state.callbacks)) {
    CollectState(callback->State(), StateScope::Checkpoint, tensors,
                 internal::CallbackPrefix(callback->StateName()));
  }
  internal::RequireFiniteToSave(path, tensors);
  WriteSafetensors(path, tensors, metadata);
}

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
CheckpointInfo RestoreCheckpoint(const std::string& path, const TrainingState<T>& state) {
  Safetensors file = ReadSafetensors(path);
  const FileFormat format = internal::CheckFormat(path, file.metadata);
  if (format != FileFormat::Checkpoint) {
    const auto it = file.metadata.find("format");
    throw FileError(path, std::nullopt,
                    "not a training checkpoint: its format is " +
                        (it == file.metadata.end() ? std::string("not given") : "'" + it->second + "'") +
                        ", expected '" + kCheckpointFormat + "' (written by SaveCheckpoint)");
  }
  const Metadata& metadata = file.metadata;
  const auto architecture = metadata.find("architecture");
  if (architecture == metadata.end()) {
    throw FileError(path, std::nullopt, "no 'architecture' in the checkpoint's metadata");
  }
  internal::RequireSameLayers(path, architecture->second, internal::FormatVersion(metadata),
                              state.model);
  internal::RequireSameSetting(path, metadata, "optimizer", state.optimizer.Name(), "the optimizer");
  internal::RequireSameSetting(path, metadata, "train_samples",
                             std::to_string(state.train.NumSamples()), "a training set of");
  internal::RequireSameSetting(path, metadata, "train_batch_size",
                             std::to_string(state.train.BatchSize()), "the batch size");
  CheckpointInfo info;
  info.epoch = static_cast<int>(internal::MetadataCount(path, metadata, "epoch", INT_MAX));
  if (const auto history = metadata.find("history"); history != metadata.end()) {
    info.history = internal::ParseHistory(path, history->second);
  }
  info.metadata = metadata;
  const StateDict& tensors = file.tensors;
  internal::RequireFinite(path, tensors);

  internal::PrepareCallbackState(state);
  const std::vector<Callback<T>*> callbacks = internal::CallbacksWithState(state.callbacks);
  std::set<std::string> known_callbacks;
  for (Callback<T>* callback : callbacks) known_callbacks.insert(callback->StateName());
  for (const auto& [name, tensor] : tensors.Entries()) {
    if (name.rfind("callbacks.", 0) != 0) continue;
    const std::string owner = name.substr(10, name.find('.', 10) - 10);
    if (known_callbacks.count(owner) == 0) {
      throw FileError(path, std::nullopt,
                      "tensor '" + name + "' is the state of a callback '" + owner +
                          "' that this run does not have");
    }
  }

  // Each part checks everything before it changes anything; the snapshots undo the parts
  // already restored when a later one fails.
  const StateDict model_before = state.model.SaveState(StateScope::Checkpoint);
  const StateDict optimizer_before = state.optimizer.SaveState();
  const StateDict data_before = state.train.SaveState();
  std::vector<StateDict> callbacks_before(callbacks.size());
  for (std::size_t i = 0; i < callbacks.size(); ++i) {
    CollectState(callbacks[i]->State(), StateScope::Checkpoint, callbacks_before[i]);
  }
  int restored = 0;
  try {
    internal::WithFileContext(path, "", [&] {
      state.model.LoadState(internal::ModelTensors(tensors, format), StateScope::Checkpoint);
      ++restored;
      state.optimizer.LoadState(tensors.WithPrefix("optimizer."));
      ++restored;
      state.train.LoadState(tensors.WithPrefix("data."));
      ++restored;
      for (Callback<T>* callback : callbacks) {
        RestoreState(callback->State(), StateScope::Checkpoint, tensors,
                     "callback '" + callback->StateName() + "'",
                     internal::CallbackPrefix(callback->StateName()));
        ++restored;
      }
    });
  } catch (...) {
    if (restored > 0) state.model.LoadState(model_before, StateScope::Checkpoint);
    if (restored > 1) state.optimizer.LoadState(optimizer_before);
    if (restored > 2) state.train.LoadState(data_before);
    for (int i = 3; i < restored; ++i) {
      RestoreState(callbacks[static_cast<std::size_t>(i - 3)]->State(), StateScope::Checkpoint,
                   callbacks_before[static_cast<std::size_t>(i - 3)], "callback");
    }
    throw;
  }
  return info;
}

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
