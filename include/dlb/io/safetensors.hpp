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
/// the data that really follows, so a hostile file can make it allocate at most its own size
/// plus a few times its header's. Its time is linear in the file's size, however many tensors
/// the header lists and however it nests (at most kMaxSafetensorsHeaderDepth). It also
/// rejects what the format forbids: duplicate keys, offsets out of range, overlapping tensors
/// and bytes that belong to no tensor. Names and text from the file are quoted in its error
/// messages with QuoteForTerminal (dlb/core/printable.hpp), so printing one is safe.

#include <cstdint>
#include <map>
#include <string>

#include "dlb/core/linkage.hpp"
#include "dlb/core/state.hpp"

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

/// The deepest the reader lets a header nest arrays and objects. The format needs 3 (the
/// header, a tensor's entry, its shape); the margin lets a value nested wrongly get a message
/// that says what is wrong, and the bound keeps a file of a million '[' from costing anything.
inline constexpr std::size_t kMaxSafetensorsHeaderDepth = 64;

/// Reads the safetensors file at `path`.
/// Returns its tensors (in the order of their data) and metadata. Accepts the element types
/// F32, F64, I64 and U64.
/// Throws FileError, naming the file and, where there is one, the byte offset, when the file
/// is missing, not a regular file (a FIFO, a device, a directory: refused before it is
/// opened, see OpenInputFile) or unreadable; holds more data than this process's memory;
/// is shorter than 8 bytes; declares a header longer than the rest of the file or than
/// 100 MB; has a header that is not a JSON object, nests deeper than
/// kMaxSafetensorsHeaderDepth, repeats a key at any depth, or describes a tensor without
/// dtype, shape or data_offsets, with an unsupported dtype, a negative or non-integer size,
/// or data_offsets that leave the data, disagree with the shape, overlap or leave gaps; or
/// has "__metadata__" values that are not strings. The first problem is reported: invalid
/// JSON or too deep nesting, else a duplicate key, else the first bad entry in the header's
/// order. Time is linear in the file's size; memory is the data's size plus a few times the
/// header's (the header, the names, the shapes), never a tree of the JSON.
DLB_SERIALIZATION_INLINE Safetensors ReadSafetensors(const std::string& path);

/// The first bytes of a safetensors file holding `tensors` (data in their order) and
/// `metadata`: the 8-byte header length and the header, which lists "__metadata__" first
/// (when not empty), then the tensors in order, padded with spaces so that the data starts
/// at a multiple of 8 bytes. The tensors' data follows it in StateDict order.
/// Time is linear in the header's size (the text is written entry by entry: an
/// nlohmann::ordered_json object searches its keys one by one, so 100,000 tensors took 69 s).
/// Throws ArgumentError when a tensor is named "__metadata__", its bytes do not match its
/// dtype and shape, or a name or metadata text is not valid UTF-8.
DLB_SERIALIZATION_INLINE std::string SafetensorsHeader(const StateDict& tensors,
                                                      const Metadata& metadata = {});

/// Writes `tensors` and `metadata` to `path` as a safetensors file (SafetensorsHeader, then
/// the data) with an AtomicFileWriter: all or nothing (a crash leaves the old file or the
/// new one, never a mix), regular files only, symbolic links written through. Throws
/// ArgumentError like SafetensorsHeader, FileError when the file cannot be written.
DLB_SERIALIZATION_INLINE void WriteSafetensors(const std::string& path, const StateDict& tensors,
                                               const Metadata& metadata = {});

}  // namespace dlb

#if DLB_SERIALIZATION_DEFINITIONS
#include "dlb/io/impl/safetensors.ipp"
#endif
