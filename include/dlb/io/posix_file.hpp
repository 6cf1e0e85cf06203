#pragma once
/// \file
/// Opening a file to read from outside input: regular files only, and never a wait.
///
/// A path given by a user may name anything: a FIFO (opening it blocks until a writer
/// appears, forever if none does), a device (/dev/zero never ends, a tape rewinds when
/// opened), a directory or a loop of symbolic links. OpenInputFile refuses everything but a
/// regular file, with a FileError saying what the path is, before reading a byte.
///
/// POSIX only, like the rest of the library's file handling.

#include <sys/types.h>

#include <cstdio>
#include <memory>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/linkage.hpp"

namespace dlb {

namespace internal {

/// strerror text of an errno value ("Too many levels of symbolic links").
DLB_INLINE std::string ErrnoText(int error);

/// What a file of this st_mode is, for messages: "a FIFO (named pipe)", "a directory" ...
DLB_INLINE const char* FileKindName(mode_t mode);

struct FileCloser {
  void operator()(std::FILE* file) const noexcept { std::fclose(file); }
};
/// An open stdio stream, closed when the pointer goes away.
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

/// The FileError for an input path that is there but is not a regular file.
DLB_INLINE FileError NotRegularInputError(const std::string& path, mode_t mode);

}  // namespace internal

/// Opens `path` for reading in binary mode.
/// Requires: nothing; any path is checked.
/// Ensures: the stream reads a regular file (symbolic links followed). The call never blocks:
/// the kind of file is checked before opening it, and again on the opened descriptor (so a
/// file swapped for a FIFO in between is refused too).
/// Throws FileError "cannot open: no such file", "... expected a file, found a directory",
/// "... not a regular file but a FIFO (named pipe)" (or a device, a socket), "... Too many
/// levels of symbolic links", "... Permission denied" and so on.
DLB_INLINE internal::FilePtr OpenInputFile(const std::string& path);

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/io/impl/posix_file.ipp"
#endif
