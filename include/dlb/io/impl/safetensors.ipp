#pragma once
// The definitions of dlb/io/safetensors.hpp: included by that header where it holds them
// (header-only), compiled into dlb::compiled otherwise, where it was built with nlohmann-json
// (src/compiled/serialization.cpp; see dlb/core/linkage.hpp).

#if !__has_include(<nlohmann/json.hpp>)
#error "dlb/io/safetensors.hpp needs nlohmann-json's <nlohmann/json.hpp> (Debian: nlohmann-json3-dev); link the CMake target dlb::serialization"
#endif
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <string>
#include <tuple>
#include <unordered_set>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/memory.hpp"
#include "dlb/core/printable.hpp"
#include "dlb/core/state.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/io/posix_file.hpp"
#include "dlb/io/safetensors.hpp"

namespace dlb {

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

/// One JSON value as the header parser meets it: its type and, for scalars, its value (a
/// string only by pointer, to be moved from). Containers carry no content: the parser sees
/// their elements as values of their own.
struct HeaderValue {
  enum class Type { kNull, kBoolean, kInteger, kUnsigned, kFloat, kString, kArray, kObject };
  Type type = Type::kNull;
  std::int64_t integer = 0;    // kInteger (nlohmann reports whole numbers < 0 as these)
  std::uint64_t natural = 0;   // kUnsigned
  double number = 0;           // kFloat
  std::string* text = nullptr; // kString

  bool IsContainer() const { return type == Type::kArray || type == Type::kObject; }

  /// The value as a whole number >= 0 that fits in 64 bits, or none.
  std::optional<std::uint64_t> Count() const {
    if (type == Type::kUnsigned) return natural;
    if (type == Type::kInteger && integer >= 0) return static_cast<std::uint64_t>(integer);
    return std::nullopt;
  }

  /// "a string", "the integer 3" ...: what the value is, for messages, as JsonKind says it.
  std::string Describe() const {
    switch (type) {
      case Type::kNull: return "null";
      case Type::kBoolean: return "a boolean";
      case Type::kInteger: return "the integer " + std::to_string(integer);
      case Type::kUnsigned: return "the integer " + std::to_string(natural);
      case Type::kFloat: return "the number " + nlohmann::json(number).dump();
      case Type::kString: return "a string";
      case Type::kArray: return "an array";
      case Type::kObject: return "an object";
    }
    return "an unsupported JSON value";
  }
};

/// What the header says of one tensor, collected while its object is parsed and checked
/// when it ends (CheckTensorEntry), in a fixed order whatever the order of its keys.
struct RawTensorEntry {
  std::string name;
  std::optional<std::string> unexpected_key;  // the smallest key other than the three
  bool has_dtype = false;
  std::string dtype;  // when a string
  std::optional<std::string> dtype_kind;  // Describe() of a dtype that is no string
  bool has_shape = false;
  std::optional<std::string> shape_problem;  // "is ...", "holds ..."
  std::vector<std::int64_t> shape;           // the extents before the first bad one
  bool has_offsets = false;
  bool offsets_valid = true;  // an array of two counts
  std::size_t offsets_seen = 0;
  std::uint64_t offsets[2] = {0, 0};
};

/// Checks a tensor's entry (`data_size`: the data bytes after the header) in the order the
/// messages below appear: its keys, dtype, shape and that [begin, end) lies in the data and
/// holds exactly the shape's elements. Returns the problem ("tensor 'w': no dtype"), or an
/// empty string after filling `tensor`.
inline std::string CheckTensorEntry(RawTensorEntry& raw, std::uint64_t data_size,
                                    TensorEntry& tensor) {
  // Built only for a message: a header of a million valid entries builds none.
  const auto where = [&] { return "tensor " + QuoteForTerminal(raw.name) + ": "; };
  if (raw.unexpected_key) {
    return where() + "unexpected key " + QuoteForTerminal(*raw.unexpected_key) +
           "; expected only dtype, shape and data_offsets";
  }
  if (!raw.has_dtype) return where() + "no dtype";
  if (!raw.has_shape) return where() + "no shape";
  if (!raw.has_offsets) return where() + "no data_offsets";
  if (raw.dtype_kind) return where() + "dtype is " + *raw.dtype_kind + ", expected a string such as \"F32\"";
  const auto dtype = ParseDType(raw.dtype);
  if (!dtype) {
    return where() + "unsupported dtype " + QuoteForTerminal(raw.dtype) +
           "; DLBlocks reads F32, F64, I64 and U64";
  }
  if (raw.shape_problem) return where() + "shape " + *raw.shape_problem;
  // Products are kept below 2^64 bytes (larger ones are reported as such). A zero extent
  // makes the tensor empty whatever the others are.
  const std::uint64_t max_elements = std::numeric_limits<std::uint64_t>::max() / DTypeSize(*dtype);
  std::uint64_t elements = 1;
  bool too_many = false, empty = false;
  for (const std::int64_t extent : raw.shape) {
    const auto size = static_cast<std::uint64_t>(extent);
    if (size == 0) {
      empty = true;
    } else if (!too_many) {
      too_many = elements > max_elements / size;
      if (!too_many) elements *= size;
    }
  }
  if (empty) {
    elements = 0;
    too_many = false;
  }
  if (!raw.offsets_valid || raw.offsets_seen != 2) {
    return where() + "data_offsets must be [begin, end], two whole numbers >= 0";
  }
  const std::uint64_t begin = raw.offsets[0], end = raw.offsets[1];
  const auto range = [&] { return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]"; };
  if (begin > end) return where() + "data_offsets " + range() + " end before they begin";
  if (end > data_size) {
    return where() + "data_offsets " + range() + " lie outside the " + std::to_string(data_size) +
           " data bytes after the header";
  }
  const std::uint64_t bytes = end - begin;
  if (too_many || elements * DTypeSize(*dtype) != bytes) {
    return where() + DTypeName(*dtype) + " " + ShapeText(raw.shape) + " needs " +
           (too_many ? "more than 2^64 bytes"
                     : std::to_string(elements * DTypeSize(*dtype)) + " bytes") +
           ", but data_offsets " + range() + " give " + std::to_string(bytes);
  }
  tensor.name = std::move(raw.name);
  tensor.dtype = *dtype;
  tensor.shape = std::move(raw.shape);
  tensor.begin = begin;
  tensor.end = end;
  return {};
}

/// The keys of one JSON object, to refuse a duplicate, each in O(1): a short list while the
/// object is small (a tensor's entry has 3 keys; a hash set each would cost allocations), a
/// hash set once it is not (the header itself has a key per tensor).
class KeySet {
 public:
  /// Adds `key`; returns false when it is already there.
  bool Insert(const std::string& key) {
    if (set_.empty()) {
      for (const std::string& seen : few_) {
        if (seen == key) return false;
      }
      if (few_.size() < kFew) {
        few_.push_back(key);
        return true;
      }
      set_.insert(few_.begin(), few_.end());
    }
    return set_.insert(key).second;
  }

  /// Forgets every key; a large set's memory is given back (clearing it would keep its bucket
  /// array, and each later Clear would cost the array's size).
  void Clear() {
    few_.clear();  // at most kFew strings: their room is kept
    if (!set_.empty()) set_ = {};
  }

 private:
  static constexpr std::size_t kFew = 8;
  std::vector<std::string> few_;
  std::unordered_set<std::string> set_;
};

/// A nlohmann::json SAX handler that reads a safetensors header straight into its tensor
/// entries and metadata, in time and memory linear in the header's size: no JSON tree is
/// built (a tree takes ~100 bytes a value, and nlohmann's callback parser, which the reader
/// once used, rescans an object after each of its members: quadratic), nothing is kept of
/// values the format has no use for, and nesting stops at kMaxSafetensorsHeaderDepth.
///
/// It records the first problem it finds and goes on to the end of the header to find
/// syntax errors and duplicate keys, so that problems are reported in the order: invalid
/// JSON or too deep (whichever comes first), a duplicate key (the first, at any depth), then
/// the first problem of an entry in the order of the header.
class HeaderReader {
 public:
  using json = nlohmann::json;

  /// `data_size`: the data bytes after the header, which the tensors' offsets must lie in.
  HeaderReader(std::uint64_t data_size, std::size_t max_depth)
      : data_size_(data_size), max_depth_(max_depth) {}

  // The SAX interface (nlohmann/detail/input/json_sax.hpp). Returning false stops the parse.
  bool null() { return Value({HeaderValue::Type::kNull}); }
  bool boolean(bool /*value*/) { return Value({HeaderValue::Type::kBoolean}); }
  bool number_integer(json::number_integer_t value) {
    HeaderValue v{HeaderValue::Type::kInteger};
    v.integer = value;
    return Value(v);
  }
  bool number_unsigned(json::number_unsigned_t value) {
    HeaderValue v{HeaderValue::Type::kUnsigned};
    v.natural = value;
    return Value(v);
  }
  bool number_float(json::number_float_t value, const json::string_t& /*text*/) {
    HeaderValue v{HeaderValue::Type::kFloat};
    v.number = value;
    return Value(v);
  }
  bool string(json::string_t& value) {
    HeaderValue v{HeaderValue::Type::kString};
    v.text = &value;
    return Value(v);
  }
  bool binary(json::binary_t& /*value*/) { return Value({HeaderValue::Type::kNull}); }  // not in JSON
  bool start_object(std::size_t /*elements*/) {
    if (frames_.empty()) {  // the header itself
      frames_.push_back(Frame::kRoot);
    } else if (!Value({HeaderValue::Type::kObject})) {
      return false;
    }
    // The key sets are kept for reuse: objects come and go by the thousand at one depth.
    if (open_objects_ == keys_.size()) keys_.emplace_back();
    keys_[open_objects_++].Clear();
    return true;
  }
  bool key(json::string_t& key) {
    if (!duplicate && !keys_[open_objects_ - 1].Insert(key)) duplicate = key;
    key_ = key;
    return true;
  }
  bool end_object() {
    --open_objects_;
    return End();
  }
  bool start_array(std::size_t /*elements*/) {
    if (frames_.empty()) {  // not a safetensors header: the caller says so after the parse
      frames_.push_back(Frame::kIgnored);
      return true;
    }
    return Value({HeaderValue::Type::kArray});
  }
  bool end_array() { return End(); }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& error) {
    const auto* parse_error = dynamic_cast<const json::parse_error*>(&error);
    syntax_error = parse_error ? parse_error->byte : 0;
    syntax_message = JsonMessage(error);
    return false;
  }

  // The outcome, read once the parse has ended.
  std::optional<std::size_t> syntax_error;  // nlohmann's byte: 1-based, 0 when unknown
  std::string syntax_message;
  bool too_deep = false;  // the parse stopped at the max_depth + 1st nesting
  std::optional<std::string> duplicate;  // the first duplicate key
  std::optional<std::string> problem;    // the first other problem, a message
  std::vector<TensorEntry> entries;      // the valid tensors, while there is no problem
  Metadata metadata;

 private:
  /// What an open array or object is to the header.
  enum class Frame { kRoot, kMetadata, kTensor, kShape, kOffsets, kIgnored };

  /// Keeps `message` when it is the first problem.
  void Report(std::string message) {
    if (!problem) problem = std::move(message);
  }

  /// Takes one value in the innermost open array or object (the value of key_ in an object)
  /// and opens a frame for a container. Returns false to stop the parse (too deep).
  bool Value(const HeaderValue& value) {
    Frame opened = Frame::kIgnored;
    switch (frames_.back()) {
      case Frame::kRoot:
        if (key_ == "__metadata__") {
          if (value.type == HeaderValue::Type::kObject) {
            opened = Frame::kMetadata;
          } else {
            Report("__metadata__ is " + value.Describe() +
                    ", expected an object mapping names to strings");
          }
        } else if (value.type == HeaderValue::Type::kObject) {
          entry_ = RawTensorEntry{};
          entry_.name = key_;
          opened = Frame::kTensor;
        } else {
          Report("tensor " + QuoteForTerminal(key_) + ": is " + value.Describe() +
                  ", expected an object with dtype, shape and data_offsets");
        }
        break;
      case Frame::kMetadata:
        if (value.type != HeaderValue::Type::kString) {
          Report("__metadata__ entry " + QuoteForTerminal(key_) + " is " + value.Describe() +
                  ", expected a string");
        } else if (!problem) {
          metadata.insert_or_assign(key_, std::move(*value.text));
        }
        break;
      case Frame::kTensor:
        TensorField(value, opened);
        break;
      case Frame::kShape:
        if (!entry_.shape_problem) {
          const auto extent = value.Count();
          if (extent && *extent <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            if (!problem) entry_.shape.push_back(static_cast<std::int64_t>(*extent));
          } else {
            entry_.shape_problem = "holds " + value.Describe() + ", expected sizes >= 0";
          }
        }
        break;
      case Frame::kOffsets:
        if (entry_.offsets_seen < 2 && value.Count()) {
          entry_.offsets[entry_.offsets_seen] = *value.Count();
        } else {
          entry_.offsets_valid = false;
        }
        ++entry_.offsets_seen;
        break;
      case Frame::kIgnored:
        break;
    }
    if (!value.IsContainer()) return true;
    if (frames_.size() >= max_depth_) {
      too_deep = true;
      return false;
    }
    frames_.push_back(opened);
    return true;
  }

  /// Takes the value of the key key_ in a tensor's entry.
  void TensorField(const HeaderValue& value, Frame& opened) {
    if (key_ == "dtype") {
      entry_.has_dtype = true;
      if (value.type == HeaderValue::Type::kString) {
        entry_.dtype = *value.text;
        entry_.dtype_kind.reset();
      } else {
        entry_.dtype_kind = value.Describe();
      }
    } else if (key_ == "shape") {
      entry_.has_shape = true;
      entry_.shape.clear();
      entry_.shape_problem.reset();
      if (value.type == HeaderValue::Type::kArray) {
        opened = Frame::kShape;
      } else {
        entry_.shape_problem = "is " + value.Describe() + ", expected an array of sizes";
      }
    } else if (key_ == "data_offsets") {
      entry_.has_offsets = true;
      entry_.offsets_seen = 0;
      entry_.offsets_valid = value.type == HeaderValue::Type::kArray;
      if (entry_.offsets_valid) opened = Frame::kOffsets;
    } else if (!entry_.unexpected_key || key_ < *entry_.unexpected_key) {
      entry_.unexpected_key = key_;
    }
  }

  /// Closes the innermost frame; a tensor's entry is checked and kept.
  bool End() {
    const Frame closed = frames_.back();
    frames_.pop_back();
    if (closed == Frame::kTensor) {
      TensorEntry tensor;
      std::string message = CheckTensorEntry(entry_, data_size_, tensor);
      if (!message.empty()) {
        Report(std::move(message));
      } else if (!problem) {
        entries.push_back(std::move(tensor));
      }
    }
    return true;
  }

  std::uint64_t data_size_;
  std::size_t max_depth_;
  std::vector<Frame> frames_;  // the open arrays and objects, outermost first
  // The keys of each open object, innermost last, in keys_[0, open_objects_): a duplicate is
  // refused at any depth (the format forbids them; nlohmann::json would keep the last one).
  std::vector<KeySet> keys_;
  std::size_t open_objects_ = 0;
  std::string key_;  // the latest key: the one whose value comes next
  RawTensorEntry entry_;  // the tensor whose entry is open
};

/// The byte offset in `json` of the first '[' or '{' nested deeper than `max_depth`, or
/// none. Brackets inside strings do not count. Meant for a text whose prefix up to that
/// bracket is valid JSON (where the parser stopped), for which the count is exact.
inline std::optional<std::size_t> FindTooDeep(std::string_view json, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

/// The tensors and metadata a header describes.
struct ParsedHeader {
  std::vector<TensorEntry> entries;  // in the header's order
  Metadata metadata;
};

/// Parses the header bytes (`header`, which starts at byte 8 of `path`; `data_size` data bytes
/// follow it): a JSON object without duplicate keys at any depth, nested at most
/// kMaxSafetensorsHeaderDepth deep, whose "__metadata__" maps names to strings and whose other
/// members are valid tensor entries (see CheckTensorEntry). Time and memory are linear in the
/// header's size. Throws FileError with the byte offset of the problem where it is known
/// (a syntax error, the nesting), else byte 8.
inline ParsedHeader ParseHeader(const std::string& path, const std::string& header,
                                std::uint64_t data_size) {
  if (header.empty() || header.front() != '{') {
    throw FileError(path, 8,
                    "the header is not a JSON object: it starts with " +
                        (header.empty() ? std::string("nothing")
                                        : QuoteForTerminal(header.substr(0, 1))) +
                        ", expected '{' (not a safetensors file?)");
  }
  HeaderReader reader(data_size, kMaxSafetensorsHeaderDepth);
  nlohmann::json::sax_parse(header, &reader);
  if (reader.syntax_error) {
    const std::size_t byte = *reader.syntax_error;
    throw FileError(path, 8 + (byte > 0 ? byte - 1 : 0),
                    "the header is not valid JSON: " + EscapeForTerminal(reader.syntax_message));
  }
  if (reader.too_deep) {
    const std::size_t at = FindTooDeep(header, kMaxSafetensorsHeaderDepth).value_or(0);
    throw FileError(path, 8 + at,
                    "the header nests arrays and objects more than " +
                        std::to_string(kMaxSafetensorsHeaderDepth) +
                        " deep (a safetensors header needs 3: the header, a tensor, its shape)");
  }
  if (reader.duplicate) {
    throw FileError(path, 8, "the header repeats the key " + QuoteForTerminal(*reader.duplicate) +
                                 "; the format forbids duplicate keys");
  }
  if (reader.problem) throw FileError(path, 8, *reader.problem);
  return {std::move(reader.entries), std::move(reader.metadata)};
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
                      "tensor " + QuoteForTerminal(tensor.name) + " (data bytes " +
                          std::to_string(tensor.begin) + ".." + std::to_string(tensor.end) +
                          ") overlaps tensor " + QuoteForTerminal(previous->name) +
                          " (data bytes " + std::to_string(previous->begin) +
                          ".." + std::to_string(previous->end) + ")");
    }
    if (tensor.begin > covered) {
      throw FileError(path, data_start + covered,
                      "data bytes " + std::to_string(covered) + ".." +
                          std::to_string(tensor.begin) + " belong to no tensor (a gap before " +
                          QuoteForTerminal(tensor.name) + "); the format forbids gaps");
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

DLB_SERIALIZATION_INLINE Safetensors ReadSafetensors(const std::string& path) {
  const internal::FilePtr file = OpenInputFile(path);  // a regular file, or a FileError
  struct stat status {};
  if (::fstat(::fileno(file.get()), &status) != 0) {
    throw FileError(path, std::nullopt, "cannot read the size: " + internal::ErrnoText(errno));
  }
  const auto file_size = static_cast<std::uint64_t>(status.st_size);

  std::uint64_t position = 0;
  // `what` () names what is read, for the message: built only when there is one.
  const auto read = [&](std::uint8_t* out, std::uint64_t n, const auto& what) {
    const std::size_t got = n == 0 ? 0 : std::fread(out, 1, static_cast<std::size_t>(n), file.get());
    position += got;
    if (got != n) {
      if (std::ferror(file.get())) {
        throw FileError(path, position, "read error: " + internal::ErrnoText(errno));
      }
      throw FileError(path, position, std::string("truncated file: it ends while reading ") + what());
    }
  };

  if (file_size < 8) {
    throw FileError(path, file_size,
                    "truncated file: " + std::to_string(file_size) +
                        " byte(s), but a safetensors file starts with an 8-byte header length");
  }
  std::uint8_t length_bytes[8];
  read(length_bytes, 8, [] { return "the header length"; });
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
  read(reinterpret_cast<std::uint8_t*>(header.data()), header_size, [] { return "the header"; });

  const std::uint64_t data_start = 8 + header_size;
  const std::uint64_t data_size = file_size - data_start;
  internal::ParsedHeader parsed = internal::ParseHeader(path, header, data_size);
  header = std::string();  // not needed any more: give its memory back before the data's
  try {
    RequireMemory(static_cast<double>(data_size), "its tensors");
  } catch (const MemoryError& error) {
    throw FileError(path, std::nullopt, error.what());
  }
  std::vector<internal::TensorEntry>& entries = parsed.entries;
  // Data order; empty tensors at the same offset by name, so the order is reproducible.
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  internal::CheckTiling(path, entries, data_start, data_size);

  Safetensors result;
  result.metadata = std::move(parsed.metadata);
  result.tensors.Reserve(entries.size());
  for (internal::TensorEntry& entry : entries) {
    Tensor tensor{entry.dtype, std::move(entry.shape),
                  std::vector<std::uint8_t>(static_cast<std::size_t>(entry.end - entry.begin))};
    read(tensor.data.data(), tensor.data.size(),
         [&] { return "tensor " + QuoteForTerminal(entry.name); });
    result.tensors.Insert(std::move(entry.name), std::move(tensor));
  }
  return result;
}

DLB_SERIALIZATION_INLINE std::string SafetensorsHeader(const StateDict& tensors,
                                                      const Metadata& metadata) {
  std::string text = "{";
  try {
    // nlohmann::json writes JSON strings (escapes, UTF-8 checks) and the metadata object, a
    // std::map in both, so its keys come out in the same (sorted) order.
    if (!metadata.empty()) text += "\"__metadata__\":" + nlohmann::json(metadata).dump() + ",";
    std::uint64_t offset = 0;
    for (const auto& [name, tensor] : tensors.Entries()) {
      if (name == "__metadata__") {
        throw ArgumentError("safetensors: a tensor may not be called __metadata__");
      }
      bool valid = true;
      for (std::int64_t extent : tensor.shape) valid = valid && extent >= 0;
      if (!valid || tensor.data.size() !=
                        static_cast<std::size_t>(tensor.NumElements()) * DTypeSize(tensor.dtype)) {
        throw ArgumentError("safetensors: tensor " + QuoteForTerminal(name) + " has " +
                            std::to_string(tensor.data.size()) + " bytes, which do not hold " +
                            DTypeName(tensor.dtype) + " " + ShapeText(tensor.shape));
      }
      text += nlohmann::json(name).dump() + ":{\"dtype\":\"" + DTypeName(tensor.dtype) +
              "\",\"shape\":[";
      for (std::size_t i = 0; i < tensor.shape.size(); ++i) {
        text += (i ? "," : "") + std::to_string(tensor.shape[i]);
      }
      text += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + tensor.data.size()) + "]},";
      offset += tensor.data.size();
    }
  } catch (const nlohmann::json::exception& error) {
    throw ArgumentError("safetensors: cannot write the header: " +
                        EscapeForTerminal(internal::JsonMessage(error)));
  }
  if (text.back() == ',') text.pop_back();
  text += '}';
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string bytes;
  internal::AppendLittleEndian64(bytes, text.size());
  return bytes + text;
}

DLB_SERIALIZATION_INLINE void WriteSafetensors(const std::string& path, const StateDict& tensors,
                                               const Metadata& metadata) {
  const std::string header = SafetensorsHeader(tensors, metadata);
  AtomicFileWriter file(path);
  file.Write(header);
  for (const auto& [name, tensor] : tensors.Entries()) file.Write(tensor.data.data(), tensor.data.size());
  file.Commit();
}

}  // namespace dlb
