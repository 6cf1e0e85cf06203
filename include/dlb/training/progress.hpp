#pragma once
/// \file
/// Progress display: the notebook's summary line after each epoch and, on a terminal, a live
/// line during the epoch (batch i / N, samples per second, running loss, time left) that the
/// summary line replaces. Output that is not a terminal (a log file, a pipe, also behind
/// mpirun) gets only the summary lines.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <ostream>
#include <string>

#include "dlb/core/linkage.hpp"
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
DLB_INLINE bool LaunchedByMpi();

namespace internal {

#if defined(__linux__)
/// The command name and parent of process `pid` (from /proc/<pid>/stat); false when they
/// cannot be read.
DLB_INLINE bool ReadProcess(long pid, std::string& command, long& parent);
#endif

/// Launchers whose ranks' output goes through a pseudo-terminal of the launcher's making:
/// Open MPI's mpirun (orterun) and its per-host daemon, PRRTE's, and MPICH's Hydra.
DLB_INLINE bool IsMpiLauncher(const std::string& command);

/// For an MPI rank whose descriptor `fd` is a terminal: whether the launcher's own `fd`
/// reaches a terminal, or nothing when no launcher is found among the rank's ancestors (a
/// singleton run, an unknown launcher: then the rank's own terminal is the user's).
/// Why: Open MPI gives each rank's standard output a pseudo-terminal of its own and copies it
/// to mpirun's standard output, whatever that is (a log file, a pipe), and the environment
/// says nothing about the latter; so the rank's isatty() is true even for `mpirun ... > log`.
/// On Linux this finds the nearest ancestor that is a launcher (IsMpiLauncher; through /proc,
/// past a shell between mpirun and the rank) and asks whether its descriptor is a terminal.
/// A daemon on another host (orted) writes to no terminal: its ranks print summary lines.
DLB_INLINE std::optional<bool> LauncherOutputIsTerminal(int fd);

}  // namespace internal

/// Whether `out` writes to a terminal that can redraw a line: true for std::cout (file
/// descriptor 1) and std::cerr / std::clog (descriptor 2) when that descriptor is a terminal
/// (isatty), TERM is not "dumb" and, in a rank started by an MPI launcher (LaunchedByMpi),
/// the launcher's own output is a terminal too (internal::LauncherOutputIsTerminal): Open MPI
/// gives ranks a pseudo-terminal even when `mpirun ... > log` writes to a file, where "\r"
/// and escape codes do not belong. False for every other stream.
DLB_INLINE bool IsTerminal(const std::ostream& out);

/// The notebook's line: "Epoch    3 / 10: | Train Loss:  0.345 | Val Loss:  0.371 |
/// Train Acc:  0.874 | Val Acc:  0.866 | Epoch Time:  1.234 |". The accuracies are
/// EpochStats::train_score and val_score, which TrainModel fills with the fraction classified
/// correctly (the notebook called them "Score"); for real-valued targets the score named by
/// s.score_kind ("Train R2: ...", "Train Bin Acc: ..."). The line is never truncated, however
/// large the numbers.
DLB_INLINE std::string FormatEpoch(const EpochStats& s, int epochs);

/// Writes a duration as "0:07", "12:34" or "1:02:03" (hours:minutes:seconds) into `out`
/// (at least 16 bytes); "?" when it is not finite or negative. Returns the length.
DLB_INLINE int FormatDuration(char* out, std::size_t size, double seconds);

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

#if DLB_HEADER_DEFINITIONS
#include "dlb/training/impl/progress.ipp"
#endif
