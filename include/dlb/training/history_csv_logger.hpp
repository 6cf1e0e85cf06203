#pragma once
/// \file
/// HistoryCsvLogger: the callback that keeps the run's history CSV file (HistoryCsv) up to
/// date. Apart from training/history.hpp because it writes files (io/atomic_file.hpp, POSIX):
/// <dlb/io.hpp> includes it, <dlb/dlb.hpp> does not.

#include <string>
#include <utility>
#include <vector>

#include "dlb/io/atomic_file.hpp"
#include "dlb/training/callback.hpp"
#include "dlb/training/history.hpp"

namespace dlb {

/// Writes the history of the run to a CSV file (HistoryCsv) after every epoch, so the file is
/// complete up to the last finished epoch even if training stops with an error; and once,
/// with just the header, when training begins, so that a path that cannot be written fails
/// before the first epoch rather than after it. Each write replaces the file all or nothing
/// (dlb::WriteFileAtomically: an error never leaves a truncated file, and only a regular file
/// is ever replaced). The rows are the earlier epochs' (SetEarlierHistory) followed by those
/// of the current TrainModel call. When resuming, call SetEarlierHistory(info.history) with
/// the rows RestoreCheckpoint returned: the file then holds every epoch of the run, the saved
/// ones exactly as the interrupted run wrote them (their seconds included), so that it is
/// the file an uninterrupted run writes but for the wall time of the new epochs.
template <Scalar T>
class HistoryCsvLogger : public Callback<T> {
 public:
  explicit HistoryCsvLogger(std::string path) : path_(std::move(path)) {}
  const std::string& Path() const { return path_; }

  /// Rows of the epochs before this TrainModel call (CheckpointInfo::history), written first.
  void SetEarlierHistory(std::vector<EpochStats> history) { earlier_ = std::move(history); }

  void OnTrainBegin(TrainingContext<T>& context) override { Write(context); }
  void OnEpochEnd(TrainingContext<T>& context, EpochStats& /*stats*/) override { Write(context); }

 private:
  void Write(const TrainingContext<T>& context) const {
    std::vector<EpochStats> rows = earlier_;
    rows.insert(rows.end(), context.history.begin(), context.history.end());
    WriteFileAtomically(path_, HistoryCsv(rows));
  }

  std::string path_;
  std::vector<EpochStats> earlier_;
};

/// DLB_COMPILED_HISTORY_CSV_LOGGER(EXTERN, T): dlb::compiled's instantiation of this header
/// (src/compiled/files.cpp).
#define DLB_COMPILED_HISTORY_CSV_LOGGER(EXTERN, T) EXTERN template class HistoryCsvLogger<T>;
#if defined(DLB_COMPILED) && !defined(DLB_COMPILED_DEFINITIONS)
DLB_COMPILED_HISTORY_CSV_LOGGER(extern, float)
DLB_COMPILED_HISTORY_CSV_LOGGER(extern, double)
#endif

}  // namespace dlb
