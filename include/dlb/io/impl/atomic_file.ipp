#pragma once
// The definitions of dlb/io/atomic_file.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <utility>

#include "dlb/io/atomic_file.hpp"

namespace dlb {

namespace internal {

/// Links followed at most before giving up with ELOOP (Linux's own MAXSYMLINKS).
inline constexpr int kMaxSymlinkHops = 40;

DLB_INLINE std::string ParentDirectory(const std::string& path) {
  const std::filesystem::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

DLB_INLINE std::string ViaLink(const std::string& path, const std::string& target) {
  return target == path ? std::string() : " (the symbolic link leads to " + target + ")";
}

DLB_INLINE std::string ReadSymbolicLink(const std::string& link, const std::string& path) {
  std::string target(256, '\0');
  while (true) {
    const ssize_t length = ::readlink(link.c_str(), target.data(), target.size());
    if (length < 0) {
      throw FileError(path, std::nullopt,
                      "cannot write: cannot read the symbolic link " + link + ": " +
                          ErrnoText(errno));
    }
    if (static_cast<std::size_t>(length) < target.size()) {
      target.resize(static_cast<std::size_t>(length));
      return target;
    }
    target.resize(target.size() * 2);
  }
}

DLB_INLINE OutputTarget ResolveOutputTarget(const std::string& path) {
  if (path.empty()) throw FileError(path, std::nullopt, "cannot write: the path is empty");
  std::string current = path;
  for (int hops = 0;; ++hops) {
    struct stat status {};
    if (::lstat(current.c_str(), &status) != 0) {
      const int error = errno;
      if (error == ENOENT) return {current, std::nullopt};
      throw FileError(path, std::nullopt,
                      "cannot write: " + ErrnoText(error) + ViaLink(path, current));
    }
    if (!S_ISLNK(status.st_mode)) return {current, status};
    if (hops == kMaxSymlinkHops) {
      throw FileError(path, std::nullopt, "cannot write: " + ErrnoText(ELOOP));
    }
    const std::filesystem::path next(ReadSymbolicLink(current, path));
    const std::filesystem::path link(current);
    current = next.is_absolute() || !link.has_parent_path() ? next.string()
                                                            : (link.parent_path() / next).string();
  }
}

/// Throws FileError unless `target` (resolved from `path`) may be replaced: an existing target
/// must be a regular file the process may write, and its directory must exist.
DLB_INLINE void RequireReplaceable(const std::string& path, const OutputTarget& target) {
  const std::string via = ViaLink(path, target.path);
  if (target.status) {
    const mode_t mode = target.status->st_mode;
    if (S_ISDIR(mode)) {
      throw FileError(path, std::nullopt,
                      "cannot write: expected a file, found a directory" + via);
    }
    if (!S_ISREG(mode)) {
      throw FileError(path, std::nullopt,
                      std::string("cannot write: not a regular file but ") + FileKindName(mode) +
                          via + "; DLBlocks writes regular files only");
    }
    if (::access(target.path.c_str(), W_OK) != 0) {
      throw FileError(path, std::nullopt, "cannot write: " + ErrnoText(errno) + via);
    }
    // In a sticky directory (/tmp) only the owner of the file or of the directory may replace
    // the file: the final rename would fail, after all the work, so refuse now.
    const std::string directory = ParentDirectory(target.path);
    struct stat parent {};
    const uid_t user = ::geteuid();
    if (user != 0 && ::stat(directory.c_str(), &parent) == 0 && (parent.st_mode & S_ISVTX) &&
        target.status->st_uid != user && parent.st_uid != user) {
      throw FileError(path, std::nullopt,
                      "cannot write: " + ErrnoText(EPERM) + ": the file belongs to another user" +
                          " and " + directory + " is a sticky directory" + via);
    }
    return;
  }
  const std::string directory = ParentDirectory(target.path);
  struct stat status {};
  if (::stat(directory.c_str(), &status) != 0) {
    const int error = errno;
    throw FileError(path, std::nullopt,
                    error == ENOENT
                        ? "cannot write: the directory " + directory + " does not exist" + via
                        : "cannot write: directory " + directory + ": " + ErrnoText(error) + via);
  }
  if (!S_ISDIR(status.st_mode)) {
    throw FileError(path, std::nullopt,
                    "cannot write: " + directory + " is not a directory" + via);
  }
}

/// Creates a new, empty file next to `target` under a fresh name (O_EXCL: it never opens an
/// existing file) and returns its descriptor; the name goes to `temp`. Throws FileError
/// naming `path` when the directory does not let us create it.
DLB_INLINE int CreateTemporaryFile(const std::string& path, const std::string& target,
                                   std::string& temp) {
  const std::filesystem::path target_path(target);
  const std::filesystem::path directory(ParentDirectory(target));
  // Short enough that the temporary name stays within NAME_MAX (255) for any target name.
  const std::string stem = target_path.filename().string().substr(0, 200);
  std::random_device entropy;
  int error = 0;
  for (int attempt = 0; attempt < 100; ++attempt) {
    char suffix[24];
    std::snprintf(suffix, sizeof suffix, ".%08x%08x.tmp", static_cast<unsigned>(entropy()),
                  static_cast<unsigned>(entropy()));
    temp = (directory / ("." + stem + suffix)).string();
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    error = errno;
    if (error != EEXIST) break;
  }
  throw FileError(path, std::nullopt,
                  "cannot write: cannot create a temporary file in " + directory.string() + ": " +
                      ErrnoText(error));
}

/// fsync of a directory, so that a rename in it survives a power cut. Best effort: some file
/// systems refuse fsync on directories, and the data itself is already on disk.
DLB_INLINE void SyncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace internal

DLB_INLINE AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  const internal::OutputTarget target = internal::ResolveOutputTarget(path_);
  internal::RequireReplaceable(path_, target);
  target_ = target.path;
  const int fd = internal::CreateTemporaryFile(path_, target_, temp_);
  if (target.status) {
    // Keep the old owner, group and mode; fchown first, as it clears set-user-ID bits.
    const struct stat& old = *target.status;
    if ((old.st_uid != ::geteuid() || old.st_gid != ::getegid()) &&
        ::fchown(fd, old.st_uid, old.st_gid) != 0) {
      (void)::fchown(fd, static_cast<uid_t>(-1), old.st_gid);  // at least the group, if ours
    }
    if (::fchmod(fd, old.st_mode & 07777) != 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temp_.c_str());
      throw FileError(path_, std::nullopt,
                      "cannot write: cannot give the new file the old file's mode: " +
                          internal::ErrnoText(error));
    }
  }
  file_.reset(::fdopen(fd, "wb"));
  if (!file_) {
    const int error = errno;
    ::close(fd);
    ::unlink(temp_.c_str());
    throw FileError(path_, std::nullopt, "cannot write: " + internal::ErrnoText(error));
  }
}

DLB_INLINE AtomicFileWriter::~AtomicFileWriter() {
  if (committed_) return;
  file_.reset();
  ::unlink(temp_.c_str());
}

DLB_INLINE void AtomicFileWriter::Write(const void* bytes, std::size_t n) {
  if (!file_) throw FileError(path_, std::nullopt, "cannot write: Commit() was already called");
  if (n != 0 && std::fwrite(bytes, 1, n, file_.get()) != n) {
    throw FileError(path_, std::nullopt,
                    "cannot write: " + internal::ErrnoText(errno) + " (writing the temporary file " +
                        temp_ + ")");
  }
}

DLB_INLINE void AtomicFileWriter::Commit() {
  if (!file_) throw FileError(path_, std::nullopt, "cannot write: Commit() was already called");
  int error = 0;
  if (std::fflush(file_.get()) != 0) error = errno;
  // Without the fsync a power cut after the rename could leave an empty file in place.
  if (error == 0 && ::fsync(::fileno(file_.get())) != 0) error = errno;
  if (std::fclose(file_.release()) != 0 && error == 0) error = errno;
  if (error == 0) {
    struct stat status {};
    if (::lstat(target_.c_str(), &status) == 0 && !S_ISREG(status.st_mode)) {
      ::unlink(temp_.c_str());
      throw FileError(path_, std::nullopt,
                      std::string("cannot write: the target became ") +
                          internal::FileKindName(status.st_mode) +
                          " while it was written; DLBlocks writes regular files only");
    }
  }
  if (error == 0 && std::rename(temp_.c_str(), target_.c_str()) != 0) error = errno;
  if (error != 0) {
    ::unlink(temp_.c_str());
    throw FileError(path_, std::nullopt, "cannot write: " + internal::ErrnoText(error));
  }
  committed_ = true;
  internal::SyncDirectory(internal::ParentDirectory(target_));
}

DLB_INLINE void WriteFileAtomically(const std::string& path, std::string_view content) {
  AtomicFileWriter file(path);
  file.Write(content);
  file.Commit();
}

DLB_INLINE void CheckOutputPath(const std::string& path) {
  const internal::OutputTarget target = internal::ResolveOutputTarget(path);
  internal::RequireReplaceable(path, target);
  std::string temp;
  const int fd = internal::CreateTemporaryFile(path, target.path, temp);
  ::close(fd);
  ::unlink(temp.c_str());
}

}  // namespace dlb
