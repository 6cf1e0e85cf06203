#pragma once
// The definitions of dlb/io/posix_file.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <system_error>

#include "dlb/io/posix_file.hpp"

namespace dlb {

namespace internal {

DLB_INLINE std::string ErrnoText(int error) { return std::generic_category().message(error); }

DLB_INLINE const char* FileKindName(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "a file of unknown kind";
}

DLB_INLINE FileError NotRegularInputError(const std::string& path, mode_t mode) {
  if (S_ISDIR(mode)) {
    return FileError(path, std::nullopt, "cannot open: expected a file, found a directory");
  }
  return FileError(path, std::nullopt,
                   std::string("cannot open: not a regular file but ") + FileKindName(mode) +
                       "; DLBlocks reads regular files only");
}

}  // namespace internal

DLB_INLINE internal::FilePtr OpenInputFile(const std::string& path) {
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
