#pragma once
/// \file
/// A file's content as a byte stream, gzip-compressed or not: FileContentReader inflates a
/// gzip file transparently (recognised by its magic bytes, whatever its name) and
/// FileContentWriter deflates into an atomically replaced file when asked. The IDX reader
/// and writer (dlb/data/idx.hpp) are built on them.

#if !__has_include(<zlib.h>)
#error "dlb/io/compressed_file.hpp (gzip files, used by the IDX and Fashion-MNIST readers) needs zlib's <zlib.h> (Debian: zlib1g-dev); link the CMake target dlb::io"
#endif
#include <zlib.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dlb/core/linkage.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/io/posix_file.hpp"

namespace dlb::internal {

/// The decompressed content of a file, read front to back: the bytes as they are for a raw
/// file, the inflated stream for a gzip file (recognised by its magic bytes 1f 8b, whatever
/// its name). Offsets in errors are positions in this content. Only regular files are opened
/// (see OpenInputFile).
class FileContentReader {
 public:
  DLB_INLINE explicit FileContentReader(const std::string& path);

  FileContentReader(const FileContentReader&) = delete;
  FileContentReader& operator=(const FileContentReader&) = delete;

  DLB_INLINE ~FileContentReader();

  const std::string& Path() const noexcept { return path_; }
  bool IsGzip() const noexcept { return gzip_; }
  /// Bytes of content delivered so far.
  std::uint64_t Offset() const noexcept { return offset_; }
  /// Total content size when known without reading it (a raw regular file).
  std::optional<std::uint64_t> Size() const noexcept { return size_; }

  /// Reads up to n bytes of content into out; returns fewer only at the end of the content.
  /// Throws FileError on a read error or a corrupt or truncated gzip stream.
  DLB_INLINE std::size_t Read(std::uint8_t* out, std::size_t n);

 private:
  static constexpr std::size_t kInputChunk = std::size_t{1} << 16;

  DLB_INLINE std::size_t FreadAll(std::uint8_t* out, std::size_t n);
  DLB_INLINE std::size_t ReadRaw(std::uint8_t* out, std::size_t n);

  std::uint64_t CompressedOffset() const noexcept { return file_bytes_ - stream_.avail_in; }

  // Refills the inflate input; returns false at the end of the file.
  DLB_INLINE bool Refill();
  DLB_INLINE std::string Where() const;
  DLB_INLINE std::size_t Inflate(std::uint8_t* out, std::size_t n);

  std::string path_;
  FilePtr file_;
  std::array<std::uint8_t, 2> sniff_{};
  std::size_t sniff_size_ = 0;
  std::size_t sniff_used_ = 0;
  bool gzip_ = false;
  bool inflating_ = false;
  bool finished_ = false;
  bool member_started_ = false;
  int member_ = 0;
  std::uint64_t member_output_ = 0;
  z_stream stream_{};
  std::vector<std::uint8_t> input_;
  std::uint64_t file_bytes_ = 0;
  std::uint64_t offset_ = 0;
  std::size_t produced_ = 0;  // output of the Read in progress, for error offsets
  std::optional<std::uint64_t> size_;
};

/// Byte sink that gzip-compresses into an AtomicFileWriter, or passes bytes through.
class FileContentWriter {
 public:
  DLB_INLINE FileContentWriter(const std::string& path, bool gzip);

  FileContentWriter(const FileContentWriter&) = delete;
  FileContentWriter& operator=(const FileContentWriter&) = delete;

  DLB_INLINE ~FileContentWriter();

  DLB_INLINE void Write(const std::uint8_t* bytes, std::size_t n);

  DLB_INLINE void Commit();

 private:
  DLB_INLINE void Deflate(int flush);

  std::string path_;
  AtomicFileWriter file_;
  bool gzip_;
  bool deflating_ = false;
  z_stream stream_{};
  std::vector<std::uint8_t> buffer_;
};

}  // namespace dlb::internal

#if DLB_HEADER_DEFINITIONS
#include "dlb/io/impl/compressed_file.ipp"
#endif
