#pragma once
// A small convnet with every kind of per-pass state a layer keeps (im2col buffers, batch-norm
// statistics, pooling indices, a dropout mask) for the concurrent-inference tests, and a
// loop that runs Predict from many threads at once.

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "dlb/layers/activations.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/model.hpp"

namespace dlb_test {

/// 1x8x8 -> Conv(1->4, 3x3, pad 1)-BN-ReLU-MaxPool 2 -> Linear(64->16)-ReLU-Dropout(0.5)
/// -> Linear(16->5), with batch-norm running statistics from one training-mode pass.
inline dlb::ModelNN<float> InferenceTestModel(std::uint64_t seed) {
  dlb::ModelNN<float> model(dlb::Shape(1, 8, 8), seed);
  model.Add(dlb::Conv2D<float>(dlb::Conv2DOptions(1, 4, 3).Padding(1)))
      .Add(dlb::BatchNorm2D<float>(4))
      .Add(dlb::ReLU<float>())
      .Add(dlb::MaxPool2D<float>(2))
      .Add(dlb::Linear<float>(64, 16))
      .Add(dlb::ReLU<float>())
      .Add(dlb::Dropout<float>(0.5f))
      .Add(dlb::Linear<float>(16, 5));
  dlb::Generator gen(seed + 1);
  dlb::Matrix<float> x(64, 32);
  for (dlb::Index i = 0; i < x.size(); ++i) x(i) = dlb::SampleNormal<float>(gen);
  model.Forward(x);  // Mode::Train: batch-norm running statistics move away from 0 and 1
  model.SetMode(dlb::Mode::Inference);
  return model;
}

/// Batches of `cols` random samples of `rows` values, one per seed.
inline std::vector<dlb::Matrix<float>> TestBatches(dlb::Index rows, int count, dlb::Index cols) {
  std::vector<dlb::Matrix<float>> batches;
  dlb::Generator gen(12345);
  for (int b = 0; b < count; ++b) {
    dlb::Matrix<float> x(rows, cols + b % 3);  // batch sizes differ too
    for (dlb::Index i = 0; i < x.size(); ++i) x(i) = 3.0f * dlb::SampleNormal<float>(gen) + 1.0f;
    batches.push_back(std::move(x));
  }
  return batches;
}

/// Runs predict(batch) for every batch from `threads` threads at once (each thread `rounds`
/// times over all batches, starting at a different batch) and returns how many results
/// differed bit for bit from expected[batch].
inline int CountConcurrentMismatches(
    int threads, int rounds, const std::vector<dlb::Matrix<float>>& batches,
    const std::vector<dlb::Matrix<float>>& expected,
    const std::function<dlb::Matrix<float>(const dlb::Matrix<float>&)>& predict) {
  std::atomic<int> mismatches{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();  // start together
      const auto n = batches.size();
      for (int r = 0; r < rounds; ++r) {
        for (std::size_t k = 0; k < n; ++k) {
          const std::size_t b = (k + static_cast<std::size_t>(t)) % n;
          const dlb::Matrix<float> logits = predict(batches[b]);
          if (logits.rows() != expected[b].rows() || logits.cols() != expected[b].cols() ||
              !(logits.array() == expected[b].array()).all()) {
            mismatches.fetch_add(1);
          }
        }
      }
    });
  }
  for (std::thread& thread : pool) thread.join();
  return mismatches.load();
}

}  // namespace dlb_test
