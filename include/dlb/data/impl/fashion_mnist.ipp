#pragma once
// The definitions of dlb/data/fashion_mnist.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/data/fashion_mnist.hpp"
#include "dlb/io/posix_file.hpp"

namespace dlb::internal {

DLB_INLINE bool PathExists(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) == 0) return true;
  const int error = errno;
  if (error == ENOENT) return false;
  throw FileError(path, std::nullopt, "cannot open: " + ErrnoText(error));
}

DLB_INLINE std::string FindFashionMnistFile(const std::string& dir, const std::string& name) {
  const std::filesystem::path base = std::filesystem::path(dir) / name;
  const std::string raw = base.string();
  const std::string gz = raw + ".gz";
  if (PathExists(raw)) return raw;
  if (PathExists(gz)) return gz;
  throw FileError(raw, std::nullopt,
                  "Fashion-MNIST file not found: tried " + raw + " and " + gz +
                      " (data/fetch_fashion_mnist.sh downloads the data set)");
}

}  // namespace dlb::internal
