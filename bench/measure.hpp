#pragma once
// What the epoch benchmarks (bench_epoch, bench_cnn_epoch, bench_mpi) measure with: wall time,
// the median of timed epochs, peak memory, and stand-in data for machines without
// Fashion-MNIST.

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include <dlb/io.hpp>  // <dlb/dlb.hpp> and the data files

namespace bench {

using Clock = std::chrono::steady_clock;

/// Seconds from `since` to now.
inline double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

/// The middle value of `values` (the upper of the two middle ones for an even count).
/// Requires: `values` is not empty.
inline double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

/// The process's peak resident memory so far, in MB.
inline double PeakRssMegabytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

/// Random images (standard normal pixels) and labels with Fashion-MNIST's shapes: 60,000
/// training and 10,000 test samples. Timings do not depend on the values.
inline dlb::FashionMnist<float> SyntheticFashionMnist(std::uint64_t seed) {
  dlb::Generator gen(seed);
  dlb::FashionMnist<float> data;
  auto fill = [&gen](dlb::Matrix<float>& x, dlb::Labels& y, dlb::Index n) {
    x.resize(784, n);
    y.resize(n);
    for (dlb::Index i = 0; i < x.size(); ++i) x.data()[i] = dlb::SampleNormal<float>(gen);
    for (dlb::Index j = 0; j < n; ++j) y(j) = static_cast<dlb::Label>(dlb::SampleIndex(gen, 10));
  };
  fill(data.train_images, data.train_labels, 60000);
  fill(data.test_images, data.test_labels, 10000);
  return data;
}

}  // namespace bench
