// A convolutional network of `train_fashion_mnist` as a benchmark: --model cnn (issue 7's
// convnet, the default) or resnet (dlb::MakeResNet, issue 16), trained with its recipe's
// optimizer (AdamW 2e-3 with weight decay 0.05; Nesterov 0.1 with weight decay 5e-4) unless
// --optimizer is given.
// Training epochs are timed with the library's own TrainEpoch, or, with --products, only the
// matrix products of its training steps at the same shapes (the floor under the epoch time).
//
// Epoch mode reports the median epoch time over --epochs timed epochs after --warmup untimed
// ones, samples/s, achieved GFLOP/s (the step's products, counted from the layer shapes),
// inference throughput, test accuracy and peak RSS. --batches N times the first N batches of
// each epoch and scales the time to the whole epoch (reported as "batches_timed").
//
// Products mode runs, per step, exactly the dlb::Gemm calls the layers make, found by walking
// the model, at their shapes and thread split (Conv2D, chunk by chunk of samples on each
// thread: Z = P W^T, dW += dZ^T P, dP = dZ W except in the first layer, or per sample as
// Conv2D::ProductPlan says (per_sample, transposed_input_gradient, or implicit_patches: per
// sample with the transposed convolution); Linear: Z = W X,
// dW = dZ X^T, dX = W^T dZ), into buffers sized by a warm-up epoch, over one epoch of steps,
// median of --repeats epochs.
//
//   dlb_bench_cnn_epoch [--model cnn|resnet] [--data DIR | --synthetic] [--engine auto|eigen|blas]
//                       [--threads N] [--batch B] [--epochs 2] [--warmup 1] [--batches N]
//                       [--products] [--repeats 3] [--json] [--layer-times]

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
#include "../examples/common/recipes.hpp"
#include "engine_flag.hpp"
#include "measure.hpp"

namespace {

using Mat = dlb::Matrix<float>;
using bench::Clock;
using bench::Median;
using bench::PeakRssMegabytes;
using bench::Seconds;

// The products of one training step of `model`, as its layers run them, found by walking the
// model (blocks included): each Conv2D's chunks of samples split over the threads
// (dlb::ForEachSampleChunk with the layer's own SamplesPerChunk), each Linear's products on
// the whole batch, all through dlb::Gemm. The model's first layer computes no input gradient
// (ModelNN::Backward asks none of it). Operands hold random values; every output has its own
// buffer. Flops() counts 2 m n k over these products: the benchmark's GFLOP/s of either model.
class StepProducts {
 public:
  StepProducts(dlb::ModelNN<float>& model, dlb::Index batch) : batch_(batch) {
    const int parts = dlb::NumThreads();
    bool first = true;
    model.VisitLayers([&](const std::string& path, dlb::internal::AnyLayer<float>& layer, int) {
      if (layer.Type() == typeid(dlb::Conv2D<float>)) {
        const auto& conv = model.LayerAt<dlb::Conv2D<float>>(path);
        const dlb::Shape out = conv.OutputShape(conv.InputShape());
        const dlb::Shape in = conv.InputShape();
        const dlb::Index taps = conv.Window().kernel.height * conv.Window().kernel.width;
        // On implicit patches the layer multiplies sample by sample and takes dX by the
        // transposed convolution: the same products as those two paths. With stride 2 it
        // takes dX phase by phase (a quarter of the positions each, with the taps that read
        // the phase): together one product of the phases' positions by all taps.
        const dlb::Conv2D<float>::Plan& plan = conv.ProductPlan();
        const bool implicit = plan.implicit_patches && dlb::ImplicitPatchesEnabled();
        const dlb::Size2D stride = conv.Window().stride;
        const dlb::Index dx_positions =
            implicit ? (in.height / stride.height) * (in.width / stride.width)
                     : in.height * in.width;
        Conv c{out.height * out.width, conv.OutChannels(), first, plan.per_sample || implicit,
               plan.transposed_input_gradient || implicit, conv.SamplesPerChunk(),
               Mat::Random(conv.OutChannels(), conv.Weight().cols()),
               Mat::Random(conv.OutChannels() * taps, in.channels), dx_positions, {}};
        for (int part = 0; part < parts; ++part) {
          ConvPart buffers;
          buffers.patches = Mat::Random(c.chunk * c.positions, c.weight.cols());
          buffers.dz = Mat::Random(c.chunk * c.positions, c.out);
          buffers.sample_out.resize(c.positions, c.out);
          buffers.sample_grad = Mat::Random(c.positions, c.out);
          if (c.transposed) {
            buffers.grad_patches = Mat::Random(c.in_positions, c.flipped.rows());
            buffers.sample_dx.resize(c.in_positions, c.flipped.cols());
          }
          buffers.dweight.resize(c.out, c.weight.cols());
          c.parts.push_back(std::move(buffers));
        }
        convs_.push_back(std::move(c));
      } else if (layer.Type() == typeid(dlb::Linear<float>)) {
        const auto& linear = model.LayerAt<dlb::Linear<float>>(path);
        const dlb::Index in = linear.Weight().cols(), out = linear.Weight().rows();
        linears_.push_back({Mat::Random(in, batch), Mat::Random(out, in), Mat::Random(out, batch),
                            Mat(), Mat(), Mat(), first});
      }
      // A block is visited before its children and computes nothing itself.
      if (layer.Children().empty()) first = false;
    });
  }

  void Step() {
    using dlb::Gemm;
    using dlb::Op;
    using dlb::GemmInto;
    for (Conv& c : convs_) {
      EachChunk(c, [&](ConvPart& p, dlb::Index rows, int which) {  // Z = P W^T
        if (c.per_sample) {  // Y_b = P_b W^T into the sample's column
          for (dlb::Index r = 0; r < rows; r += c.positions) {
            GemmInto<float>(Op::None, p.patches.middleRows(r, c.positions), Op::Transpose,
                            c.weight, p.sample_out, 0.0f, p.gemm);
          }
          return;
        }
        Gemm<float>(Op::None, p.patches.topRows(rows), Op::Transpose, c.weight, p.z[which], 0.0f,
                    p.gemm);
      });
    }
    for (Linear& l : linears_) Gemm<float>(Op::None, l.weight, Op::None, l.x, l.z);
    for (auto l = linears_.rbegin(); l != linears_.rend(); ++l) {
      Gemm<float>(Op::None, l->dz, Op::Transpose, l->x, l->dweight);
      if (!l->first) Gemm<float>(Op::Transpose, l->weight, Op::None, l->dz, l->dx);
    }
    for (auto c = convs_.rbegin(); c != convs_.rend(); ++c) {
      EachChunk(*c, [&](ConvPart& p, dlb::Index rows, int which) {
        if (c->per_sample) {  // per sample b: dW (+)= dY_b^T P_b, dP_b = dY_b W over P_b
          for (dlb::Index r = 0; r < rows; r += c->positions) {
            auto patch_rows = p.patches.middleRows(r, c->positions);
            GemmInto<float>(Op::Transpose, p.sample_grad, Op::None, patch_rows, p.dweight,
                            p.started ? 1.0f : 0.0f, p.gemm);
            p.started = true;
            if (c->first) continue;
            if (c->transposed) {  // dX_b = P'_b W' (dY's patches, flipped kernels)
              GemmInto<float>(Op::None, p.grad_patches, Op::None, c->flipped, p.sample_dx, 0.0f,
                              p.gemm);
            } else {
              GemmInto<float>(Op::None, p.sample_grad, Op::None, c->weight, patch_rows, 0.0f,
                              p.gemm);
            }
          }
          return;
        }
        Gemm<float>(Op::Transpose, p.dz.topRows(rows), Op::None, p.patches.topRows(rows),
                    p.dweight, p.started ? 1.0f : 0.0f, p.gemm);  // dW (+)= dZ^T P
        p.started = true;
        if (!c->first) {  // dP = dZ W
          Gemm<float>(Op::None, p.dz.topRows(rows), Op::None, c->weight, p.dpatches[which], 0.0f,
                      p.gemm);
        }
      });
    }
  }

  /// FLOPs of one Step(): 2 m n k per product.
  double Flops() const {
    const double b = static_cast<double>(batch_);
    double flops = 0;
    for (const Conv& c : convs_) {
      const double product = 2.0 * b * static_cast<double>(c.positions) *
                             static_cast<double>(c.weight.cols()) * static_cast<double>(c.out);
      flops += product * (c.first ? 2 : 3);
    }
    for (const Linear& l : linears_) {
      const double product = 2.0 * b * static_cast<double>(l.weight.size());
      flops += product * (l.first ? 2 : 3);
    }
    return flops;
  }

 private:
  struct ConvPart {
    Mat patches, dz;  // a full chunk's operands
    Mat z[2], dpatches[2];  // outputs of full chunks [0] and of the last, shorter one [1]
    Mat sample_out, sample_grad;  // one sample's Y_b and dY_b (Conv2D::Plan::per_sample)
    Mat grad_patches, sample_dx;  // its dY patches and dX_b (Plan::transposed_input_gradient)
    Mat dweight;
    dlb::GemmWorkspace<float> gemm;  // the part's packing buffers, as Conv2D keeps them
    bool started = false;
  };
  struct Conv {
    dlb::Index positions, out;
    bool first, per_sample, transposed;
    dlb::Index chunk;
    Mat weight, flipped;  // W, and W' for the transposed convolution
    dlb::Index in_positions;  // rows of dX's product: the input's positions, or one phase's
    std::vector<ConvPart> parts;
  };
  struct Linear {
    Mat x, weight, dz, z, dweight, dx;
    bool first;
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
  settings.model = "cnn";
  settings.optimizer = "";  // the model's recipe's unless given
  // The benchmark's batch, not the CNN recipe's (64): bench/pytorch_cnn_epoch.py trains both
  // networks with 128, as the ResNet's recipe does.
  settings.batch = 128;
  settings.epochs = 2;
  settings.threads = 1;
  int warmup = 1, repeats = 3;
  dlb::Index batches = 0;
  bool synthetic = false, json = false, products = false;
  std::string engine_flag = "auto";
  CLI::App app("Time training epochs of a Fashion-MNIST convnet (train_fashion_mnist --model cnn "
               "or resnet).",
               "dlb_bench_cnn_epoch");
  experiment::AddFlags(app, settings);
  app.add_option("--model", settings.model,
                 "cnn (train_fashion_mnist --model cnn) or resnet (dlb::MakeResNet); the "
                 "optimizer, rate and weight decay are its recipe's unless given")
      ->check(CLI::IsMember({"cnn", "resnet"}))
      ->capture_default_str();
  app.add_option("--warmup", warmup, "Untimed epochs first")->check(CLI::Range(0, 1000));
  app.add_option("--batches", batches, "Time only the first N batches of each epoch (0: all)")
      ->check(CLI::Range(0, 1 << 30));
  app.add_flag("--products", products, "Time only the matrix products of the training steps");
  app.add_option("--repeats", repeats, "Timed epochs of --products (the median is reported)")
      ->check(CLI::Range(1, 1000));
  app.add_flag("--synthetic", synthetic, "Random data of Fashion-MNIST's shapes");
  app.add_flag("--json", json, "Print one JSON line");
  bool layer_times = false;
  app.add_flag("--layer-times", layer_times,
               "Time each layer inside the timed epochs (ModelNN::SetLayerTiming) and print the "
               "table after the summary (on stderr with --json)");
  bench::AddEngineFlag(app, engine_flag);
  if (auto code = experiment::Parse(app, argc, argv)) return *code;

  try {
    bench::ApplyEngine(engine_flag);
    const char* engine = bench::ActiveEngineName();
    dlb::SetNumThreads(settings.threads);
    const dlb::Index steps_per_epoch = 60000 / settings.batch;
    dlb::ModelNN<float> model = recipes::MakeModel(settings, 28 * 28);
    const recipes::Recipe& recipe = recipes::Find(settings.model);
    std::optional<float> weight_decay;
    if (settings.optimizer.empty()) {  // the recipe's optimizer, with its rate and decay
      settings.optimizer = recipe.optimizer;
      if (app.count("--lr") == 0 && recipe.lr) settings.lr = *recipe.lr;
      weight_decay = recipe.weight_decay;
    }
    StepProducts step(model, settings.batch);
    const double gflop_per_epoch = step.Flops() * static_cast<double>(steps_per_epoch) * 1e-9;

    if (products) {
      // With --batches N: N steps timed and scaled to the epoch, as in epoch mode.
      const dlb::Index steps = batches > 0 ? std::min(batches, steps_per_epoch) : steps_per_epoch;
      auto epoch = [&] {
        const auto start = Clock::now();
        for (dlb::Index s = 0; s < steps; ++s) step.Step();
        return Seconds(start) * static_cast<double>(steps_per_epoch) / static_cast<double>(steps);
      };
      epoch();  // warm-up
      std::vector<double> seconds;
      for (int r = 0; r < repeats; ++r) seconds.push_back(epoch());
      const double median = Median(seconds);
      if (json) {
        std::printf("{\"model\":\"%s\",\"engine\":\"%s\",\"threads\":%d,\"batch\":%d,"
                    "\"repeats\":%d,\"seconds_per_epoch\":%.5f,\"gflops\":%.2f,"
                    "\"gflop_per_epoch\":%.2f%s}\n",
                    settings.model.c_str(), engine, settings.threads, settings.batch, repeats, median,
                    gflop_per_epoch / median, gflop_per_epoch, bench::EngineJsonFields().c_str());
      } else {
        std::printf("bench_cnn_epoch --model %s --products engine=%s threads=%d batch=%d: "
                    "%.4f s/epoch (median of %d), %.1f GFLOP/s, %.1f GFLOP/epoch\n",
                    settings.model.c_str(), engine, settings.threads, settings.batch, median, repeats,
                    gflop_per_epoch / median, gflop_per_epoch);
      }
      return 0;
    }

    const dlb::FashionMnist<float> data =
        synthetic ? bench::SyntheticFashionMnist(settings.seed) : experiment::LoadData(settings.data);
    if (auto code = experiment::RejectOversizedBatch(settings, data, "dlb_bench_cnn_epoch")) {
      return *code;
    }
    dlb::Optimizer<float> optimizer =
        dlb::MakeOptimizer<float>(settings.optimizer, model, settings.lr, weight_decay);
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
    double timed_seconds = 0;  // the timed epochs' batches, unscaled
    for (int epoch = 1; epoch <= warmup + settings.epochs; ++epoch) {
      if (layer_times && epoch == warmup + 1) model.SetLayerTiming(true);
      const auto start = Clock::now();
      context.epoch = epoch;
      context.stop_reason.reset();
      dlb::TrainEpoch(context, loss, callbacks, &guard);
      const double scale = static_cast<double>(train.NumBatches()) / static_cast<double>(timed_batches);
      if (epoch > warmup) {
        const double seconds = Seconds(start);
        timed_seconds += seconds;
        epoch_seconds.push_back(seconds * scale);
      }
    }
    model.SetLayerTiming(false);  // not the evaluation below
    std::sort(epoch_seconds.begin(), epoch_seconds.end());  // front and back: min and max
    const double median = Median(epoch_seconds);

    const auto inference_start = Clock::now();
    const dlb::PassResult evaluation = dlb::Evaluate(model, test, loss);
    const double inference_seconds = Seconds(inference_start);

    const double samples = static_cast<double>(train.SamplesPerEpoch());
    if (json) {
      std::printf("{\"model\":\"%s\",\"engine\":\"%s\",\"threads\":%d,\"batch\":%d,\"optimizer\":\"%s\","
                  "\"epochs\":%d,\"batches_timed\":%ld,\"batches_per_epoch\":%ld,"
                  "\"epoch_seconds_median\":%.5f,\"epoch_seconds_min\":%.5f,"
                  "\"epoch_seconds_max\":%.5f,\"samples_per_second\":%.1f,\"gflops\":%.2f,"
                  "\"gflop_per_epoch\":%.2f,\"inference_samples_per_second\":%.1f,"
                  "\"test_accuracy\":%.4f,\"peak_rss_mb\":%.1f,\"synthetic\":%s%s}\n",
                  settings.model.c_str(), engine, settings.threads, settings.batch,
                  settings.optimizer.c_str(), settings.epochs, static_cast<long>(timed_batches),
                  static_cast<long>(train.NumBatches()), median, epoch_seconds.front(),
                  epoch_seconds.back(), samples / median, gflop_per_epoch / median,
                  gflop_per_epoch, static_cast<double>(evaluation.samples) / inference_seconds,
                  evaluation.score, PeakRssMegabytes(), synthetic ? "true" : "false",
                  bench::EngineJsonFields().c_str());
    } else {
      std::printf("bench_cnn_epoch --model %s engine=%s (%s) threads=%d batch=%d optimizer=%s\n"
                  "  epoch %.3f s median of %d (min %.3f, max %.3f; %ld of %ld batches timed), "
                  "%.0f samples/s, %.1f GFLOP/s\n  inference %.0f samples/s, test accuracy "
                  "%.4f, peak RSS %.1f MB\n",
                  settings.model.c_str(), engine, experiment::ProductEngine().c_str(),
                  settings.threads, settings.batch,
                  settings.optimizer.c_str(), median,
                  settings.epochs, epoch_seconds.front(), epoch_seconds.back(),
                  static_cast<long>(timed_batches), static_cast<long>(train.NumBatches()),
                  samples / median, gflop_per_epoch / median,
                  static_cast<double>(evaluation.samples) / inference_seconds, evaluation.score,
                  PeakRssMegabytes());
    }
    if (layer_times) {
      const std::vector<dlb::LayerTime> rows = model.LayerTimes();
      const double layer_seconds = dlb::TotalLayerSeconds(rows);
      std::FILE* out = json ? stderr : stdout;
      std::fprintf(out, "%s  the layers took %.3f s of the timed batches' %.3f s (%.1f%%); the rest: "
                   "loss, optimizer, batches, divergence checks\n",
                   dlb::FormatLayerTimes(rows).c_str(), layer_seconds, timed_seconds,
                   100 * layer_seconds / timed_seconds);
    }
    return 0;
  } catch (const dlb::Error& e) {
    std::cerr << "dlb_bench_cnn_epoch: error: " << e.what() << "\n";
    return 1;
  }
}
