#pragma once
/// \file
/// Model files: a trained ModelNN, its architecture and its preprocessing in one safetensors
/// file that LoadModel turns back into a working model with no code, and that PyTorch loads
/// with `model.load_state_dict(safetensors.torch.load_file(path))`.
///
/// Contents of a model file written by Save:
/// - tensors: ModelNN::SaveState(StateScope::Weights), i.e. the state_dict of the equivalent
///   torch.nn.Sequential ("0.weight" out x in, "0.bias", "1.running_mean" ...), in the
///   model's scalar type (F32 or F64);
/// - "__metadata__" (all values are strings; JSON texts where noted):
///     format           "dlblocks.model"
///     format_version   "2" (a reader refuses versions newer than it knows; version 1, which
///                      named layers by their index only, still reads)
///     library_version  the DLBlocks version that wrote it, e.g. "0.1.0"
///     dtype            "F32" or "F64", the model's scalar type
///     architecture     JSON {"input_shape": [c, h, w],
///                            "layers": [{"name": "0", "type": "Linear",
///                                        "args": {"in": 784, ...}}, ...]}
///                      (each layer's name and Spec(); a block lists its own layers in
///                      "layers" the same way; rebuilt through a LayerRegistry)
///     preprocessing    JSON {"standardize": {"mean": [...], "std": [...]}}, only when a
///                      Standardizer was given: per-feature statistics, numbers written so
///                      that they read back bit for bit. They live in the metadata rather than
///                      in tensors so that PyTorch's strict load_state_dict accepts the file.
///   plus any extra entries the caller adds.

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/linkage.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/data/standardize.hpp"
#include "dlb/io/safetensors.hpp"
#include "dlb/layers/layer_spec.hpp"
#include "dlb/model/layer_registry.hpp"
#include "dlb/model/model.hpp"
#include "dlb/model/predictor.hpp"

namespace dlb {

/// The layout of model files and checkpoints this library writes, and the newest it reads.
/// Version 2 names every layer and nests the layers of blocks; version 1 files still read.
inline constexpr int kModelFormatVersion = 2;
/// The "format" metadata of a model file and of a training checkpoint.
inline constexpr const char* kModelFormat = "dlblocks.model";
inline constexpr const char* kCheckpointFormat = "dlblocks.checkpoint";

/// Largest number of values per sample an architecture read from a file may declare.
inline constexpr std::int64_t kMaxInputValues = (std::int64_t{1} << 31) - 1;

/// Bounds on what LoadModel builds from a file's architecture, each checked before anything
/// is allocated for it, so that a small forged file cannot ask for unbounded memory. The
/// state the layers allocate is bounded by the tensors the file really holds.
struct LoadOptions {
  /// The most layers (blocks and the layers inside them).
  std::int64_t max_layers = 10'000;
  /// How deep blocks may nest.
  int max_depth = 32;
  /// The most values per sample of the activations, gradients and working memory a pass
  /// needs (ModelNN::ValuesPerSample; 2^26 values are 256 MB of floats per sample, about 300
  /// times what the ResNet of the examples needs).
  std::int64_t max_values_per_sample = std::int64_t{1} << 26;
};

/// A model's structure without its numbers: the input shape and each layer's name and Spec()
/// (a block's spec lists its own layers).
struct ModelArchitecture {
  Shape input_shape;
  std::vector<std::pair<std::string, LayerSpec>> layers;

  bool operator==(const ModelArchitecture&) const = default;
};

/// The architecture of `model`. Throws ArgumentError naming the first layer without Spec()
/// (a user layer that cannot be rebuilt).
template <Scalar T>
ModelArchitecture ArchitectureOf(const ModelNN<T>& model) {
  ModelArchitecture architecture{model.InputShape(), {}};
  for (Index i = 0; i < model.NumLayers(); ++i) {
    std::optional<LayerSpec> spec;
    try {
      spec = model.LayerSpecAt(i);
    } catch (const ArgumentError& error) {  // a block holding a layer without Spec()
      throw ArgumentError("layer " + model.LayerKey(i) + " (" + model.LayerName(i) + "): " +
                          error.what());
    }
    if (!spec) {
      throw ArgumentError("layer " + model.LayerKey(i) + " (" + model.LayerName(i) +
                          ") has no Spec(), so a file cannot say how to rebuild it; give the "
                          "layer type `LayerSpec Spec() const` and register it in a LayerRegistry");
    }
    architecture.layers.emplace_back(model.LayerKey(i), std::move(*spec));
  }
  return architecture;
}

/// What a file's "format" metadata says it is.
enum class FileFormat {
  Model,       ///< written by Save
  Checkpoint,  ///< written by SaveCheckpoint
  Foreign,     ///< another writer's file (PyTorch's save_file ...): tensors only
};

/// Writes `model` to `path` as a model file (see the file comment): its weights and buffers
/// under PyTorch's state_dict names, its architecture, `standardizer`'s statistics when
/// given, and the `extra` metadata entries. Atomic: `path` holds the old file or the
/// complete new one, never a mix.
/// Throws ArgumentError when a layer has no Spec(), a weight is NaN or infinite, the
/// standardizer does not fit the model's inputs or an extra key is reserved; FileError
/// when the file cannot be written.
template <Scalar T>
void Save(const ModelNN<T>& model, const std::string& path,
          const std::type_identity_t<Standardizer<T>>* standardizer = nullptr,
          const Metadata& extra = {});

/// A model rebuilt from a file, with what it needs to predict on raw inputs.
///
/// Thread safety: Predict and every other const member may be called from many threads at
/// once (a service loads the model once and predicts from each request's thread); each call
/// gets its own buffers and the same logits as a single thread would (see Predictor). The
/// model is frozen as loaded: to train it further, take a copy with Model().Clone().
/// Changing `standardizer` or `metadata` while other threads predict is a data race.
template <Scalar T>
struct LoadedModel {
  LoadedModel(ModelNN<T> model_, std::optional<Standardizer<T>> standardizer_, Metadata metadata_)
      : predictor(std::move(model_)), standardizer(std::move(standardizer_)), metadata(std::move(metadata_)) {}

  Predictor<T> predictor;                       ///< the loaded model, frozen, in Mode::Inference
  std::optional<Standardizer<T>> standardizer;  ///< the saved preprocessing, if any
  Metadata metadata;                            ///< all of the file's metadata

  /// The loaded model, for reading (Summary, shapes, Save, ExportOnnx, Clone).
  const ModelNN<T>& Model() const { return predictor.Model(); }

  /// An independent copy (model, preprocessing and metadata).
  LoadedModel Clone() const { return LoadedModel(Model().Clone(), standardizer, metadata); }

  /// Logits (OutputSize() x N) of the raw samples `x` (InputSize() x N, one per column): the
  /// saved standardizer is applied to a copy of x, then the model runs in Mode::Inference.
  /// Thread-safe; the result is owned by the caller. Throws ShapeError for a wrong row count
  /// or an empty batch.
  Matrix<T> Predict(const ConstMatrixRef<T>& x) const {
    if (x.rows() != Model().InputSize()) {
      throw ShapeError("LoadedModel::Predict: the model takes " + std::to_string(Model().InputSize()) +
                       " values per sample, got " + std::to_string(x.rows()) + " rows");
    }
    if (!standardizer) return predictor.Predict(x);
    Matrix<T> input = x;
    standardizer->Transform(input);
    return predictor.Predict(input);
  }
};

/// Rebuilds the model saved in `path` (by Save, or the model part of a checkpoint): reads
/// the file, builds each layer of the saved architecture through `registry`, loads the
/// weights (converted to T when the file holds the other float type) and the preprocessing.
/// Throws FileError, naming the file and what is wrong, for any bad file (see
/// ReadSafetensors), an unknown format or a newer format version, a file without an
/// architecture (e.g. one written by PyTorch: build the model and use LoadWeights), an
/// unknown layer type or bad layer arguments, tensors that are missing, unexpected, of
/// another dtype or of a shape the architecture does not give, NaN or infinite weights, or
/// bad preprocessing statistics, impossible state (a negative running variance), or an
/// architecture beyond `options` (too many layers, blocks nested too deep, more memory per
/// sample than allowed). A forged architecture cannot make it allocate more state than the
/// file's tensors hold, nor buffers beyond options.max_values_per_sample per sample.
template <Scalar T>
LoadedModel<T> LoadModel(const std::string& path, const LayerRegistry<T>& registry,
                         const LoadOptions& options = {});

/// LoadModel through DefaultLayerRegistry<T>().
template <Scalar T>
LoadedModel<T> LoadModel(const std::string& path, const LoadOptions& options = {});

/// Loads the weights and buffers in `path` into `model`, which must already have the same
/// layers: a file written by Save, the model part of a checkpoint, or a file PyTorch wrote
/// from the equivalent torch.nn.Sequential (F32 or F64, converted to T). Returns the saved
/// preprocessing, if the file has one.
/// Throws FileError, naming the file and what is wrong, for a bad file (see
/// ReadSafetensors), an unknown format or newer version, a saved architecture with other
/// layer types, missing or unexpected tensors (all listed), a dtype or shape that does not
/// fit, NaN or infinite weights; the model is then unchanged.
template <Scalar T>
std::optional<Standardizer<T>> LoadWeights(ModelNN<T>& model, const std::string& path);

/// DLB_COMPILED_MODEL_FILE(EXTERN, T): what dlb::compiled instantiates of this header for T
/// when it was built with nlohmann-json (src/compiled/serialization.cpp; it then defines
/// DLB_COMPILED_SERIALIZATION for its users): saving and loading, and with them the JSON and
/// safetensors code they call.
#define DLB_COMPILED_MODEL_FILE(EXTERN, T)                                                      \
  EXTERN template void Save<T>(const ModelNN<T>&, const std::string&, const Standardizer<T>*,  \
                               const Metadata&);                                               \
  EXTERN template LoadedModel<T> LoadModel<T>(const std::string&, const LayerRegistry<T>&,     \
                                              const LoadOptions&);                             \
  EXTERN template LoadedModel<T> LoadModel<T>(const std::string&, const LoadOptions&);         \
  EXTERN template std::optional<Standardizer<T>> LoadWeights<T>(ModelNN<T>&, const std::string&);
#if defined(DLB_COMPILED_SERIALIZATION) && !defined(DLB_COMPILED_DEFINITIONS)
DLB_COMPILED_MODEL_FILE(extern, float)
DLB_COMPILED_MODEL_FILE(extern, double)
#endif

}  // namespace dlb

#if DLB_SERIALIZATION_DEFINITIONS
#include "dlb/serialization/impl/model_file.ipp"
#endif
