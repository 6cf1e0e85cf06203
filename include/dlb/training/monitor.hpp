#pragma once
/// \file
/// Monitor: the validation number a callback watches (ReduceLROnPlateau, EarlyStopping) and
/// the rule that decides whether a new value improves on the best one so far.

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/training/callback.hpp"

namespace dlb {

/// Which column of EpochStats is watched.
enum class Monitor {
  ValLoss,   ///< EpochStats::val_loss; lower is better (torch's mode "min")
  ValScore,  ///< EpochStats::val_score, the validation accuracy; higher is better ("max")
};

/// How a threshold is applied (torch.optim.lr_scheduler.ReduceLROnPlateau's threshold_mode).
enum class ThresholdMode {
  Relative,  ///< "rel": better than best * (1 -/+ threshold)
  Absolute,  ///< "abs": better than best -/+ threshold (Keras' min_delta)
};

/// "val_loss" or "val_acc", the history file's column names.
inline std::string MonitorName(Monitor monitor) {
  return monitor == Monitor::ValLoss ? "val_loss" : "val_acc";
}

/// The watched value of one epoch.
inline double MonitoredValue(Monitor monitor, const EpochStats& stats) {
  return monitor == Monitor::ValLoss ? stats.val_loss : stats.val_score;
}

/// The starting "best" value, which every finite value improves on: +inf for a loss, -inf
/// for a score.
inline double WorstValue(Monitor monitor) {
  const double inf = std::numeric_limits<double>::infinity();
  return monitor == Monitor::ValLoss ? inf : -inf;
}

/// Whether `current` improves on `best` by more than `threshold` (torch's is_better):
///   ValLoss,  Relative: current < best * (1 - threshold)   Absolute: current < best - threshold
///   ValScore, Relative: current > best * (1 + threshold)   Absolute: current > best + threshold
/// A NaN never improves. Requires threshold >= 0 (not checked here; the callbacks check it).
inline bool Improves(Monitor monitor, ThresholdMode mode, double threshold, double current,
                     double best) {
  if (std::isnan(current)) return false;
  if (monitor == Monitor::ValLoss) {
    return mode == ThresholdMode::Relative ? current < best * (1.0 - threshold)
                                           : current < best - threshold;
  }
  return mode == ThresholdMode::Relative ? current > best * (1.0 + threshold)
                                         : current > best + threshold;
}

namespace internal {

/// A number with 6 significant digits ("%g"), for names and messages: 1e-08 rather than
/// std::to_string's 0.000000.
inline std::string ShortNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

/// Throws ArgumentError "<what>: <name> must be <rule>, got <value>" unless `ok`.
inline void RequireSetting(bool ok, const std::string& what, const std::string& name,
                           const std::string& rule, double value) {
  if (!ok) throw ArgumentError(what + ": " + name + " must be " + rule + ", got " + ShortNumber(value));
}

}  // namespace internal

}  // namespace dlb
