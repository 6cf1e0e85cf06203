#pragma once
// The notebook's experiment as the example programs and benchmarks share it: command-line
// flags, data preparation and the run summary. Only the library's public API is used.

#include <CLI/CLI.hpp>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <dlb/dlb.hpp>
#include <dlb/io/atomic_file.hpp>
#include <dlb/model/mlp.hpp>
#include <dlb/optimizers/make_optimizer.hpp>

namespace experiment {

/// Settings of one training run; defaults are the notebook's.
struct Settings {
  std::string model = "mlp";  // train_fashion_mnist --model: mlp or cnn (common/cnn_model.hpp)
  std::string optimizer = "sgd";
  std::optional<float> lr;  // empty: dlb::DefaultLearningRate(optimizer)
  int epochs = 10;
  int batch = 256;
  std::vector<dlb::Index> hidden = {350, 250, 150, 50};
  std::uint64_t seed = 0;
  int threads = dlb::NumThreads();  // the library's default: the CPUs this process may use
  std::string data = "data/fashion-mnist";
};

/// "350,250,150,50" -> {350, 250, 150, 50}; empty for anything else (an empty item, a width
/// < 1 or > 2^24, a sign or other characters). An empty text means no hidden layer.
inline std::optional<std::vector<dlb::Index>> ParseWidths(const std::string& text) {
  std::vector<dlb::Index> widths;
  if (text.empty()) return widths;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    if (item.empty() || item.size() > 8 ||
        item.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    const long width = std::stol(item);
    if (width < 1 || width > (1L << 24)) return std::nullopt;
    widths.push_back(width);
    if (end == text.size()) return widths;
    start = end + 1;
  }
}

/// A number > 0 that stays finite and > 0 as a float (1e-50 would become 0, 1e39 inf).
inline const CLI::Validator kPositiveFloat(
    [](std::string& text) {
      try {
        std::size_t used = 0;
        const double value = std::stod(text, &used);
        const auto as_float = static_cast<float>(value);
        if (used == text.size() && std::isfinite(as_float) && as_float > 0) return std::string();
      } catch (const std::exception&) {
      }
      return "expected a finite number > 0 that a float can hold (about 1.4e-45 to 3.4e38), got '" +
             text + "'";
    },
    "NUMBER>0", "positive float");

/// An existing directory, or a message saying what the path is instead: missing, a loop of
/// symbolic links ("Too many levels of symbolic links"), not searchable, not a directory.
inline const CLI::Validator kDataDirectory(
    [](std::string& path) {
      struct stat status {};
      if (::stat(path.c_str(), &status) != 0) {
        const int error = errno;
        if (error == ENOENT) return "Directory does not exist: " + path;
        return path + ": " + std::generic_category().message(error);
      }
      return S_ISDIR(status.st_mode) ? std::string() : "not a directory: " + path;
    },
    "DIR", "data directory");

/// A path an output file can be written to now (see dlb::CheckOutputPath): checked when the
/// flags are parsed, before any training, so a bad path costs no work.
inline const CLI::Validator kOutputFile(
    [](std::string& path) {
      try {
        dlb::CheckOutputPath(path);
        return std::string();
      } catch (const dlb::FileError& error) {
        return std::string(error.what());
      }
    },
    "FILE", "output file");

/// Registers the flags shared by the example trainer and the benchmarks.
inline void AddFlags(CLI::App& app, Settings& s, bool with_optimizer = true) {
  if (with_optimizer) {
    std::vector<std::string> names(dlb::kOptimizerNames.begin(), dlb::kOptimizerNames.end());
    app.add_option("--optimizer", s.optimizer, "Update rule")
        ->check(CLI::IsMember(names))
        ->capture_default_str();
    app.add_option("--lr", s.lr,
                   "Learning rate (default: sgd 0.2, momentum/nesterov 0.05, adam/adamw 1e-3)")
        ->check(kPositiveFloat);
  }
  app.add_option("--epochs", s.epochs, "Training epochs")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--batch", s.batch, "Mini-batch size")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--hidden", [&s](const std::string& text) { s.hidden = *ParseWidths(text); },
         "Hidden layer widths, comma separated (default 350,250,150,50)")
      ->check(CLI::Validator(
          [](std::string& text) {
            return ParseWidths(text) ? std::string()
                                     : "expected comma-separated widths >= 1 such as "
                                       "350,250,150,50, got '" + text + "'";
          },
          "W1,W2,...", "widths"));
  // Without the check, "-1" would be taken as 2^64 - 1 for the unsigned seed.
  app.add_option("--seed", s.seed, "Seed of the initial weights and of the shuffling")
      ->check(CLI::Validator(
          [](std::string& text) {
            return !text.empty() && text.size() <= 19 &&
                           text.find_first_not_of("0123456789") == std::string::npos
                       ? std::string()
                       : "expected a whole number from 0 to 9999999999999999999, got '" + text +
                             "'";
          },
          "UINT", "seed"))
      ->capture_default_str();
  app.add_option("--threads", s.threads, "Threads for the matrix products")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--data", s.data,
                 "Directory with the Fashion-MNIST IDX files (data/fetch_fashion_mnist.sh)")
      ->check(kDataDirectory)
      ->capture_default_str();
}

/// Parses the command line. Returns an exit code when the program should stop now:
/// 0 after --help, 2 (with the error and the usage) for an invalid flag or value.
inline std::optional<int> Parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": error: " << e.what() << "\n\n" << app.help();
    return 2;
  }
  return std::nullopt;
}

/// Fashion-MNIST scaled to [0, 1], then standardised per pixel with the training set's
/// statistics (applied to both sets), which are copied to *fitted when given.
inline dlb::FashionMnist<float> LoadData(const std::string& dir,
                                         dlb::Standardizer<float>* fitted = nullptr) {
  dlb::FashionMnist<float> data = dlb::LoadFashionMnist<float>(dir);
  dlb::Standardizer<float> standardizer;
  standardizer.Fit(data.train_images);
  standardizer.Transform(data.train_images);
  standardizer.Transform(data.test_images);
  if (fitted != nullptr) *fitted = standardizer;
  return data;
}

/// Fashion-MNIST's classes.
inline constexpr dlb::Index kClasses = 10;

/// The notebook's network for these settings: inputs-hidden...-10, ReLU, Kaiming init, seeded.
inline dlb::ModelNN<float> MakeModel(const Settings& s, dlb::Index inputs) {
  return dlb::MakeMlp<float>(inputs, s.hidden, kClasses, dlb::Activation::ReLU,
                             dlb::Init::Kaiming, s.seed);
}

/// An error message and exit code 2 when --batch exceeds the training set; nothing otherwise.
inline std::optional<int> RejectOversizedBatch(const Settings& s,
                                               const dlb::FashionMnist<float>& data,
                                               const char* program) {
  if (s.batch <= data.train_images.cols()) return std::nullopt;
  std::cerr << program << ": error: --batch " << s.batch << " is larger than the training set ("
            << data.train_images.cols() << " images)\n";
  return 2;
}

/// The notebook's batches: training batches reshuffled every epoch with the last partial
/// batch dropped, and validation batches over the test images in order, all of them.
struct Batches {
  dlb::DataSet<float> train;
  dlb::DataSet<float> validation;
};
inline Batches MakeBatches(const dlb::FashionMnist<float>& data, const Settings& s) {
  return {dlb::DataSet<float>(data.train_images, data.train_labels, s.batch, /*shuffle=*/true,
                              /*drop_last=*/true, s.seed),
          dlb::DataSet<float>(data.test_images, data.test_labels,
                              std::min<dlb::Index>(s.batch, data.test_images.cols()),
                              /*shuffle=*/false, /*drop_last=*/false)};
}

/// "784-350-250-150-50-10".
inline std::string Architecture(dlb::Index inputs, const std::vector<dlb::Index>& hidden,
                                dlb::Index classes) {
  std::ostringstream out;
  out << inputs;
  for (dlb::Index h : hidden) out << '-' << h;
  out << '-' << classes;
  return out.str();
}

/// FLOPs of the matrix products of one training step of an MLP with these widths and batch
/// size: per Linear layer (in -> out) 2*out*in*batch for Z = W X and as much for dW = dZ X^T,
/// and as much again for dX = W^T dZ except in the first layer, whose dX is not computed.
/// The notebook's network has 14 such products.
inline double TrainingStepFlops(dlb::Index inputs, const std::vector<dlb::Index>& hidden,
                                dlb::Index classes, dlb::Index batch) {
  double flops = 0;
  dlb::Index width = inputs;
  for (std::size_t i = 0; i <= hidden.size(); ++i) {
    const dlb::Index next = i < hidden.size() ? hidden[i] : classes;
    const double per_product = 2.0 * static_cast<double>(next * width * batch);
    flops += (i == 0 ? 2.0 : 3.0) * per_product;
    width = next;
  }
  return flops;
}

/// Which engine and kernels run the matrix products in this process, e.g. "OpenBLAS 0.3.21
/// (Haswell kernels)" (dlb::GemmEngineDescription).
inline std::string ProductEngine() { return dlb::GemmEngineDescription(); }

}  // namespace experiment
