// Conv2D: forward values against a naive loop written here, gradient checks in double for the
// input, the weight and the bias (with stride, padding and kh != kw variants), parameter
// layout (torch's {out, in, kh, kw}), shape and argument errors, and thread independence.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/blas_engine.hpp"
#include "dlb/core/threads.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/layer_registry.hpp"
#include "dlb/model/model.hpp"
#include "support/gradient_check.hpp"
#include "support/helpers.hpp"

using dlb::Conv2D;
using dlb::Index;
using dlb::Matrix;
using dlb::Shape;
using dlb_test::MessageContains;

namespace {

struct Geometry {
  std::string label;
  Shape in;
  Index out_channels;
  dlb::Size2D kernel, stride, padding;
};

// Square and rectangular kernels, strides and paddings, and a plane that the window does not
// tile (7 rows under stride 2: floor rule).
const std::vector<Geometry> kGeometries = {
    {"3x3, padding 1", {2, 5, 6}, 3, 3, 1, 1},
    {"2x3, stride 2x1, padding 1x0", {2, 5, 6}, 3, {2, 3}, {2, 1}, {1, 0}},
    {"3x3, stride 2, no padding, floor", {1, 7, 6}, 2, 3, 2, 0},
    {"1x2, stride 1x2, padding 0x1", {3, 4, 5}, 2, {1, 2}, {1, 2}, {0, 1}},
    {"5x5 with padding 2 on 3x4", {2, 3, 4}, 2, 5, 1, 2},
    // Stride 2 over even planes: implicit patches over the input's phases (the ResNet's
    // downsampling convolution and its 1x1 shortcut), with dX phase by phase.
    {"3x3, stride 2, padding 1 on 6x8: phases", {2, 6, 8}, 3, 3, 2, 1},
    {"1x1, stride 2 on 6x8: one phase", {3, 6, 8}, 2, 1, 2, 0},
    // 24 x 24 = 576 output positions: Conv2D::Plan::per_sample (the test below checks that),
    // with dX by the transposed convolution ("same", then "valid": its padding 2) or, under
    // stride 2, by col2im.
    {"3x3, padding 1 on 24x24, products per sample", {2, 24, 24}, 3, 3, 1, 1},
    {"3x3, no padding on 26x26, products per sample", {2, 26, 26}, 2, 3, 1, 0},
    {"3x3, stride 2, padding 1 on 48x48, products per sample", {1, 48, 48}, 2, 3, 2, 1},
};

Conv2D<double> MakeConv(const Geometry& g) {
  Conv2D<double> conv(g.in.channels, g.out_channels, g.kernel, g.stride, g.padding);
  conv.SetInputShape(g.in);
  conv.Weight() = dlb_test::RandomMatrix<double>(conv.Weight().rows(), conv.Weight().cols(), 11);
  conv.Bias() = dlb_test::RandomMatrix<double>(conv.Bias().rows(), 1, 12);
  return conv;
}

// torch.nn.Conv2d's definition, one output value at a time.
Matrix<double> NaiveConvolution(const Geometry& g, const Matrix<double>& weight,
                                const Matrix<double>& bias, const Matrix<double>& x) {
  const Index kh = g.kernel.height, kw = g.kernel.width;
  const Index ho = (g.in.height + 2 * g.padding.height - kh) / g.stride.height + 1;
  const Index wo = (g.in.width + 2 * g.padding.width - kw) / g.stride.width + 1;
  Matrix<double> y(g.out_channels * ho * wo, x.cols());
  for (Index b = 0; b < x.cols(); ++b) {
    for (Index o = 0; o < g.out_channels; ++o) {
      for (Index oy = 0; oy < ho; ++oy) {
        for (Index ox = 0; ox < wo; ++ox) {
          double sum = bias(o, 0);
          for (Index c = 0; c < g.in.channels; ++c) {
            for (Index ky = 0; ky < kh; ++ky) {
              for (Index kx = 0; kx < kw; ++kx) {
                const Index iy = oy * g.stride.height - g.padding.height + ky;
                const Index ix = ox * g.stride.width - g.padding.width + kx;
                if (iy < 0 || iy >= g.in.height || ix < 0 || ix >= g.in.width) continue;
                sum += weight(o, (c * kh + ky) * kw + kx) *
                       x((c * g.in.height + iy) * g.in.width + ix, b);
              }
            }
          }
          y((o * ho + oy) * wo + ox, b) = sum;
        }
      }
    }
  }
  return y;
}

}  // namespace

TEST_CASE("Conv2D forward matches torch's definition computed by a naive loop") {
  for (const Geometry& g : kGeometries) {
    SECTION(g.label) {
      Conv2D<double> conv = MakeConv(g);
      const Matrix<double> x = dlb_test::RandomMatrix<double>(g.in.Size(), 3, 13);
      Matrix<double> y;
      conv.Forward(x, y, dlb::Mode::Train);
      const Matrix<double> expected = NaiveConvolution(g, conv.Weight(), conv.Bias(), x);
      REQUIRE(y.rows() == conv.OutputShape(g.in).Size());
      REQUIRE(y.rows() == expected.rows());
      REQUIRE(y.cols() == 3);
      CHECK((y - expected).cwiseAbs().maxCoeff() < 1e-12);
    }
  }
}

TEST_CASE("Conv2D output shape follows torch's floor rule") {
  CHECK(Conv2D<float>(1, 32, 3, 1, 1).OutputShape({1, 28, 28}) == Shape(32, 28, 28));
  CHECK(Conv2D<float>(32, 64, 3, 1, 1).OutputShape({32, 14, 14}) == Shape(64, 14, 14));
  CHECK(Conv2D<float>(3, 8, 3, 2).OutputShape({3, 8, 7}) == Shape(8, 3, 3));
  CHECK(Conv2D<float>(3, 8, {1, 5}).OutputShape({3, 4, 5}) == Shape(8, 4, 1));
  CHECK(Conv2D<float>(1, 1, 3, 1, 4).OutputShape({1, 1, 1}) == Shape(1, 7, 7));
}

TEST_CASE("Conv2D gradients match finite differences (input, weight, bias)") {
  for (const Geometry& g : kGeometries) {
    SECTION(g.label) {
      Conv2D<double> conv = MakeConv(g);
      dlb_test::CheckLayerGradients(conv, dlb_test::RandomMatrix<double>(g.in.Size(), 2, 21), 22);
    }
  }
}

TEST_CASE("Conv2D Backward works again without a new Forward, and skips dX when not wanted") {
  const Geometry& g = kGeometries[1];
  Conv2D<double> conv = MakeConv(g);
  const Matrix<double> x = dlb_test::RandomMatrix<double>(g.in.Size(), 2, 31);
  Matrix<double> y, dx1, dx2;
  conv.Forward(x, y, dlb::Mode::Train);
  const Matrix<double> dy = dlb_test::RandomMatrix<double>(y.rows(), y.cols(), 32);
  conv.Backward(x, y, dy, &dx1);
  const Matrix<double> dw1 = *conv.Parameters()[0].grad;
  // The patch buffer now holds dP: a second Backward must rebuild the patches from X.
  conv.Backward(x, y, dy, &dx2);
  CHECK((*conv.Parameters()[0].grad - dw1).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((dx2 - dx1).cwiseAbs().maxCoeff() < 1e-12);
  conv.Backward(x, y, dy, nullptr);
  CHECK((*conv.Parameters()[0].grad - dw1).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("Conv2D parameters use torch's names, shapes and memory order") {
  Conv2D<double> conv(dlb::Conv2DOptions(2, 3, {2, 4}).Padding(1));
  auto params = conv.Parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0].name == "weight");
  CHECK(params[0].shape == std::vector<std::int64_t>{3, 2, 2, 4});
  CHECK(params[0].value->rows() == 3);
  CHECK(params[0].value->cols() == 2 * 2 * 4);
  CHECK(params[1].name == "bias");
  CHECK(params[1].value->rows() == 3);

  // Saved row-major, the weight is torch's {out, in, kh, kw} tensor: element (o, c, ky, kx)
  // at ((o * in + c) * kh + ky) * kw + kx.
  dlb::ModelNN<double> model(Shape(2, 5, 5));
  model.Add(Conv2D<double>(dlb::Conv2DOptions(2, 3, {2, 4}).Padding(1)));
  Matrix<double>& w = model.LayerAt<Conv2D<double>>(0).Weight();
  for (Index i = 0; i < w.size(); ++i) w.data()[i] = static_cast<double>(i);
  const dlb::StateDict state = model.SaveState();
  const dlb::Tensor& saved = state.At("0.weight");
  CHECK(saved.shape == std::vector<std::int64_t>{3, 2, 2, 4});
  const std::vector<double> values = saved.Values<double>();
  for (Index o = 0; o < 3; ++o)
    for (Index c = 0; c < 2; ++c)
      for (Index ky = 0; ky < 2; ++ky)
        for (Index kx = 0; kx < 4; ++kx) {
          CHECK(values[((o * 2 + c) * 2 + ky) * 4 + kx] == w(o, (c * 2 + ky) * 4 + kx));
        }
  CHECK(state.At("0.bias").shape == std::vector<std::int64_t>{3});
}

TEST_CASE("Conv2D options: stride, padding, no bias, initialisation; name and spec") {
  Conv2D<float> plain(1, 32, 3, 1, 1);
  CHECK(plain.Name() == "Conv2D(1 -> 32, 3x3, padding 1)");
  CHECK(plain.HasBias());
  Conv2D<float> strided(dlb::Conv2DOptions(16, 8, {3, 5}).Stride({2, 1}).Padding({1, 2}).Bias(false));
  CHECK(strided.Name() == "Conv2D(16 -> 8, 3x5, stride 2x1, padding 1x2, no bias)");
  CHECK(strided.Parameters().size() == 1);
  const dlb::LayerSpec spec = strided.Spec();
  CHECK(spec.type == "Conv2D");
  REQUIRE(spec.args.size() == 11);
  CHECK(spec.args[0] == std::pair<std::string, dlb::SpecValue>{"in_channels", std::int64_t{16}});
  CHECK(spec.args[3] == std::pair<std::string, dlb::SpecValue>{"kernel_width", std::int64_t{5}});
  CHECK(spec.args[4] == std::pair<std::string, dlb::SpecValue>{"stride_height", std::int64_t{2}});
  CHECK(spec.args[7] == std::pair<std::string, dlb::SpecValue>{"padding_width", std::int64_t{2}});
  CHECK(spec.args[8] == std::pair<std::string, dlb::SpecValue>{"bias", std::int64_t{0}});

  // Kaiming: std sqrt(2 / (in kh kw)); the sample deviation of 16*15*8 draws is close to it.
  Conv2D<double> kaiming(16, 64, {3, 5});
  const Matrix<double>& w = kaiming.Weight();
  const double stddev = std::sqrt(w.array().square().mean());
  CHECK(stddev == Approx(std::sqrt(2.0 / (16 * 15))).epsilon(0.05));
  CHECK(kaiming.Bias().isZero());
  Conv2D<double> constant(dlb::Conv2DOptions(2, 2, 2).WeightInit(dlb::Init::Const, 0.0));
  CHECK(constant.Weight().isZero());
}

TEST_CASE("Conv2D rejects invalid arguments with ArgumentError") {
  using dlb::ArgumentError;
  CHECK_THROWS_MATCHES(Conv2D<float>(0, 4, 3), ArgumentError,
                       MessageContains({"Conv2D(0 -> 4)", "channel counts must be >= 1"}));
  CHECK_THROWS_MATCHES(Conv2D<float>(1, 4, {3, 0}), ArgumentError,
                       MessageContains({"kernel must be at least 1x1, got 3x0"}));
  CHECK_THROWS_MATCHES(Conv2D<float>(1, 4, 3, 0), ArgumentError,
                       MessageContains({"stride must be at least 1", "got 0x0"}));
  CHECK_THROWS_MATCHES(Conv2D<float>(1, 4, 3, 1, {0, -1}), ArgumentError,
                       MessageContains({"padding must be at least 0", "got 0x-1"}));
}

TEST_CASE("ModelNN::Add names the Conv2D and both shapes when the input does not fit") {
  dlb::ModelNN<float> model(Shape(1, 28, 28));
  CHECK_THROWS_MATCHES(model.Add(Conv2D<float>(3, 8, 3)), dlb::ShapeError,
                       MessageContains({"layer 0 (Conv2D(3 -> 8, 3x3)) needs 3 input channels, "
                                        "got 1 x 28 x 28"}));
  dlb::ModelNN<float> flat(784);
  CHECK_THROWS_MATCHES(flat.Add(Conv2D<float>(1, 8, 3)), dlb::ShapeError,
                       MessageContains({"needs 1 input channel, got 784", "{1, 28, 28}"}));
  dlb::ModelNN<float> small(Shape(4, 2, 6));
  CHECK_THROWS_MATCHES(small.Add(Conv2D<float>(4, 8, 3)), dlb::ShapeError,
                       MessageContains({"layer 0 (Conv2D(4 -> 8, 3x3)) needs an input of at "
                                        "least 3 x 3 per channel (the 3x3 window), got 4 x 2 x 6"}));
  CHECK_NOTHROW(small.Add(Conv2D<float>(4, 8, 3, 1, 1)));
  CHECK(small.OutputShape() == Shape(8, 2, 6));
}

TEST_CASE("Conv2D checks the batch against its input shape") {
  Conv2D<float> conv(1, 2, 3);
  Matrix<float> y;
  CHECK_THROWS_MATCHES(conv.Forward(Matrix<float>::Zero(25, 1), y, dlb::Mode::Train),
                       dlb::ShapeError, MessageContains({"input shape is unknown"}));
  conv.SetInputShape({1, 5, 5});
  CHECK_THROWS_MATCHES(conv.Forward(Matrix<float>::Zero(24, 1), y, dlb::Mode::Train),
                       dlb::ShapeError,
                       MessageContains({"the batch has 24 rows", "1 x 5 x 5 needs 25"}));
  CHECK_THROWS_AS(conv.SetInputShape({2, 5, 5}), dlb::ShapeError);
  CHECK(conv.InputShape() == Shape(1, 5, 5));  // unchanged by the rejected shape
}

TEST_CASE("Conv2D gives the same results on 1 and 2 threads") {
  const int saved = dlb::NumThreads();
  const Geometry g{"", {3, 12, 11}, 8, 3, 1, 1};
  auto run = [&](int threads, Matrix<double>& y, Matrix<double>& dx, Matrix<double>& dw) {
    dlb::SetNumThreads(threads);
    Conv2D<double> conv = MakeConv(g);
    const Matrix<double> x = dlb_test::RandomMatrix<double>(g.in.Size(), 32, 41);
    conv.Forward(x, y, dlb::Mode::Train);
    conv.Backward(x, y, dlb_test::RandomMatrix<double>(y.rows(), y.cols(), 42), &dx);
    dw = *conv.Parameters()[0].grad;
  };
  Matrix<double> y1, dx1, dw1, y2, dx2, dw2;
  run(1, y1, dx1, dw1);
  run(2, y2, dx2, dw2);
  dlb::SetNumThreads(saved);
  CHECK((y1 - y2).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((dx1 - dx2).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((dw1 - dw2).cwiseAbs().maxCoeff() < 1e-10);
}

TEST_CASE("Conv2D in float agrees with double") {
  const Geometry& g = kGeometries[0];
  Conv2D<double> conv_d = MakeConv(g);
  Conv2D<float> conv_f(g.in.channels, g.out_channels, g.kernel, g.stride, g.padding);
  conv_f.SetInputShape(g.in);
  conv_f.Weight() = conv_d.Weight().cast<float>();
  conv_f.Bias() = conv_d.Bias().cast<float>();
  const Matrix<double> x = dlb_test::RandomMatrix<double>(g.in.Size(), 2, 51);
  Matrix<double> y_d;
  Matrix<float> y_f;
  conv_d.Forward(x, y_d, dlb::Mode::Train);
  conv_f.Forward(x.cast<float>(), y_f, dlb::Mode::Train);
  CHECK((y_f.cast<double>() - y_d).cwiseAbs().maxCoeff() < 1e-5);
}

TEST_CASE("Conv2D works through a batch in chunks with the same results as sample by sample") {
  // 'valid': the chunks' products (Plan::per_sample false); 'same': implicit patches.
  for (const Geometry& g : {Geometry{"valid", {8, 16, 16}, 4, 3, 1, 0},
                            Geometry{"same", {8, 16, 16}, 4, 3, 1, 1}}) {
    INFO(g.label);
    Conv2D<double> conv = MakeConv(g);
    REQUIRE(conv.ProductPlan().implicit_patches == (g.padding.height == 1));
    const Index batch = 20;
    REQUIRE(conv.SamplesPerChunk() < batch / 2);  // several chunks, the last one shorter
    REQUIRE(batch % conv.SamplesPerChunk() != 0);
    const Matrix<double> x = dlb_test::RandomMatrix<double>(g.in.Size(), batch, 61);
    Matrix<double> y, dx;
    conv.Forward(x, y, dlb::Mode::Train);
    const Matrix<double> dy = dlb_test::RandomMatrix<double>(y.rows(), batch, 62);
    conv.Backward(x, y, dy, &dx);
    const Matrix<double> dw = *conv.Parameters()[0].grad, db = *conv.Parameters()[1].grad;

    Matrix<double> dw_sum = Matrix<double>::Zero(dw.rows(), dw.cols());
    Matrix<double> db_sum = Matrix<double>::Zero(db.rows(), 1);
    for (Index j = 0; j < batch; ++j) {
      Matrix<double> y1, dx1;
      conv.Forward(x.col(j), y1, dlb::Mode::Train);
      conv.Backward(x.col(j), y1, dy.col(j), &dx1);
      CHECK((y1 - y.col(j)).cwiseAbs().maxCoeff() < 1e-12);
      CHECK((dx1 - dx.col(j)).cwiseAbs().maxCoeff() < 1e-12);
      dw_sum += *conv.Parameters()[0].grad;
      db_sum += *conv.Parameters()[1].grad;
    }
    CHECK((dw_sum - dw).cwiseAbs().maxCoeff() < 1e-10);
    CHECK((db_sum - db).cwiseAbs().maxCoeff() < 1e-10);
  }
}

// Planes of Conv2D::kPerSamplePositions output positions or more multiply sample by sample,
// in place in Y and dY; smaller ones through a chunk's rearranged products. Both agree with
// the naive loop (forward, above) and with finite differences (gradients, above); here the
// switch itself, without a bias too, and on 2 threads.
TEST_CASE("Conv2D multiplies large planes sample by sample, with and without a bias") {
  const Geometry& g = kGeometries[kGeometries.size() - 3];
  REQUIRE(MakeConv(g).ProductPlan().per_sample);
  REQUIRE(MakeConv(g).ProductPlan().transposed_input_gradient);
  REQUIRE(MakeConv(kGeometries[kGeometries.size() - 2]).ProductPlan().transposed_input_gradient);
  REQUIRE(MakeConv(kGeometries.back()).ProductPlan().per_sample);
  REQUIRE_FALSE(MakeConv(kGeometries.back()).ProductPlan().transposed_input_gradient);
  REQUIRE_FALSE(MakeConv(kGeometries[0]).ProductPlan().per_sample);
  // Shift windows ("same" widths, stride 1) run on implicit patches with the Eigen engine.
  CHECK(MakeConv(kGeometries[0]).ProductPlan().implicit_patches);
  CHECK(MakeConv(kGeometries[4]).ProductPlan().implicit_patches);
  CHECK(MakeConv(g).ProductPlan().implicit_patches);
  CHECK_FALSE(MakeConv(kGeometries[kGeometries.size() - 2]).ProductPlan().implicit_patches);
  CHECK_FALSE(MakeConv(kGeometries[1]).ProductPlan().implicit_patches);  // stride 2 over 5 rows
  // Stride 2 over even planes reads the input's phases.
  CHECK(MakeConv(kGeometries[5]).ProductPlan().implicit_patches);
  CHECK(MakeConv(kGeometries[6]).ProductPlan().implicit_patches);
  CHECK(MakeConv(kGeometries.back()).ProductPlan().implicit_patches);
  CHECK(Conv2D<float>(1, 32, 3, 1, 1).OutputShape({1, 28, 28}).height *
            Conv2D<float>(1, 32, 3, 1, 1).OutputShape({1, 28, 28}).width >=
        Conv2D<float>::kPerSamplePositions);  // the example CNN's first layer
  const int saved = dlb::NumThreads();
  for (const int threads : {1, 2}) {
    dlb::SetNumThreads(threads);
    Conv2D<double> conv(dlb::Conv2DOptions(g.in.channels, g.out_channels, g.kernel)
                            .Padding(g.padding)
                            .Bias(false));
    conv.SetInputShape(g.in);
    conv.Weight() = dlb_test::RandomMatrix<double>(conv.Weight().rows(), conv.Weight().cols(), 71);
    const Matrix<double> x = dlb_test::RandomMatrix<double>(g.in.Size(), 5, 72);
    Matrix<double> y;
    conv.Forward(x, y, dlb::Mode::Train);
    const Matrix<double> no_bias = Matrix<double>::Zero(g.out_channels, 1);
    CHECK((y - NaiveConvolution(g, conv.Weight(), no_bias, x)).cwiseAbs().maxCoeff() < 1e-12);
    dlb_test::CheckLayerGradients(conv, x.leftCols(2), 73);
  }
  dlb::SetNumThreads(saved);
}

// With the BLAS engine a shift window takes the explicit paths (im2col, the per-sample or
// chunk products, the transposed convolution or col2im): both engines give the same layer.
TEST_CASE("Conv2D on implicit patches agrees with the explicit paths of the BLAS engine") {
  if (!dlb::kHaveBlas) {
    WARN("[skipped] this build has no BLAS, so no engine takes the explicit paths here");
    return;
  }
  const std::optional<dlb::GemmEngine> saved = dlb::GemmEngineOverride();
  for (const Geometry& g : {kGeometries[0], kGeometries[4], kGeometries[5], kGeometries[6],
                            kGeometries[kGeometries.size() - 3], kGeometries.back()}) {
    INFO(g.label);
    Conv2D<double> conv = MakeConv(g);
    REQUIRE(conv.ProductPlan().implicit_patches);
    const Matrix<double> x = dlb_test::RandomMatrix<double>(g.in.Size(), 3, 81);
    const Matrix<double> dy = dlb_test::RandomMatrix<double>(conv.OutputShape(g.in).Size(), 3, 82);
    Matrix<double> y[2], dx[2], dw[2];
    for (int e = 0; e < 2; ++e) {
      dlb::SetGemmEngine(e == 0 ? dlb::GemmEngine::Eigen : dlb::GemmEngine::Blas);
      conv.Forward(x, y[e], dlb::Mode::Train);
      conv.Backward(x, y[e], dy, &dx[e]);
      dw[e] = *conv.Parameters()[0].grad;
    }
    dlb::SetGemmEngine(saved);
    CHECK((y[0] - y[1]).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((dx[0] - dx[1]).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((dw[0] - dw[1]).cwiseAbs().maxCoeff() < 1e-10);
  }
}

TEST_CASE("A convnet is rebuilt from its layers' specs by the default layer registry") {
  dlb::ModelNN<double> model(Shape(2, 9, 8), 3);
  model.Add(Conv2D<double>(dlb::Conv2DOptions(2, 4, {3, 2}).Stride({1, 2}).Padding(1)))
      .Add(dlb::BatchNorm2D<double>(4, 1e-3, 0.2))
      .Add(dlb::MaxPool2D<double>(dlb::Size2D(2, 1), 2))
      .Add(Conv2D<double>(dlb::Conv2DOptions(4, 3, 2).Bias(false).WeightInit(dlb::Init::Xavier)))
      .Add(dlb::AvgPool2D<double>(2, 1))
      .Add(dlb::GlobalAvgPool<double>())
      .Add(dlb::BatchNorm1D<double>(3))
      .Add(dlb::Linear<double>(3, 2));
  const Matrix<double> x = dlb_test::RandomMatrix<double>(model.InputSize(), 5, 71);
  model.Forward(x);  // moves the batch-norm statistics away from their initial values
  model.SetMode(dlb::Mode::Inference);
  const Matrix<double> expected = model.Forward(x);

  dlb::ModelNN<double> rebuilt(model.InputShape(), 99);
  for (Index i = 0; i < model.NumLayers(); ++i) {
    dlb::DefaultLayerRegistry<double>().AddTo(rebuilt, *model.LayerSpecAt(i));
    CHECK(rebuilt.LayerSpecAt(i) == model.LayerSpecAt(i));
  }
  CHECK(rebuilt.Summary() == model.Summary());
  rebuilt.LoadState(model.SaveState());
  rebuilt.SetMode(dlb::Mode::Inference);
  CHECK((rebuilt.Forward(x) - expected).cwiseAbs().maxCoeff() == 0);

  dlb::LayerSpec bad = *model.LayerSpecAt(0);
  bad.args[8].second = std::int64_t{2};  // "bias"
  CHECK_THROWS_MATCHES(dlb::DefaultLayerRegistry<double>().AddTo(rebuilt, bad),
                       dlb::ArgumentError, MessageContains({"'bias' must be 0 or 1, got 2"}));
}
