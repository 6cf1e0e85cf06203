#pragma once
// The definitions of dlb/data/idx.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/memory.hpp"
#include "dlb/data/idx.hpp"
#include "dlb/io/compressed_file.hpp"
#include "dlb/io/posix_file.hpp"

namespace dlb {

namespace internal {

DLB_INLINE std::string Hex32(std::uint32_t value) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08X", static_cast<unsigned>(value));
  return text;
}

DLB_INLINE std::string Hex8(unsigned value) {
  char text[5];
  std::snprintf(text, sizeof text, "0x%02X", value & 0xFFu);
  return text;
}

DLB_INLINE std::uint32_t LoadBigEndian32(const std::uint8_t* bytes) {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

DLB_INLINE void StoreBigEndian32(std::uint32_t value, std::uint8_t* bytes) {
  bytes[0] = static_cast<std::uint8_t>(value >> 24);
  bytes[1] = static_cast<std::uint8_t>(value >> 16);
  bytes[2] = static_cast<std::uint8_t>(value >> 8);
  bytes[3] = static_cast<std::uint8_t>(value);
}

/// What an IDX file of one kind must look like.
struct IdxKind {
  std::uint32_t magic;
  const char* description;             // e.g. "idx3 images"
  std::vector<const char*> dim_names;  // one per dimension
};

DLB_INLINE const char* ElementTypeName(unsigned type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "not an IDX type";
  }
}

/// An IDX array: its dimension sizes and its elements.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

// Reads `total` content bytes when the content size is unknown (gzip): the buffers grow only
// as fast as data really arrives (each new chunk at most as large as what was read so far,
// plus a small floor), so a header that lies about the count costs at most kMinChunk bytes.
DLB_INLINE std::vector<std::uint8_t> ReadStreamed(FileContentReader& in, std::uint64_t total,
                                                  const std::string& what) {
  constexpr std::uint64_t kMinChunk = std::uint64_t{1} << 16;
  constexpr std::uint64_t kMaxChunk = std::uint64_t{1} << 24;
  const std::uint64_t start = in.Offset();
  std::vector<std::vector<std::uint8_t>> chunks;
  std::uint64_t have = 0;
  while (have < total) {
    const std::uint64_t want = std::min(total - have, std::clamp(have, kMinChunk, kMaxChunk));
    std::vector<std::uint8_t> chunk(static_cast<std::size_t>(want));
    const std::size_t got = in.Read(chunk.data(), chunk.size());
    have += got;
    if (got < want) {
      throw FileError(in.Path(), in.Offset(),
                      "truncated data: the header declares " + what + " (" + std::to_string(total) +
                          " bytes after the " + std::to_string(start) +
                          "-byte header), but the decompressed content holds only " +
                          std::to_string(have) + " data bytes");
    }
    chunks.push_back(std::move(chunk));
  }
  if (chunks.size() == 1) return std::move(chunks.front());
  std::vector<std::uint8_t> data;
  data.reserve(static_cast<std::size_t>(total));
  for (auto& chunk : chunks) {
    data.insert(data.end(), chunk.begin(), chunk.end());
    std::vector<std::uint8_t>().swap(chunk);
  }
  return data;
}

DLB_INLINE IdxArray ReadIdxArray(const std::string& path, const IdxKind& kind,
                                 const IdxLimits& limits) {
  FileContentReader in(path);
  const std::string expected = "expected " + Hex32(kind.magic) + " (" + kind.description + ")";

  std::uint8_t magic_bytes[4];
  const std::size_t got = in.Read(magic_bytes, 4);
  if (got == 0) {
    throw FileError(path, 0,
                    std::string(in.IsGzip() ? "empty gzip content" : "empty file") +
                        ": expected an IDX header starting with magic number " + Hex32(kind.magic) +
                        " (" + kind.description + ")");
  }
  if (got < 4) {
    throw FileError(path, got,
                    "truncated header: expected a 4-byte magic number, found only " +
                        std::to_string(got) + " byte(s)");
  }
  const std::uint32_t magic = LoadBigEndian32(magic_bytes);
  if (magic_bytes[0] != 0 || magic_bytes[1] != 0) {
    throw FileError(
        path, 0,
        "wrong magic number: " + expected + ", found " + Hex32(magic) + " (not an IDX file)");
  }
  const unsigned type = magic_bytes[2];
  const unsigned wanted_type = (kind.magic >> 8) & 0xFFu;
  if (type != wanted_type) {
    throw FileError(path, 2,
                    "unsupported element type " + Hex8(type) + " (" + ElementTypeName(type) +
                        ") in magic number " + Hex32(magic) + ": expected element type " +
                        Hex8(wanted_type) + " (" + ElementTypeName(wanted_type) + ")");
  }
  const unsigned ndims = magic_bytes[3];
  if (ndims != kind.dim_names.size()) {
    throw FileError(path, 3,
                    "wrong number of dimensions in magic number " + Hex32(magic) + ": expected " +
                        std::to_string(kind.dim_names.size()) + " (" + kind.description +
                        "), found " + std::to_string(ndims));
  }

  IdxArray array;
  std::uint8_t size_bytes[4];
  std::uint64_t product = 1;
  // Sizes must stay addressable both as Index (Eigen) and as size_t (std::vector).
  const std::uint64_t limit =
      std::min<std::uint64_t>(static_cast<std::uint64_t>(std::numeric_limits<Index>::max()),
                              std::min<std::uint64_t>(std::numeric_limits<std::size_t>::max(),
                                                      std::vector<std::uint8_t>().max_size()));
  std::string shape;
  for (unsigned d = 0; d < ndims; ++d) {
    const std::uint64_t at = 4 + 4 * std::uint64_t{d};
    if (in.Read(size_bytes, 4) < 4) {
      throw FileError(path, in.Offset(),
                      "truncated header: expected " + std::to_string(ndims) +
                          " 4-byte dimension sizes (a " + std::to_string(4 + 4 * ndims) +
                          "-byte header), but the content ends at byte " +
                          std::to_string(in.Offset()));
    }
    const std::uint32_t size = LoadBigEndian32(size_bytes);
    shape += (d ? " x " : "") + std::to_string(size);
    if (size == 0) {
      throw FileError(path, at,
                      std::string("zero dimension: size of dimension ") + std::to_string(d) + " (" +
                          kind.dim_names[d] + ") is 0, expected at least 1");
    }
    if (product > limit / size) {
      throw FileError(path, at,
                      "dimension product overflows: " + shape + " elements exceeds the limit of " +
                          std::to_string(limit));
    }
    product *= size;
    array.dims.push_back(size);
  }

  const std::uint64_t header = in.Offset();
  // "60000 images of 28 x 28", "60000 labels"
  std::string what = std::to_string(array.dims[0]) + " " + kind.dim_names[0];
  for (unsigned d = 1; d < ndims; ++d)
    what += (d == 1 ? " of " : " x ") + std::to_string(array.dims[d]);
  if (const auto size = in.Size()) {
    // Raw file: the size is known, so both bounds are checked before anything is allocated.
    const std::uint64_t available = *size - std::min(*size, header);
    if (available < product) {
      throw FileError(path, *size,
                      "truncated data: the header declares " + what + " (" +
                          std::to_string(product) + " bytes after the " + std::to_string(header) +
                          "-byte header), but the file holds only " + std::to_string(available) +
                          " data bytes");
    }
    if (available > product) {
      throw FileError(path, header + product,
                      "trailing data: " + std::to_string(available - product) +
                          " unexpected byte(s) after the " + what + " declared by the header");
    }
  }
  // The caller's limits, checked before anything is allocated for the data.
  if (array.dims[0] > limits.max_items) {
    throw FileError(path, 4,
                    "the header declares " + what + ", more than the limit of " +
                        std::to_string(limits.max_items) + " " + kind.dim_names[0] +
                        " (IdxLimits::max_items); pass larger IdxLimits to read this file");
  }
  if (product > limits.max_bytes) {
    throw FileError(path, header,
                    "the header declares " + what + " (" + std::to_string(product) + " bytes, " +
                        FormatBytes(static_cast<double>(product)) + "), more than the limit of " +
                        std::to_string(limits.max_bytes) +
                        " bytes (IdxLimits::max_bytes); pass larger IdxLimits to read this file");
  }
  try {
    array.data = ReadStreamed(in, product, what);
  } catch (const std::bad_alloc&) {
    throw FileError(path, header,
                    "out of memory: the " + what + " declared by the header need " +
                        FormatBytes(static_cast<double>(product)));
  }
  std::uint8_t extra;
  if (in.Read(&extra, 1) != 0) {
    throw FileError(path, header + product,
                    "trailing data: unexpected bytes after the " + what +
                        " declared by the header (the content should end at byte " +
                        std::to_string(header + product) + ")");
  }
  return array;
}

DLB_INLINE const IdxKind& ImagesKind() {
  static const IdxKind kind{0x00000803, "idx3 unsigned-byte images", {"images", "rows", "columns"}};
  return kind;
}

DLB_INLINE const IdxKind& LabelsKind() {
  static const IdxKind kind{0x00000801, "idx1 unsigned-byte labels", {"labels"}};
  return kind;
}

DLB_INLINE bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

DLB_INLINE void WriteIdxArray(const std::string& path, const IdxKind& kind,
                              const std::vector<Index>& dims, const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> header(4 + 4 * dims.size());
  StoreBigEndian32(kind.magic, header.data());
  std::string shape;
  std::uint64_t product = 1;
  bool overflow = false;
  for (std::size_t d = 0; d < dims.size(); ++d) {
    shape += (d ? " x " : "") + std::to_string(dims[d]);
    if (dims[d] < 1 || static_cast<std::uint64_t>(dims[d]) > 0xFFFFFFFFull) {
      throw ArgumentError("writing " + path + ": " + kind.dim_names[d] + " is " +
                          std::to_string(dims[d]) + ", expected 1 .. 4294967295 (" +
                          kind.description + ")");
    }
    const auto size = static_cast<std::uint64_t>(dims[d]);
    StoreBigEndian32(static_cast<std::uint32_t>(size), header.data() + 4 + 4 * d);
    overflow = overflow || product > std::numeric_limits<std::uint64_t>::max() / size;
    product *= size;
  }
  if (overflow || product != data.size()) {
    throw ShapeError("writing " + path + ": " + shape + " " + kind.description + " need " +
                     (overflow ? "more than 2^64" : std::to_string(product)) + " bytes, found " +
                     std::to_string(data.size()));
  }
  FileContentWriter out(path, EndsWith(path, ".gz"));
  out.Write(header.data(), header.size());
  out.Write(data.data(), data.size());
  out.Commit();
}

}  // namespace internal

DLB_INLINE IdxImages ReadIdxImages(const std::string& path, const IdxLimits& limits) {
  internal::IdxArray array = internal::ReadIdxArray(path, internal::ImagesKind(), limits);
  IdxImages images;
  images.count = static_cast<Index>(array.dims[0]);
  images.rows = static_cast<Index>(array.dims[1]);
  images.cols = static_cast<Index>(array.dims[2]);
  images.pixels = std::move(array.data);
  return images;
}

DLB_INLINE std::vector<std::uint8_t> ReadIdxLabels(const std::string& path,
                                                   const IdxLimits& limits) {
  return internal::ReadIdxArray(path, internal::LabelsKind(), limits).data;
}

DLB_INLINE void WriteIdxImages(const std::string& path, const IdxImages& images) {
  internal::WriteIdxArray(path, internal::ImagesKind(), {images.count, images.rows, images.cols},
                        images.pixels);
}

DLB_INLINE void WriteIdxLabels(const std::string& path, const std::vector<std::uint8_t>& labels) {
  internal::WriteIdxArray(path, internal::LabelsKind(), {static_cast<Index>(labels.size())}, labels);
}

}  // namespace dlb
