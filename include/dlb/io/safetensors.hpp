#pragma once
/// \file
/// Reader and writer of safetensors files: named tensors plus string metadata, the format
/// Hugging Face, PyTorch and JAX users exchange weights in (github.com/huggingface/safetensors).
///
/// A safetensors file is
///
///     bytes 0-7    N, the header length, an unsigned 64-bit little-endian integer
///     bytes 8..    the header: N bytes of UTF-8 JSON, one object (trailing spaces allowed)
///                    { "__metadata__": { "key": "value", ... },          (optional)
///                      "<name>": { "dtype": "F32", "shape": [out, in],
///                                  "data_offsets": [begin, end] }, ... }
///     then         the data: each tensor's elements, row-major, little-endian, in bytes
///                  [begin, end) counted from the first byte after the header.
///
/// The reader trusts nothing in the file. Before anything is allocated it checks the header
/// length against the file size (and a 100 MB limit), and every tensor's byte range against
/// the data that really follows, so a hostile file can make it allocate at most its own size.
/// It also rejects what the format forbids: duplicate keys, offsets out of range, overlapping
/// tensors and bytes that belong to no tensor.

#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/memory.hpp"
#include "dlb/core/state.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/io/posix_file.hpp"

namespace dlb {

/// A safetensors file's free-form string metadata (its "__metadata__" object).
using Metadata = std::map<std::string, std::string>;

/// What a safetensors file holds: tensors in the order of their data in the file, and the
/// metadata.
struct Safetensors {
  StateDict tensors;
  Metadata metadata;
};

/// The largest header the reader accepts (the limit of the reference implementation).
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

namespace internal {

/// The DType called `name` in a safetensors header, or none for another name.
inline std::optional<DType> ParseDType(const std::string& name) {
  for (DType dtype : {DType::F32, DType::F64, DType::I64, DType::U64}) {
    if (name == DTypeName(dtype)) return dtype;
  }
  return std::nullopt;
}

/// "a string", "an array" ...: what a JSON value is, for messages (never its content, which
/// may be huge or deeply nested).
inline std::string JsonKind(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "the integer " + value.dump();
    case nlohmann::json::value_t::number_float: return "the number " + value.dump();
    default: return "an unsupported JSON value";
  }
}

/// The message of a nlohmann::json exception without its "[json.exception.x.y] " prefix.
inline std::string JsonMessage(const nlohmann::json::exception& error) {
  const std::string text = error.what();
  const std::size_t end = text.find("] ");
  return end == std::string::npos ? text : text.substr(end + 2);
}

/// A non-negative whole JSON number that fits in 64 bits, or none.
inline std::optional<std::uint64_t> JsonCount(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(value.get<std::int64_t>());
  }
  return std::nullopt;
}

/// One tensor as the header describes it.
struct TensorEntry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;
};

/// Parses the header bytes (`header`, which starts at byte 8 of `path`): a JSON object
/// without duplicate keys at any depth. Throws FileError with the byte offset of the problem.
inline nlohmann::json ParseHeaderJson(const std::string& path, const std::string& header) {
  if (header.empty() || header.front() != '{') {
    throw FileError(path, 8,
                    "the header is not a JSON object: it starts with " +
                        (header.empty() ? std::string("nothing")
                                        : "'" + header.substr(0, 1) + "'") +
                        ", expected '{' (not a safetensors file?)");
  }
  // The callback keeps the keys of every open object, to reject duplicates, which the
  // format forbids and nlohmann::json would silently resolve to the last one.
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::string> duplicate;
  const auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                            nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == Event::key && !open_objects.empty() && !duplicate) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) duplicate = key;
    }
    return true;
  };
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(header, callback);
  } catch (const nlohmann::json::parse_error& error) {
    const std::uint64_t at = 8 + (error.byte > 0 ? error.byte - 1 : 0);
    throw FileError(path, at, "the header is not valid JSON: " + JsonMessage(error));
  }
  if (duplicate) {
    throw FileError(path, 8, "the header repeats the key '" + *duplicate +
                                 "'; the format forbids duplicate keys");
  }
  if (!root.is_object()) {
    throw FileError(path, 8, "the header is " + JsonKind(root) + ", expected a JSON object");
  }
  return root;
}

/// Reads one tensor entry of the header; `data_size` is the number of data bytes after the
/// header. Checks its keys, dtype, shape and that [begin, end) lies in the data and holds
/// exactly the shape's elements.
inline TensorEntry ParseTensorEntry(const std::string& path, const std::string& name,
                                    const nlohmann::json& entry, std::uint64_t data_size) {
  const std::string where = "tensor '" + name + "': ";
  const auto fail = [&](const std::string& problem) {
    throw FileError(path, 8, where + problem);
  };
  if (!entry.is_object()) fail("is " + JsonKind(entry) + ", expected an object with dtype, shape and data_offsets");
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail("unexpected key '" + key + "'; expected only dtype, shape and data_offsets");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) fail(std::string("no ") + key);
  }
  TensorEntry tensor;
  tensor.name = name;
  const nlohmann::json& dtype = entry["dtype"];
  if (!dtype.is_string()) fail("dtype is " + JsonKind(dtype) + ", expected a string such as \"F32\"");
  const auto parsed_dtype = ParseDType(dtype.get<std::string>());
  if (!parsed_dtype) {
    fail("unsupported dtype '" + dtype.get<std::string>() +
         "'; DLBlocks reads F32, F64, I64 and U64");
  }
  tensor.dtype = *parsed_dtype;

  const nlohmann::json& shape = entry["shape"];
  if (!shape.is_array()) fail("shape is " + JsonKind(shape) + ", expected an array of sizes");
  // Products are kept below 2^64 bytes (larger ones are reported as such). A zero extent
  // makes the tensor empty whatever the others are.
  const std::uint64_t max_elements = std::numeric_limits<std::uint64_t>::max() / DTypeSize(tensor.dtype);
  std::uint64_t elements = 1;
  bool too_many = false, empty = false;
  for (const auto& extent : shape) {
    const auto size = JsonCount(extent);
    if (!size || *size > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail("shape holds " + JsonKind(extent) + ", expected sizes >= 0");
    }
    tensor.shape.push_back(static_cast<std::int64_t>(*size));
    if (*size == 0) {
      empty = true;
    } else if (!too_many) {
      too_many = elements > max_elements / *size;
      if (!too_many) elements *= *size;
    }
  }
  if (empty) {
    elements = 0;
    too_many = false;
  }

  const nlohmann::json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !JsonCount(offsets[0]) ||
      !JsonCount(offsets[1])) {
    fail("data_offsets must be [begin, end], two whole numbers >= 0");
  }
  tensor.begin = *JsonCount(offsets[0]);
  tensor.end = *JsonCount(offsets[1]);
  const std::string range =
      "[" + std::to_string(tensor.begin) + ", " + std::to_string(tensor.end) + "]";
  if (tensor.begin > tensor.end) fail("data_offsets " + range + " end before they begin");
  if (tensor.end > data_size) {
    fail("data_offsets " + range + " lie outside the " + std::to_string(data_size) +
         " data bytes after the header");
  }
  const std::uint64_t bytes = tensor.end - tensor.begin;
  if (too_many || elements * DTypeSize(tensor.dtype) != bytes) {
    fail(std::string(DTypeName(tensor.dtype)) + " " + ShapeText(tensor.shape) + " needs " +
         (too_many ? "more than 2^64 bytes"
                   : std::to_string(elements * DTypeSize(tensor.dtype)) + " bytes") +
         ", but data_offsets " + range + " give " + std::to_string(bytes));
  }
  return tensor;
}

/// Checks that the tensors, sorted by their offsets, cover the data bytes exactly once:
/// no overlap, no gap, nothing after the last one. `data_start` is the data's file offset.
inline void CheckTiling(const std::string& path, const std::vector<TensorEntry>& sorted,
                        std::uint64_t data_start, std::uint64_t data_size) {
  std::uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& tensor : sorted) {
    if (tensor.begin < covered) {
      throw FileError(path, data_start + tensor.begin,
                      "tensor '" + tensor.name + "' (data bytes " + std::to_string(tensor.begin) +
                          ".." + std::to_string(tensor.end) + ") overlaps tensor '" +
                          previous->name + "' (data bytes " + std::to_string(previous->begin) +
                          ".." + std::to_string(previous->end) + ")");
    }
    if (tensor.begin > covered) {
      throw FileError(path, data_start + covered,
                      "data bytes " + std::to_string(covered) + ".." +
                          std::to_string(tensor.begin) + " belong to no tensor (a gap before '" +
                          tensor.name + "'); the format forbids gaps");
    }
    covered = tensor.end;
    previous = &tensor;
  }
  if (covered != data_size) {
    throw FileError(path, data_start + covered,
                    std::to_string(data_size - covered) + " trailing byte(s) after the last "
                    "tensor's data belong to no tensor");
  }
}

inline void AppendLittleEndian64(std::string& out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFu));
}

}  // namespace internal

/// Reads the safetensors file at `path`.
/// Returns its tensors (in the order of their data) and metadata. Accepts the element types
/// F32, F64, I64 and U64.
/// Throws FileError, naming the file and, where there is one, the byte offset, when the file
/// is missing, not a regular file (a FIFO, a device, a directory: refused before it is
/// opened, see OpenInputFile) or unreadable; holds more data than this process's memory;
/// is shorter than 8 bytes; declares a header longer than the rest of the file or than
/// 100 MB; has a header that is not a JSON object,
/// repeats a key, or describes a tensor without dtype, shape or data_offsets, with an
/// unsupported dtype, a negative or non-integer size, or data_offsets that leave the data,
/// disagree with the shape, overlap or leave gaps; or has "__metadata__" values that are not
/// strings. Never allocates more than the file's size plus the parsed header.
inline Safetensors ReadSafetensors(const std::string& path) {
  const internal::FilePtr file = OpenInputFile(path);  // a regular file, or a FileError
  struct stat status {};
  if (::fstat(::fileno(file.get()), &status) != 0) {
    throw FileError(path, std::nullopt, "cannot read the size: " + internal::ErrnoText(errno));
  }
  const auto file_size = static_cast<std::uint64_t>(status.st_size);

  std::uint64_t position = 0;
  const auto read = [&](std::uint8_t* out, std::uint64_t n, const std::string& what) {
    const std::size_t got = n == 0 ? 0 : std::fread(out, 1, static_cast<std::size_t>(n), file.get());
    position += got;
    if (got != n) {
      if (std::ferror(file.get())) {
        throw FileError(path, position, "read error: " + internal::ErrnoText(errno));
      }
      throw FileError(path, position, "truncated file: it ends while reading " + what);
    }
  };

  if (file_size < 8) {
    throw FileError(path, file_size,
                    "truncated file: " + std::to_string(file_size) +
                        " byte(s), but a safetensors file starts with an 8-byte header length");
  }
  std::uint8_t length_bytes[8];
  read(length_bytes, 8, "the header length");
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | length_bytes[i];
  if (header_size > file_size - 8) {
    throw FileError(path, 0,
                    "the header length is " + std::to_string(header_size) + " bytes, but only " +
                        std::to_string(file_size - 8) +
                        " follow the 8-byte length field (truncated or not a safetensors file)");
  }
  if (header_size > kMaxSafetensorsHeaderBytes) {
    throw FileError(path, 0,
                    "the header length is " + std::to_string(header_size) +
                        " bytes, more than the " + std::to_string(kMaxSafetensorsHeaderBytes) +
                        "-byte limit");
  }
  std::string header(static_cast<std::size_t>(header_size), '\0');
  read(reinterpret_cast<std::uint8_t*>(header.data()), header_size, "the header");
  const nlohmann::json root = internal::ParseHeaderJson(path, header);

  const std::uint64_t data_start = 8 + header_size;
  const std::uint64_t data_size = file_size - data_start;
  try {
    RequireMemory(static_cast<double>(data_size), "its tensors");
  } catch (const MemoryError& error) {
    throw FileError(path, std::nullopt, error.what());
  }
  Safetensors result;
  std::vector<internal::TensorEntry> entries;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) {
        throw FileError(path, 8, "__metadata__ is " + internal::JsonKind(value) +
                                     ", expected an object mapping names to strings");
      }
      for (const auto& [name, text] : value.items()) {
        if (!text.is_string()) {
          throw FileError(path, 8, "__metadata__ entry '" + name + "' is " +
                                       internal::JsonKind(text) + ", expected a string");
        }
        result.metadata.emplace(name, text.get<std::string>());
      }
    } else {
      entries.push_back(internal::ParseTensorEntry(path, key, value, data_size));
    }
  }
  // Data order; empty tensors at the same offset by name, so the order is reproducible.
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  internal::CheckTiling(path, entries, data_start, data_size);

  for (internal::TensorEntry& entry : entries) {
    Tensor tensor{entry.dtype, std::move(entry.shape),
                  std::vector<std::uint8_t>(static_cast<std::size_t>(entry.end - entry.begin))};
    read(tensor.data.data(), tensor.data.size(), "tensor '" + entry.name + "'");
    result.tensors.Insert(entry.name, std::move(tensor));
  }
  return result;
}

/// The first bytes of a safetensors file holding `tensors` (data in their order) and
/// `metadata`: the 8-byte header length and the header, which lists "__metadata__" first
/// (when not empty), then the tensors in order, padded with spaces so that the data starts
/// at a multiple of 8 bytes. The tensors' data follows it in StateDict order.
/// Throws ArgumentError when a tensor is named "__metadata__", its bytes do not match its
/// dtype and shape, or a name or metadata text is not valid UTF-8.
inline std::string SafetensorsHeader(const StateDict& tensors, const Metadata& metadata = {}) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors.Entries()) {
    if (name == "__metadata__") {
      throw ArgumentError("safetensors: a tensor may not be called __metadata__");
    }
    bool valid = true;
    for (std::int64_t extent : tensor.shape) valid = valid && extent >= 0;
    if (!valid || tensor.data.size() !=
                      static_cast<std::size_t>(tensor.NumElements()) * DTypeSize(tensor.dtype)) {
      throw ArgumentError("safetensors: tensor '" + name + "' has " +
                          std::to_string(tensor.data.size()) + " bytes, which do not hold " +
                          DTypeName(tensor.dtype) + " " + ShapeText(tensor.shape));
    }
    header[name] = {{"dtype", DTypeName(tensor.dtype)},
                    {"shape", tensor.shape},
                    {"data_offsets", {offset, offset + tensor.data.size()}}};
    offset += tensor.data.size();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& error) {
    throw ArgumentError("safetensors: cannot write the header: " + internal::JsonMessage(error));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string bytes;
  internal::AppendLittleEndian64(bytes, text.size());
  return bytes + text;
}

/// Writes `tensors` and `metadata` to `path` as a safetensors file (SafetensorsHeader, then
/// the data) with an AtomicFileWriter: all or nothing (a crash leaves the old file or the
/// new one, never a mix), regular files only, symbolic links written through. Throws
/// ArgumentError like SafetensorsHeader, FileError when the file cannot be written.
inline void WriteSafetensors(const std::string& path, const StateDict& tensors,
                             const Metadata& metadata = {}) {
  const std::string header = SafetensorsHeader(tensors, metadata);
  AtomicFileWriter file(path);
  file.Write(header);
  for (const auto& [name, tensor] : tensors.Entries()) file.Write(tensor.data.data(), tensor.data.size());
  file.Commit();
}

}  // namespace dlb
