// Instantiates the library's templates (every built-in layer through the registry, models,
// optimizers, losses, files, training, ONNX export) for float and double, so that the
// warnings test sees the warnings of template code too: a header alone instantiates nothing.
// Compiled, never run.

#include <string>
#include <vector>

namespace dlb_warnings {

template <dlb::Scalar T>
void Instantiate() {
  dlb::ModelNN<T> model = dlb::MakeResNet<T>({}, 1);
  model.Add(dlb::Linear<T>(10, 10));
  for (const char* type : {"Linear", "Conv2D", "BatchNorm1D", "BatchNorm2D", "MaxPool2D", "AvgPool2D",
                           "GlobalAvgPool", "Dropout", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
                           "Sequential", "Residual", "Concat"}) {
    dlb::BuildBudget budget;
    model.AddPointer(type, dlb::DefaultLayerRegistry<T>().Build(dlb::LayerSpec{type, {}}, budget));
  }
  const dlb::Matrix<T> x = dlb::Matrix<T>::Zero(model.InputSize(), 4);
  const dlb::Labels y = dlb::Labels::Zero(4);
  dlb::Matrix<T> dlogits;
  dlb::CrossEntropyLoss<T> loss;
  loss.Compute(model.Forward(x), y, dlogits);
  model.Backward(dlogits);
  dlb::MseLoss<T> mse;
  mse.Compute(model.Forward(x), model.Forward(x), dlogits);
  for (const char* name : {"sgd", "momentum", "nesterov", "adam", "adamw"}) {
    dlb::Optimizer<T> optimizer = dlb::MakeOptimizer<T>(name, model, 0.1);
    optimizer.Step();
  }
  const dlb::Predictor<T> predictor(model);
  const dlb::Matrix<T> logits = predictor.Predict(x);
  dlb::Softmax(logits);
  dlb::ArgMax(logits);
  dlb::TopK(logits.col(0), 3);
  dlb::ScoreAccLogits(logits, y);
  model.Summary();

  dlb::Standardizer<T> standardizer;
  standardizer.Fit(x);
  dlb::Save(model, "model.safetensors", &standardizer);
  const dlb::LoadedModel<T> loaded = dlb::LoadModel<T>("model.safetensors");
  loaded.Predict(x);
  dlb::LoadWeights(model, "model.safetensors");
  dlb::ExportOnnx(model, "model.onnx");

  dlb::DataSet<T> train(x, y, {.batch_size = 2});
  dlb::DataSet<T> validation(x, y, {.batch_size = 2, .shuffle = false});
  dlb::Optimizer<T> optimizer = dlb::MakeOptimizer<T>("adam", model, 0.1);
  dlb::TrainModel(model, train, validation, loss, optimizer);
}

template void Instantiate<float>();
template void Instantiate<double>();

}  // namespace dlb_warnings
