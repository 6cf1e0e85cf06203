#pragma once
// A scratch directory for tests that write files.

#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace dlb_test {

/// A fresh directory under the system temp dir, named `prefix` followed by random digits, and
/// removed with everything in it when the TempDir goes out of scope. `dir / "name"` is the
/// path of a file in it, as a string.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix) {
    std::random_device entropy;
    const auto base = std::filesystem::temp_directory_path();
    do {
      path = base / (prefix + std::to_string(entropy()) + std::to_string(entropy()));
    } while (!std::filesystem::create_directory(path));
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace dlb_test
