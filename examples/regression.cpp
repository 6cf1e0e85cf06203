// Regression end to end, no hand-written loop: an MLP learns y = sin(3 a) cos(2 b) + a b for
// (a, b) uniform in [-1, 1]^2 from 4000 samples with MseLoss, Adam and TrainModel, then
// reports R^2, MSE and MAE on 1000 test samples. Exits 1 if the test R^2 is below 0.95.
#include <cmath>
#include <iostream>

#include <dlb/dlb.hpp>

int main() {
  dlb::Generator gen(42);
  const auto make = [&](dlb::Index n, dlb::Matrix<float>& x, dlb::Matrix<float>& y) {
    x = dlb::Matrix<float>::NullaryExpr(2, n, [&] { return 2 * dlb::SampleUniform<float>(gen) - 1; });
    y = ((3 * x.row(0).array()).sin() * (2 * x.row(1).array()).cos() + x.row(0).array() * x.row(1).array()).matrix();
  };
  dlb::Matrix<float> x_train, y_train, x_test, y_test;
  make(4000, x_train, y_train);
  make(1000, x_test, y_test);
  dlb::DataSet<float> train(x_train, y_train, {.batch_size = 64, .drop_last = true, .seed = 1});
  dlb::DataSet<float> test(x_test, y_test, {.batch_size = 250, .shuffle = false});
  dlb::ModelNN<float> model = dlb::MakeMlp<float>(2, {64, 64}, 1, dlb::Activation::Tanh, dlb::Init::Xavier, 1);
  dlb::Optimizer<float> optimizer = dlb::MakeOptimizer<float>("adam", model, 3e-3f);
  dlb::MseLoss<float> loss;
  dlb::TrainModel(model, train, test, loss, optimizer, {.epochs = 30, .log = &std::cout});
  const dlb::PassResult result = dlb::Evaluate(model, test, loss);
  std::cout << "Test R^2 " << result.score << ", MSE " << result.mse << ", MAE " << result.mae << "\n";
  return result.score >= 0.95 ? 0 : 1;
}
