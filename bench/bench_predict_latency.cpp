// Inference latency of the convnet of `train_fashion_mnist --model cnn` (examples/common/
// cnn_model.hpp): the time of one Predictor::Predict call (the const, thread-safe path a
// service uses, returning owned logits) for a batch of N images, and of ModelNN::Forward on
// the same batch for comparison. bench/predict_latency.py runs it against PyTorch's
// torch.inference_mode twin (bench/pytorch_predict_latency.py) in interleaved rounds.
//
//   dlb_bench_predict_latency [--batch N] [--threads T] [--calls C] [--warmup W] [--engine E]
//
// Prints one JSON line: microseconds per call, median, 10th and 90th percentiles.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "../examples/common/cnn_model.hpp"
#include "engine_flag.hpp"

namespace {

struct Percentiles {
  double median, p10, p90;
};

Percentiles Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  const auto at = [&](double q) { return us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))]; };
  return {at(0.5), at(0.1), at(0.9)};
}

template <class F>
Percentiles Time(int warmup, int calls, F&& call) {
  for (int i = 0; i < warmup; ++i) call();
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  }
  return Summarize(std::move(us));
}

}  // namespace

int main(int argc, char** argv) {
  int batch = 1, threads = 1, calls = 200, warmup = 20;
  std::string engine = "auto";
  CLI::App app("Inference latency of the CNN: Predictor::Predict and ModelNN::Forward", "dlb_bench_predict_latency");
  app.add_option("--batch", batch, "Images per call")->check(CLI::Range(1, 4096));
  app.add_option("--threads", threads, "dlb::SetNumThreads")->check(CLI::Range(1, 256));
  app.add_option("--calls", calls, "Timed calls")->check(CLI::Range(1, 1000000));
  app.add_option("--warmup", warmup, "Untimed calls first")->check(CLI::Range(0, 1000000));
  bench::AddEngineFlag(app, engine);
  CLI11_PARSE(app, argc, argv);
  dlb::SetNumThreads(threads);
  bench::ApplyEngine(engine);

  dlb::ModelNN<float> model = cnn::MakeModel(1);
  model.SetMode(dlb::Mode::Inference);
  const dlb::Predictor<float> predictor(model);
  dlb::Generator gen(2);
  dlb::Matrix<float> x(model.InputSize(), batch);
  for (dlb::Index i = 0; i < x.size(); ++i) x(i) = dlb::SampleNormal<float>(gen);

  float sink = 0;
  const Percentiles predict = Time(warmup, calls, [&] { sink += predictor.Predict(x)(0, 0); });
  const Percentiles forward = Time(warmup, calls, [&] { sink += model.Forward(x)(0, 0); });
  std::printf("{\"impl\": \"dlb\", \"batch\": %d, \"threads\": %d, \"engine\": \"%s\"%s, "
              "\"predict_us_median\": %.1f, \"predict_us_p10\": %.1f, \"predict_us_p90\": %.1f, "
              "\"forward_us_median\": %.1f, \"finite\": %s}\n",
              batch, threads, bench::ActiveEngineName(), bench::EngineJsonFields().c_str(),
              predict.median, predict.p10, predict.p90, forward.median,
              std::isfinite(sink) ? "true" : "false");
  return 0;
}
