#pragma once
// The definitions of dlb/serialization/model_file.hpp: the JSON code and the templates that
// use it. Included by that header where it holds them (header-only), compiled into
// dlb::compiled for float and double otherwise (src/compiled/serialization.cpp; see
// dlb/core/linkage.hpp).

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#if !__has_include(<nlohmann/json.hpp>)
#error "dlb/serialization/model_file.hpp needs nlohmann-json's <nlohmann/json.hpp> (Debian: nlohmann-json3-dev); link the CMake target dlb::serialization"
#endif
#include <nlohmann/json.hpp>

#include "dlb/core/error.hpp"
#include "dlb/core/printable.hpp"
#include "dlb/core/version.hpp"
#include "dlb/serialization/model_file.hpp"

namespace dlb {

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

template <Scalar T>
void Save(const ModelNN<T>& model, const std::string& path,
          const std::type_identity_t<Standardizer<T>>* standardizer,
          const Metadata& extra) {
  Metadata metadata = internal::ModelMetadata(model, standardizer, kModelFormat);
  internal::AddExtraMetadata(metadata, extra);
  const StateDict state = model.SaveState(StateScope::Weights);
  internal::RequireFiniteToSave(path, state);
  WriteSafetensors(path, state, metadata);
}

template <Scalar T>
LoadedModel<T> LoadModel(const std::string& path, const LayerRegistry<T>& registry,
                         const LoadOptions& options) {
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

template <Scalar T>
LoadedModel<T> LoadModel(const std::string& path, const LoadOptions& options) {
  return LoadModel<T>(path, DefaultLayerRegistry<T>(), options);
}

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

}  // namespace dlb
