// The complete program of docs/saving.md (train, save, load, checkpoint and resume), as
// bench/compile_time times it: what a program that reads and writes model files pays for
// <dlb/serialization.hpp>, header-only and with the compiled part.
#include <dlb/dlb.hpp>
#include <dlb/serialization.hpp>  // model files

#include <iostream>

int main() {
  // 4 features in [0, 1], 2 classes, one sample per column.
  dlb::Generator gen(7);
  dlb::Matrix<float> x(4, 512);
  dlb::Labels y(512);
  for (dlb::Index j = 0; j < x.cols(); ++j) {
    y(j) = static_cast<dlb::Label>(j % 2);
    for (dlb::Index i = 0; i < x.rows(); ++i) {
      x(i, j) = 0.5f * dlb::SampleUniform<float>(gen) + (y(j) == 1 ? 0.5f : 0.0f);
    }
  }
  dlb::Standardizer<float> scaler;
  scaler.Fit(x);
  dlb::Matrix<float> standardized = x;
  scaler.Transform(standardized);

  auto make_model = [] {
    dlb::ModelNN<float> model(/*input_shape=*/4, /*seed=*/0);
    model.Add(dlb::Linear<float>(4, 8)).Add(dlb::ReLU<float>()).Add(dlb::Linear<float>(8, 2));
    return model;
  };
  dlb::ModelNN<float> model = make_model();
  dlb::Optimizer<float> optimizer(model, dlb::Adam<float>(1e-2f));
  dlb::CrossEntropyLoss<float> loss;
  dlb::DataSet<float> train(standardized, y, {.batch_size = 64, .drop_last = true});
  dlb::DataSet<float> validation(standardized, y, {.batch_size = 512, .shuffle = false});

  // Train 3 epochs, writing a checkpoint after each.
  dlb::CheckpointCallback<float> checkpoint("run.safetensors", {}, &scaler);
  dlb::TrainModel(model, train, validation, loss, optimizer, {.epochs = 3}, {&checkpoint});

  // The model file: weights, architecture and the scaler's statistics.
  dlb::Save(model, "model.safetensors", &scaler);
  dlb::LoadedModel<float> loaded = dlb::LoadModel<float>("model.safetensors");  // no code needed
  const dlb::Matrix<float> logits = loaded.Predict(x);  // [0, 1] floats: the scaler is applied
  std::cout << "accuracy of the loaded model: " << dlb::ScoreAccLogits(logits, y) << "\n";

  dlb::ModelNN<float> same = make_model();
  dlb::LoadWeights(same, "model.safetensors");  // into a model built in code

  // Later, in another process: the same model, optimizer and data built again, then resumed
  // from the checkpoint; epochs 4 and 5 give the weights an uninterrupted 5-epoch run gives.
  dlb::ModelNN<float> resumed = make_model();
  dlb::Optimizer<float> resumed_optimizer(resumed, dlb::Adam<float>(1e-2f));
  dlb::DataSet<float> resumed_train(standardized, y, {.batch_size = 64, .drop_last = true});
  dlb::CheckpointInfo info = dlb::RestoreCheckpoint(
      "run.safetensors", dlb::TrainingState<float>{resumed, resumed_optimizer, resumed_train});
  checkpoint.SetEarlierHistory(info.history);
  dlb::TrainModel(resumed, resumed_train, validation, loss, resumed_optimizer,
                  {.epochs = 5, .initial_epoch = info.epoch}, {&checkpoint});
  std::cout << "resumed after epoch " << info.epoch << "\n";
}
