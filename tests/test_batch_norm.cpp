// BatchNorm1D / BatchNorm2D: values and running statistics against hand computation, train
// vs inference mode, gradient checks in double (both modes, both kinds), torch's state names,
// the statistics reducer of data-parallel training (two simulated processes), and errors.

#include <catch2/catch.hpp>

#include <array>
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "dlb/core/double_sums.hpp"
#include "dlb/core/threads.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/model/model.hpp"
#include "support/gradient_check.hpp"
#include "support/helpers.hpp"

using dlb::BatchNorm1D;
using dlb::BatchNorm2D;
using dlb::Index;
using dlb::Matrix;
using dlb::Shape;
using dlb_test::MessageContains;

namespace {

// Per-channel mean and biased variance of a C x H x W batch, by hand.
struct Moments {
  std::vector<double> mean, var;
  double n = 0;
};
Moments ChannelMoments(const Matrix<double>& x, const Shape& shape) {
  const Index plane = shape.height * shape.width;
  Moments m;
  m.n = static_cast<double>(plane * x.cols());
  for (Index c = 0; c < shape.channels; ++c) {
    double sum = 0, sum_sq = 0;
    for (Index b = 0; b < x.cols(); ++b)
      for (Index i = 0; i < plane; ++i) sum += x(c * plane + i, b);
    const double mean = sum / m.n;
    for (Index b = 0; b < x.cols(); ++b)
      for (Index i = 0; i < plane; ++i) sum_sq += std::pow(x(c * plane + i, b) - mean, 2);
    m.mean.push_back(mean);
    m.var.push_back(sum_sq / m.n);
  }
  return m;
}

template <class BN>
BN Prepared(Index size, const Shape& shape) {
  BN bn(size);
  bn.SetInputShape(shape);
  bn.Weight() = dlb_test::RandomMatrix<double>(size, 1, 3, 0.5, 1.5);
  bn.Bias() = dlb_test::RandomMatrix<double>(size, 1, 4);
  return bn;
}

}  // namespace

TEST_CASE("BatchNorm2D training forward normalises each channel over batch and plane") {
  const Shape shape(3, 2, 3);
  auto bn = Prepared<BatchNorm2D<double>>(3, shape);
  Matrix<double> x = dlb_test::RandomMatrix<double>(shape.Size(), 4, 5, -2.0, 3.0);
  x.topRows(6).array() += 10.0;  // channel 0 far from zero: the variance must not suffer
  Matrix<double> y;
  bn.Forward(x, y, dlb::Mode::Train);
  const Moments m = ChannelMoments(x, shape);
  for (Index c = 0; c < 3; ++c)
    for (Index b = 0; b < 4; ++b)
      for (Index i = 0; i < 6; ++i) {
        const double expected = bn.Weight()(c, 0) * (x(c * 6 + i, b) - m.mean[c]) /
                                    std::sqrt(m.var[c] + 1e-5) + bn.Bias()(c, 0);
        CHECK(y(c * 6 + i, b) == Approx(expected).margin(1e-10));
      }
}

TEST_CASE("BatchNorm1D training forward normalises each feature over the batch") {
  auto bn = Prepared<BatchNorm1D<double>>(5, Shape(5));
  const Matrix<double> x = dlb_test::RandomMatrix<double>(5, 7, 6);
  Matrix<double> y;
  bn.Forward(x, y, dlb::Mode::Train);
  for (Index f = 0; f < 5; ++f) {
    const double mean = x.row(f).mean();
    const double var = (x.row(f).array() - mean).square().mean();
    for (Index b = 0; b < 7; ++b) {
      CHECK(y(f, b) == Approx(bn.Weight()(f, 0) * (x(f, b) - mean) / std::sqrt(var + 1e-5) +
                              bn.Bias()(f, 0)).margin(1e-10));
    }
  }
}

TEST_CASE("BatchNorm running statistics follow torch's update over several batches") {
  const Shape shape(2, 3, 2);
  BatchNorm2D<double> bn(2, 1e-5, 0.1);
  bn.SetInputShape(shape);
  std::vector<double> mean{0, 0}, var{1, 1};
  Matrix<double> y;
  for (int batch = 0; batch < 4; ++batch) {
    const Matrix<double> x =
        dlb_test::RandomMatrix<double>(shape.Size(), 3, 10 + batch, -1.0 + batch, 2.0 + 2 * batch);
    bn.Forward(x, y, dlb::Mode::Train);
    const Moments m = ChannelMoments(x, shape);
    for (Index c = 0; c < 2; ++c) {
      mean[c] = 0.9 * mean[c] + 0.1 * m.mean[c];
      var[c] = 0.9 * var[c] + 0.1 * m.var[c] * m.n / (m.n - 1);  // unbiased
    }
  }
  CHECK(bn.NumBatchesTracked() == 4);
  for (Index c = 0; c < 2; ++c) {
    CHECK(bn.RunningMean()(c, 0) == Approx(mean[c]).epsilon(1e-12));
    CHECK(bn.RunningVar()(c, 0) == Approx(var[c]).epsilon(1e-12));
  }

  // Inference uses the running statistics and leaves them alone.
  const Matrix<double> x = dlb_test::RandomMatrix<double>(shape.Size(), 2, 20);
  bn.Forward(x, y, dlb::Mode::Inference);
  CHECK(bn.NumBatchesTracked() == 4);
  for (Index c = 0; c < 2; ++c) {
    CHECK(bn.RunningMean()(c, 0) == Approx(mean[c]).epsilon(1e-12));
    for (Index i = 0; i < 6; ++i) {
      CHECK(y(c * 6 + i, 1) == Approx((x(c * 6 + i, 1) - mean[c]) / std::sqrt(var[c] + 1e-5)));
    }
  }
}

TEST_CASE("BatchNorm switches between batch and running statistics with the mode") {
  auto bn = Prepared<BatchNorm1D<double>>(3, Shape(3));
  const Matrix<double> x = dlb_test::RandomMatrix<double>(3, 6, 30, 2.0, 5.0);
  Matrix<double> train1, inference, train2;
  bn.Forward(x, train1, dlb::Mode::Train);
  bn.Forward(x, inference, dlb::Mode::Inference);
  bn.Forward(x, train2, dlb::Mode::Train);
  // Batch statistics do not depend on the running ones: the same batch gives the same Y.
  CHECK((train1 - train2).cwiseAbs().maxCoeff() < 1e-12);
  // After two updates the running mean is still far from the batch mean (~3.5).
  CHECK((train1 - inference).cwiseAbs().maxCoeff() > 0.5);
  // The model's mode reaches the layer.
  dlb::ModelNN<double> model(3);
  model.Add(BatchNorm1D<double>(3));
  model.SetMode(dlb::Mode::Inference);
  CHECK(model.Forward(x).isApprox(x / std::sqrt(1 + 1e-5), 1e-14));  // fresh: mean 0, variance 1
  CHECK(model.LayerAt<BatchNorm1D<double>>(0).NumBatchesTracked() == 0);
  model.SetMode(dlb::Mode::Train);
  model.Forward(x);
  CHECK(model.LayerAt<BatchNorm1D<double>>(0).NumBatchesTracked() == 1);
}

TEST_CASE("BatchNorm gradients match finite differences") {
  SECTION("BatchNorm2D, training") {
    auto bn = Prepared<BatchNorm2D<double>>(3, Shape(3, 2, 3));
    dlb_test::CheckLayerGradients(bn, dlb_test::RandomMatrix<double>(18, 4, 40), 41);
  }
  SECTION("BatchNorm1D, training") {
    auto bn = Prepared<BatchNorm1D<double>>(4, Shape(4));
    dlb_test::CheckLayerGradients(bn, dlb_test::RandomMatrix<double>(4, 5, 42, -2.0, 3.0), 43);
  }
  SECTION("BatchNorm2D, inference") {
    auto bn = Prepared<BatchNorm2D<double>>(2, Shape(2, 3, 3));
    Matrix<double> y;
    bn.Forward(dlb_test::RandomMatrix<double>(18, 3, 44, 1.0, 4.0), y, dlb::Mode::Train);
    dlb_test::CheckLayerGradients(bn, dlb_test::RandomMatrix<double>(18, 3, 45), 46, [] {},
                                  dlb::Mode::Inference);
  }
}

TEST_CASE("BatchNorm state uses torch's names, kinds and shapes") {
  dlb::ModelNN<float> model(Shape(2, 4, 4));
  model.Add(dlb::Conv2D<float>(2, 3, 3, 1, 1)).Add(BatchNorm2D<float>(3));
  const std::vector<dlb::StateRef<float>> refs = model.State();
  std::vector<std::string> names;
  for (const auto& ref : refs) names.push_back(ref.name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                          "1.running_mean", "1.running_var",
                                          "1.num_batches_tracked"});
  CHECK(refs[4].kind == dlb::StateKind::Buffer);
  CHECK(refs[6].kind == dlb::StateKind::Buffer);
  const dlb::StateDict state = model.SaveState();
  CHECK(state.At("1.weight").shape == std::vector<std::int64_t>{3});
  CHECK(state.At("1.running_var").shape == std::vector<std::int64_t>{3});
  CHECK(state.At("1.running_var").Values<float>() == std::vector<float>{1, 1, 1});
  const dlb::Tensor& tracked = state.At("1.num_batches_tracked");
  CHECK(tracked.dtype == dlb::DType::I64);
  CHECK(tracked.shape.empty());

  // Restored buffers reach the layer.
  dlb::StateDict changed = state;
  changed.InsertOrAssign("1.running_mean",
                         dlb::Tensor::FromValues(dlb::DType::F32, {3}, std::vector<float>{1, 2, 3}));
  changed.InsertOrAssign("1.num_batches_tracked",
                         dlb::Tensor::FromValues(dlb::DType::I64, {}, std::vector<std::int64_t>{7}));
  model.LoadState(changed);
  const auto& bn = model.LayerAt<BatchNorm2D<float>>(1);
  CHECK(bn.RunningMean()(2, 0) == 3.0f);
  CHECK(bn.NumBatchesTracked() == 7);
}

TEST_CASE("BatchNorm with a statistics reducer equals one process over the whole batch") {
  // Two "processes" (threads) each hold half of a batch; the reducer sums their buffers,
  // as MPI_Allreduce would.
  const Shape shape(2, 2, 3);
  const Matrix<double> x = dlb_test::RandomMatrix<double>(shape.Size(), 6, 50, -1.0, 3.0);
  const Matrix<double> dy = dlb_test::RandomMatrix<double>(shape.Size(), 6, 51);
  auto whole = Prepared<BatchNorm2D<double>>(2, shape);
  Matrix<double> y_whole, dx_whole;
  whole.Forward(x, y_whole, dlb::Mode::Train);
  whole.Backward(x, y_whole, dy, &dx_whole);

  std::vector<double> slots[2];
  int calls[2] = {0, 0};
  std::barrier sync(2);
  auto make_reducer = [&](int rank) {
    return [&, rank](double* sums, Index count) {
      ++calls[rank];
      slots[rank].assign(sums, sums + count);
      sync.arrive_and_wait();
      for (Index i = 0; i < count; ++i) sums[i] = slots[0][i] + slots[1][i];
      sync.arrive_and_wait();
    };
  };
  Matrix<double> y[2], dx[2], grad_gamma[2];
  std::vector<BatchNorm2D<double>> layers{Prepared<BatchNorm2D<double>>(2, shape),
                                          Prepared<BatchNorm2D<double>>(2, shape)};
  auto process = [&](int rank) {
    layers[rank].SetStatisticsReducer(make_reducer(rank));
    const Matrix<double> x_part = x.middleCols(3 * rank, 3);
    layers[rank].Forward(x_part, y[rank], dlb::Mode::Train);
    layers[rank].Backward(x_part, y[rank], dy.middleCols(3 * rank, 3), &dx[rank]);
    grad_gamma[rank] = *layers[rank].Parameters()[0].grad;
  };
  std::thread other(process, 1);
  process(0);
  other.join();

  CHECK(calls[0] == 2);
  CHECK(calls[1] == 2);
  for (int rank = 0; rank < 2; ++rank) {
    CHECK((y[rank] - y_whole.middleCols(3 * rank, 3)).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((dx[rank] - dx_whole.middleCols(3 * rank, 3)).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((layers[rank].RunningMean() - whole.RunningMean()).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((layers[rank].RunningVar() - whole.RunningVar()).cwiseAbs().maxCoeff() < 1e-12);
  }
  // Parameter gradients stay per process: their sum is the whole batch's.
  CHECK((grad_gamma[0] + grad_gamma[1] - *whole.Parameters()[0].grad).cwiseAbs().maxCoeff() <
        1e-12);
  // Inference never calls the reducer.
  layers[0].Forward(x, y[0], dlb::Mode::Inference);
  CHECK(calls[0] == 2);
}

TEST_CASE("BatchNorm names, specs and errors") {
  CHECK(BatchNorm2D<float>(32).Name() == "BatchNorm2D(32)");
  CHECK(BatchNorm1D<float>(128).Name() == "BatchNorm1D(128)");
  CHECK(BatchNorm2D<float>(32).Spec() ==
        dlb::LayerSpec{"BatchNorm2D", {{"channels", std::int64_t{32}}, {"eps", 1e-5}, {"momentum", 0.1}}});
  CHECK(BatchNorm1D<float>(8, 1e-3, 0.2).Spec() ==
        dlb::LayerSpec{"BatchNorm1D", {{"features", std::int64_t{8}}, {"eps", 1e-3}, {"momentum", 0.2}}});

  CHECK_THROWS_MATCHES(BatchNorm2D<float>(0), dlb::ArgumentError,
                       MessageContains({"BatchNorm2D", "channels must be >= 1, got 0"}));
  CHECK_THROWS_MATCHES(BatchNorm1D<float>(4, 0.0), dlb::ArgumentError,
                       MessageContains({"eps must be in (0, 1], got 0"}));
  // An eps that turns every output into 0 (or, in float, NaN) is refused too.
  CHECK_THROWS_MATCHES(BatchNorm1D<float>(4, 1e300), dlb::ArgumentError,
                       MessageContains({"eps must be in (0, 1], got 1"}));
  CHECK_THROWS_MATCHES(BatchNorm1D<float>(4, 1e-5, 1.5), dlb::ArgumentError,
                       MessageContains({"momentum must be in [0, 1]"}));

  dlb::ModelNN<float> model(Shape(32, 7, 7));
  CHECK_THROWS_MATCHES(model.Add(BatchNorm2D<float>(16)), dlb::ShapeError,
                       MessageContains({"layer 0 (BatchNorm2D(16)) needs 16 channels, got 32 x 7 x 7"}));
  CHECK_THROWS_MATCHES(model.Add(BatchNorm1D<float>(1568)), dlb::ShapeError,
                       MessageContains({"layer 0 (BatchNorm1D(1568)) needs a flat input of 1568 "
                                        "features, got 32 x 7 x 7 (BatchNorm2D(32) normalises channels)"}));
  dlb::ModelNN<float> flat(10);
  flat.Add(dlb::Linear<float>(10, 4));
  CHECK_THROWS_MATCHES(flat.Add(BatchNorm1D<float>(10)), dlb::ShapeError,
                       MessageContains({"layer 1 (BatchNorm1D(10)) needs a flat input of 10 features, got 4"}));
  flat.Add(BatchNorm1D<float>(4));

  // Training needs more than one value per group; inference does not.
  CHECK_THROWS_MATCHES(flat.Forward(Matrix<float>::Ones(10, 1)), dlb::ShapeError,
                       MessageContains({"BatchNorm1D(4): training needs more than one value per "
                                        "feature, got 1"}));
  flat.SetMode(dlb::Mode::Inference);
  CHECK_NOTHROW(flat.Forward(Matrix<float>::Ones(10, 1)));
}

TEST_CASE("BatchNorm gives the same results on 1 and 2 threads") {
  const int saved = dlb::NumThreads();
  const Shape shape(4, 8, 8);
  const Matrix<double> x = dlb_test::RandomMatrix<double>(shape.Size(), 64, 60);
  const Matrix<double> dy = dlb_test::RandomMatrix<double>(shape.Size(), 64, 61);
  Matrix<double> y[2], dx[2], grads[2];
  for (int threads : {1, 2}) {
    dlb::SetNumThreads(threads);
    auto bn = Prepared<BatchNorm2D<double>>(4, shape);
    bn.Forward(x, y[threads - 1], dlb::Mode::Train);
    bn.Backward(x, y[threads - 1], dy, &dx[threads - 1]);
    grads[threads - 1] = *bn.Parameters()[0].grad;
  }
  dlb::SetNumThreads(saved);
  CHECK((y[0] - y[1]).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((dx[0] - dx[1]).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((grads[0] - grads[1]).cwiseAbs().maxCoeff() < 1e-10);
}

TEST_CASE("BatchNorm in float stays accurate when the mean is large next to the spread", "[batch norm]") {
  // Issue 15: E[x^2] - E[x]^2 with float squares gave outputs 3% off here and a running
  // variance 7% off; at an offset of 10^4 the variance collapsed.
  const auto check = [](const dlb::Matrix<float>& x) {
    BatchNorm1D<float> narrow(1);
    BatchNorm1D<double> wide(1);
    narrow.SetInputShape(Shape(1));
    wide.SetInputShape(Shape(1));
    dlb::Matrix<float> y;
    dlb::Matrix<double> exact;
    narrow.Forward(x, y, dlb::Mode::Train);
    wide.Forward(x.cast<double>(), exact, dlb::Mode::Train);
    const double output_error = (y.cast<double>() - exact).cwiseAbs().maxCoeff();
    const double var_error = std::abs(static_cast<double>(narrow.RunningVar()(0, 0)) - wide.RunningVar()(0, 0)) /
                             wide.RunningVar()(0, 0);
    return std::pair{output_error, var_error};
  };
  dlb::Matrix<float> four(1, 4);
  four << 4000.5f, 4001.25f, 4002.75f, 4003.5f;
  const auto [output_error, var_error] = check(four);
  CHECK(output_error < 1e-5);  // outputs are O(1): as accurate as a float allows
  CHECK(var_error < 1e-6);
  // Unit spread at offsets 1000 and 10000: PyTorch's float32 is 1.3e-5 off at 1000; we stay
  // within 10 times that (in fact far below it).
  for (const float offset : {1000.0f, 10000.0f}) {
    dlb::Matrix<float> x = dlb_test::RandomMatrix<float>(1, 512, 7, -1.7, 1.7);
    x.array() += offset;
    const auto [error, relative_var] = check(x);
    INFO("offset " << offset);
    CHECK(error < 1.3e-4);
    CHECK(relative_var < 1e-5);
  }
}

TEST_CASE("TwoSumsInDouble adds every value in double, tails and short runs included",
          "[batchnorm]") {
  // The batch-norm statistics: partial sums in lanes, then the tail, then the lanes added.
  for (const dlb::Index n : {0, 1, 5, 15, 16, 17, 31, 33, 49, 196, 784}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (dlb::Index i = 0; i < n; ++i) {
      x[static_cast<std::size_t>(i)] = 0.37f * static_cast<float>(i % 11) - 1.5f;
    }
    long double sum = 0, squares = 0;
    for (const float v : x) {
      sum += v;
      squares += static_cast<long double>(v) * v;
    }
    const float* p = x.data();
    const auto sums = dlb::internal::TwoSumsInDouble(
        n, [p](dlb::Index i) { return p[i]; },
        [p](dlb::Index i) { return static_cast<double>(p[i]) * static_cast<double>(p[i]); });
    INFO("n = " << n);
    CHECK(sums[0] == Approx(static_cast<double>(sum)).margin(1e-12));
    CHECK(sums[1] == Approx(static_cast<double>(squares)).margin(1e-12));
  }
  // 4097^2 = 16785409 needs 25 bits: exact as a double term, 16785408 as a float product.
  const std::vector<float> big(37, 4097.0f);
  const float* p = big.data();
  const auto sums = dlb::internal::TwoSumsInDouble(
      37, [p](dlb::Index i) { return p[i]; },
      [p](dlb::Index i) { return static_cast<double>(p[i]) * static_cast<double>(p[i]); });
  CHECK(sums[0] == 37.0 * 4097.0);
  CHECK(sums[1] == 37.0 * 16785409.0);
}

TEST_CASE("TwoSumsInDouble adds in its documented lanes and order, bit for bit",
          "[batchnorm]") {
  // The contract that keeps the statistics the same on every machine and vector width: value
  // i in lane i mod 16, increasing i per lane, then the lanes pairwise (8, 4, 2, 1). Values of
  // mixed signs and magnitudes, so that any other order of the adds shows in the bits.
  for (const dlb::Index n : {0, 1, 7, 16, 17, 47, 196, 784, 1000}) {
    const dlb::Matrix<double> x =
        dlb_test::RandomMatrix<double>(n, 1, static_cast<std::uint64_t>(11 + n), -3.0, 3.0);
    const dlb::Matrix<float> values = (x.array() * (x.array() * 4).exp()).cast<float>();
    const float* p = values.data();
    std::array<double, 16> sums{}, squares{};
    for (dlb::Index i = 0; i < n; ++i) {
      const auto value = static_cast<double>(p[i]);
      sums[static_cast<std::size_t>(i % 16)] += value;
      squares[static_cast<std::size_t>(i % 16)] += value * value;
    }
    for (std::size_t width = 8; width >= 1; width /= 2) {
      for (std::size_t k = 0; k < width; ++k) {
        sums[k] += sums[k + width];
        squares[k] += squares[k + width];
      }
    }
    const auto result = dlb::internal::TwoSumsInDouble(
        n, [p](dlb::Index i) { return p[i]; },
        [p](dlb::Index i) { return static_cast<double>(p[i]) * static_cast<double>(p[i]); });
    INFO("n = " << n);
    CHECK(std::bit_cast<std::uint64_t>(result[0]) == std::bit_cast<std::uint64_t>(sums[0]));
    CHECK(std::bit_cast<std::uint64_t>(result[1]) == std::bit_cast<std::uint64_t>(squares[0]));
  }
}
