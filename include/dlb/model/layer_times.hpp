#pragma once
/// \file
/// Where a model's passes spend their time, layer by layer: what ModelNN::SetLayerTiming
/// measures and ModelNN::LayerTimes reports, and the table FormatLayerTimes prints.

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "dlb/core/types.hpp"

namespace dlb {

/// The time one layer's passes took while timing was on, its children's included (a block's
/// time is the whole block's).
struct LayerPassTimes {
  double forward_seconds = 0;
  double backward_seconds = 0;
  Index forward_calls = 0;   ///< 0 for an activation the layer before it applies (fused)
  Index backward_calls = 0;
};

/// One row of ModelNN::LayerTimes: the layer's path ("layer1.0.conv1"), its name
/// ("Conv2D(16 -> 16, 3x3, pad 1)"), its depth (0: a layer of the model; a block's children
/// one deeper), its times and, for an activation that the layer before it applies in its own
/// passes (fused), that layer's path.
struct LayerTime {
  std::string path;
  std::string name;
  int depth = 0;
  LayerPassTimes times;
  std::string fused_into;  ///< empty unless fused; such a layer runs no pass of its own
};

/// The seconds of all of the model's layers: the sum over the rows of depth 0 (a block's time
/// includes its children's, so deeper rows are not added again).
inline double TotalLayerSeconds(const std::vector<LayerTime>& layers) {
  double seconds = 0;
  for (const LayerTime& layer : layers) {
    if (layer.depth == 0) seconds += layer.times.forward_seconds + layer.times.backward_seconds;
  }
  return seconds;
}

/// A table of `layers` (ModelNN::LayerTimes), one line per layer, indented by depth: forward
/// and backward milliseconds per call, the layer's total seconds and its share of the model's
/// layers (the sum over depth 0; a block's share includes its children's). A fused activation
/// shows "fused into PATH", a layer that ran no pass while timed "not run".
inline std::string FormatLayerTimes(const std::vector<LayerTime>& layers) {
  const double model_seconds = TotalLayerSeconds(layers);
  std::string text;
  char line[256];
  std::snprintf(line, sizeof line, "%-32s %12s %12s %10s %7s\n", "layer", "forward ms",
                "backward ms", "total s", "share");
  text += line;
  const auto per_call = [](double seconds, Index calls) {
    return calls > 0 ? 1e3 * seconds / static_cast<double>(calls) : 0.0;
  };
  for (const LayerTime& layer : layers) {
    const LayerPassTimes& t = layer.times;
    const std::string label = std::string(static_cast<std::size_t>(2 * layer.depth), ' ') + layer.path;
    if (t.forward_calls == 0 && t.backward_calls == 0) {
      const std::string why =
          layer.fused_into.empty() ? std::string("not run") : "fused into " + layer.fused_into;
      std::snprintf(line, sizeof line, "%-32s %s\n", label.c_str(), why.c_str());
    } else {
      const double total = t.forward_seconds + t.backward_seconds;
      std::snprintf(line, sizeof line, "%-32s %12.3f %12.3f %10.3f %6.1f%%\n", label.c_str(),
                    per_call(t.forward_seconds, t.forward_calls),
                    per_call(t.backward_seconds, t.backward_calls), total,
                    model_seconds > 0 ? 100 * total / model_seconds : 0.0);
    }
    text += line;
  }
  std::snprintf(line, sizeof line, "%-32s %12s %12s %10.3f %6.1f%%\n", "all layers", "", "",
                model_seconds, model_seconds > 0 ? 100.0 : 0.0);
  text += line;
  return text;
}

namespace internal {

/// Runs `pass`; when `timed`, adds its time to `seconds` and one to `calls` (a pass that
/// throws is not counted), without reading the clock otherwise.
template <class Pass>
void TimedPass(bool timed, double& seconds, Index& calls, Pass&& pass) {
  if (!timed) {
    pass();
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  pass();
  seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++calls;
}

}  // namespace internal
}  // namespace dlb
