#pragma once
/// \file
/// The training history as a CSV file: one row per epoch with the columns
/// epoch,lr,train_loss,val_loss,train_acc,val_acc,seconds (HistoryCsvLogger, the callback that
/// writes such a file while training runs, is in training/history_csv_logger.hpp, since it
/// needs file code). scripts/plot draws these files.

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/types.hpp"
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

}  // namespace dlb
