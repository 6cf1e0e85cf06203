#pragma once
// The definitions of dlb/io/same_file.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <optional>

#include "dlb/core/error.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/io/posix_file.hpp"
#include "dlb/io/same_file.hpp"

namespace dlb {

DLB_INLINE FileIdentity IdentifyFile(const std::string& path) {
  // The same resolution AtomicFileWriter uses, so that the identity is that of the file a
  // write would replace (reads follow the links to the same file).
  const internal::OutputTarget target = internal::ResolveOutputTarget(path);
  FileIdentity identity;
  if (target.status) {
    identity.exists = true;
    identity.device = target.status->st_dev;
    identity.inode = target.status->st_ino;
    return identity;
  }
  const std::string directory = internal::ParentDirectory(target.path);
  struct stat status {};
  if (::stat(directory.c_str(), &status) != 0) {
    const int error = errno;
    throw FileError(path, std::nullopt,
                    (error == ENOENT ? "the directory " + directory + " does not exist"
                                     : "directory " + directory + ": " + internal::ErrnoText(error)) +
                        internal::ViaLink(path, target.path));
  }
  identity.device = status.st_dev;
  identity.inode = status.st_ino;
  identity.name = std::filesystem::path(target.path).filename().string();
  return identity;
}

DLB_INLINE bool SameFile(const std::string& a, const std::string& b) {
  return IdentifyFile(a) == IdentifyFile(b);
}

}  // namespace dlb
