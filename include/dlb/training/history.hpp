#pragma once
/// \file
/// The training history as a CSV file: one row per epoch with the columns
/// epoch,lr,train_loss,val_loss,train_acc,val_acc,seconds, and HistoryCsvLogger, the callback
/// that keeps such a file up to date while training runs. scripts/plot draws these files.

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/types.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/training/callback.hpp"

namespace dlb {

/// The history file's header: the names of its columns, in order.
inline constexpr const char* kHistoryCsvHeader =
    "epoch,lr,train_loss,val_loss,train_acc,val_acc,seconds";

/// One row of the history file, without the line end: the epoch, then lr, losses and
/// accuracies with 9 significant digits (enough to read back a float exactly) and the
/// seconds with microseconds, e.g. "3,0.200000003,0.345123,0.371,0.874,0.866,1.234567".
inline std::string HistoryCsvRow(const EpochStats& s) {
  char row[256];
  std::snprintf(row, sizeof row, "%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.6f", s.epoch, s.lr, s.train_loss,
                s.val_loss, s.train_score, s.val_score, s.seconds);
  return row;
}

/// The whole file for one run: the header line, then one line per epoch.
inline std::string HistoryCsv(const std::vector<EpochStats>& history) {
  std::string text = std::string(kHistoryCsvHeader) + '\n';
  for (const EpochStats& stats : history) text += HistoryCsvRow(stats) + '\n';
  return text;
}

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

}  // namespace dlb
