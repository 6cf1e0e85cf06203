// Data-parallel training epochs: the notebook's MLP on Fashion-MNIST, one process or `mpirun -np N ... --distributed` ranks, timed with the
// library's own TrainEpoch (training pass only: the validation pass is not sharded).
//
// Rank 0 prints one JSON line: the median epoch time over --epochs timed epochs after
// --warmup untimed ones, and with --distributed the bytes each rank allreduces per step and
// the mean wall time per step spent in the allreduce (waiting for the slower rank included).
// bench/mpi_scaling.py runs it in every configuration and computes the scaling.
//
//   dlb_bench_mpi [--data DIR] [--engine auto|eigen|blas] [--threads N] [--batch B]
//                 [--hidden 350,250,150,50] [--optimizer adam] [--epochs 3] [--warmup 1]
//                 [--distributed]

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <vector>

#include "../examples/common/distributed_flags.hpp"
#include "../examples/common/experiment.hpp"
#include "engine_flag.hpp"
#include "measure.hpp"


int main(int argc, char** argv) {
  experiment::Settings settings;
  settings.optimizer = "adam";
  settings.epochs = 3;
  settings.threads = 1;
  int warmup = 1;
  std::string engine_flag = "auto";
  CLI::App app("Time data-parallel training epochs of the notebook's MLP.", "dlb_bench_mpi");
  experiment::AddFlags(app, settings);
  experiment::Distributed distributed;
  distributed.AddFlags(app);
  app.add_option("--warmup", warmup, "Untimed epochs first")->check(CLI::Range(0, 1000));
  bench::AddEngineFlag(app, engine_flag);
  if (auto code = experiment::Parse(app, argc, argv)) return *code;

  try {
    distributed.Start(app, settings);
    dlb::SetNumThreads(settings.threads);
    bench::ApplyEngine(engine_flag);
    const dlb::FashionMnist<float> data = experiment::LoadData(settings.data);
    if (auto code = experiment::RejectOversizedBatch(settings, data, "dlb_bench_mpi")) return *code;
    dlb::ModelNN<float> model = experiment::MakeModel(settings, 784);
    dlb::Optimizer<float> optimizer =
        dlb::MakeOptimizer<float>(settings.optimizer, model.Parameters(), settings.lr);
    dlb::DataSet<float> train = experiment::MakeBatches(data, settings).train;
    distributed.Shard(train);
    dlb::CrossEntropyLoss<float> loss;
    dlb::DivergenceGuard<float> guard(optimizer.Parameters());

    const std::vector<dlb::Callback<float>*> callbacks = distributed.Callbacks();
    const std::vector<dlb::EpochStats> no_history;
    dlb::TrainingContext<float> context{model, optimizer, train, no_history};
    for (dlb::Callback<float>* callback : callbacks) callback->OnTrainBegin(context);
    std::vector<double> epoch_seconds;
    for (int epoch = 1; epoch <= warmup + settings.epochs; ++epoch) {
      const auto start = bench::Clock::now();
      context.epoch = epoch;
      dlb::TrainEpoch(context, loss, callbacks, &guard);
      if (epoch > warmup) epoch_seconds.push_back(bench::Seconds(start));
    }
    std::sort(epoch_seconds.begin(), epoch_seconds.end());  // front: the fastest epoch
    const double median = bench::Median(epoch_seconds);
    const experiment::AllreduceStats allreduce = distributed.Allreduce();

    std::printf("{\"model\":\"%s\",\"engine\":\"%s\",\"ranks\":%d,\"threads\":%d,\"batch\":%d,"
                "\"optimizer\":\"%s\",\"parameters\":%ld,\"epochs\":%d,"
                "\"epoch_seconds_median\":%.5f,\"epoch_seconds_min\":%.5f,"
                "\"steps_per_epoch\":%ld,\"bytes_per_step\":%ld,"
                "\"allreduce_seconds_per_step\":%.7f,\"final_train_loss\":%.5f%s}\n",
                experiment::Architecture(784, settings.hidden, experiment::kClasses).c_str(),
                bench::ActiveEngineName(), distributed.Ranks(),
                settings.threads, settings.batch, settings.optimizer.c_str(),
                static_cast<long>(model.NumParameters()), settings.epochs, median,
                epoch_seconds.front(), static_cast<long>(train.NumBatches()),
                static_cast<long>(allreduce.bytes_per_step),
                allreduce.steps > 0 ? allreduce.seconds / static_cast<double>(allreduce.steps) : 0.0,
                context.running.loss, bench::EngineJsonFields().c_str());
    return 0;
  } catch (const dlb::Error& e) {
    return distributed.Fail(std::string("dlb_bench_mpi: error: ") + e.what() + "\n", 1);
  }
}
