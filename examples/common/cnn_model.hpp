#pragma once
// The convolutional network of `train_fashion_mnist --model cnn` and of the CNN benchmark
// (issue 7), with its training defaults. Only the library's public API is used.
//
//   Conv(1->32, 3x3, pad 1)-BN-ReLU-MaxPool 2 -> Conv(32->64, 3x3, pad 1)-BN-ReLU-MaxPool 2
//   -> Linear(3136->128)-ReLU-Dropout(0.3) -> Linear(128->10)

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <dlb/dlb.hpp>

#include "experiment.hpp"

namespace cnn {

/// Training defaults of this model (each replaced by the corresponding flag when given).
inline constexpr int kEpochs = 15;
inline constexpr int kBatch = 128;
inline constexpr const char* kOptimizer = "adam";
inline constexpr float kLearningRate = 1e-3f;
inline constexpr float kDropout = 0.3f;
inline constexpr const char* kSchedule = "cosine";  // from the rate down to 0 over the epochs

/// One Fashion-MNIST image: 1 x 28 x 28.
inline constexpr dlb::Shape kImageShape{1, 28, 28};

/// The network above for 28 x 28 grey images and 10 classes, Kaiming-normal weights drawn from
/// Generator(seed).
inline dlb::ModelNN<float> MakeModel(std::uint64_t seed, float dropout = kDropout) {
  dlb::ModelNN<float> model(kImageShape, seed);
  model.Add(dlb::Conv2D<float>(dlb::Conv2DOptions(1, 32, 3).Padding(1)))
      .Add(dlb::BatchNorm2D<float>(32))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Conv2D<float>(dlb::Conv2DOptions(32, 64, 3).Padding(1)))
      .Add(dlb::BatchNorm2D<float>(64))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Linear<float>(64 * 7 * 7, 128))
      .Add(dlb::ReLU<float>())
      .Add(dlb::Dropout<float>(dropout))
      .Add(dlb::Linear<float>(128, 10));
  return model;
}

/// The flags whose defaults --model cnn changes, with the mlp's and the cnn's default.
struct ModelDefault {
  const char* flag;
  std::string mlp;
  std::string cnn;
};
inline std::vector<ModelDefault> ModelDefaults() {
  const experiment::Settings mlp;
  return {{"--optimizer", mlp.optimizer, kOptimizer},
          {"--epochs", std::to_string(mlp.epochs), std::to_string(kEpochs)},
          {"--batch", std::to_string(mlp.batch), std::to_string(kBatch)},
          {"--schedule", "none", kSchedule}};
}

/// Registers --model mlp|cnn (default mlp, the notebook's network). Call it after the flags
/// of ModelDefaults() are registered: their help then gives both defaults ("default: 10 for
/// --model mlp, 15 for cnn") instead of the mlp's alone.
inline void AddModelFlag(CLI::App& app, std::string& model) {
  app.add_option("--model", model,
                 "Network: mlp (the notebook's MLP) or cnn (2 x conv-BN-ReLU-max-pool, "
                 "128 hidden, dropout 0.3; defaults --epochs 15 --batch 128 --optimizer adam "
                 "--schedule cosine)")
      ->check(CLI::IsMember({"mlp", "cnn"}))
      ->capture_default_str();
  for (const ModelDefault& d : ModelDefaults()) {
    if (CLI::Option* option = app.get_option_no_throw(d.flag)) {
      option->default_str("");  // "=10" in the help would be the mlp's only
      option->description(option->get_description() + " (default: " + d.mlp +
                          " for --model mlp, " + d.cnn + " for cnn)");
    }
  }
}

/// For --model cnn, gives every flag the user did not set this model's default: epochs,
/// batch, optimizer (its default learning rate) and `schedule` (--schedule's value: cosine).
/// Returns exit code 2, after the error (experiment::UsageError), when --hidden was given (it
/// sets the MLP's widths).
inline std::optional<int> ApplyDefaults(const CLI::App& app, experiment::Settings& s,
                                        std::string& schedule) {
  if (s.model != "cnn") return std::nullopt;
  if (app.count("--hidden") > 0) {
    return experiment::UsageError(app, "--hidden sets the widths of --model mlp; the cnn's "
                                       "layers are fixed");
  }
  if (app.count("--epochs") == 0) s.epochs = kEpochs;
  if (app.count("--batch") == 0) s.batch = kBatch;
  if (app.count("--optimizer") == 0) s.optimizer = kOptimizer;
  if (app.count("--schedule") == 0) schedule = kSchedule;
  return std::nullopt;
}

/// The run's effective settings for its header, in up to three lines, by where each value
/// came from: the flags given (as given), the defaults of --model cnn, and the other
/// defaults, e.g.
///   Settings given: --model cnn --epochs 3 --data data/fashion-mnist
///   Defaults of --model cnn: --optimizer adam --batch 128 --schedule cosine
///   Other defaults: --lr 0.001 (adam's) --seed 0 --threads 8
/// `lr` is the optimizer's rate (the optimizer's default when --lr was not given).
inline std::string DescribeSettings(const CLI::App& app, const experiment::Settings& s,
                                    const std::string& schedule, float lr) {
  std::string given, model_defaults, defaults;
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0) continue;
    std::string values;  // none for a flag such as --distributed
    if (option->get_type_size() != 0) {
      for (const std::string& value : option->results()) values += " " + value;
    }
    given += " " + option->get_name() + values;
  }
  const bool cnn = s.model == "cnn";
  const auto add = [&](const char* flag, const std::string& value, const std::string& note = "") {
    if (app.count(flag) > 0) return;
    bool by_model = false;
    for (const ModelDefault& d : ModelDefaults()) by_model = by_model || (cnn && d.flag == std::string(flag));
    (by_model ? model_defaults : defaults) += std::string(" ") + flag + " " + value + note;
  };
  std::ostringstream rate;
  rate << lr;
  add("--model", s.model);
  add("--optimizer", s.optimizer);
  add("--lr", rate.str(), " (" + s.optimizer + "'s)");
  add("--epochs", std::to_string(s.epochs));
  add("--batch", std::to_string(s.batch));
  if (!cnn) {
    std::string widths;
    for (const dlb::Index width : s.hidden) widths += (widths.empty() ? "" : ",") + std::to_string(width);
    add("--hidden", widths.empty() ? "''" : widths);
  }
  add("--schedule", schedule);
  add("--seed", std::to_string(s.seed));
  add("--threads", std::to_string(s.threads));
  std::string text;
  if (!given.empty()) text += "Settings given:" + given + "\n";
  if (!model_defaults.empty()) text += "Defaults of --model cnn:" + model_defaults + "\n";
  if (!defaults.empty()) text += (given.empty() ? "Settings, all defaults:" : "Other defaults:") + defaults + "\n";
  return text;
}

/// FLOPs of the matrix products of one training step of this network with `batch` samples
/// (2 m n k per product): per convolution Z = P W^T and dW = dZ^T P, and dP = dZ W except for
/// the first layer; per Linear layer Z = W X, dW = dZ X^T and dX = W^T dZ.
inline double TrainingStepFlops(dlb::Index batch) {
  auto product = [](double m, double n, double k) { return 2.0 * m * n * k; };
  const double b = static_cast<double>(batch);
  const double conv1 = product(b * 28 * 28, 32, 9);
  const double conv2 = product(b * 14 * 14, 64, 32 * 9);
  const double linear1 = product(128, b, 3136), linear2 = product(10, b, 128);
  return 2 * conv1 + 3 * conv2 + 3 * linear1 + 3 * linear2;
}

}  // namespace cnn
