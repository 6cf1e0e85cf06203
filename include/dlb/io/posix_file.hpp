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

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "dlb/core/error.hpp"

namespace dlb {

namespace internal {

/// strerror text of an errno value ("Too many levels of symbolic links").
inline std::string ErrnoText(int error) { return std::generic_category().message(error); }

/// What a file of this st_mode is, for messages: "a FIFO (named pipe)", "a directory" ...
inline const char* FileKindName(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "a file of unknown kind";
}

struct FileCloser {
  void operator()(std::FILE* file) const noexcept { std::fclose(file); }
};
/// An open stdio stream, closed when the pointer goes away.
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

/// The FileError for an input path that is there but is not a regular file.
inline FileError NotRegularInputError(const std::string& path, mode_t mode) {
  if (S_ISDIR(mode)) {
    return FileError(path, std::nullopt, "cannot open: expected a file, found a directory");
  }
  return FileError(path, std::nullopt,
                   std::string("cannot open: not a regular file but ") + FileKindName(mode) +
                       "; DLBlocks reads regular files only");
}

}  // namespace internal

/// Opens `path` for reading in binary mode.
/// Requires: nothing; any path is checked.
/// Ensures: the stream reads a regular file (symbolic links followed). The call never blocks:
/// the kind of file is checked before opening it, and again on the opened descriptor (so a
/// file swapped for a FIFO in between is refused too).
/// Throws FileError "cannot open: no such file", "... expected a file, found a directory",
/// "... not a regular file but a FIFO (named pipe)" (or a device, a socket), "... Too many
/// levels of symbolic links", "... Permission denied" and so on.
inline internal::FilePtr OpenInputFile(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) {
    const int error = errno;
    if (error == ENOENT) throw FileError(path, std::nullopt, "cannot open: no such file");
    throw FileError(path, std::nullopt, "cannot open: " + internal::ErrnoText(error));
  }
  if (!S_ISREG(status.st_mode)) throw internal::NotRegularInputError(path, status.st_mode);

  // O_NONBLOCK: should the path have become a FIFO since the stat, open must not wait.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    throw FileError(path, std::nullopt, "cannot open: " + internal::ErrnoText(errno));
  }
  if (::fstat(fd, &status) != 0) {
    const int error = errno;
    ::close(fd);
    throw FileError(path, std::nullopt, "cannot open: " + internal::ErrnoText(error));
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(fd);
    throw internal::NotRegularInputError(path, status.st_mode);
  }
  // Back to ordinary blocking reads (regular files ignore the flag, but say what we mean).
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  std::FILE* file = ::fdopen(fd, "rb");
  if (file == nullptr) {
    const int error = errno;
    ::close(fd);
    throw FileError(path, std::nullopt, "cannot open: " + internal::ErrnoText(error));
  }
  return internal::FilePtr(file);
}

}  // namespace dlb
