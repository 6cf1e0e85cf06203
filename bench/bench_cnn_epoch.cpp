// The convolutional network of `train_fashion_mnist --model cnn` (issue 7) as a benchmark:
// training epochs timed with the library's own TrainEpoch, or, with --products, only the
// matrix products of its training steps at the same shapes (the floor under the epoch time).
//
// Epoch mode reports the median epoch time over --epochs timed epochs after --warmup untimed
// ones, samples/s, achieved GFLOP/s (the step's products, counted from the layer shapes),
// inference throughput, test accuracy and peak RSS. --batches N times the first N batches of
// each epoch and scales the time to the whole epoch (reported as "batches_timed").
//
// Products mode runs, per step, exactly the dlb::Gemm calls the layers make, at their shapes and
// thread split (Conv2D, chunk by chunk of samples on each thread: Z = P W^T, dW += dZ^T P,
// dP = dZ W except in the first layer; Linear: Z = W X, dW = dZ X^T, dX = W^T dZ), into
// buffers sized by a warm-up epoch, over one epoch of steps, median of --repeats epochs.
//
//   dlb_bench_cnn_epoch [--data DIR | --synthetic] [--engine auto|eigen|blas] [--threads N]
//                       [--batch B] [--epochs 2] [--warmup 1] [--batches N] [--products]
//                       [--repeats 3] [--json]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../examples/common/cnn_model.hpp"
#include "../examples/common/experiment.hpp"
#include "engine_flag.hpp"
#include "measure.hpp"

namespace {

using Mat = dlb::Matrix<float>;
using bench::Clock;
using bench::Median;
using bench::PeakRssMegabytes;
using bench::Seconds;

// The products of one training step of the CNN, as the layers run them: each convolution's
// chunks of samples split over the threads (dlb::ForEachSampleChunk, chunk size from
// dlb::PatchChunkSamples, as Conv2D), the Linear layers' products through dlb::Gemm on the
// whole batch. Operands hold random values; every output has its own buffer.
class StepProducts {
 public:
  explicit StepProducts(dlb::Index batch) : batch_(batch) {
    const int parts = dlb::NumThreads();
    for (const auto& [positions, in, out, first] :
         {std::tuple<dlb::Index, dlb::Index, dlb::Index, bool>{28 * 28, 9, 32, true},
          {14 * 14, 32 * 9, 64, false}}) {
      Conv conv{positions, out, first,
                dlb::PatchChunkSamples(positions, in, out, static_cast<dlb::Index>(sizeof(float))),
                Mat::Random(out, in), {}};
      for (int part = 0; part < parts; ++part) {
        ConvPart buffers;
        buffers.patches = Mat::Random(conv.chunk * positions, in);
        buffers.dz = Mat::Random(conv.chunk * positions, out);
        conv.parts.push_back(std::move(buffers));
      }
      convs_.push_back(std::move(conv));
    }
    for (const auto& [in, out] : {std::pair<dlb::Index, dlb::Index>{3136, 128}, {128, 10}}) {
      linears_.push_back({Mat::Random(in, batch), Mat::Random(out, in), Mat::Random(out, batch),
                          Mat(), Mat(), Mat()});
    }
  }

  void Step() {
    using dlb::Gemm;
    using dlb::Op;
    for (Conv& c : convs_) {
      EachChunk(c, [&](ConvPart& p, dlb::Index rows, int which) {  // Z = P W^T
        Gemm<float>(Op::None, p.patches.topRows(rows), Op::Transpose, c.weight, p.z[which]);
      });
    }
    for (Linear& l : linears_) Gemm<float>(Op::None, l.weight, Op::None, l.x, l.z);
    for (auto l = linears_.rbegin(); l != linears_.rend(); ++l) {
      Gemm<float>(Op::None, l->dz, Op::Transpose, l->x, l->dweight);
      Gemm<float>(Op::Transpose, l->weight, Op::None, l->dz, l->dx);
    }
    for (auto c = convs_.rbegin(); c != convs_.rend(); ++c) {
      EachChunk(*c, [&](ConvPart& p, dlb::Index rows, int which) {
        Gemm<float>(Op::Transpose, p.dz.topRows(rows), Op::None, p.patches.topRows(rows),
                    p.dweight, p.started ? 1.0f : 0.0f);  // dW (+)= dZ^T P
        p.started = true;
        if (!c->first) {  // dP = dZ W
          Gemm<float>(Op::None, p.dz.topRows(rows), Op::None, c->weight, p.dpatches[which]);
        }
      });
    }
  }

 private:
  struct ConvPart {
    Mat patches, dz;  // a full chunk's operands
    Mat z[2], dpatches[2];  // outputs of full chunks [0] and of the last, shorter one [1]
    Mat dweight;
    bool started = false;
  };
  struct Conv {
    dlb::Index positions, out;
    bool first;
    dlb::Index chunk;
    Mat weight;
    std::vector<ConvPart> parts;
  };
  struct Linear {
    Mat x, weight, dz, z, dweight, dx;
  };

  // f(part buffers, rows of the chunk, 0 for a full chunk or 1 for a shorter one) per chunk.
  template <class F>
  void EachChunk(Conv& c, F&& f) {
    for (ConvPart& p : c.parts) p.started = false;
    const dlb::Index cost = 2 * c.positions * c.weight.cols() * c.out;
    dlb::ForEachSampleChunk(batch_, c.chunk, cost, [&](int part, dlb::Index, dlb::Index count) {
      f(c.parts[static_cast<std::size_t>(part)], count * c.positions, count == c.chunk ? 0 : 1);
    });
  }

  dlb::Index batch_;
  std::vector<Conv> convs_;
  std::vector<Linear> linears_;
};

}  // namespace

int main(int argc, char** argv) {
  experiment::Settings settings;
  settings.optimizer = cnn::kOptimizer;
  settings.batch = cnn::kBatch;
  settings.epochs = 2;
  settings.threads = 1;
  int warmup = 1, repeats = 3;
  dlb::Index batches = 0;
  bool synthetic = false, json = false, products = false;
  std::string engine_flag = "auto";
  CLI::App app("Time training epochs of the Fashion-MNIST convnet (train_fashion_mnist --model cnn).",
               "dlb_bench_cnn_epoch");
  experiment::AddFlags(app, settings);
  app.add_option("--warmup", warmup, "Untimed epochs first")->check(CLI::Range(0, 1000));
  app.add_option("--batches", batches, "Time only the first N batches of each epoch (0: all)")
      ->check(CLI::Range(0, 1 << 30));
  app.add_flag("--products", products, "Time only the matrix products of the training steps");
  app.add_option("--repeats", repeats, "Timed epochs of --products (the median is reported)")
      ->check(CLI::Range(1, 1000));
  app.add_flag("--synthetic", synthetic, "Random data of Fashion-MNIST's shapes");
  app.add_flag("--json", json, "Print one JSON line");
  bench::AddEngineFlag(app, engine_flag);
  if (auto code = experiment::Parse(app, argc, argv)) return *code;

  try {
    bench::ApplyEngine(engine_flag);
    const char* engine = bench::ActiveEngineName();
    dlb::SetNumThreads(settings.threads);
    const dlb::Index steps_per_epoch = 60000 / settings.batch;
    const double gflop_per_epoch =
        cnn::TrainingStepFlops(settings.batch) * static_cast<double>(steps_per_epoch) * 1e-9;

    if (products) {
      StepProducts step(settings.batch);
      auto epoch = [&] {
        const auto start = Clock::now();
        for (dlb::Index s = 0; s < steps_per_epoch; ++s) step.Step();
        return Seconds(start);
      };
      epoch();  // warm-up
      std::vector<double> seconds;
      for (int r = 0; r < repeats; ++r) seconds.push_back(epoch());
      const double median = Median(seconds);
      if (json) {
        std::printf("{\"engine\":\"%s\",\"threads\":%d,\"batch\":%d,\"repeats\":%d,"
                    "\"seconds_per_epoch\":%.5f,\"gflops\":%.2f,\"gflop_per_epoch\":%.2f%s}\n",
                    engine, settings.threads, settings.batch, repeats, median,
                    gflop_per_epoch / median, gflop_per_epoch, bench::EngineJsonFields().c_str());
      } else {
        std::printf("bench_cnn_epoch --products engine=%s threads=%d batch=%d: %.4f s/epoch "
                    "(median of %d), %.1f GFLOP/s, %.1f GFLOP/epoch\n",
                    engine, settings.threads, settings.batch, median, repeats,
                    gflop_per_epoch / median, gflop_per_epoch);
      }
      return 0;
    }

    const dlb::FashionMnist<float> data =
        synthetic ? bench::SyntheticFashionMnist(settings.seed) : experiment::LoadData(settings.data);
    if (auto code = experiment::RejectOversizedBatch(settings, data, "dlb_bench_cnn_epoch")) {
      return *code;
    }
    dlb::ModelNN<float> model = cnn::MakeModel(settings.seed);
    dlb::Optimizer<float> optimizer =
        dlb::MakeOptimizer<float>(settings.optimizer, model.Parameters(), settings.lr);
    dlb::DataSet<float> train = experiment::MakeBatches(data, settings).train;
    const dlb::Index test_batch = std::min<dlb::Index>(settings.batch, data.test_images.cols());
    dlb::DataSet<float> test(data.test_images, data.test_labels,
                             {.batch_size = test_batch, .shuffle = false});
    dlb::CrossEntropyLoss<float> loss;
    dlb::DivergenceGuard<float> guard(optimizer.Parameters());
    const dlb::Index timed_batches =
        batches > 0 ? std::min(batches, train.NumBatches()) : train.NumBatches();
    dlb::LambdaCallback<float> limit;
    limit.on_batch_end = [&](dlb::TrainingContext<float>& context) {
      if (context.batch >= timed_batches) context.RequestStop("batch limit");
    };
    const std::vector<dlb::Callback<float>*> callbacks{&limit};

    std::vector<double> epoch_seconds;
    const std::vector<dlb::EpochStats> no_history;
    dlb::TrainingContext<float> context{model, optimizer, train, no_history};
    for (int epoch = 1; epoch <= warmup + settings.epochs; ++epoch) {
      const auto start = Clock::now();
      context.epoch = epoch;
      context.stop_reason.reset();
      dlb::TrainEpoch(context, loss, callbacks, &guard);
      const double scale = static_cast<double>(train.NumBatches()) / static_cast<double>(timed_batches);
      if (epoch > warmup) epoch_seconds.push_back(Seconds(start) * scale);
    }
    std::sort(epoch_seconds.begin(), epoch_seconds.end());  // front and back: min and max
    const double median = Median(epoch_seconds);

    const auto inference_start = Clock::now();
    const dlb::PassResult evaluation = dlb::Evaluate(model, test, loss);
    const double inference_seconds = Seconds(inference_start);

    const double samples = static_cast<double>(train.SamplesPerEpoch());
    if (json) {
      std::printf("{\"engine\":\"%s\",\"threads\":%d,\"batch\":%d,\"optimizer\":\"%s\","
                  "\"epochs\":%d,\"batches_timed\":%ld,\"batches_per_epoch\":%ld,"
                  "\"epoch_seconds_median\":%.5f,\"epoch_seconds_min\":%.5f,"
                  "\"epoch_seconds_max\":%.5f,\"samples_per_second\":%.1f,\"gflops\":%.2f,"
                  "\"gflop_per_epoch\":%.2f,\"inference_samples_per_second\":%.1f,"
                  "\"test_accuracy\":%.4f,\"peak_rss_mb\":%.1f,\"synthetic\":%s%s}\n",
                  engine, settings.threads, settings.batch, settings.optimizer.c_str(),
                  settings.epochs, static_cast<long>(timed_batches),
                  static_cast<long>(train.NumBatches()), median, epoch_seconds.front(),
                  epoch_seconds.back(), samples / median, gflop_per_epoch / median,
                  gflop_per_epoch, static_cast<double>(evaluation.samples) / inference_seconds,
                  evaluation.score, PeakRssMegabytes(), synthetic ? "true" : "false",
                  bench::EngineJsonFields().c_str());
    } else {
      std::printf("bench_cnn_epoch engine=%s (%s) threads=%d batch=%d optimizer=%s\n"
                  "  epoch %.3f s median of %d (min %.3f, max %.3f; %ld of %ld batches timed), "
                  "%.0f samples/s, %.1f GFLOP/s\n  inference %.0f samples/s, test accuracy "
                  "%.4f, peak RSS %.1f MB\n",
                  engine, experiment::ProductEngine().c_str(), settings.threads, settings.batch,
                  settings.optimizer.c_str(), median,
                  settings.epochs, epoch_seconds.front(), epoch_seconds.back(),
                  static_cast<long>(timed_batches), static_cast<long>(train.NumBatches()),
                  samples / median, gflop_per_epoch / median,
                  static_cast<double>(evaluation.samples) / inference_seconds, evaluation.score,
                  PeakRssMegabytes());
    }
    return 0;
  } catch (const dlb::Error& e) {
    std::cerr << "dlb_bench_cnn_epoch: error: " << e.what() << "\n";
    return 1;
  }
}
