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
#include <numbers>
#include <optional>
#include <string>

#include <dlb/dlb.hpp>

#include "experiment.hpp"

namespace cnn {

/// Training defaults of this model (each replaced by the corresponding flag when given).
inline constexpr int kEpochs = 15;
inline constexpr int kBatch = 128;
inline constexpr const char* kOptimizer = "adam";
inline constexpr float kLearningRate = 1e-3f;
inline constexpr float kDropout = 0.3f;

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

/// Cosine learning-rate decay over the whole run, step by step:
///   lr(t) = final + (initial - final) (1 + cos(pi t / T)) / 2
/// after t of T = epochs x batches-per-epoch steps, from the optimizer's rate at the start of
/// training (`initial`) down to initial x final_fraction. A stand-in until the library has
/// schedules of its own; it only uses the Callback interface, so swapping it is one line.
class CosineDecay : public dlb::Callback<float> {
 public:
  explicit CosineDecay(double final_fraction = 0.0) : final_fraction_(final_fraction) {}

  void OnTrainBegin(dlb::TrainingContext<float>& context) override {
    initial_ = static_cast<double>(context.optimizer.LearningRate());
  }
  void OnBatchEnd(dlb::TrainingContext<float>& context) override {
    const double total = static_cast<double>(context.epochs) * static_cast<double>(context.batches);
    const double step = static_cast<double>(context.epoch - 1) * static_cast<double>(context.batches) +
                        static_cast<double>(context.batch);
    const double final = initial_ * final_fraction_;
    const double lr = final + (initial_ - final) * 0.5 * (1 + std::cos(std::numbers::pi * step / total));
    // The last step reaches `final`, which may be 0: keep the rate valid (> 0).
    context.optimizer.SetLearningRate(static_cast<float>(std::max(lr, initial_ * 1e-4)));
  }

 private:
  double final_fraction_;
  double initial_ = 0;
};

/// Registers --model mlp|cnn (default mlp, the notebook's network).
inline void AddModelFlag(CLI::App& app, std::string& model) {
  app.add_option("--model", model,
                 "Network: mlp (the notebook's MLP) or cnn (2 x conv-BN-ReLU-max-pool, "
                 "128 hidden, dropout 0.3; defaults --epochs 15 --batch 128 --optimizer adam)")
      ->check(CLI::IsMember({"mlp", "cnn"}))
      ->capture_default_str();
}

/// For --model cnn, gives every flag the user did not set this model's default (epochs,
/// batch, optimizer; the learning rate is the optimizer's default). Returns exit code 2, after
/// a message, when --hidden was given (it sets the MLP's widths only).
inline std::optional<int> ApplyDefaults(const CLI::App& app, experiment::Settings& s,
                                        const char* program) {
  if (s.model != "cnn") return std::nullopt;
  if (app.count("--hidden") > 0) {
    std::cerr << program << ": error: --hidden sets the widths of --model mlp; the cnn's "
                 "layers are fixed\n";
    return 2;
  }
  if (app.count("--epochs") == 0) s.epochs = kEpochs;
  if (app.count("--batch") == 0) s.batch = kBatch;
  if (app.count("--optimizer") == 0) s.optimizer = kOptimizer;
  return std::nullopt;
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
