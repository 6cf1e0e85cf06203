// Trains the same initial network with SGD (0.2), Momentum (0.05, beta 0.9), Nesterov (0.05,
// beta 0.9) and Adam (1e-3), writes every epoch of every run to one CSV file and prints a
// summary table: the optimizers notebook's comparison.
//
//   compare_optimizers [--epochs N] [--batch N] [--hidden ...] [--seed S] [--threads N]
//                      [--data DIR] [--csv FILE]

#include <cstdio>
#include <iostream>
#include <new>
#include <sstream>

#include "common/experiment.hpp"

int main(int argc, char** argv) {
  experiment::Settings settings;
  std::string csv_path = "optimizers.csv";
  CLI::App app("Compare SGD, Momentum, Nesterov and Adam on Fashion-MNIST from one initial "
               "network.",
               "compare_optimizers");
  experiment::AddFlags(app, settings, /*with_optimizer=*/false);
  app.add_option("--csv", csv_path, "Where the per-epoch histories are written")
      ->check(experiment::kOutputFile)
      ->capture_default_str();
  if (auto code = experiment::Parse(app, argc, argv)) return *code;
  // The parser validates only a --csv that was given; the default is checked here, as early.
  if (const std::string problem = experiment::kOutputFile(csv_path); !problem.empty()) {
    std::cerr << "compare_optimizers: error: --csv: " << problem << "\n";
    return 2;
  }

  try {
    dlb::SetNumThreads(settings.threads);
    const dlb::FashionMnist<float> data = experiment::LoadData(settings.data);
    if (auto code = experiment::RejectOversizedBatch(settings, data, "compare_optimizers")) {
      return *code;
    }

    // Collected here and written at the end by dlb::WriteFileAtomically, so a failed run never
    // leaves a truncated file in place of an earlier good one (--csv was checked up front).
    std::ostringstream csv;
    csv << "optimizer,lr,epoch,train_loss,val_loss,train_score,val_score,seconds\n";

    struct Summary {
      std::string name;
      float lr;
      dlb::EpochStats last;
      double total_seconds;
    };
    std::vector<Summary> summaries;
    for (const char* name : {"sgd", "momentum", "nesterov", "adam"}) {
      // Same seed: every rule starts from the same weights and sees the same batch order.
      dlb::ModelNN<float> model = experiment::MakeModel(settings, data.train_images.rows());
      dlb::Optimizer<float> optimizer = dlb::MakeOptimizer<float>(name, model.Parameters());
      experiment::Batches batches = experiment::MakeBatches(data, settings);
      dlb::CrossEntropyLoss<float> loss;
      std::cout << "== " << optimizer.Name() << " lr " << optimizer.LearningRate() << "\n";
      const auto history = dlb::TrainModel(model, batches.train, batches.validation, loss, optimizer,
                                           {.epochs = settings.epochs, .log = &std::cout})
                               .history;
      double total = 0;
      for (const auto& e : history) {
        csv << name << ',' << optimizer.LearningRate() << ',' << e.epoch << ',' << e.train_loss
            << ',' << e.val_loss << ',' << e.train_score << ',' << e.val_score << ','
            << e.seconds << '\n';
        total += e.seconds;
      }
      summaries.push_back({optimizer.Name(), optimizer.LearningRate(), history.back(), total});
    }
    dlb::WriteFileAtomically(csv_path, csv.str());

    std::printf("\n| Optimizer | lr     | Train Loss | Val Loss | Val Score | s/epoch |\n"
                "|-----------|--------|------------|----------|-----------|---------|\n");
    for (const auto& s : summaries) {
      std::printf("| %-9s | %-6g | %10.3f | %8.3f | %9.4f | %7.3f |\n", s.name.c_str(), s.lr,
                  s.last.train_loss, s.last.val_loss, s.last.val_score,
                  s.total_seconds / settings.epochs);
    }
    std::cout << "Histories written to " << csv_path << "\n";
    return 0;
  } catch (const std::bad_alloc&) {
    std::cerr << "compare_optimizers: error: out of memory (try smaller --hidden or --batch)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "compare_optimizers: error: " << e.what() << "\n";
    return 1;
  }
}
