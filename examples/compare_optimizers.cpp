// Trains the same initial network with SGD (0.2), Momentum (0.05, beta 0.9), Nesterov (0.05,
// beta 0.9) and Adam (1e-3), writes every epoch of every run to one CSV file and prints a
// summary table: the optimizers notebook's comparison.
//
//   compare_optimizers [--epochs N] [--batch N] [--hidden ...] [--seed S] [--threads N]
//                      [--data DIR] [--csv FILE] [--schedule ... --warmup-epochs N --patience N
//                      --val-split F (as in train_fashion_mnist)]
//
// The CSV has the history file's columns (dlb/training/history.hpp) after an optimizer column.

#include <cstdio>
#include <iostream>
#include <new>
#include <sstream>
#include <vector>

#include "common/control_flags.hpp"
#include "common/experiment.hpp"
#include "common/persistence_flags.hpp"

int main(int argc, char** argv) {
  experiment::Settings settings;
  std::string csv_path = "optimizers.csv";
  CLI::App app("Compare SGD, Momentum, Nesterov and Adam on Fashion-MNIST from one initial "
               "network.",
               "compare_optimizers");
  experiment::AddFlags(app, settings, /*with_optimizer=*/false);
  control::Settings control_settings;
  control::AddFlags(app, control_settings, /*with_history=*/false);
  app.add_option("--csv", csv_path, "Where the per-epoch histories are written")
      ->check(experiment::kOutputFile)
      ->capture_default_str();
  if (auto code = experiment::Parse(app, argc, argv)) return *code;
  if (auto code = control::Check(app, control_settings, settings)) return *code;
  // The parser validates only a --csv that was given; the default is checked here, as early.
  if (const std::string problem = experiment::kOutputFile(csv_path); !problem.empty()) {
    std::cerr << "compare_optimizers: error: --csv: " << problem << "\n";
    return 2;
  }
  std::vector<persistence::FileUse> files = persistence::DataFiles(settings.data);
  files.push_back({"--csv", csv_path, true});
  if (auto code = persistence::CheckDistinctFiles(app, files)) return *code;

  try {
    dlb::SetNumThreads(settings.threads);
    const control::RunData run = control::LoadRunData(settings, control_settings);
    const dlb::FashionMnist<float>& data = run.data;
    std::cout << control::ValidationLine(run, control_settings) << "\n";
    if (auto code = experiment::RejectOversizedBatch(settings, data, "compare_optimizers")) {
      return *code;
    }

    // Collected here and written at the end by dlb::WriteFileAtomically, so a failed run never
    // leaves a truncated file in place of an earlier good one (--csv was checked up front).
    std::ostringstream csv;
    csv << "optimizer," << dlb::kHistoryCsvHeader << '\n';

    struct Summary {
      std::string name;
      float lr;
      dlb::EpochStats last;
      double test_score;
      double seconds_per_epoch;
    };
    std::vector<Summary> summaries;
    for (const char* name : {"sgd", "momentum", "nesterov", "adam"}) {
      // Same seed: every rule starts from the same weights and sees the same batch order.
      dlb::ModelNN<float> model = experiment::MakeModel(settings, data.train_images.rows());
      dlb::Optimizer<float> optimizer = dlb::MakeOptimizer<float>(name, model.Parameters());
      control::RunSets sets = control::MakeSets(run, settings);
      dlb::CrossEntropyLoss<float> loss;
      const float lr = optimizer.LearningRate();  // before a schedule moves it
      std::cout << "== " << optimizer.Name() << " lr " << lr << "\n";
      const control::RunCallbacks callbacks = control::MakeCallbacks(control_settings, settings.epochs);
      control::PrintControl(std::cout, callbacks, lr);
      const dlb::TrainResult result =
          dlb::TrainModel(model, sets.batches.train, sets.batches.validation, loss, optimizer,
                          {.epochs = settings.epochs, .log = &std::cout}, callbacks.List());
      const auto& history = result.history;
      const double test_score = control::PrintOutcome(std::cout, result, callbacks, model, sets, loss);
      double total = 0;
      for (const auto& e : history) {
        csv << name << ',' << dlb::HistoryCsvRow(e) << '\n';
        total += e.seconds;
      }
      summaries.push_back({optimizer.Name(), lr, history.back(), test_score,
                           total / static_cast<double>(history.size())});
    }
    dlb::WriteFileAtomically(csv_path, csv.str());

    std::printf("\n| Optimizer | lr     | Train Loss | Val Loss | Val Acc   | Test Acc | s/epoch |\n"
                "|-----------|--------|------------|----------|-----------|----------|---------|\n");
    for (const auto& s : summaries) {
      std::printf("| %-9s | %-6g | %10.3f | %8.3f | %9.4f | %8.4f | %7.3f |\n", s.name.c_str(),
                  s.lr, s.last.train_loss, s.last.val_loss, s.last.val_score, s.test_score,
                  s.seconds_per_epoch);
    }
    std::cout << "Histories written to " << csv_path << "\n";
    return 0;
  } catch (const std::bad_alloc&) {
    std::cerr << "compare_optimizers: error: out of memory (try smaller --hidden or --batch)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "compare_optimizers: error: " << dlb::EscapeForTerminal(e.what()) << "\n";
    return 1;
  }
}
