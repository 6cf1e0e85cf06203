// Preprocessing of data sets: per-feature standardization and the stratified split.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dlb/core/random.hpp"
#include "dlb/data/split.hpp"
#include "dlb/data/standardize.hpp"
#include "support/helpers.hpp"

namespace {

using dlb_test::MessageContains;

/// features x samples data whose feature r has mean about 10 r and spread about r + 1.
dlb::Matrix<double> RandomData(dlb::Index features, dlb::Index samples, std::uint64_t seed) {
  dlb::Generator gen(seed);
  dlb::Matrix<double> X(features, samples);
  for (dlb::Index j = 0; j < samples; ++j) {
    for (dlb::Index r = 0; r < features; ++r) {
      X(r, j) = 10.0 * static_cast<double>(r) +
                static_cast<double>(r + 1) * dlb::SampleNormal<double>(gen);
    }
  }
  return X;
}

/// Labels with `counts[c]` samples of class c, classes interleaved.
dlb::Labels LabelsWithCounts(const std::vector<int>& counts) {
  std::vector<dlb::Label> labels;
  std::vector<int> left = counts;
  bool any = true;
  while (any) {
    any = false;
    for (std::size_t c = 0; c < left.size(); ++c) {
      if (left[c] > 0) {
        labels.push_back(static_cast<dlb::Label>(c));
        --left[c];
        any = true;
      }
    }
  }
  return Eigen::Map<dlb::Labels>(labels.data(), static_cast<dlb::Index>(labels.size()));
}

/// 2 x n data where column j holds (j, 2j): the sample index can be read back after a split.
dlb::Matrix<double> IndexedData(dlb::Index n) {
  dlb::Matrix<double> X(2, n);
  for (dlb::Index j = 0; j < n; ++j) {
    X(0, j) = static_cast<double>(j);
    X(1, j) = 2.0 * static_cast<double>(j);
  }
  return X;
}

std::map<dlb::Label, int> CountLabels(const dlb::Labels& y) {
  std::map<dlb::Label, int> counts;
  for (dlb::Index i = 0; i < y.size(); ++i) ++counts[y(i)];
  return counts;
}

std::vector<dlb::Index> SampleIds(const dlb::Matrix<double>& X) {
  std::vector<dlb::Index> ids;
  for (dlb::Index j = 0; j < X.cols(); ++j) ids.push_back(static_cast<dlb::Index>(X(0, j)));
  return ids;
}

}  // namespace

TEST_CASE("Standardizer gives training features mean 0 and std 1", "[standardize]") {
  dlb::Matrix<double> X = RandomData(5, 1000, 1);
  const dlb::Matrix<double> original = X;
  dlb::Standardizer<double> standardizer;
  standardizer.Fit(X);
  REQUIRE(standardizer.Mean().size() == 5);
  REQUIRE(standardizer.Stddev().size() == 5);
  for (dlb::Index r = 0; r < 5; ++r) {
    const double mean = original.row(r).mean();
    const double variance = (original.row(r).array() - mean).square().mean();  // population
    CHECK(standardizer.Mean()(r) == Approx(mean).epsilon(1e-12));
    CHECK(standardizer.Stddev()(r) == Approx(std::sqrt(variance)).epsilon(1e-12));
  }
  standardizer.Transform(X);
  for (dlb::Index r = 0; r < 5; ++r) {
    const double mean = X.row(r).mean();
    CHECK(std::abs(mean) < 1e-12);
    CHECK(std::sqrt((X.row(r).array() - mean).square().mean()) == Approx(1.0).epsilon(1e-12));
  }
}

TEST_CASE("Standardizer maps a constant feature to 0 instead of NaN", "[standardize]") {
  dlb::Matrix<double> X = RandomData(3, 7, 2);
  X.row(1).setConstant(0.1);  // 7 * 0.1 / 7 is not exactly 0.1 in binary
  X.row(2).setZero();
  dlb::Standardizer<double> standardizer;
  standardizer.Fit(X);
  CHECK(standardizer.Stddev()(1) == 1.0);
  CHECK(standardizer.Stddev()(2) == 1.0);
  standardizer.Transform(X);
  CHECK(X.allFinite());
  CHECK((X.row(1).array() == 0.0).all());
  CHECK((X.row(2).array() == 0.0).all());
}

TEST_CASE("Standardizer applies the training statistics to another set", "[standardize]") {
  const dlb::Matrix<double> train = RandomData(4, 500, 3);
  dlb::Matrix<double> test = RandomData(4, 50, 4);
  test.array() += 3.0;  // shifted: its own statistics would differ
  const dlb::Matrix<double> original = test;
  dlb::Standardizer<double> standardizer;
  standardizer.Fit(train);
  standardizer.Transform(test);
  for (dlb::Index j = 0; j < test.cols(); ++j) {
    for (dlb::Index r = 0; r < test.rows(); ++r) {
      const double expected = (original(r, j) - standardizer.Mean()(r)) / standardizer.Stddev()(r);
      REQUIRE(test(r, j) == Approx(expected).epsilon(1e-14));
    }
  }
  CHECK(test.row(0).mean() > 1.0);  // the shift survives
}

TEST_CASE("Standardizer<float> accumulates in double", "[standardize]") {
  // A large offset with a small spread: a float running sum would lose the spread.
  const dlb::Index n = 200000;
  dlb::Matrix<float> X(1, n);
  dlb::Generator gen(5);
  for (dlb::Index j = 0; j < n; ++j) X(0, j) = 1000.0f + 0.25f * (j % 2 == 0 ? 1.0f : -1.0f);
  dlb::Standardizer<float> standardizer;
  standardizer.Fit(X);
  CHECK(standardizer.Mean()(0) == Approx(1000.0).epsilon(1e-7));
  CHECK(standardizer.Stddev()(0) == Approx(0.25).epsilon(1e-5));
  standardizer.Transform(X);
  CHECK(X(0, 0) == Approx(1.0).epsilon(1e-4));
  CHECK(X(0, 1) == Approx(-1.0).epsilon(1e-4));
}

TEST_CASE("Standardizer reports shape and value errors", "[standardize]") {
  dlb::Standardizer<double> standardizer;
  dlb::Matrix<double> X = RandomData(3, 10, 6);
  REQUIRE_THROWS_MATCHES(standardizer.Transform(X), dlb::ShapeError,
                         MessageContains({"Fit must be called first"}));
  standardizer.Fit(X);
  dlb::Matrix<double> wrong = RandomData(4, 10, 7);
  REQUIRE_THROWS_MATCHES(standardizer.Transform(wrong), dlb::ShapeError,
                         MessageContains({"expected 3 features", "got 4"}));
  REQUIRE_THROWS_MATCHES(standardizer.Fit(dlb::Matrix<double>(3, 0)), dlb::ShapeError,
                         MessageContains({"at least one feature and one sample", "3 x 0"}));
  X(2, 4) = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_MATCHES(standardizer.Fit(X), dlb::ArgumentError,
                         MessageContains({"feature 2", "non-finite"}));
}

TEST_CASE("Standardizer::FitPerChannel pools each channel, so a shifted image stays standardised alike",
          "[standardize]") {
  // 2 channels of 3 x 4: channel 0 random, channel 1 constant.
  const dlb::Shape image(2, 3, 4);
  dlb::Matrix<double> x = dlb_test::RandomMatrix<double>(image.Size(), 50, 81);
  x.bottomRows(12).setConstant(0.25);
  dlb::Standardizer<double> s;
  s.FitPerChannel(x, image);
  const auto channel0 = x.topRows(12).array();
  const double mean = channel0.mean();
  const double stddev = std::sqrt((channel0 - mean).square().mean());
  CHECK((s.Mean().head(12).array() - mean).abs().maxCoeff() < 1e-12);
  CHECK((s.Stddev().head(12).array() - stddev).abs().maxCoeff() < 1e-12);
  CHECK((s.Mean().tail(12).array() == 0.25).all());  // a constant channel: mean its value,
  CHECK((s.Stddev().tail(12).array() == 1.0).all());  // std 1
  // One affine map per channel: moving pixels commutes with standardising (per-pixel
  // statistics would not).
  dlb::Matrix<double> moved = x;
  for (dlb::Index j = 0; j < x.cols(); ++j) {
    std::reverse(moved.col(j).data(), moved.col(j).data() + 12);
  }
  dlb::Matrix<double> standardised = x, moved_standardised = moved;
  s.Transform(standardised);
  s.Transform(moved_standardised);
  for (dlb::Index j = 0; j < x.cols(); ++j) {
    std::reverse(standardised.col(j).data(), standardised.col(j).data() + 12);
  }
  CHECK((standardised - moved_standardised).cwiseAbs().maxCoeff() < 1e-12);
  dlb::Standardizer<double> per_pixel;
  per_pixel.Fit(x);
  dlb::Matrix<double> a = x, b = moved;
  per_pixel.Transform(a);
  per_pixel.Transform(b);
  for (dlb::Index j = 0; j < x.cols(); ++j) std::reverse(a.col(j).data(), a.col(j).data() + 12);
  CHECK((a - b).cwiseAbs().maxCoeff() > 1e-3);  // the control: per pixel, it does not commute

  REQUIRE_THROWS_MATCHES(s.FitPerChannel(x, dlb::Shape(2, 3, 3)), dlb::ShapeError,
                         MessageContains({"needs samples of"}));
  x(5, 7) = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_MATCHES(s.FitPerChannel(x, image), dlb::ArgumentError, MessageContains({"channel 0"}));
}

TEST_CASE("StratifiedSplit keeps class proportions exactly", "[split]") {
  const dlb::Labels y = LabelsWithCounts({50, 30, 20});
  const dlb::Matrix<double> X = IndexedData(y.size());
  dlb::Generator gen(42);
  const dlb::Split<double> split = dlb::StratifiedSplit(X, y, 0.2, gen);
  REQUIRE(split.test_x.cols() == 20);
  REQUIRE(split.train_x.cols() == 80);
  REQUIRE(split.test_x.rows() == 2);
  REQUIRE(split.test_y.size() == 20);
  REQUIRE(split.train_y.size() == 80);
  CHECK(CountLabels(split.test_y) == std::map<dlb::Label, int>{{0, 10}, {1, 6}, {2, 4}});
  CHECK(CountLabels(split.train_y) == std::map<dlb::Label, int>{{0, 40}, {1, 24}, {2, 16}});
}

TEST_CASE("StratifiedSplit rounds each class's test share", "[split]") {
  // round(0.3 * 7) = 2, round(0.3 * 5) = round(1.5) = 2, round(0.3 * 1) = 0.
  const dlb::Labels y = LabelsWithCounts({7, 5, 1});
  dlb::Generator gen(1);
  const dlb::Split<double> split = dlb::StratifiedSplit(IndexedData(y.size()), y, 0.3, gen);
  CHECK(CountLabels(split.test_y) == std::map<dlb::Label, int>{{0, 2}, {1, 2}});
  CHECK(CountLabels(split.train_y) == std::map<dlb::Label, int>{{0, 5}, {1, 3}, {2, 1}});
}

TEST_CASE("StratifiedSplit parts are disjoint, complete and keep samples with labels", "[split]") {
  const dlb::Labels y = LabelsWithCounts({13, 17, 9, 11});
  const dlb::Matrix<double> X = IndexedData(y.size());
  dlb::Generator gen(3);
  const dlb::Split<double> split = dlb::StratifiedSplit(X, y, 0.25, gen);
  std::vector<dlb::Index> train = SampleIds(split.train_x);
  std::vector<dlb::Index> test = SampleIds(split.test_x);
  // Original relative order is kept within each part.
  CHECK(std::is_sorted(train.begin(), train.end()));
  CHECK(std::is_sorted(test.begin(), test.end()));
  std::set<dlb::Index> all(train.begin(), train.end());
  all.insert(test.begin(), test.end());
  CHECK(all.size() == static_cast<std::size_t>(y.size()));
  CHECK(train.size() + test.size() == static_cast<std::size_t>(y.size()));
  for (dlb::Index k = 0; k < split.train_x.cols(); ++k) {
    REQUIRE(split.train_y(k) == y(train[static_cast<std::size_t>(k)]));
    REQUIRE(split.train_x(1, k) == 2.0 * split.train_x(0, k));
  }
  for (dlb::Index k = 0; k < split.test_x.cols(); ++k) {
    REQUIRE(split.test_y(k) == y(test[static_cast<std::size_t>(k)]));
  }
}

TEST_CASE("StratifiedSplit is reproducible from the seed", "[split]") {
  const dlb::Labels y = LabelsWithCounts({40, 40, 40});
  const dlb::Matrix<double> X = IndexedData(y.size());
  dlb::Generator a(123);
  dlb::Generator b(123);
  dlb::Generator c(124);
  const auto first = SampleIds(dlb::StratifiedSplit(X, y, 0.5, a).test_x);
  const auto second = SampleIds(dlb::StratifiedSplit(X, y, 0.5, b).test_x);
  const auto other = SampleIds(dlb::StratifiedSplit(X, y, 0.5, c).test_x);
  CHECK(first == second);
  CHECK(first != other);
  // mt19937_64 and SampleIndex are fully specified, so this holds on every platform.
  dlb::Generator pinned(7);
  const dlb::Labels small = LabelsWithCounts({4, 4});
  const auto test = SampleIds(dlb::StratifiedSplit(IndexedData(8), small, 0.5, pinned).test_x);
  CHECK(test == std::vector<dlb::Index>{1, 2, 4, 7});
}

TEST_CASE("StratifiedSplit rejects bad arguments", "[split]") {
  const dlb::Labels y = LabelsWithCounts({5, 5});
  const dlb::Matrix<double> X = IndexedData(y.size());
  dlb::Generator gen(1);
  for (const double fraction : {0.0, 1.0, -0.5, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    REQUIRE_THROWS_MATCHES(dlb::StratifiedSplit(X, y, fraction, gen), dlb::ArgumentError,
                           MessageContains({"test_fraction must be in (0, 1)"}));
  }
  REQUIRE_THROWS_MATCHES(dlb::StratifiedSplit(IndexedData(9), y, 0.5, gen), dlb::ShapeError,
                         MessageContains({"9 samples", "10 labels"}));
  REQUIRE_THROWS_MATCHES(dlb::StratifiedSplit(X, y, 0.05, gen), dlb::ArgumentError,
                         MessageContains({"leaves the test part empty"}));
  REQUIRE_THROWS_MATCHES(dlb::StratifiedSplit(X, y, 0.95, gen), dlb::ArgumentError,
                         MessageContains({"leaves the training part empty"}));
  REQUIRE_THROWS_MATCHES(dlb::StratifiedSplit(dlb::Matrix<double>(2, 0), dlb::Labels(), 0.5, gen),
                         dlb::ArgumentError, MessageContains({"of 0 samples"}));
}
