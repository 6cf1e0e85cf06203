#pragma once
/// \file
/// A minimal encoder of the protocol-buffers wire format: what writing an ONNX model needs and
/// no more, so that ONNX export pulls in no dependency (no libprotobuf, no generated code).
///
/// The wire format (protobuf.dev/programming-guides/encoding): a message is a sequence of
/// fields, each a tag followed by a payload. The tag is the varint (field_number << 3 |
/// wire_type). Wire types written here:
///
///     0  varint            int32, int64, uint64, bool, enum: 7 bits a byte, low bits first,
///                          the high bit set on every byte but the last; a negative int32 or
///                          int64 is its 64-bit two's complement, so it takes 10 bytes
///     1  64-bit fixed      double, fixed64: 8 bytes, little-endian
///     2  length-delimited  string, bytes, nested message, packed repeated scalars: the byte
///                          count as a varint, then the bytes
///     5  32-bit fixed      float, fixed32: 4 bytes, little-endian
///
/// Groups (wire types 3 and 4) and zigzag-encoded sint32/sint64 are not needed by ONNX and not
/// written. Fields are written in the order of the calls; a reader must accept any order, and
/// the ONNX builder calls them in field-number order as protobuf's own serializers do.
///
/// Contracts, checked (each violation throws dlb::ArgumentError and writes nothing):
///  * a field number is in [1, 2^29 - 1] and outside [19000, 19999], which protobuf reserves;
///  * a length-delimited payload (a string, a nested message, a packed list) is at most
///    kMaxProtobufLength = 2^31 - 1 bytes: protobuf's parsers (C++, Python, ONNX Runtime's)
///    refuse anything longer, so a larger message could be written but never read back.
/// Bytes are produced little-endian whatever the host's byte order.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "dlb/core/error.hpp"

namespace dlb::internal {

/// The wire types this writer produces (the low 3 bits of a tag).
enum class WireType : std::uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5,
};

/// Largest field number protobuf allows (field numbers have 29 bits).
inline constexpr std::uint32_t kMaxProtobufFieldNumber = (std::uint32_t{1} << 29) - 1;
/// Largest length-delimited payload, and so largest message, protobuf parsers accept.
inline constexpr std::size_t kMaxProtobufLength = 0x7fffffff;

/// Bytes the varint encoding of `value` takes: 1 to 10.
constexpr std::size_t VarintSize(std::uint64_t value) noexcept {
  std::size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

/// Appends the varint encoding of `value` to `out`.
inline void AppendVarint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

/// Appends `value` as 4 little-endian bytes.
inline void AppendFixed32(std::string& out, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(value >> shift));
}

/// Appends `value` as 8 little-endian bytes.
inline void AppendFixed64(std::string& out, std::uint64_t value) {
  for (int shift = 0; shift < 64; shift += 8) out.push_back(static_cast<char>(value >> shift));
}

/// Appends the IEEE-754 bits of each float, 4 little-endian bytes each (the layout of ONNX's
/// TensorProto.raw_data and of a packed repeated float).
inline void AppendFloatsLittleEndian(std::string& out, std::span<const float> values) {
  if constexpr (std::endian::native == std::endian::little) {
    const std::size_t old_size = out.size();
    out.resize(old_size + values.size() * sizeof(float));
    if (!values.empty()) std::memcpy(out.data() + old_size, values.data(), values.size_bytes());
  } else {
    out.reserve(out.size() + values.size() * sizeof(float));
    for (const float value : values) AppendFixed32(out, std::bit_cast<std::uint32_t>(value));
  }
}

/// Throws ArgumentError unless `field` is a field number protobuf allows.
inline void CheckProtobufFieldNumber(std::uint32_t field) {
  if (field == 0 || field > kMaxProtobufFieldNumber || (field >= 19000 && field <= 19999)) {
    throw ArgumentError("protobuf field number " + std::to_string(field) +
                        " is invalid: it must be in [1, 536870911] and outside the range "
                        "[19000, 19999] that protobuf reserves");
  }
}

/// Throws ArgumentError when a length-delimited payload of `size` bytes is too long to parse.
inline void CheckProtobufLength(std::uint32_t field, std::size_t size) {
  if (size > kMaxProtobufLength) {
    throw ArgumentError("protobuf field " + std::to_string(field) + " would hold " +
                        std::to_string(size) +
                        " bytes, more than the 2^31 - 1 bytes protobuf parsers accept (an ONNX "
                        "model must stay under 2 GiB; external data files are not supported)");
  }
}

/// Builds one protobuf message in memory. A nested message is built in its own
/// ProtobufWriter and appended with WriteMessage(), which prefixes its length (so each byte
/// of a message nested k deep is copied k times; ONNX models nest 3 to 6 deep).
/// Every Write*() either appends one complete field or throws ArgumentError and appends
/// nothing (the checks come before the first byte).
class ProtobufWriter {
 public:
  /// An unsigned varint field (uint64, uint32, bool, or a non-negative enum).
  void WriteVarint(std::uint32_t field, std::uint64_t value) {
    CheckProtobufFieldNumber(field);
    Tag(field, WireType::kVarint);
    AppendVarint(bytes_, value);
  }
  /// An int64 field: a negative value is written as its 64-bit two's complement (10 bytes),
  /// as protobuf does for int64 (not zigzag, which is sint64's).
  void WriteInt64(std::uint32_t field, std::int64_t value) {
    WriteVarint(field, static_cast<std::uint64_t>(value));
  }
  /// An int32 or enum field: a negative value is sign-extended to 64 bits (10 bytes), as
  /// protobuf requires so that int32 and int64 fields stay compatible.
  void WriteInt32(std::uint32_t field, std::int32_t value) {
    WriteVarint(field, static_cast<std::uint64_t>(static_cast<std::int64_t>(value)));
  }
  /// A fixed32 field: 4 bytes little-endian.
  void WriteFixed32(std::uint32_t field, std::uint32_t value) {
    CheckProtobufFieldNumber(field);
    Tag(field, WireType::kFixed32);
    AppendFixed32(bytes_, value);
  }
  /// A float field: its IEEE-754 bits as fixed32 (NaN payloads and -0.0 kept).
  void WriteFloat(std::uint32_t field, float value) {
    WriteFixed32(field, std::bit_cast<std::uint32_t>(value));
  }
  /// A fixed64 field: 8 bytes little-endian.
  void WriteFixed64(std::uint32_t field, std::uint64_t value) {
    CheckProtobufFieldNumber(field);
    Tag(field, WireType::kFixed64);
    AppendFixed64(bytes_, value);
  }
  /// A double field: its IEEE-754 bits as fixed64.
  void WriteDouble(std::uint32_t field, double value) {
    WriteFixed64(field, std::bit_cast<std::uint64_t>(value));
  }
  /// A string or bytes field. The bytes are written as given; a `string` field must hold
  /// UTF-8, which is the caller's to ensure (protobuf's parsers refuse anything else).
  void WriteBytes(std::uint32_t field, std::string_view bytes) {
    CheckProtobufFieldNumber(field);
    CheckProtobufLength(field, bytes.size());
    Tag(field, WireType::kLengthDelimited);
    AppendVarint(bytes_, bytes.size());
    bytes_.append(bytes);
  }
  /// A nested message field holding what `message` has written so far.
  void WriteMessage(std::uint32_t field, const ProtobufWriter& message) {
    WriteBytes(field, message.bytes_);
  }
  /// A packed repeated int64 field: one length-delimited field holding the values' varints.
  /// An empty list writes nothing, as protobuf does (a reader then sees an empty list).
  void WritePackedInt64(std::uint32_t field, std::span<const std::int64_t> values) {
    CheckProtobufFieldNumber(field);
    if (values.empty()) return;
    std::size_t size = 0;
    for (const std::int64_t value : values) size += VarintSize(static_cast<std::uint64_t>(value));
    CheckProtobufLength(field, size);
    Tag(field, WireType::kLengthDelimited);
    AppendVarint(bytes_, size);
    for (const std::int64_t value : values) AppendVarint(bytes_, static_cast<std::uint64_t>(value));
  }
  /// A packed repeated float field: one length-delimited field holding 4 little-endian bytes
  /// per value. An empty list writes nothing.
  void WritePackedFloat(std::uint32_t field, std::span<const float> values) {
    CheckProtobufFieldNumber(field);
    if (values.empty()) return;
    // Compared as a count, so that the byte size cannot overflow before the check.
    if (values.size() > kMaxProtobufLength / sizeof(float)) {
      throw ArgumentError("protobuf field " + std::to_string(field) + " would hold " +
                          std::to_string(values.size()) +
                          " packed floats, more than the 2^31 - 1 bytes protobuf parsers accept");
    }
    Tag(field, WireType::kLengthDelimited);
    AppendVarint(bytes_, values.size() * sizeof(float));
    AppendFloatsLittleEndian(bytes_, values);
  }

  /// Appends the fields `fields` has written, as if they had been written here: the
  /// concatenation of two encodings of a message is a valid encoding of it (protobuf merges
  /// them). Lets a message's repeated fields be encoded ahead, then placed in field order.
  void Append(const ProtobufWriter& fields) { bytes_ += fields.bytes_; }

  /// Bytes written so far.
  std::size_t Size() const noexcept { return bytes_.size(); }
  /// The message's encoding so far.
  const std::string& Bytes() const noexcept { return bytes_; }
  /// Moves the encoding out; the writer is empty afterwards.
  std::string Release() noexcept { return std::exchange(bytes_, std::string()); }

 private:
  void Tag(std::uint32_t field, WireType type) {
    AppendVarint(bytes_, (std::uint64_t{field} << 3) | static_cast<std::uint32_t>(type));
  }

  std::string bytes_;
};

}  // namespace dlb::internal
