#pragma once
// The definitions of dlb/serialization/checkpoint.hpp: the JSON code and the templates that
// use it. Included by that header where it holds them (header-only), compiled into
// dlb::compiled for float and double otherwise (src/compiled/serialization.cpp; see
// dlb/core/linkage.hpp).

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

#include "dlb/serialization/checkpoint.hpp"
#include "dlb/serialization/model_file.hpp"

namespace dlb {

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

template <Scalar T>
void SaveCheckpoint(const std::string& path, const TrainingState<T>& state, int epoch,
                    const std::vector<EpochStats>& history,
                    const std::type_identity_t<Standardizer<T>>* standardizer) {
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

}  // namespace dlb
