// The C++ half of the Python interoperability tests (tests/python/).
//
//   safetensors_interop write DIR   writes DIR/model.safetensors (every layer type, weights
//                                   and preprocessing from formulas check_dlb_files.py
//                                   knows), DIR/reference.safetensors (inputs and our
//                                   logits) and DIR/checkpoint.safetensors
//   safetensors_interop check DIR   loads the files write_numpy_files.py wrote into DIR and
//                                   checks that our predictions match numpy's
//
// Exit code 0 when everything matches, 1 (with the reason) otherwise.

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <dlb/serialization.hpp>  // <dlb/dlb.hpp>, data files, model files and checkpoints

namespace {

using dlb::Index;

bool Fail(const std::string& message) {
  std::fprintf(stderr, "safetensors_interop: FAILED: %s\n", message.c_str());
  return false;
}

// The formulas check_dlb_files.py recomputes; every value is exact in float.
float WeightValue(Index layer, Index flat) { return static_cast<float>((layer + 1) * 64 - 3 * flat) / 256.0f; }
float BiasValue(Index layer, Index row) { return static_cast<float>((layer + 1) * 8 - row) / 32.0f; }

dlb::Tensor AsTensor(const dlb::Matrix<float>& m) {
  // A features x N column-major matrix has the memory of an N x features row-major tensor.
  return dlb::Tensor::FromValues(dlb::DType::F32, {m.cols(), m.rows()},
                                 std::vector<float>(m.data(), m.data() + m.size()));
}
dlb::Tensor AsTensor(const dlb::Matrix<double>& m) {
  return dlb::Tensor::FromValues(dlb::DType::F64, {m.cols(), m.rows()},
                                 std::vector<double>(m.data(), m.data() + m.size()));
}

bool Write(const std::string& dir) {
  std::filesystem::create_directories(dir);
  dlb::ModelNN<float> model(6, 1);
  model.Add(dlb::Linear<float>(6, 5))
      .Add(dlb::ReLU<float>())
      .Add(dlb::Linear<float>(5, 5, dlb::Init::Xavier))
      .Add(dlb::LeakyReLU<float>(0.25f))
      .Add(dlb::Linear<float>(5, 4))
      .Add(dlb::Sigmoid<float>())
      .Add(dlb::Dropout<float>(0.5f))
      .Add(dlb::Linear<float>(4, 4))
      .Add(dlb::Tanh<float>())
      .Add(dlb::Linear<float>(4, 3));
  for (Index layer : {0, 2, 4, 7, 9}) {
    auto& linear = model.LayerAt<dlb::Linear<float>>(layer);
    for (Index r = 0; r < linear.Weight().rows(); ++r) {
      for (Index c = 0; c < linear.Weight().cols(); ++c) {
        linear.Weight()(r, c) = WeightValue(layer, r * linear.Weight().cols() + c);
      }
      linear.Bias()(r, 0) = BiasValue(layer, r);
    }
  }
  dlb::Vector<float> mean(6), stddev(6);
  for (Index r = 0; r < 6; ++r) {
    mean(r) = static_cast<float>(r) / 4.0f;
    stddev(r) = 1.0f + static_cast<float>(r) / 8.0f;
  }
  const dlb::Standardizer<float> standardizer(mean, stddev);
  dlb::Save(model, dir + "/model.safetensors", &standardizer);

  dlb::Generator gen(3);
  dlb::Matrix<float> input(6, 7);
  for (Index i = 0; i < input.size(); ++i) input.data()[i] = 10.0f * dlb::SampleUniform<float>(gen);
  auto narrow = dlb::LoadModel<float>(dir + "/model.safetensors");
  auto wide = dlb::LoadModel<double>(dir + "/model.safetensors");
  dlb::StateDict reference;
  reference.Insert("input", AsTensor(input));
  reference.Insert("logits", AsTensor(narrow.Predict(input)));
  reference.Insert("logits64", AsTensor(wide.Predict(input.cast<double>())));
  dlb::WriteSafetensors(dir + "/reference.safetensors", reference);

  // A checkpoint after one epoch of Adam on the 7 samples.
  dlb::Labels labels(7);
  for (Index j = 0; j < 7; ++j) labels(j) = static_cast<dlb::Label>(j % 3);
  dlb::Optimizer<float> optimizer(model, dlb::Adam<float>());
  dlb::DataSet<float> train(input, labels, {.batch_size = 2, .drop_last = true});
  dlb::DataSet<float> validation(input, labels,
                                 {.batch_size = 7, .shuffle = false, .drop_last = true});
  dlb::CrossEntropyLoss<float> loss;
  dlb::TrainModel(model, train, validation, loss, optimizer, {.epochs = 1});
  dlb::SaveCheckpoint(dir + "/checkpoint.safetensors",
                      dlb::TrainingState<float>{model, optimizer, train}, 1);
  return true;
}

/// The samples of an N x features tensor as a features x N matrix.
dlb::Matrix<double> Samples(const dlb::Tensor& tensor) {
  const std::vector<double> values = tensor.Values<double>();
  return Eigen::Map<const dlb::Matrix<double>>(values.data(), tensor.shape[1], tensor.shape[0]);
}

bool Check(const std::string& dir) {
  const dlb::Safetensors reference = dlb::ReadSafetensors(dir + "/numpy_reference.safetensors");
  const dlb::Matrix<double> input = Samples(reference.tensors.At("input"));
  const dlb::Matrix<double> expected = Samples(reference.tensors.At("logits"));

  auto wide = dlb::LoadModel<double>(dir + "/numpy_model.safetensors");
  const dlb::Matrix<double> ours = wide.Predict(input);
  const double wide_error = ((ours - expected).array().abs() / (1.0 + expected.array().abs())).maxCoeff();
  std::printf("double model: largest relative difference to numpy %.3g\n", wide_error);
  if (!(wide_error <= 1e-12)) return Fail("the double model's logits differ from numpy's");

  auto narrow = dlb::LoadModel<float>(dir + "/numpy_model.safetensors");
  const dlb::Matrix<float> logits = narrow.Predict(input.cast<float>());
  const double narrow_error =
      ((logits.cast<double>() - expected).array().abs() / (1.0 + expected.array().abs())).maxCoeff();
  std::printf("float model: largest relative difference to numpy %.3g\n", narrow_error);
  if (!(narrow_error <= 1e-5)) return Fail("the float model's logits differ from numpy's");
  for (Index j = 0; j < expected.cols(); ++j) {
    Index ours_class = 0, numpy_class = 0;
    logits.col(j).maxCoeff(&ours_class);
    expected.col(j).maxCoeff(&numpy_class);
    if (ours_class != numpy_class) return Fail("sample " + std::to_string(j) + " is classified differently");
  }

  // The same weights as PyTorch's save_file writes them (no architecture), into a model
  // built in code: write_numpy_files.py's architecture.
  dlb::ModelNN<float> model(6);
  model.Add(dlb::Linear<float>(6, 5))
      .Add(dlb::LeakyReLU<float>(0.1f))
      .Add(dlb::Linear<float>(5, 4))
      .Add(dlb::Tanh<float>())
      .Add(dlb::Linear<float>(4, 3));
  if (dlb::LoadWeights(model, dir + "/numpy_torchstyle.safetensors")) {
    return Fail("the torch-style file has no preprocessing, yet LoadWeights returned one");
  }
  dlb::Matrix<float> standardized = input.cast<float>();
  narrow.standardizer->Transform(standardized);
  model.SetMode(dlb::Mode::Inference);
  if (!(model.Forward(standardized).array() == logits.array()).all()) {
    return Fail("LoadWeights of the torch-style file predicts differently from LoadModel");
  }
  std::printf("numpy's files load and predict the same\n");
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc == 3 ? argv[1] : "";
  if (mode != "write" && mode != "check") {
    std::fprintf(stderr, "usage: safetensors_interop write|check DIR\n");
    return 2;
  }
  try {
    return (mode == "write" ? Write(argv[2]) : Check(argv[2])) ? 0 : 1;
  } catch (const dlb::Error& error) {
    std::fprintf(stderr, "safetensors_interop: error: %s\n", error.what());
    return 1;
  }
}
