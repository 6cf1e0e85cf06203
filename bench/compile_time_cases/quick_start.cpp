// The README's first program (the quick start), as bench/compile_time times it: train an MLP
// on Fashion-MNIST. The only change from the README of 2026-12-03 is the second include:
// LoadFashionMnist reads (gzip-compressed) files, which <dlb/io.hpp> provides since
// <dlb/dlb.hpp> holds only the in-memory library.
#include <dlb/dlb.hpp>
#include <dlb/io.hpp>
#include <iostream>

int main() {
  auto data = dlb::LoadFashionMnist<float>("data/fashion-mnist");  // 784 x N, pixels in [0, 1]
  dlb::Standardizer<float> scaler;                                  // statistics of the training set
  scaler.Fit(data.train_images);
  scaler.Transform(data.train_images);
  scaler.Transform(data.test_images);

  dlb::ModelNN<float> model(/*input_shape=*/784, /*seed=*/0);    // or {1, 28, 28} for images
  model.Add(dlb::Linear<float>(784, 350, dlb::Init::Kaiming)).Add(dlb::ReLU<float>())
       .Add(dlb::Linear<float>(350, 10, dlb::Init::Kaiming));
  std::cout << model.Summary();                                   // each layer's output shape
  dlb::Optimizer optimizer(model, dlb::Adam<float>(1e-3f));
  dlb::CrossEntropyLoss<float> loss;
  dlb::DataSet<float> train(data.train_images, data.train_labels,
                            {.batch_size = 256, .drop_last = true});
  dlb::DataSet<float> test(data.test_images, data.test_labels,
                           {.batch_size = 1000, .shuffle = false});

  auto result = dlb::TrainModel(model, train, test, loss, optimizer, {.epochs = 10, .log = &std::cout});
  std::cout << "Test accuracy: " << result.history.back().val_score << "\n";
}
