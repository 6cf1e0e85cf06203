#pragma once
/// \file
/// Reader and writer for the IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
///
/// An IDX file is a big-endian header followed by the elements in row-major order:
///
///     bytes 0-1  zero
///     byte  2    element type (only 0x08, unsigned byte, is supported)
///     byte  3    number of dimensions n
///     bytes 4..  n dimension sizes, each a big-endian uint32
///     then       the product of the sizes, one byte per element
///
/// Images are idx3 (magic 0x00000803: count x rows x cols), labels idx1 (magic 0x00000801).
/// The reader trusts nothing in the file: every size is checked against what the file really
/// holds before memory is committed to it, so a hostile header cannot cause a giant allocation.
/// An honest header of a huge (or gzip-bombed) file is stopped by the caller's IdxLimits.
/// Only regular files are read (a FIFO or a device is refused, never waited on), and the
/// writers replace files through AtomicFileWriter (dlb/io/atomic_file.hpp).

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "dlb/core/linkage.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// A set of grayscale images as stored in an idx3 file: `count` images of `rows` x `cols`
/// bytes, each image row-major, images one after the other
/// (pixels.size() == count * rows * cols).
struct IdxImages {
  Index count = 0;
  Index rows = 0;
  Index cols = 0;
  std::vector<std::uint8_t> pixels;
};

/// Upper bounds the IDX readers enforce right after the header, before any memory is taken
/// for the data: a file whose header declares more (a 1 MB gzip file that inflates to
/// gigabytes, a huge honest file) is refused with a FileError naming the limit, instead of
/// filling the memory. The defaults are no limit; LoadFashionMnist passes
/// kFashionMnistLimits.
struct IdxLimits {
  static constexpr std::uint64_t kNoLimit = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_items = kNoLimit;  ///< images or labels: the first dimension's size
  std::uint64_t max_bytes = kNoLimit;  ///< data bytes after the header, decompressed
};

/// Reads an idx3 image file (magic 0x00000803), raw or gzip (detected by its magic bytes).
/// Returns count images of rows x cols bytes, exactly as stored.
/// Throws FileError (with path and content byte offset) when the file is missing, unreadable
/// or not a regular file (a FIFO or a device is refused without waiting on it), empty, has a
/// wrong magic number, element type or dimension count, a zero or overflowing size, more
/// images or data bytes than `limits` allow, less or more data than the header declares, a
/// corrupt or truncated gzip stream, or when the memory runs out. A lying header never causes
/// an allocation beyond what the file really holds.
DLB_INLINE IdxImages ReadIdxImages(const std::string& path, const IdxLimits& limits = {});

/// Reads an idx1 label file (magic 0x00000801), raw or gzip (detected by its magic bytes).
/// Returns one byte per label. Throws FileError like ReadIdxImages (limits.max_items bounds
/// the number of labels).
DLB_INLINE std::vector<std::uint8_t> ReadIdxLabels(const std::string& path,
                                                   const IdxLimits& limits = {});

/// Writes images as an idx3 file, gzip-compressed when path ends in ".gz", raw otherwise,
/// through an AtomicFileWriter: the file appears complete or not at all, only a regular file
/// is replaced (a FIFO or a device is refused), a symbolic link is written through, and an
/// existing file keeps its mode. Throws ArgumentError if a size is outside 1 .. 2^32-1,
/// ShapeError if pixels.size() != count * rows * cols, FileError if writing fails.
DLB_INLINE void WriteIdxImages(const std::string& path, const IdxImages& images);

/// Writes labels as an idx1 file, gzip-compressed when path ends in ".gz", raw otherwise;
/// atomically like WriteIdxImages. Throws ArgumentError if labels is empty or has 2^32 or
/// more entries, FileError if writing fails.
DLB_INLINE void WriteIdxLabels(const std::string& path, const std::vector<std::uint8_t>& labels);

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/data/impl/idx.ipp"
#endif
