// Classifies Fashion-MNIST images with a model saved by `train_fashion_mnist --save FILE`
// (or a checkpoint, or any model file dlb::LoadModel reads): the test set of a data
// directory, or the images of an IDX file (raw or .gz). The model is rebuilt from the file
// alone and its saved standardization is applied to the pixels.
//
//   predict_fashion_mnist --model FILE [--data DIR | --images FILE [--labels FILE]]
//                         [--show N] [--threads N]
//
// Prints the accuracy, the confusion matrix and each class's accuracy when labels are
// known (always with --data), the number of predictions per class otherwise, and with
// --show N the first N predictions with their probabilities.
// Exit codes: 0 done, 1 a bad model or data file (one that does not load, holds more than
// Fashion-MNIST's limits, or makes the model give non-finite outputs) or too little memory,
// 2 invalid flags.
//
// The files may come from strangers: every text taken from them (metadata, names in error
// messages, file names) is printed through dlb::EscapeForTerminal, so none can start a line
// of its own or send the terminal a command, and every error ends in a message and exit
// code 1, never an abort.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <new>
#include <numeric>
#include <string>
#include <vector>

#include <dlb/serialization.hpp>  // LoadModel

#include "common/experiment.hpp"

namespace {

/// Fashion-MNIST's classes, by label.
constexpr std::array<const char*, 10> kClassNames = {
    "T-Shirt/Top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle Boot"};

struct Settings {
  std::string model;
  std::string data = "data/fashion-mnist";
  std::string images;
  std::string labels;
  int show = 0;
  int threads = 1;
};

/// The images to classify: pixels / 255 (as the trainer reads them), one image per column,
/// and their labels when known.
struct Images {
  dlb::Matrix<float> pixels;
  std::optional<dlb::Labels> labels;
  std::string source;
};

Images ReadImages(const Settings& s) {
  if (s.images.empty()) {
    dlb::FashionMnist<float> data = dlb::LoadFashionMnist<float>(s.data);
    return {std::move(data.test_images), std::move(data.test_labels), "the test set in " + s.data};
  }
  // Fashion-MNIST's limits: a small gzip file whose header declares a million images is
  // refused after its header instead of filling the memory.
  const dlb::IdxImages idx = dlb::ReadIdxImages(s.images, dlb::kFashionMnistLimits);
  if (idx.rows != 28 || idx.cols != 28) {
    throw dlb::FileError(s.images, 8, "expected 28 x 28 images (Fashion-MNIST), found " +
                                          std::to_string(idx.rows) + " x " + std::to_string(idx.cols));
  }
  Images images{dlb::Matrix<float>(), std::nullopt, s.images};
  dlb::AllocateOrThrow(static_cast<double>(idx.pixels.size()) * sizeof(float),
                       "the " + std::to_string(idx.count) + " images as a matrix",
                       [&] { images.pixels = dlb::ImagesToMatrix<float>(idx, 1.0f / 255.0f); });
  if (!s.labels.empty()) {
    const std::vector<std::uint8_t> raw = dlb::ReadIdxLabels(s.labels, dlb::kFashionMnistLimits);
    if (static_cast<dlb::Index>(raw.size()) != idx.count) {
      throw dlb::FileError(s.labels, 4, "expected " + std::to_string(idx.count) + " labels (one per image of " +
                                            s.images + "), found " + std::to_string(raw.size()));
    }
    dlb::Labels labels(idx.count);
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] > 9) {
        throw dlb::FileError(s.labels, 8 + i, "label " + std::to_string(i) + " is " +
                                                  std::to_string(raw[i]) + ", expected 0..9");
      }
      labels(static_cast<dlb::Index>(i)) = raw[i];
    }
    images.labels = std::move(labels);
  }
  return images;
}

/// The image's three most probable classes (dlb::TopK: softmax of its logits).
void PrintPrediction(dlb::Index image, const std::vector<dlb::ClassProbability>& top,
                     const std::optional<dlb::Labels>& labels) {
  const auto name = [](const dlb::ClassProbability& c) { return kClassNames[static_cast<std::size_t>(c.label)]; };
  std::printf("  image %5ld: %-11s %5.1f%%", static_cast<long>(image), name(top[0]), 100 * top[0].probability);
  if (labels) {
    const int truth = (*labels)(image);
    std::printf("  %-5s (true: %s)", truth == top[0].label ? "right" : "WRONG", kClassNames[truth]);
  }
  std::printf("  then %s %.1f%%, %s %.1f%%\n", name(top[1]), 100 * top[1].probability, name(top[2]),
              100 * top[2].probability);
}

void PrintConfusion(const std::vector<std::array<long, 10>>& confusion) {
  // Column headers: the names cut to 8 characters ("T-Shirt/", "Ankle Bo").
  std::printf("\nConfusion matrix (rows: true class, columns: predicted class)\n%13s", "");
  for (const char* name : kClassNames) std::printf(" %8.8s", name);
  std::printf("\n");
  for (std::size_t truth = 0; truth < 10; ++truth) {
    std::printf("  %-11s", kClassNames[truth]);
    for (long count : confusion[truth]) std::printf(" %8ld", count);
    std::printf("\n");
  }
  std::printf("\nAccuracy per class\n");
  for (std::size_t truth = 0; truth < 10; ++truth) {
    const long total = std::accumulate(confusion[truth].begin(), confusion[truth].end(), 0L);
    if (total == 0) {
      std::printf("  %-11s   -   (no images)\n", kClassNames[truth]);
    } else {
      std::printf("  %-11s %.4f (%ld of %ld)\n", kClassNames[truth],
                  static_cast<double>(confusion[truth][truth]) / static_cast<double>(total),
                  confusion[truth][truth], total);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  CLI::App app("Classify Fashion-MNIST images with a saved model (train_fashion_mnist --save).",
               "predict_fashion_mnist");
  app.add_option("--model", settings.model, "Model file (train_fashion_mnist --save or --checkpoint)")
      ->required()
      ->check(CLI::ExistingFile);
  auto* data = app.add_option("--data", settings.data,
                              "Directory with the Fashion-MNIST IDX files: classify its test set")
                   ->check(CLI::ExistingDirectory)
                   ->capture_default_str();
  auto* images = app.add_option("--images", settings.images,
                                "IDX file of 28 x 28 images (raw or .gz) to classify instead")
                     ->check(CLI::ExistingFile)
                     ->excludes(data);
  app.add_option("--labels", settings.labels, "IDX file of the --images' labels (raw or .gz)")
      ->check(CLI::ExistingFile)
      ->needs(images);
  app.add_option("--show", settings.show, "Print the first N predictions with their probabilities")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  app.add_option("--threads", settings.threads, "Threads for the matrix products")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  if (auto code = experiment::Parse(app, argc, argv)) return *code;

  try {
    dlb::SetNumThreads(settings.threads);
    dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(settings.model);
    if (loaded.Model().InputSize() != 784 || loaded.Model().OutputSize() != experiment::kClasses) {
      throw dlb::FileError(settings.model, std::nullopt,
                           "the model maps " + loaded.Model().InputShape().ToString() + " inputs to " +
                               std::to_string(loaded.Model().OutputSize()) +
                               " outputs; Fashion-MNIST needs 784 (28 x 28 pixels) to 10 classes");
    }
    const Images input = ReadImages(settings);
    // Metadata is the file's text: escaped, and cut to a line's worth.
    constexpr std::size_t kShownBytes = 80;
    std::cout << "Model " << dlb::EscapeForTerminal(settings.model) << " ("
              << dlb::EscapeForTerminal(loaded.metadata["format"], kShownBytes) << ", DLBlocks "
              << dlb::EscapeForTerminal(loaded.metadata["library_version"], kShownBytes) << "), "
              << (loaded.standardizer ? "with its saved standardization of the pixels"
                                      : "no preprocessing saved: pixels in [0, 1] as they are")
              << "\n"
              << loaded.Model().Summary() << "Images: " << input.pixels.cols() << " from "
              << dlb::EscapeForTerminal(input.source) << "\n";

    const dlb::Index count = input.pixels.cols();
    const dlb::Index show = std::min<dlb::Index>(settings.show, count);
    std::vector<std::array<long, 10>> confusion(10, std::array<long, 10>{});
    std::array<long, 10> predicted_counts{};
    long correct = 0;
    if (show > 0) std::printf("\nFirst %ld prediction(s)\n", static_cast<long>(show));
    constexpr dlb::Index kChunk = 1000;
    for (dlb::Index first = 0; first < count; first += kChunk) {
      const dlb::Index n = std::min(kChunk, count - first);
      const dlb::Matrix<float> logits = loaded.Predict(input.pixels.middleCols(first, n));
      // NaN compares false with everything, so maxCoeff would pick a class anyway and the
      // accuracy would look like one: a model whose outputs are not finite is an error.
      if (!logits.allFinite()) {
        dlb::Index column = 0;
        while (logits.col(column).allFinite()) ++column;
        throw dlb::FileError(settings.model, std::nullopt,
                             "the model's outputs for image " + std::to_string(first + column) +
                                 " are not finite (NaN or infinity): its weights or saved "
                                 "standardization are not finite or overflow, so its "
                                 "predictions mean nothing");
      }
      const dlb::Labels classes = dlb::ArgMax(logits);
      for (dlb::Index j = 0; j < n; ++j) {
        const dlb::Label predicted = classes(j);
        ++predicted_counts[static_cast<std::size_t>(predicted)];
        if (input.labels) {
          const int truth = (*input.labels)(first + j);
          ++confusion[static_cast<std::size_t>(truth)][static_cast<std::size_t>(predicted)];
          correct += truth == predicted;
        }
        if (first + j < show) PrintPrediction(first + j, dlb::TopK(logits.col(j), 3), input.labels);
      }
    }

    if (input.labels) {
      std::printf("\nAccuracy: %.4f (%ld of %ld)\n", static_cast<double>(correct) / static_cast<double>(count),
                  correct, static_cast<long>(count));
      PrintConfusion(confusion);
    } else {
      std::printf("\nNo labels (--labels FILE gives them): predictions per class\n");
      for (std::size_t c = 0; c < 10; ++c) std::printf("  %-11s %ld\n", kClassNames[c], predicted_counts[c]);
    }
    return 0;
  } catch (const std::bad_alloc&) {
    std::cerr << "predict_fashion_mnist: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    // Library messages quote file content already; escaping again changes nothing there and
    // covers any other message.
    std::cerr << "predict_fashion_mnist: error: " << dlb::EscapeForTerminal(e.what()) << "\n";
    return 1;
  }
}
