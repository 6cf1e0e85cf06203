// GEMM ceiling probe: times only the 14 matrix products of one MLP training step, at the
// real shapes, over one "epoch" of steps. The result is the floor under the epoch time of
// the real training loop: everything the library does besides these products (activations,
// loss, optimizer update, batch gathering) shows up as the difference.
//
// The expressions are exactly those of the layers (features x batch layout):
//   forward   Z_i  = W_i   X_i        (out x in) (in x batch)      every layer
//   backward  dW_i = dZ_i  X_i^T      (out x batch) (batch x in)   every layer
//             dX_i = W_i^T dZ_i       (in x out) (out x batch)     every layer but the first
// each into a preallocated buffer, so no temporaries are timed.
//
// --engine picks what runs them (auto: the library's own choice, eigen, blas). Without --split
// the engine threads each product itself: Eigen's parallel GEMM (`Z.noalias() = W * X`) or the
// BLAS's own pool (one sgemm_ call per product); with --split dlb::Gemm cuts each product into
// one block per thread, as the library's layers do.

#include <CLI/CLI.hpp>
#include <Eigen/Core>

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "dlb/core/gemm.hpp"
#include "dlb/core/threads.hpp"
#include "dlb/core/types.hpp"
#include "engine_flag.hpp"

namespace {

using Mat = dlb::Matrix<float>;
using Clock = std::chrono::steady_clock;

struct Layer {
  dlb::Index in = 0;
  dlb::Index out = 0;
  Mat W, dW;  // out x in
  Mat X, dX;  // in x batch (dX unused for the first layer)
  Mat Z, dZ;  // out x batch
};

// One timed product: its name and its m x n x k shape (FLOPs = 2 m n k per step).
struct Product {
  std::string name;
  dlb::Index m, n, k;
  double seconds = 0;  // accumulated over one epoch (breakdown only)
};

// Threads the loaded BLAS reports (-1 when none is loaded or it cannot say).
int BlasThreads() {
  using GetFn = int (*)();
  if (void* fn = dlsym(RTLD_DEFAULT, "openblas_get_num_threads")) {
    return reinterpret_cast<GetFn>(fn)();
  }
  return -1;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Accepts 1 .. INT_MAX (CLI::PositiveNumber's message prints DBL_MAX as the upper bound).
const CLI::Range kPositive(1, std::numeric_limits<int>::max());

std::string JoinInts(const std::vector<int>& values) {
  std::ostringstream out;
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

using bench::JsonString;

class Probe {
 public:
  Probe(const std::vector<int>& sizes, dlb::Index batch, bool split) : split_(split) {
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
      Layer l;
      l.in = sizes[i];
      l.out = sizes[i + 1];
      // Values in [-1, 1]: magnitudes stay normal (no denormals) and never grow, because
      // every product overwrites its output instead of feeding the next one.
      l.W = Mat::Random(l.out, l.in);
      l.dW = Mat::Zero(l.out, l.in);
      l.X = Mat::Random(l.in, batch);
      l.dX = Mat::Zero(l.in, batch);
      l.Z = Mat::Zero(l.out, batch);
      l.dZ = Mat::Random(l.out, batch);
      layers_.push_back(std::move(l));
    }
    const std::size_t n = layers_.size();
    for (std::size_t i = 0; i < n; ++i) {
      const Layer& l = layers_[i];
      products_.push_back({"fwd" + std::to_string(i + 1), l.out, batch, l.in});
    }
    for (std::size_t i = n; i-- > 0;) {
      const Layer& l = layers_[i];
      products_.push_back({"dW" + std::to_string(i + 1), l.out, l.in, batch});
      if (i > 0) products_.push_back({"dX" + std::to_string(i + 1), l.in, batch, l.out});
    }
  }

  // FLOPs of one step (all products).
  double FlopsPerStep() const {
    double flops = 0;
    for (const Product& p : products_) flops += 2.0 * p.m * p.n * p.k;
    return flops;
  }

  std::vector<Product>& products() { return products_; }

  // One training step's products, in the order the training loop runs them.
  void Step() {
    for (Layer& l : layers_) Forward(l);
    for (std::size_t i = layers_.size(); i-- > 0;) {
      Layer& l = layers_[i];
      WeightGradient(l);
      if (i > 0) InputGradient(l);
    }
  }

  // Same as Step() with each product timed on its own (adds to products_[*].seconds).
  void TimedStep() {
    std::size_t p = 0;
    auto timed = [&](auto&& product) {
      const auto start = Clock::now();
      product();
      products_[p++].seconds += std::chrono::duration<double>(Clock::now() - start).count();
    };
    for (Layer& l : layers_) timed([&] { Forward(l); });
    for (std::size_t i = layers_.size(); i-- > 0;) {
      Layer& l = layers_[i];
      timed([&] { WeightGradient(l); });
      if (i > 0) timed([&] { InputGradient(l); });
    }
  }

  // A value that depends on every output, so the work is observably used.
  double Checksum() const {
    double sum = 0;
    for (const Layer& l : layers_) {
      sum += l.Z.sum() + l.dW.sum();
      if (l.dX.size() > 0) sum += l.dX.sum();
    }
    return sum;
  }

 private:
  // Z = W X, dW = dZ X^T, dX = W^T dZ: with --split through the library's dlb::Gemm (C cut
  // into one block per thread), otherwise by the engine alone on the whole product.
  void Forward(Layer& l) { Multiply(dlb::Op::None, l.W, dlb::Op::None, l.X, l.Z); }
  void WeightGradient(Layer& l) { Multiply(dlb::Op::None, l.dZ, dlb::Op::Transpose, l.X, l.dW); }
  void InputGradient(Layer& l) { Multiply(dlb::Op::Transpose, l.W, dlb::Op::None, l.dZ, l.dX); }

  void Multiply(dlb::Op op_a, const Mat& a, dlb::Op op_b, const Mat& b, Mat& c) {
    if (split_) {
      dlb::Gemm<float>(op_a, a, op_b, b, c);
    } else if (dlb::ActiveGemmEngine() == dlb::GemmEngine::Blas) {
      dlb::GemmInto<float>(op_a, a, op_b, b, c, 0.0f, workspace_);  // one sgemm_, BLAS threads
    } else if (op_a == dlb::Op::None && op_b == dlb::Op::None) {
      c.noalias() = a * b;  // Eigen's own GEMM, threaded by Eigen (OpenMP)
    } else if (op_a == dlb::Op::None) {
      c.noalias() = a * b.transpose();
    } else {
      c.noalias() = a.transpose() * b;
    }
  }

  bool split_;
  dlb::GemmWorkspace<float> workspace_;  // unused by the BLAS
  std::vector<Layer> layers_;
  std::vector<Product> products_;
};

double TimeEpoch(Probe& probe, int batches) {
  const auto start = Clock::now();
  for (int b = 0; b < batches; ++b) probe.Step();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GEMM ceiling: seconds per epoch of the 14 matrix products of an MLP training step"};
  int threads = 1;
  int batch = 256;
  std::vector<int> hidden{350, 250, 150, 50};
  int inputs = 784;
  int classes = 10;
  int batches = 234;
  int repeats = 5;
  bool json = false;
  bool breakdown = false;
  bool split = false;
  std::string engine_flag = "auto";
  app.add_option("--threads", threads, "Threads for the products (Eigen and BLAS)")
      ->check(kPositive)
      ->capture_default_str();
  app.add_option("--batch", batch, "Samples per batch")->check(kPositive)->capture_default_str();
  app.add_option("--hidden", hidden, "Hidden layer widths, comma separated")
      ->delimiter(',')
      ->check(kPositive)
      ->capture_default_str();
  app.add_option("--inputs", inputs, "Input features")->check(kPositive)->capture_default_str();
  app.add_option("--classes", classes, "Output classes")->check(kPositive)->capture_default_str();
  app.add_option("--batches", batches, "Steps per epoch")->check(kPositive)->capture_default_str();
  app.add_option("--repeats", repeats, "Timed epochs (the median is reported)")
      ->check(kPositive)
      ->capture_default_str();
  app.add_flag("--json", json, "Also print one JSON object line");
  app.add_flag("--breakdown", breakdown, "Also time each product separately (one extra epoch)");
  app.add_flag("--split", split,
               "Run the products through dlb::Gemm, which cuts each product into one block per "
               "thread with a single-threaded engine per block (what the library's layers do)");
  bench::AddEngineFlag(app, engine_flag);
  CLI11_PARSE(app, argc, argv);

  try {
    bench::ApplyEngine(engine_flag);
    dlb::SetNumThreads(threads);
    // Unsplit, the engine itself must thread each product: give the BLAS its pool back
    // (SetNumThreads leaves it at one thread when the library splits the products).
    if (!split) dlb::internal::SetBlasThreads(threads);

    std::vector<int> sizes{inputs};
    sizes.insert(sizes.end(), hidden.begin(), hidden.end());
    sizes.push_back(classes);
    Probe probe(sizes, batch, split);

    TimeEpoch(probe, batches);  // warm-up: page faults, BLAS buffers, thread pool start-up
    std::vector<double> seconds;
    for (int r = 0; r < repeats; ++r) seconds.push_back(TimeEpoch(probe, batches));
    if (breakdown) {
      for (int b = 0; b < batches; ++b) probe.TimedStep();
    }

    const std::string engine =
        split ? std::string("dlb-") + bench::ActiveEngineName() : bench::ActiveEngineName();
    const double median = Median(seconds);
    const double flops_per_epoch = probe.FlopsPerStep() * batches;
    const double gflops = flops_per_epoch / median * 1e-9;
    const std::string simd = Eigen::SimdInstructionSetsInUse();
    const std::string core = dlb::internal::OpenBlasCoreName();

    std::printf("gemm_ceiling engine=%s threads=%d batch=%d hidden=%s: %.4f s/epoch (median of %d, min %.4f, max %.4f), %.1f GFLOP/s, %.2f GFLOP/epoch [eigen threads %d, blas threads %d%s%s, simd %s]\n  products by %s\n",
                engine.c_str(), threads, batch, JoinInts(hidden).c_str(), median, repeats,
                *std::min_element(seconds.begin(), seconds.end()),
                *std::max_element(seconds.begin(), seconds.end()), gflops, flops_per_epoch * 1e-9,
                dlb::NumThreads(), BlasThreads(), core.empty() ? "" : ", core ", core.c_str(),
                simd.c_str(), dlb::GemmEngineDescription().c_str());
    if (breakdown) {
      std::printf("  %-5s %6s %6s %6s %10s %8s %7s\n", "prod", "m", "n", "k", "s/epoch", "GFLOP/s", "share");
      double total = 0;
      for (const Product& p : probe.products()) total += p.seconds;
      for (const Product& p : probe.products()) {
        std::printf("  %-5s %6lld %6lld %6lld %10.4f %8.1f %6.1f%%\n", p.name.c_str(),
                    static_cast<long long>(p.m), static_cast<long long>(p.n),
                    static_cast<long long>(p.k), p.seconds,
                    2.0 * p.m * p.n * p.k * batches / p.seconds * 1e-9, 100.0 * p.seconds / total);
      }
    }

    if (json) {
      std::printf("{\"engine\":\"%s\",\"threads\":%d,\"batch\":%d,\"hidden\":[%s],\"inputs\":%d,\"classes\":%d,"
                  "\"batches\":%d,\"repeats\":%d,\"seconds_per_epoch\":%.6g,\"gflops\":%.6g,"
                  "\"gflop_per_epoch\":%.6g,\"seconds_all\":[",
                  engine.c_str(), threads, batch, JoinInts(hidden).c_str(), inputs, classes, batches, repeats,
                  median, gflops, flops_per_epoch * 1e-9);
      for (std::size_t i = 0; i < seconds.size(); ++i) std::printf("%s%.6g", i ? "," : "", seconds[i]);
      std::printf("],\"eigen_threads\":%d,\"blas_threads\":%d,\"blas_core\":%s,\"simd\":%s%s",
                  dlb::NumThreads(), BlasThreads(), JsonString(core).c_str(), JsonString(simd).c_str(),
                  bench::EngineJsonFields().c_str());
      if (breakdown) {
        std::printf(",\"products\":[");
        bool first = true;
        for (const Product& p : probe.products()) {
          std::printf("%s{\"name\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,\"seconds_per_epoch\":%.6g}",
                      first ? "" : ",", p.name.c_str(), static_cast<long long>(p.m),
                      static_cast<long long>(p.n), static_cast<long long>(p.k), p.seconds);
          first = false;
        }
        std::printf("]");
      }
      std::printf(",\"checksum\":%.6g}\n", probe.Checksum());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemm_ceiling: %s\n", e.what());
    return 1;
  }
  return 0;
}
