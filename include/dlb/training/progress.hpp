#pragma once
/// \file
/// Progress display: the notebook's summary line after each epoch and, on a terminal, a live
/// line during the epoch (batch i / N, samples per second, running loss, time left) that the
/// summary line replaces. Output that is not a terminal (a log file, a pipe, also behind
/// mpirun) gets only the summary lines.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <optional>
#include <ostream>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "dlb/core/types.hpp"
#include "dlb/training/callback.hpp"

namespace dlb {

/// Whether TrainModel shows the live line.
enum class ProgressMode {
  Auto,     ///< live when the log stream is a terminal (IsTerminal), summary lines otherwise
  Live,     ///< always the live line, then the summary line
  Summary,  ///< only the summary lines
};

/// Whether this process is a rank started by an MPI launcher (mpirun, mpiexec): the
/// environment holds the rank variables of Open MPI (OMPI_COMM_WORLD_SIZE), PMIx (PMIX_RANK)
/// or the PMI of MPICH and Intel MPI (PMI_RANK).
inline bool LaunchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

namespace internal {

#if defined(__linux__)
/// The command name and parent of process `pid` (from /proc/<pid>/stat); false when they
/// cannot be read.
inline bool ReadProcess(long pid, std::string& command, long& parent) {
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

/// Launchers whose ranks' output goes through a pseudo-terminal of the launcher's making:
/// Open MPI's mpirun (orterun) and its per-host daemon, PRRTE's, and MPICH's Hydra.
inline bool IsMpiLauncher(const std::string& command) {
  for (const char* name : {"mpirun", "mpiexec", "orterun", "orted", "prterun", "prted",
                           "mpiexec.hydra", "hydra_pmi_proxy"}) {
    if (command == name) return true;
  }
  return false;
}

/// For an MPI rank whose descriptor `fd` is a terminal: whether the launcher's own `fd`
/// reaches a terminal, or nothing when no launcher is found among the rank's ancestors (a
/// singleton run, an unknown launcher: then the rank's own terminal is the user's).
/// Why: Open MPI gives each rank's standard output a pseudo-terminal of its own and copies it
/// to mpirun's standard output, whatever that is (a log file, a pipe), and the environment
/// says nothing about the latter; so the rank's isatty() is true even for `mpirun ... > log`.
/// On Linux this finds the nearest ancestor that is a launcher (IsMpiLauncher; through /proc,
/// past a shell between mpirun and the rank) and asks whether its descriptor is a terminal.
/// A daemon on another host (orted) writes to no terminal: its ranks print summary lines.
inline std::optional<bool> LauncherOutputIsTerminal(int fd) {
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

}  // namespace internal

/// Whether `out` writes to a terminal that can redraw a line: true for std::cout (file
/// descriptor 1) and std::cerr / std::clog (descriptor 2) when that descriptor is a terminal
/// (isatty), TERM is not "dumb" and, in a rank started by an MPI launcher (LaunchedByMpi),
/// the launcher's own output is a terminal too (internal::LauncherOutputIsTerminal): Open MPI
/// gives ranks a pseudo-terminal even when `mpirun ... > log` writes to a file, where "\r"
/// and escape codes do not belong. False for every other stream.
inline bool IsTerminal(const std::ostream& out) {
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

/// The notebook's line: "Epoch    3 / 10: | Train Loss:  0.345 | Val Loss:  0.371 |
/// Train Acc:  0.874 | Val Acc:  0.866 | Epoch Time:  1.234 |". The accuracies are
/// EpochStats::train_score and val_score, which TrainModel fills with the fraction classified
/// correctly (the notebook called them "Score"); for real-valued targets the score named by
/// s.score_kind ("Train R2: ...", "Train Bin Acc: ..."). The line is never truncated, however
/// large the numbers.
inline std::string FormatEpoch(const EpochStats& s, int epochs) {
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

/// Writes a duration as "0:07", "12:34" or "1:02:03" (hours:minutes:seconds) into `out`
/// (at least 16 bytes); "?" when it is not finite or negative. Returns the length.
inline int FormatDuration(char* out, std::size_t size, double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e9) return std::snprintf(out, size, "?");
  const long total = std::lround(seconds);
  if (total < 3600) return std::snprintf(out, size, "%ld:%02ld", total / 60, total % 60);
  return std::snprintf(out, size, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
}

/// The live line for the context's current batch, written into `out` without allocating:
/// "Epoch 3 / 10 | batch 120 / 234 | 10234 samples/s | loss 0.4123 | 0:07 left".
/// samples/s and the time left come from the epoch's wall time so far (context.epoch_seconds):
/// samples seen / seconds, and seconds * (batches - batch) / batch. Returns the length
/// (truncated to size - 1 at most).
template <Scalar T>
int FormatBatchProgress(char* out, std::size_t size, const TrainingContext<T>& context) {
  const double seconds = context.epoch_seconds;
  const double rate = seconds > 0 ? static_cast<double>(context.running.samples) / seconds : 0;
  const double left = context.batch > 0 ? seconds * static_cast<double>(context.batches - context.batch) /
                                              static_cast<double>(context.batch)
                                        : -1;
  char duration[32];
  FormatDuration(duration, sizeof duration, left);
  const int n = std::snprintf(out, size,
                              "Epoch %d / %d | batch %lld / %lld | %.0f samples/s | loss %.4f | %s left",
                              context.epoch, context.epochs, static_cast<long long>(context.batch),
                              static_cast<long long>(context.batches), rate, context.running.loss,
                              duration);
  return n < 0 ? 0 : std::min(n, static_cast<int>(size) - 1);
}

/// Prints training progress to a stream: after each epoch the summary line (FormatEpoch)
/// and, when `live`, during the epoch a line redrawn in place ("\r", the line, then the
/// terminal's erase-to-end-of-line "\x1b[K") at most every `refresh_seconds`, which the
/// summary line overwrites. TrainModel adds one after the other callbacks when
/// TrainOptions::log is set, so the summary shows the columns the callbacks filled.
/// Drawing the live line allocates nothing. If training ends with an exception while a live
/// line is shown, the destructor ends that line so the error starts on a fresh one.
template <Scalar T>
class ProgressLine : public Callback<T> {
 public:
  explicit ProgressLine(std::ostream& out, bool live, double refresh_seconds = 0.1)
      : out_(out), live_(live), refresh_seconds_(refresh_seconds) {}
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine() override {
    if (shown_) out_ << '\n' << std::flush;
  }

  bool Live() const { return live_; }

  void OnEpochBegin(TrainingContext<T>& /*context*/) override { last_draw_ = kNever; }

  void OnBatchEnd(TrainingContext<T>& context) override {
    if (!live_ || context.epoch_seconds - last_draw_ < refresh_seconds_) return;
    last_draw_ = context.epoch_seconds;
    char line[192];
    const int n = FormatBatchProgress(line, sizeof line, context);
    out_.put('\r');
    out_.write(line, n);
    out_.write("\x1b[K", 3);
    out_.flush();
    shown_ = true;
  }

  void OnEpochEnd(TrainingContext<T>& context, EpochStats& stats) override {
    if (shown_) out_.write("\r\x1b[K", 4);
    shown_ = false;
    out_ << FormatEpoch(stats, context.epochs) << '\n' << std::flush;
  }

 private:
  std::ostream& out_;
  bool live_;
  double refresh_seconds_;
  static constexpr double kNever = -std::numeric_limits<double>::infinity();
  double last_draw_ = kNever;
  bool shown_ = false;
};

}  // namespace dlb
