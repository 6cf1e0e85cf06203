#pragma once
// The definitions of dlb/training/progress.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include "dlb/training/progress.hpp"

namespace dlb {

DLB_INLINE bool LaunchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

}  // namespace dlb

namespace dlb::internal {

#if defined(__linux__)
DLB_INLINE bool ReadProcess(long pid, std::string& command, long& parent) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  std::FILE* file = std::fopen(path, "r");
  if (file == nullptr) return false;
  char line[1024];
  const bool read = std::fgets(line, sizeof line, file) != nullptr;
  std::fclose(file);
  // "pid (command) state ppid ...": the command may hold spaces and parentheses, so it ends
  // at the last ')'.
  const char* begin = read ? std::strchr(line, '(') : nullptr;
  const char* end = read ? std::strrchr(line, ')') : nullptr;
  char state = 0;
  if (begin == nullptr || end == nullptr || end < begin ||
      std::sscanf(end + 1, " %c %ld", &state, &parent) != 2) {
    return false;
  }
  command.assign(begin + 1, end);
  return true;
}
#endif

DLB_INLINE bool IsMpiLauncher(const std::string& command) {
  for (const char* name : {"mpirun", "mpiexec", "orterun", "orted", "prterun", "prted",
                           "mpiexec.hydra", "hydra_pmi_proxy"}) {
    if (command == name) return true;
  }
  return false;
}

DLB_INLINE std::optional<bool> LauncherOutputIsTerminal(int fd) {
#if defined(__linux__)
  long pid = static_cast<long>(::getppid());
  for (int hop = 0; hop < 16 && pid > 1; ++hop) {
    std::string command;
    long parent = -1;
    if (!ReadProcess(pid, command, parent)) return std::nullopt;
    if (IsMpiLauncher(command)) {
      char path[64];
      std::snprintf(path, sizeof path, "/proc/%ld/fd/%d", pid, fd);
      struct stat status {};
      if (::stat(path, &status) != 0 || !S_ISCHR(status.st_mode)) return false;
      // A character device: a terminal or something like /dev/null. Non-blocking, and no
      // controlling terminal is acquired by opening it.
      const int launcher = ::open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
      if (launcher < 0) return false;
      const bool terminal = ::isatty(launcher) == 1;
      ::close(launcher);
      return terminal;
    }
    pid = parent;
  }
  return std::nullopt;
#else
  (void)fd;
  return std::nullopt;
#endif
}

}  // namespace dlb::internal

namespace dlb {

DLB_INLINE bool IsTerminal(const std::ostream& out) {
#if defined(__unix__) || defined(__APPLE__)
  int fd = -1;
  if (&out == &std::cout) fd = STDOUT_FILENO;
  if (&out == &std::cerr || &out == &std::clog) fd = STDERR_FILENO;
  if (fd < 0 || ::isatty(fd) != 1) return false;
  const char* term = std::getenv("TERM");
  if (term != nullptr && std::strcmp(term, "dumb") == 0) return false;
  return !LaunchedByMpi() || internal::LauncherOutputIsTerminal(fd).value_or(true);
#else
  (void)out;
  return false;
#endif
}

DLB_INLINE std::string FormatEpoch(const EpochStats& s, int epochs) {
  const char* score = s.score_kind == ScoreKind::R2               ? "R2"
                      : s.score_kind == ScoreKind::BinaryAccuracy ? "Bin Acc"
                                                                  : "Acc";
  auto print = [&](char* out, std::size_t size) {
    return std::snprintf(
        out, size,
        "Epoch %4d / %d: | Train Loss: %6.3f | Val Loss: %6.3f | Train %s: %6.3f | "
        "Val %s: %6.3f | Epoch Time: %6.3f |",
        s.epoch, epochs, s.train_loss, s.val_loss, score, s.train_score, score, s.val_score, s.seconds);
  };
  std::string line(static_cast<std::size_t>(print(nullptr, 0)), '\0');
  print(line.data(), line.size() + 1);  // the +1 is the terminator std::string already holds
  return line;
}

DLB_INLINE int FormatDuration(char* out, std::size_t size, double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e9) return std::snprintf(out, size, "?");
  const long total = std::lround(seconds);
  if (total < 3600) return std::snprintf(out, size, "%ld:%02ld", total / 60, total % 60);
  return std::snprintf(out, size, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
}

}  // namespace dlb
