#pragma once
// The notebook's experiment as the example programs and benchmarks share it: command-line
// flags, data preparation and the run summary. Only the library's public API is used.

#include <CLI/CLI.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <dlb/io.hpp>  // <dlb/dlb.hpp> and the data files
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

/// Reports a usage error on stderr: "<program>: error: <message>" and a one-line hint at the
/// help (not the help itself, which would scroll the error off a terminal). Returns 2, the
/// exit code of a usage error.
inline int UsageError(const CLI::App& app, const std::string& message) {
  std::cerr << app.get_name() << ": error: " << message << "\n"
            << "Run '" << app.get_name() << " --help' for the flags and their defaults.\n";
  return 2;
}

namespace internal {

/// Edit distance between a and b: insertions, deletions, substitutions and swaps of two
/// neighbouring characters each count 1 (optimal string alignment).
inline std::size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

/// Whether `text` is a number ("-1", "1e-3"): a value, never a flag.
inline bool IsNumber(const std::string& text) {
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size();
}

}  // namespace internal

/// The flag of `app` that `unknown` ("--epoch") most likely misspells ("--epochs"), or ""
/// when none is close: within an edit distance of a third of its length (at least 1, at
/// most 3), or the only flag that starts with it.
inline std::string SuggestFlag(const CLI::App& app, const std::string& unknown) {
  std::string best, only_prefix;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  int prefixes = 0;
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames()) {
      const std::string flag = "--" + name;
      const std::size_t distance = internal::EditDistance(unknown, flag);
      if (distance < best_distance) best_distance = distance, best = flag;
      if (unknown.size() > 2 && flag.compare(0, unknown.size(), unknown) == 0) {
        ++prefixes;
        only_prefix = flag;
      }
    }
  }
  const std::size_t allowed = std::clamp<std::size_t>(unknown.size() / 3, 1, 3);
  if (best_distance <= allowed) return best;
  return prefixes == 1 ? only_prefix : std::string();
}

/// The message for arguments CLI11 could not place (its ExtrasError lists them in reverse):
/// the first unknown flag in the order given, with a near-miss suggestion ("unknown flag
/// --epoch; did you mean --epochs?"), else the stray values in the order given.
inline std::string ExtrasMessage(const CLI::App& app, int argc, char** argv) {
  const std::vector<std::string> remaining = app.remaining();
  std::vector<std::string> stray;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.size() > 1 && arg[0] == '-' && !internal::IsNumber(arg)) {
      const std::string name = arg.substr(0, arg.find('='));
      if (app.get_option_no_throw(name) == nullptr) {
        const std::string suggestion = SuggestFlag(app, name);
        return "unknown flag " + name +
               (suggestion.empty() ? std::string() : "; did you mean " + suggestion + "?");
      }
    } else if (std::find(remaining.begin(), remaining.end(), arg) != remaining.end() &&
               std::find(stray.begin(), stray.end(), arg) == stray.end()) {
      stray.push_back(arg);
    }
  }
  std::string list;
  for (const std::string& arg : stray.empty() ? remaining : stray) {
    list += (list.empty() ? "'" : ", '") + arg + "'";
  }
  return "unexpected argument" + std::string(stray.size() > 1 ? "s " : " ") + list +
         " (each value belongs after its flag, e.g. --epochs 5)";
}

/// Parses the command line. Returns an exit code when the program should stop now:
/// 0 after --help (the help on stdout), 2 for an invalid flag or value (UsageError: the
/// error, a suggestion for a misspelt flag, and a hint at --help on stderr).
inline std::optional<int> Parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ExtrasError&) {
    return UsageError(app, ExtrasMessage(app, argc, argv));
  } catch (const CLI::ParseError& e) {
    return UsageError(app, e.what());
  }
  return std::nullopt;
}

/// Fits `standardizer` on `train` images: per pixel for the MLP (the notebook's), per channel
/// for image models (`per_channel`), whose augmentation shifts and flips standardised images
/// (see Standardizer::FitPerChannel).
inline void FitStandardizer(dlb::Standardizer<float>& standardizer, const dlb::Matrix<float>& train,
                            bool per_channel) {
  if (per_channel) {
    standardizer.FitPerChannel(train, dlb::Shape(1, 28, 28));
  } else {
    standardizer.Fit(train);
  }
}

/// Fashion-MNIST scaled to [0, 1], then standardised with the training set's statistics (per
/// pixel, or per channel with `per_channel`; applied to both sets), which are copied to
/// *fitted when given.
inline dlb::FashionMnist<float> LoadData(const std::string& dir,
                                         dlb::Standardizer<float>* fitted = nullptr,
                                         bool per_channel = false) {
  dlb::FashionMnist<float> data = dlb::LoadFashionMnist<float>(dir);
  dlb::Standardizer<float> standardizer;
  FitStandardizer(standardizer, data.train_images, per_channel);
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
  return {dlb::DataSet<float>(data.train_images, data.train_labels,
                              {.batch_size = s.batch, .drop_last = true, .seed = s.seed}),
          dlb::DataSet<float>(data.test_images, data.test_labels,
                              {.batch_size = std::min<dlb::Index>(s.batch, data.test_images.cols()),
                               .shuffle = false})};
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
