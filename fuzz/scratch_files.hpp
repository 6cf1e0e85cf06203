#pragma once
// What the fuzz targets share: reporting a finding, and scratch files for their inputs in one
// private directory per process (created on first use and reused for every input, so a
// fuzzer pays for no directory creation per run and leaves nothing in the temp dir).

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

namespace fuzz {

/// The fuzzer's name in messages, set by the target ("idx_fuzzer").
inline std::string& FuzzerName() {
  static std::string name = "fuzzer";
  return name;
}

/// Reports a failed check and aborts, which libFuzzer records as a finding.
[[noreturn]] inline void Finding(const std::string& what) {
  std::fprintf(stderr, "%s finding: %s\n", FuzzerName().c_str(), what.c_str());
  std::abort();
}

namespace internal {
inline std::string& Directory() {
  static std::string directory;
  return directory;
}
inline std::set<std::string>& Files() {
  static std::set<std::string> files;
  return files;
}
inline void RemoveScratch() {
  for (const std::string& file : Files()) std::remove(file.c_str());
  ::rmdir(Directory().c_str());
}
}  // namespace internal

/// The path of scratch file `name` in this process's directory under $TMPDIR (or /tmp),
/// removed with the directory when the process exits.
inline std::string ScratchPath(const std::string& name) {
  static const bool ready = [] {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base && *base ? base : "/tmp") + "/dlb_" + FuzzerName() + "_XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) Finding("cannot create a temporary directory");
    // Both statics exist before the handler is registered, so they are destroyed after it
    // runs at exit (in the reverse order of construction and registration).
    internal::Files().clear();
    internal::Directory() = pattern;
    std::atexit(internal::RemoveScratch);
    return true;
  }();
  (void)ready;
  const std::string path = internal::Directory() + "/" + name;
  internal::Files().insert(path);
  return path;
}

/// Writes `size` bytes to `path`; a failure is a finding.
inline void WriteFile(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) Finding("cannot write " + path);
  if (size != 0 && std::fwrite(data, 1, size, file) != size) Finding("cannot write " + path);
  if (std::fclose(file) != 0) Finding("cannot close " + path);
}

}  // namespace fuzz
