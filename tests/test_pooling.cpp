// MaxPool2D, AvgPool2D and GlobalAvgPool: forward values against naive loops written here
// (including torch's floor rule and overlapping windows), gradient checks in double, torch's
// tie and NaN rules for the maximum, names, specs and shape errors.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "dlb/core/threads.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/model.hpp"
#include "support/gradient_check.hpp"
#include "support/helpers.hpp"

using dlb::Index;
using dlb::Matrix;
using dlb::Shape;
using dlb::Size2D;
using dlb_test::MessageContains;

namespace {

struct Geometry {
  std::string label;
  Shape in;
  Size2D kernel, stride;
};

const std::vector<Geometry> kGeometries = {
    {"2x2, stride 2", {2, 4, 6}, 2, 2},
    {"2x2 on 7x7: floor", {2, 7, 7}, 2, 2},
    {"3x3, stride 2: overlapping", {1, 7, 6}, 3, 2},
    {"2x3, stride 1x2", {3, 4, 7}, {2, 3}, {1, 2}},
    // Even planes of at least 8 columns: the vector kernels of dlb/core/max_pool_2x2.hpp (5
    // windows a row: groups of 4 that overlap).
    {"2x2, stride 2, on vectors", {2, 8, 10}, 2, 2},
};

// Entries spaced at least 0.01 apart in random order (no ties, so a finite-difference step
// never changes which entry is the maximum).
Matrix<double> DistinctValues(Index rows, Index cols, std::uint64_t seed) {
  Matrix<double> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = 0.01 * static_cast<double>(i) - 1.0;
  dlb::Generator gen(seed);
  for (Index i = m.size() - 1; i > 0; --i) {
    std::swap(m.data()[i], m.data()[dlb::SampleIndex(gen, static_cast<std::uint64_t>(i + 1))]);
  }
  return m;
}

// The reference pooling: reduce(window values) for every window.
template <class Reduce>
Matrix<double> NaivePool(const Geometry& g, const Matrix<double>& x, Reduce reduce) {
  const Index ho = (g.in.height - g.kernel.height) / g.stride.height + 1;
  const Index wo = (g.in.width - g.kernel.width) / g.stride.width + 1;
  Matrix<double> y(g.in.channels * ho * wo, x.cols());
  for (Index b = 0; b < x.cols(); ++b)
    for (Index c = 0; c < g.in.channels; ++c)
      for (Index oy = 0; oy < ho; ++oy)
        for (Index ox = 0; ox < wo; ++ox) {
          std::vector<double> window;
          for (Index ky = 0; ky < g.kernel.height; ++ky)
            for (Index kx = 0; kx < g.kernel.width; ++kx) {
              const Index iy = oy * g.stride.height + ky, ix = ox * g.stride.width + kx;
              window.push_back(x((c * g.in.height + iy) * g.in.width + ix, b));
            }
          y((c * ho + oy) * wo + ox, b) = reduce(window);
        }
  return y;
}

double Max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double e : v) sum += e;
  return sum / static_cast<double>(v.size());
}

template <class Pool>
Pool Prepared(const Geometry& g) {
  Pool pool(g.kernel, g.stride);
  pool.SetInputShape(g.in);
  return pool;
}

}  // namespace

TEST_CASE("MaxPool2D and AvgPool2D forward match naive loops") {
  for (const Geometry& g : kGeometries) {
    SECTION(g.label) {
      const Matrix<double> x = DistinctValues(g.in.Size(), 3, 1);
      Matrix<double> y;
      auto max_pool = Prepared<dlb::MaxPool2D<double>>(g);
      max_pool.Forward(x, y, dlb::Mode::Train);
      const Matrix<double> expected_max = NaivePool(g, x, Max);
      REQUIRE(y.rows() == max_pool.OutputShape(g.in).Size());
      REQUIRE(y.rows() == expected_max.rows());
      CHECK(y == expected_max);

      auto avg_pool = Prepared<dlb::AvgPool2D<double>>(g);
      avg_pool.Forward(x, y, dlb::Mode::Train);
      CHECK((y - NaivePool(g, x, Mean)).cwiseAbs().maxCoeff() < 1e-12);
    }
  }
}

TEST_CASE("Pooling output shapes use torch's floor rule") {
  CHECK(dlb::MaxPool2D<float>(2).OutputShape({32, 28, 28}) == Shape(32, 14, 14));
  CHECK(dlb::MaxPool2D<float>(2).OutputShape({32, 7, 7}) == Shape(32, 3, 3));
  CHECK(dlb::AvgPool2D<float>(3, 2).OutputShape({4, 7, 8}) == Shape(4, 3, 3));
  CHECK(dlb::AvgPool2D<float>(Size2D(1, 2)).OutputShape({4, 3, 5}) == Shape(4, 3, 2));
  CHECK(dlb::GlobalAvgPool<float>().OutputShape({64, 7, 7}) == Shape(64));
}

TEST_CASE("Pooling gradients match finite differences") {
  for (const Geometry& g : kGeometries) {
    SECTION(g.label) {
      const Matrix<double> x = DistinctValues(g.in.Size(), 2, 2);
      auto max_pool = Prepared<dlb::MaxPool2D<double>>(g);
      dlb_test::CheckLayerGradients(max_pool, x, 3);
      auto avg_pool = Prepared<dlb::AvgPool2D<double>>(g);
      dlb_test::CheckLayerGradients(avg_pool, x, 4);
    }
  }
  SECTION("GlobalAvgPool") {
    dlb::GlobalAvgPool<double> pool;
    pool.SetInputShape({3, 4, 5});
    dlb_test::CheckLayerGradients(pool, dlb_test::RandomMatrix<double>(60, 2, 5), 6);
  }
}

TEST_CASE("GlobalAvgPool averages each channel's plane") {
  dlb::GlobalAvgPool<double> pool;
  pool.SetInputShape({2, 2, 3});
  Matrix<double> x(12, 2);
  for (Index i = 0; i < x.size(); ++i) x.data()[i] = static_cast<double>(i);
  Matrix<double> y;
  pool.Forward(x, y, dlb::Mode::Inference);
  REQUIRE(y.rows() == 2);
  CHECK(y(0, 0) == Approx((0 + 1 + 2 + 3 + 4 + 5) / 6.0));
  CHECK(y(1, 0) == Approx((6 + 7 + 8 + 9 + 10 + 11) / 6.0));
  CHECK(y(0, 1) == Approx((12 + 13 + 14 + 15 + 16 + 17) / 6.0));
  Matrix<double> dx;
  pool.Backward(x, y, Matrix<double>::Constant(2, 2, 6.0), &dx);
  CHECK(dx == Matrix<double>::Ones(12, 2));
}

TEST_CASE("MaxPool2D follows torch on ties (the first maximum) and NaN (propagates)") {
  dlb::MaxPool2D<double> pool(2);
  pool.SetInputShape({1, 2, 2});
  Matrix<double> x(4, 2);
  x.col(0) << 1, 3, 3, 2;  // tie between rows 1 and 2: the first wins
  x.col(1) << 1, std::numeric_limits<double>::quiet_NaN(), 5, 2;
  Matrix<double> y, dx;
  pool.Forward(x, y, dlb::Mode::Train);
  CHECK(y(0, 0) == 3);
  CHECK(std::isnan(y(0, 1)));
  pool.Backward(x, y, Matrix<double>::Ones(1, 2), &dx);
  CHECK(dx.col(0) == (Matrix<double>(4, 1) << 0, 1, 0, 0).finished());
  CHECK(dx.col(1) == (Matrix<double>(4, 1) << 0, 1, 0, 0).finished());

  // The same rules on the vector kernels (2 x 8 planes, 4 windows): a tie (the first wins), a
  // NaN, two NaN (the last wins, as torch's scan takes every NaN it meets), four equal values.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  dlb::MaxPool2D<double> wide(2);
  wide.SetInputShape({1, 2, 8});
  Matrix<double> row_pair(16, 1);
  row_pair << 1, 3, 1, nan, nan, 1, 4, 4,  //
      3, 2, 5, 2, nan, 0, 4, 4;
  wide.Forward(row_pair, y, dlb::Mode::Train);
  REQUIRE(y.rows() == 4);
  CHECK(y(0, 0) == 3);
  CHECK(std::isnan(y(1, 0)));
  CHECK(std::isnan(y(2, 0)));
  CHECK(y(3, 0) == 4);
  wide.Backward(row_pair, y, Matrix<double>::Ones(4, 1), &dx);
  CHECK(dx.col(0) ==
        (Matrix<double>(16, 1) << 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0).finished());
}

TEST_CASE("Pooling names and specs") {
  CHECK(dlb::MaxPool2D<float>(2).Name() == "MaxPool2D(2x2)");
  CHECK(dlb::MaxPool2D<float>(3, 2).Name() == "MaxPool2D(3x3, stride 2)");
  CHECK(dlb::AvgPool2D<float>({2, 3}, {1, 2}).Name() == "AvgPool2D(2x3, stride 1x2)");
  CHECK(dlb::GlobalAvgPool<float>().Name() == "GlobalAvgPool");
  const dlb::LayerSpec spec = dlb::MaxPool2D<float>(3, 2).Spec();
  CHECK(spec.type == "MaxPool2D");
  CHECK(spec.args == std::vector<std::pair<std::string, dlb::SpecValue>>{
                         {"kernel_height", std::int64_t{3}},
                         {"kernel_width", std::int64_t{3}},
                         {"stride_height", std::int64_t{2}},
                         {"stride_width", std::int64_t{2}}});
  CHECK(dlb::AvgPool2D<float>(2).Spec().type == "AvgPool2D");
  CHECK(dlb::GlobalAvgPool<float>().Spec() == dlb::LayerSpec{"GlobalAvgPool", {}});
}

TEST_CASE("Pooling rejects bad windows and inputs smaller than the window") {
  CHECK_THROWS_MATCHES(dlb::MaxPool2D<float>(0), dlb::ArgumentError,
                       MessageContains({"MaxPool2D: the kernel must be at least 1x1, got 0x0"}));
  CHECK_THROWS_MATCHES(dlb::AvgPool2D<float>(2, {1, 0}), dlb::ArgumentError,
                       MessageContains({"AvgPool2D: the stride must be at least 1", "got 1x0"}));
  dlb::ModelNN<float> model(Shape(8, 3, 3));
  model.Add(dlb::MaxPool2D<float>(2));
  CHECK(model.OutputShape() == Shape(8, 1, 1));
  CHECK_THROWS_MATCHES(model.Add(dlb::AvgPool2D<float>(2)), dlb::ShapeError,
                       MessageContains({"layer 1 (AvgPool2D(2x2)) needs an input of at least "
                                        "2 x 2 per channel (the 2x2 window), got 8 x 1 x 1"}));
  dlb::MaxPool2D<float> pool(2);
  Matrix<float> y;
  CHECK_THROWS_MATCHES(pool.Forward(Matrix<float>::Zero(4, 1), y, dlb::Mode::Train),
                       dlb::ShapeError, MessageContains({"MaxPool2D(2x2)", "input shape is unknown"}));
}

TEST_CASE("Pooling gives the same results on 1 and 2 threads") {
  const int saved = dlb::NumThreads();
  const Geometry g{"", {4, 12, 12}, 3, 2};
  const Matrix<double> x = DistinctValues(g.in.Size(), 64, 7);
  Matrix<double> results[2][4];
  for (int threads : {1, 2}) {
    dlb::SetNumThreads(threads);
    auto max_pool = Prepared<dlb::MaxPool2D<double>>(g);
    auto avg_pool = Prepared<dlb::AvgPool2D<double>>(g);
    Matrix<double>* r = results[threads - 1];
    max_pool.Forward(x, r[0], dlb::Mode::Train);
    max_pool.Backward(x, r[0], r[0], &r[1]);
    avg_pool.Forward(x, r[2], dlb::Mode::Train);
    avg_pool.Backward(x, r[2], r[2], &r[3]);
  }
  dlb::SetNumThreads(saved);
  for (int i = 0; i < 4; ++i) CHECK(results[0][i] == results[1][i]);
}
