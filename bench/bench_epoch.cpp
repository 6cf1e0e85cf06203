// The notebook's job as a benchmark: training epochs of the MLP on Fashion-MNIST (or
// synthetic data of the same shapes), timed with the library's own TrainEpoch.
//
// Reports the median epoch time over --epochs timed epochs after --warmup untimed ones,
// samples/s, achieved GFLOP/s (the step's matrix products, counted from the layer shapes),
// inference throughput on the test images, test accuracy and peak RSS.
//
//   dlb_bench_epoch [--data DIR | --synthetic] [--engine auto|eigen|blas] [--threads N]
//                   [--batch B] [--hidden 350,250,150,50] [--optimizer adam] [--epochs 5]
//                   [--warmup 1] [--json]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "../examples/common/experiment.hpp"
#include "engine_flag.hpp"
#include "measure.hpp"

using bench::Clock;
using bench::PeakRssMegabytes;
using bench::Seconds;

int main(int argc, char** argv) {
  experiment::Settings settings;
  settings.optimizer = "adam";
  settings.epochs = 5;
  settings.threads = 1;
  int warmup = 1;
  bool synthetic = false, json = false, no_guard = false;
  std::string engine_flag = "auto";
  CLI::App app("Time training epochs of the notebook's MLP.", "dlb_bench_epoch");
  experiment::AddFlags(app, settings);
  app.add_option("--warmup", warmup, "Untimed epochs first")->check(CLI::Range(0, 1000));
  app.add_flag("--synthetic", synthetic, "Random data of Fashion-MNIST's shapes");
  app.add_flag("--json", json, "Print one JSON line");
  app.add_flag("--no-guard", no_guard,
               "Skip the divergence guard (finite checks and parameter snapshot) to measure it");
  bench::AddEngineFlag(app, engine_flag);
  if (auto code = experiment::Parse(app, argc, argv)) return *code;

  try {
    bench::ApplyEngine(engine_flag);
    dlb::SetNumThreads(settings.threads);
    const dlb::FashionMnist<float> data =
        synthetic ? bench::SyntheticFashionMnist(settings.seed) : experiment::LoadData(settings.data);
    if (auto code = experiment::RejectOversizedBatch(settings, data, "dlb_bench_epoch")) {
      return *code;
    }
    using experiment::kClasses;
    dlb::ModelNN<float> model = experiment::MakeModel(settings, 784);
    dlb::Optimizer<float> optimizer =
        dlb::MakeOptimizer<float>(settings.optimizer, model.Parameters(), settings.lr);
    dlb::DataSet<float> train = experiment::MakeBatches(data, settings).train;
    dlb::DataSet<float> test(data.test_images, data.test_labels,
                             {.batch_size = std::min<dlb::Index>(1000, data.test_images.cols()),
                              .shuffle = false});
    dlb::CrossEntropyLoss<float> loss;
    dlb::DivergenceGuard<float> guard(optimizer.Parameters());

    std::vector<double> epoch_seconds;
    const std::vector<dlb::EpochStats> no_history;
    dlb::TrainingContext<float> context{model, optimizer, train, no_history};
    for (int epoch = 1; epoch <= warmup + settings.epochs; ++epoch) {
      const auto start = Clock::now();
      context.epoch = epoch;
      dlb::TrainEpoch(context, loss, {}, no_guard ? nullptr : &guard);
      if (epoch > warmup) epoch_seconds.push_back(Seconds(start));
    }
    std::sort(epoch_seconds.begin(), epoch_seconds.end());  // front and back: min and max
    const double median = bench::Median(epoch_seconds);

    const auto inference_start = Clock::now();
    const dlb::PassResult evaluation = dlb::Evaluate(model, test, loss);
    const double inference_seconds = Seconds(inference_start);

    const double samples = static_cast<double>(train.SamplesPerEpoch());
    const double gflop = experiment::TrainingStepFlops(784, settings.hidden, kClasses,
                                                       settings.batch) *
                         static_cast<double>(train.NumBatches()) * 1e-9;
    const char* engine = bench::ActiveEngineName();
    if (json) {
      std::printf("{\"engine\":\"%s\",\"threads\":%d,\"batch\":%d,\"hidden\":[", engine,
                  settings.threads, settings.batch);
      for (std::size_t i = 0; i < settings.hidden.size(); ++i) {
        std::printf("%s%ld", i ? "," : "", static_cast<long>(settings.hidden[i]));
      }
      std::printf("],\"optimizer\":\"%s\",\"epochs\":%d,\"epoch_seconds_median\":%.5f,"
                  "\"epoch_seconds_min\":%.5f,\"epoch_seconds_max\":%.5f,"
                  "\"samples_per_second\":%.1f,\"gflops\":%.2f,"
                  "\"inference_samples_per_second\":%.1f,\"test_accuracy\":%.4f,"
                  "\"peak_rss_mb\":%.1f,\"synthetic\":%s,\"guard\":%s%s}\n",
                  settings.optimizer.c_str(), settings.epochs, median, epoch_seconds.front(),
                  epoch_seconds.back(), samples / median, gflop / median,
                  static_cast<double>(evaluation.samples) / inference_seconds, evaluation.score,
                  PeakRssMegabytes(), synthetic ? "true" : "false", no_guard ? "false" : "true",
                  bench::EngineJsonFields().c_str());
    } else {
      std::printf("bench_epoch engine=%s (%s) threads=%d batch=%d model=%s optimizer=%s\n"
                  "  epoch %.4f s median of %d (min %.4f, max %.4f), %.0f samples/s, "
                  "%.1f GFLOP/s\n  inference %.0f samples/s, test accuracy %.4f, "
                  "peak RSS %.1f MB\n",
                  engine, experiment::ProductEngine().c_str(), settings.threads, settings.batch,
                  experiment::Architecture(784, settings.hidden, kClasses).c_str(),
                  settings.optimizer.c_str(), median, settings.epochs, epoch_seconds.front(),
                  epoch_seconds.back(), samples / median, gflop / median,
                  static_cast<double>(evaluation.samples) / inference_seconds, evaluation.score,
                  PeakRssMegabytes());
    }
    return 0;
  } catch (const dlb::Error& e) {
    std::cerr << "dlb_bench_epoch: error: " << e.what() << "\n";
    return 1;
  }
}
