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

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if !__has_include(<nlohmann/json.hpp>)
#error "dlb/serialization/model_file.hpp needs nlohmann-json's <nlohmann/json.hpp> (Debian: nlohmann-json3-dev); link the CMake target dlb::serialization"
#endif
#include <nlohmann/json.hpp>

#include "dlb/core/error.hpp"
#include "dlb/core/printable.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/version.hpp"
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

namespace internal {

/// Runs f(); a dlb::Error other than FileError that it throws becomes a FileError naming
/// `path`, its message prefixed with `context` (what was being read).
template <class F>
decltype(auto) WithFileContext(const std::string& path, const std::string& context, F&& f) {
  try {
    return f();
  } catch (const FileError&) {
    throw;
  } catch (const Error& error) {
    throw FileError(path, std::nullopt, context + error.what());
  }
}

/// A JSON value for a LayerSpec argument. Throws ArgumentError for a non-finite real, which
/// JSON cannot hold.
inline nlohmann::ordered_json SpecValueJson(const std::string& type, const std::string& name,
                                            const SpecValue& value) {
  if (const auto* real = std::get_if<double>(&value)) {
    if (!std::isfinite(*real)) {
      throw ArgumentError(type + ": argument '" + name + "' is not finite and cannot be saved");
    }
    return *real;
  }
  if (const auto* whole = std::get_if<std::int64_t>(&value)) return *whole;
  return std::get<std::string>(value);
}

/// The JSON of a list of named layer specs ("layers" of an architecture or of a block).
inline nlohmann::ordered_json LayersJson(const std::vector<std::pair<std::string, LayerSpec>>& layers) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& [name, spec] : layers) {
    nlohmann::ordered_json args = nlohmann::ordered_json::object();
    for (const auto& [key, value] : spec.args) args[key] = SpecValueJson(spec.type, key, value);
    nlohmann::ordered_json layer = {{"name", name}, {"type", spec.type}, {"args", std::move(args)}};
    if (!spec.children.empty()) layer["layers"] = LayersJson(spec.children);
    list.push_back(std::move(layer));
  }
  return list;
}

inline std::string ArchitectureJson(const ModelArchitecture& architecture) {
  const Shape& input = architecture.input_shape;
  nlohmann::ordered_json root = {{"input_shape", {input.channels, input.height, input.width}},
                                 {"layers", LayersJson(architecture.layers)}};
  return root.dump();
}

/// The layers of `layers` and of their blocks, counted up to just past `limit` (the parser
/// has bounded the nesting already).
inline std::int64_t CountLayers(const std::vector<std::pair<std::string, LayerSpec>>& layers,
                                std::int64_t limit) {
  std::int64_t count = 0;
  for (const auto& entry : layers) {
    if (count > limit) break;
    count += 1 + CountLayers(entry.second.children, limit - count);
  }
  return count;
}

/// The deepest JSON nesting an architecture may have (two levels per block: its object and
/// its "layers" array), checked while parsing, before anything is built from it.
inline constexpr int kMaxArchitectureJsonDepth = 256;

/// Parses metadata `key`'s `text` as JSON, refusing duplicate keys at any depth (the last one
/// would silently win) and nesting deeper than kMaxArchitectureJsonDepth. Throws FileError
/// naming the file and the entry.
inline nlohmann::json ParseStrictMetadataJson(const std::string& path, const std::string& key,
                                              const std::string& text) {
  struct Refused {
    std::string problem;
  };
  // The checks run on SAX events, before the document is built; nlohmann's parse with a
  // callback would do the same but scans an array's elements each time one of its objects
  // ends: quadratic in the layers of an architecture (12 s under the fuzzer for a file of a
  // few thousand layers). Events in document order, so the first problem is reported as
  // before; a syntax error makes the SAX pass stop and the plain parse below report it.
  struct Checker : nlohmann::json_sax<nlohmann::json> {
    std::vector<std::set<std::string>> open_objects;
    int open = 0;  // containers open around the current event
    bool Value() {
      if (open > kMaxArchitectureJsonDepth) {
        throw Refused{"nested deeper than " + std::to_string(kMaxArchitectureJsonDepth) + " levels"};
      }
      return true;
    }
    bool Start() {
      Value();
      ++open;
      return true;
    }
    bool null() override { return Value(); }
    bool boolean(bool) override { return Value(); }
    bool number_integer(number_integer_t) override { return Value(); }
    bool number_unsigned(number_unsigned_t) override { return Value(); }
    bool number_float(number_float_t, const string_t&) override { return Value(); }
    bool string(string_t&) override { return Value(); }
    bool binary(binary_t&) override { return Value(); }
    bool start_object(std::size_t) override {
      open_objects.emplace_back();
      return Start();
    }
    bool key(string_t& name) override {
      Value();
      if (!open_objects.back().insert(name).second) {
        throw Refused{"repeats the key " + QuoteForTerminal(name) + " in one object"};
      }
      return true;
    }
    bool end_object() override {
      open_objects.pop_back();
      --open;
      return true;
    }
    bool start_array(std::size_t) override { return Start(); }
    bool end_array() override {
      --open;
      return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
      return false;
    }
  };
  try {
    Checker checker;
    nlohmann::json::sax_parse(text, &checker);
    return nlohmann::json::parse(text);
  } catch (const Refused& refused) {
    throw FileError(path, std::nullopt, "metadata '" + key + "' " + refused.problem);
  } catch (const nlohmann::json::parse_error& error) {
    throw FileError(path, std::nullopt,
                    "metadata '" + key + "' is not valid JSON: " + JsonMessage(error));
  }
}

/// Parses metadata entry `key` (preprocessing, history) like the architecture: strict JSON.
inline nlohmann::json ParseMetadataJson(const std::string& path, const std::string& key,
                                        const std::string& text) {
  return ParseStrictMetadataJson(path, key, text);
}

/// Reads the "layers" array `layers` (of the architecture or of a block at `where`) into
/// named specs. Version 1 files have no names: the index is the name.
inline std::vector<std::pair<std::string, LayerSpec>> ParseLayers(const nlohmann::json& layers,
                                                                  const std::string& where,
                                                                  int format_version,
                                                                  const std::function<void(const std::string&)>& fail) {
  if (!layers.is_array()) fail(where + "layers must be an array");
  std::vector<std::pair<std::string, LayerSpec>> specs;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& layer = layers[i];
    const std::string at = where + "layer " + std::to_string(i) + ": ";
    const bool named = format_version >= 2;
    const std::size_t keys = 2 + (named ? 1 : 0) + (layer.is_object() && layer.contains("layers") ? 1 : 0);
    if (!layer.is_object() || !layer.contains("type") || !layer["type"].is_string() ||
        !layer.contains("args") || !layer["args"].is_object() || layer.size() != keys ||
        (named && (!layer.contains("name") || !layer["name"].is_string()))) {
      fail(at + (named ? "expected {\"name\": name, \"type\": type, \"args\": {...}} and, for a "
                         "block, \"layers\": [...]"
                       : "expected {\"type\": name, \"args\": {...}}"));
    }
    const std::string name = named ? layer["name"].get<std::string>() : std::to_string(i);
    LayerSpec spec{layer["type"].get<std::string>(), {}};
    for (const auto& [arg, value] : layer["args"].items()) {
      if (value.is_number_unsigned() &&
          value.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
        fail(at + "argument " + QuoteForTerminal(arg) + " is too large");
      } else if (value.is_number_integer()) {
        spec.args.emplace_back(arg, value.get<std::int64_t>());
      } else if (value.is_number_float()) {
        spec.args.emplace_back(arg, value.get<double>());
      } else if (value.is_string()) {
        spec.args.emplace_back(arg, value.get<std::string>());
      } else {
        fail(at + "argument " + QuoteForTerminal(arg) + " must be a number or a string");
      }
    }
    if (layer.contains("layers")) {
      spec.children = ParseLayers(layer["layers"], where + EscapeForTerminal(name, kMaxQuotedBytes) + ".", format_version, fail);
    }
    specs.emplace_back(name, std::move(spec));
  }
  return specs;
}

/// The architecture in metadata text `text` of a file of `format_version`.
inline ModelArchitecture ParseArchitecture(const std::string& path, const std::string& text,
                                           int format_version = kModelFormatVersion) {
  const nlohmann::json root = ParseStrictMetadataJson(path, "architecture", text);
  const std::function<void(const std::string&)> fail = [&](const std::string& problem) {
    throw FileError(path, std::nullopt, "metadata 'architecture': " + problem);
  };
  if (!root.is_object() || !root.contains("input_shape") || !root.contains("layers") ||
      root.size() != 2) {
    fail("expected an object with input_shape and layers");
  }
  const auto& shape = root["input_shape"];
  std::vector<std::int64_t> extents;
  if (shape.is_array() && shape.size() == 3) {
    for (const auto& extent : shape) {
      if (extent.is_number_integer() && extent.get<std::int64_t>() >= 1 &&
          extent.get<std::int64_t>() <= kMaxInputValues) {
        extents.push_back(extent.get<std::int64_t>());
      }
    }
  }
  if (extents.size() != 3 || extents[0] * extents[1] > kMaxInputValues ||
      extents[0] * extents[1] * extents[2] > kMaxInputValues) {
    fail("input_shape must be [channels, height, width], each >= 1, at most " +
         std::to_string(kMaxInputValues) + " values in all");
  }
  return {Shape(extents[0], extents[1], extents[2]), ParseLayers(root["layers"], "", format_version, fail)};
}

template <Scalar T>
std::string PreprocessingJson(const Standardizer<T>& standardizer) {
  std::vector<double> mean(standardizer.Mean().data(),
                           standardizer.Mean().data() + standardizer.Mean().size());
  std::vector<double> stddev(standardizer.Stddev().data(),
                             standardizer.Stddev().data() + standardizer.Stddev().size());
  // nlohmann::json prints the shortest text that reads back as the same double, and a
  // float converted to double and back is unchanged: the statistics round-trip exactly.
  return nlohmann::ordered_json{{"standardize", {{"mean", mean}, {"std", stddev}}}}.dump();
}

/// The Standardizer in metadata 'preprocessing', which must have `features` features.
template <Scalar T>
Standardizer<T> ParsePreprocessing(const std::string& path, const std::string& text,
                                   Index features) {
  const nlohmann::json root = ParseMetadataJson(path, "preprocessing", text);
  const auto fail = [&](const std::string& problem) -> void {
    throw FileError(path, std::nullopt, "metadata 'preprocessing': " + problem);
  };
  if (!root.is_object() || root.size() != 1 || !root.contains("standardize") ||
      !root["standardize"].is_object()) {
    fail("expected {\"standardize\": {\"mean\": [...], \"std\": [...]}}");
  }
  const auto& standardize = root["standardize"];
  const auto read = [&](const char* key) {
    if (!standardize.contains(key) || !standardize[key].is_array() ||
        static_cast<Index>(standardize[key].size()) != features) {
      fail(std::string(key) + " must be an array of " + std::to_string(features) +
           " numbers, one per input value of the model");
    }
    Vector<T> values(features);
    for (Index r = 0; r < features; ++r) {
      const auto& value = standardize[key][static_cast<std::size_t>(r)];
      if (!value.is_number()) fail(std::string(key) + "[" + std::to_string(r) + "] is not a number");
      values(r) = static_cast<T>(value.get<double>());
    }
    return values;
  };
  Vector<T> mean = read("mean");
  Vector<T> stddev = read("std");
  return WithFileContext(path, "metadata 'preprocessing': ", [&] {
    return Standardizer<T>(std::move(mean), std::move(stddev));
  });
}

/// Checks the "format" and "format_version" metadata: a DLBlocks file must name a format
/// this library knows, in a version it reads. Files of other writers are Foreign.
inline FileFormat CheckFormat(const std::string& path, const Metadata& metadata) {
  const auto format = metadata.find("format");
  const bool ours = format != metadata.end() && format->second.rfind("dlblocks.", 0) == 0;
  if (!ours) return FileFormat::Foreign;
  if (format->second != kModelFormat && format->second != kCheckpointFormat) {
    throw FileError(path, std::nullopt,
                    "unknown format '" + format->second + "' in the metadata; expected " +
                        kModelFormat + " or " + kCheckpointFormat);
  }
  const auto version = metadata.find("format_version");
  const std::string text = version == metadata.end() ? "" : version->second;
  const bool numeric = !text.empty() && text.size() <= 9 &&
                       text.find_first_not_of("0123456789") == std::string::npos;
  if (!numeric || std::stoi(text) < 1) {
    throw FileError(path, std::nullopt,
                    "format_version in the metadata is " +
                        (version == metadata.end() ? std::string("missing") : "'" + text + "'") +
                        ", expected a whole number >= 1");
  }
  if (std::stoi(text) > kModelFormatVersion) {
    const auto library = metadata.find("library_version");
    throw FileError(path, std::nullopt,
                    "format version " + text + " (written by DLBlocks " +
                        (library == metadata.end() ? std::string("?") : library->second) +
                        ") is newer than this DLBlocks " + kLibraryVersion + " reads (up to " +
                        std::to_string(kModelFormatVersion) + ")");
  }
  return format->second == kModelFormat ? FileFormat::Model : FileFormat::Checkpoint;
}

/// Name prefixes of a checkpoint's tensors that are not the model's.
inline const std::vector<std::string>& CheckpointPrefixes() {
  static const std::vector<std::string> prefixes = {"optimizer.", "data.", "callbacks."};
  return prefixes;
}

/// The model's tensors among a file's: all of them, less a checkpoint's other parts.
inline StateDict ModelTensors(const StateDict& tensors, FileFormat format) {
  return format == FileFormat::Checkpoint ? tensors.Without(CheckpointPrefixes()) : tensors;
}

/// Throws FileError naming the first F32/F64 tensor that holds a NaN or an infinity, with
/// the element's index and value.
inline void RequireFinite(const std::string& path, const StateDict& tensors) {
  for (const auto& entry : tensors.Entries()) {
    // Not a structured binding: clang before 16 cannot capture one in the lambda.
    const std::string& name = entry.first;
    const Tensor& tensor = entry.second;
    const auto check = [&](auto values) {
      for (std::size_t i = 0; i < values.size(); ++i) {
        if (!std::isfinite(values[i])) {
          throw FileError(path, std::nullopt,
                          "tensor '" + name + "' holds " + (std::isnan(values[i]) ? "NaN" : "an infinity") +
                              " at element " + std::to_string(i) +
                              " (of " + ShapeText(tensor.shape) + "); refusing non-finite weights");
        }
      }
    };
    if (tensor.dtype == DType::F32) check(tensor.Values<float>());
    if (tensor.dtype == DType::F64) check(tensor.Values<double>());
  }
}

/// How many values the tensors hold in all (saturating at 2^63 - 1).
inline std::int64_t TotalValues(const StateDict& tensors) {
  std::int64_t total = 0;
  for (const auto& [name, tensor] : tensors.Entries()) {
    const auto count = static_cast<std::int64_t>(tensor.data.size() / DTypeSize(tensor.dtype));
    total = count > INT64_MAX - total ? INT64_MAX : total + count;
  }
  return total;
}

/// Values of state LoadModel lets layers allocate beyond what the file's tensors hold, so
/// that a tensor missing from the file is reported by name rather than as an allocation
/// refused.
inline constexpr std::int64_t kStateSlack = std::int64_t{1} << 16;

/// The version a DLBlocks file's (already checked, see CheckFormat) metadata gives.
inline int FormatVersion(const Metadata& metadata) {
  const auto version = metadata.find("format_version");
  return version == metadata.end() ? kModelFormatVersion : std::stoi(version->second);
}

/// The first difference between the saved layers and a model's ("layer1.0.conv2 is Linear in
/// the file but Conv2D(...) here"), empty when names, types and the layers of blocks agree.
inline std::string LayersDifference(const std::vector<std::pair<std::string, LayerSpec>>& saved,
                                    const std::vector<std::pair<std::string, LayerSpec>>& mine,
                                    const std::string& prefix) {
  if (saved.size() != mine.size()) {
    return (prefix.empty() ? "the file's model" : "block " + prefix) + " has " +
           std::to_string(saved.size()) + " layers, this one " + std::to_string(mine.size());
  }
  for (std::size_t i = 0; i < saved.size(); ++i) {
    const auto& [saved_name, saved_spec] = saved[i];
    const auto& [name, spec] = mine[i];
    const std::string path = prefix.empty() ? name : prefix + "." + name;
    if (saved_name != name) {
      return "layer " + path + " is named " + QuoteForTerminal(saved_name) + " (" +
             EscapeForTerminal(saved_spec.type, kMaxQuotedBytes) + ") in the file but '" + name + "' (" + spec.type +
             ") in this model";
    }
    if (saved_spec.type != spec.type) {
      return "layer " + path + " is " + EscapeForTerminal(saved_spec.type, kMaxQuotedBytes) + " in the file but " +
             spec.type + " in this model";
    }
    std::string difference = LayersDifference(saved_spec.children, spec.children, path);
    if (!difference.empty()) return difference;
  }
  return {};
}

/// Throws FileError when `model` is not the architecture `text` describes: another input
/// size, other layer names or types, other layers inside a block (arguments are not
/// compared; a user layer without Spec() is compared by name only).
template <Scalar T>
void RequireSameLayers(const std::string& path, const std::string& text, int format_version,
                       const ModelNN<T>& model) {
  const ModelArchitecture saved = ParseArchitecture(path, text, format_version);
  std::string problem;
  if (saved.input_shape.Size() != model.InputSize()) {
    problem = "the file's model takes " + saved.input_shape.ToString() + " inputs, this one " +
              model.InputShape().ToString();
  } else {
    std::vector<std::pair<std::string, LayerSpec>> mine;
    for (Index i = 0; i < model.NumLayers(); ++i) {
      std::optional<LayerSpec> spec;
      try {
        spec = model.LayerSpecAt(i);
      } catch (const ArgumentError&) {  // a block holding a user layer without Spec()
      }
      const std::size_t index = static_cast<std::size_t>(i);
      // A layer that cannot describe itself takes the saved description, so only its name
      // is compared.
      mine.emplace_back(model.LayerKey(i), spec ? *spec
                                                : index < saved.layers.size() ? saved.layers[index].second
                                                                              : LayerSpec{});
    }
    problem = LayersDifference(saved.layers, mine, "");
  }
  if (!problem.empty()) {
    throw FileError(path, std::nullopt, "the model does not match the file's architecture: " + problem);
  }
}

/// The metadata every DLBlocks file starts with: format, versions, dtype, architecture and,
/// when `standardizer` is given, the preprocessing. Throws ArgumentError when a layer has no
/// Spec() or the standardizer is unfitted or fitted for another number of inputs.
template <Scalar T>
Metadata ModelMetadata(const ModelNN<T>& model, const Standardizer<T>* standardizer,
                       const char* format) {
  Metadata metadata = {{"format", format},
                       {"format_version", std::to_string(kModelFormatVersion)},
                       {"library_version", kLibraryVersion},
                       {"dtype", DTypeName(DTypeOf<T>())},
                       {"architecture", ArchitectureJson(ArchitectureOf(model))}};
  if (standardizer != nullptr) {
    if (standardizer->Mean().size() != model.InputSize()) {
      throw ArgumentError("the Standardizer has " + std::to_string(standardizer->Mean().size()) +
                          " features (0 before Fit) but the model takes " +
                          std::to_string(model.InputSize()) + " inputs");
    }
    metadata["preprocessing"] = PreprocessingJson(*standardizer);
  }
  return metadata;
}

/// Adds the caller's `extra` entries; throws ArgumentError for a key the library writes.
inline void AddExtraMetadata(Metadata& metadata, const Metadata& extra) {
  for (const auto& [key, value] : extra) {
    if (!metadata.emplace(key, value).second) {
      throw ArgumentError("metadata key '" + key + "' is written by DLBlocks itself; choose another");
    }
  }
}

inline void RequireFiniteToSave(const std::string& path, const StateDict& tensors) {
  try {
    RequireFinite(path, tensors);
  } catch (const FileError& error) {
    throw ArgumentError(std::string("not saving ") + error.what());
  }
}

}  // namespace internal

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
          const Metadata& extra = {}) {
  Metadata metadata = internal::ModelMetadata(model, standardizer, kModelFormat);
  internal::AddExtraMetadata(metadata, extra);
  const StateDict state = model.SaveState(StateScope::Weights);
  internal::RequireFiniteToSave(path, state);
  WriteSafetensors(path, state, metadata);
}

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
                         const LoadOptions& options = {}) {
  Safetensors file = ReadSafetensors(path);
  const FileFormat format = internal::CheckFormat(path, file.metadata);
  const auto architecture_text = file.metadata.find("architecture");
  if (architecture_text == file.metadata.end()) {
    throw FileError(path, std::nullopt,
                    "no 'architecture' in the metadata, so the model cannot be rebuilt (a file "
                    "not written by dlb::Save, e.g. PyTorch's?): build the model in code and "
                    "call LoadWeights");
  }
  const ModelArchitecture architecture = internal::ParseArchitecture(
      path, architecture_text->second, internal::FormatVersion(file.metadata));
  const StateDict tensors = internal::ModelTensors(file.tensors, format);
  internal::RequireFinite(path, tensors);

  ModelNN<T> model(architecture.input_shape);
  // The layers together may allocate no more state than the tensors hold (plus a little):
  // a forged architecture cannot make the constructors allocate beyond the file's size. The
  // number of layers and their nesting are bounded by the options.
  const std::int64_t values = internal::TotalValues(tensors);
  BuildBudget budget;
  budget.state_values = values > INT64_MAX - internal::kStateSlack ? INT64_MAX : values + internal::kStateSlack;
  budget.layers = options.max_layers;
  budget.depth = options.max_depth;
  // Counted before anything is built (the registry's budget would refuse the 10,001st layer
  // only after building the first 10,000): with 20,001 layers test_hostile_models' case takes
  // 3.7 s under the sanitizers with the count, 9.5 s without.
  if (internal::CountLayers(architecture.layers, options.max_layers) > options.max_layers) {
    throw FileError(path, std::nullopt,
                    "metadata 'architecture': more layers than the limit allows "
                    "(LoadOptions::max_layers): more than " + std::to_string(options.max_layers));
  }
  for (const auto& entry : architecture.layers) {
    // Named members, not a structured binding: C++20 lambdas cannot capture bindings in clang 14.
    const std::string& name = entry.first;
    const LayerSpec& spec = entry.second;
    internal::WithFileContext(
        path, "metadata 'architecture': layer " + EscapeForTerminal(name, kMaxQuotedBytes) + " (" +
                  EscapeForTerminal(spec.type, kMaxQuotedBytes) + "): ",
        [&] { model.AddPointer(name, registry.Build(spec, budget)); });
  }
  // Activations and working memory are allocated by the first pass: bound them now.
  internal::WithFileContext(path, "metadata 'architecture': ", [&] {
    const Index per_sample = model.ValuesPerSample();
    if (per_sample > options.max_values_per_sample) {
      throw ArgumentError("the model needs " + std::to_string(per_sample) +
                          " values of activations and working memory per sample, more than the "
                          "limit of " + std::to_string(options.max_values_per_sample) +
                          " (LoadOptions::max_values_per_sample)");
    }
  });
  internal::WithFileContext(path, "the tensors do not fit the saved architecture: ", [&] {
    model.LoadState(tensors, format == FileFormat::Checkpoint ? StateScope::Checkpoint
                                                              : StateScope::Weights);
  });
  model.SetMode(Mode::Inference);
  std::optional<Standardizer<T>> standardizer;
  if (const auto text = file.metadata.find("preprocessing"); text != file.metadata.end()) {
    standardizer = internal::ParsePreprocessing<T>(path, text->second, model.InputSize());
  }
  return LoadedModel<T>(std::move(model), std::move(standardizer), std::move(file.metadata));
}

/// LoadModel through DefaultLayerRegistry<T>().
template <Scalar T>
LoadedModel<T> LoadModel(const std::string& path, const LoadOptions& options = {}) {
  return LoadModel<T>(path, DefaultLayerRegistry<T>(), options);
}

/// Loads the weights and buffers in `path` into `model`, which must already have the same
/// layers: a file written by Save, the model part of a checkpoint, or a file PyTorch wrote
/// from the equivalent torch.nn.Sequential (F32 or F64, converted to T). Returns the saved
/// preprocessing, if the file has one.
/// Throws FileError, naming the file and what is wrong, for a bad file (see
/// ReadSafetensors), an unknown format or newer version, a saved architecture with other
/// layer types, missing or unexpected tensors (all listed), a dtype or shape that does not
/// fit, NaN or infinite weights; the model is then unchanged.
template <Scalar T>
std::optional<Standardizer<T>> LoadWeights(ModelNN<T>& model, const std::string& path) {
  Safetensors file = ReadSafetensors(path);
  const FileFormat format = internal::CheckFormat(path, file.metadata);
  if (const auto text = file.metadata.find("architecture"); text != file.metadata.end()) {
    internal::RequireSameLayers(path, text->second, internal::FormatVersion(file.metadata), model);
  }
  const StateDict tensors = internal::ModelTensors(file.tensors, format);
  internal::RequireFinite(path, tensors);
  std::optional<Standardizer<T>> standardizer;
  if (const auto text = file.metadata.find("preprocessing"); text != file.metadata.end()) {
    standardizer = internal::ParsePreprocessing<T>(path, text->second, model.InputSize());
  }
  internal::WithFileContext(path, "", [&] {
    model.LoadState(tensors, format == FileFormat::Checkpoint ? StateScope::Checkpoint
                                                              : StateScope::Weights);
  });
  return standardizer;
}

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
