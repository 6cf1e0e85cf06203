#pragma once
// A small, fast training problem for the tests of training control (schedules, early
// stopping, progress): 3 classes in 4 features, a model, an optimizer and the data sets.

#include <cstdint>
#include <utility>
#include <vector>

#include "dlb/core/random.hpp"
#include "dlb/core/types.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/model/model.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/optimizers/sgd.hpp"
#include "dlb/training/callback.hpp"
#include "helpers.hpp"

namespace dlb_test {

/// Features uniform in [-1, 1) and labels of the nearest of 3 fixed class centres; with
/// `noise` > 0 that fraction of the labels is replaced by a random class (memorisable noise).
inline std::pair<dlb::Matrix<float>, dlb::Labels> ClassificationData(dlb::Index samples,
                                                                     std::uint64_t seed,
                                                                     double noise = 0) {
  dlb::Matrix<float> x = RandomMatrix<float>(4, samples, seed);
  const float centres[3][4] = {{1, 0, 0, 0}, {0, 1, 0, -1}, {-1, -1, 1, 0}};
  dlb::Labels y(samples);
  dlb::Generator gen(seed + 1);
  for (dlb::Index i = 0; i < samples; ++i) {
    int best = 0;
    float best_distance = 1e30f;
    for (int c = 0; c < 3; ++c) {
      float distance = 0;
      for (int f = 0; f < 4; ++f) distance += (x(f, i) - centres[c][f]) * (x(f, i) - centres[c][f]);
      if (distance < best_distance) best_distance = distance, best = c;
    }
    y(i) = best;
    if (dlb::SampleUniform<double>(gen) < noise) y(i) = static_cast<dlb::Label>(dlb::SampleIndex(gen, 3));
  }
  return {std::move(x), std::move(y)};
}

/// A run on ClassificationData: `samples` training samples in batches of `batch`, 30
/// validation samples, a 4-hidden-3 ReLU network and SGD at `lr`.
struct TrainingRun {
  std::pair<dlb::Matrix<float>, dlb::Labels> train_data;
  std::pair<dlb::Matrix<float>, dlb::Labels> validation_data;
  dlb::ModelNN<float> model;
  dlb::Optimizer<float> optimizer;
  dlb::CrossEntropyLoss<float> loss;
  dlb::DataSet<float> train;
  dlb::DataSet<float> validation;

  explicit TrainingRun(dlb::Index samples = 20, dlb::Index batch = 5, float lr = 0.1f,
                       dlb::Index hidden = 8, double noise = 0, std::uint64_t seed = 1)
      : train_data(ClassificationData(samples, seed, noise)),
        validation_data(ClassificationData(30, seed + 100)),
        model(MakeModel(hidden, seed)),
        optimizer(model, dlb::SGD<float>(lr)),
        train(train_data.first, train_data.second,
              {.batch_size = batch, .drop_last = true, .seed = seed}),
        validation(validation_data.first, validation_data.second,
                   {.batch_size = 10, .shuffle = false}) {}

  static dlb::ModelNN<float> MakeModel(dlb::Index hidden, std::uint64_t seed) {
    dlb::ModelNN<float> model(dlb::Shape(4), seed);
    model.Add(dlb::Linear<float>(4, hidden)).Add(dlb::ReLU<float>()).Add(dlb::Linear<float>(hidden, 3));
    return model;
  }
};

/// A callback that replaces the validation loss (or, with `score`, the accuracy) of epoch e
/// with values[e - 1]: placed before a schedule or early stopping, it drives them exactly.
struct ScriptedValidation : dlb::Callback<float> {
  std::vector<double> values;
  bool score = false;
  void OnEpochEnd(dlb::TrainingContext<float>& context, dlb::EpochStats& stats) override {
    (score ? stats.val_score : stats.val_loss) = values.at(static_cast<std::size_t>(context.epoch - 1));
  }
};

}  // namespace dlb_test
