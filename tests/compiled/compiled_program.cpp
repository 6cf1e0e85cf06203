// A program that uses the compiled part (dlb::compiled): trains two small models, a float
// MLP with CrossEntropyLoss and Adam, and a double CNN (Conv2D, BatchNorm2D, MaxPool2D,
// GlobalAvgPool) with MseLoss and SGD, through TrainModel, and checks that the loss went down;
// then exports the CNN to ONNX, writes the export with the file primitives (non-template
// functions that dlb::compiled defines once) and, where nlohmann-json is found, saves the MLP
// and loads it back (the file code dlb::compiled also instantiates).
// Built against dlb::compiled, so that a change of the library's templates that breaks the
// explicit instantiations (src/compiled/) or their extern declarations (dlb/compiled.hpp)
// fails this build. Built a second time header-only (the same source), so that CTest can
// check, from the objects' symbols, that the compiled build really skipped the instantiations.
#include <dlb/dlb.hpp>
#include <dlb/io.hpp>
#include <dlb/onnx.hpp>
#if __has_include(<nlohmann/json.hpp>)
#include <dlb/serialization.hpp>
#define DLB_TEST_SERIALIZATION 1
#endif

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace {

// Two classes of 4-feature samples, one column each, centered at -2 and +2.
template <class T>
void MakeClasses(dlb::Matrix<T>& x, dlb::Labels& y, std::uint64_t seed) {
  dlb::Generator gen(seed);
  x.resize(4, 128);
  y.resize(128);
  for (dlb::Index j = 0; j < x.cols(); ++j) {
    y(j) = static_cast<dlb::Label>(j % 2);
    for (dlb::Index i = 0; i < x.rows(); ++i) {
      x(i, j) = dlb::SampleNormal<T>(gen) + (y(j) == 1 ? T(2) : T(-2));
    }
  }
}

bool TrainFloatMlp() {
  dlb::Matrix<float> x;
  dlb::Labels y;
  MakeClasses(x, y, 1);
  dlb::ModelNN<float> model(/*input_shape=*/4, /*seed=*/1);
  model.Add(dlb::Linear<float>(4, 8)).Add(dlb::ReLU<float>()).Add(dlb::Linear<float>(8, 2));
  dlb::Optimizer optimizer(model, dlb::Adam<float>(1e-2f));
  dlb::CrossEntropyLoss<float> loss;
  dlb::DataSet<float> train(x, y, {.batch_size = 32, .drop_last = true});
  dlb::DataSet<float> test(x, y, {.batch_size = 64, .shuffle = false});
  const auto result = dlb::TrainModel(model, train, test, loss, optimizer, {.epochs = 5});
  const double first = result.history.front().train_loss, last = result.history.back().train_loss;
  std::printf("float MLP: train loss %.4f -> %.4f, accuracy %.3f\n", first, last,
              result.history.back().val_score);
  bool same_after_loading = true;
#ifdef DLB_TEST_SERIALIZATION
  const std::string path =
      (std::filesystem::temp_directory_path() / "dlb_compiled_program_mlp.safetensors").string();
  dlb::Save(model, path);
  dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(path);
  std::filesystem::remove(path);
  same_after_loading = loaded.Predict(x) == model.Forward(x);
  std::printf("float MLP saved and loaded: %s\n", same_after_loading ? "same logits" : "DIFFERENT logits");
#endif
  return last < first && same_after_loading;
}

bool TrainDoubleCnn() {
  // 2 x 4 x 4 images: class 1 has a brighter first channel.
  dlb::Generator gen(2);
  dlb::Matrix<double> x(32, 64);
  dlb::Labels y(64);
  for (dlb::Index j = 0; j < x.cols(); ++j) {
    y(j) = static_cast<dlb::Label>(j % 2);
    for (dlb::Index i = 0; i < x.rows(); ++i) {
      x(i, j) = dlb::SampleNormal<double>(gen) + (i < 16 && y(j) == 1 ? 1.5 : 0.0);
    }
  }
  dlb::ModelNN<double> model(dlb::Shape{2, 4, 4}, /*seed=*/2);
  model.Add(dlb::Conv2D<double>(dlb::Conv2DOptions(2, 4, 3).Padding(1)))
      .Add(dlb::BatchNorm2D<double>(4))
      .Add(dlb::ReLU<double>())
      .Add(dlb::MaxPool2D<double>(2))
      .Add(dlb::GlobalAvgPool<double>())
      .Add(dlb::Linear<double>(4, 2));
  dlb::Optimizer optimizer(model, dlb::SGD<double>(0.05));
  dlb::MseLoss<double> loss;
  dlb::DataSet<double> train(x, y, {.batch_size = 16, .drop_last = true});
  dlb::DataSet<double> test(x, y, {.batch_size = 64, .shuffle = false});
  const auto result = dlb::TrainModel(model, train, test, loss, optimizer, {.epochs = 5});
  const double first = result.history.front().train_loss, last = result.history.back().train_loss;
  std::printf("double CNN: train loss %.4f -> %.4f\n", first, last);
  const dlb::OnnxExport exported = dlb::ExportOnnxModel(model);
  std::printf("double CNN as ONNX: %zu bytes\n", exported.bytes.size());
  // The file primitives are non-template functions (dlb/core/linkage.hpp): with
  // dlb::compiled the program has their declarations only and links their definitions.
  const std::filesystem::path directory = std::filesystem::temp_directory_path();
  const std::string name = "dlb_compiled_program_cnn.onnx";
  const std::string path = (directory / name).string();
  dlb::WriteFileAtomically(path, exported.bytes);
  const bool same = dlb::SameFile(path, (directory / "." / name).string());
  const auto written = std::filesystem::file_size(path);
  std::filesystem::remove(path);
  std::printf("ONNX file written: %ju bytes, found again under another spelling: %s\n",
              static_cast<std::uintmax_t>(written), same ? "yes" : "no");
  return last < first && !exported.bytes.empty() && same && written == exported.bytes.size();
}

}  // namespace

int main() {
#ifdef DLB_COMPILED
  std::printf("built with dlb::compiled\n");
#else
  std::printf("built header-only\n");
#endif
  const bool mlp = TrainFloatMlp();
  const bool cnn = TrainDoubleCnn();
  return mlp && cnn ? 0 : 1;
}
