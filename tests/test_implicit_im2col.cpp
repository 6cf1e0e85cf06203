// dlb/core/implicit_im2col.hpp: products with a sample's patch matrix read straight from the
// image equal im2col followed by dlb::Gemm, for every window where the patches are shifts of
// the planes (kernels 1x1 to 5x5, paddings of the height from 0 to beyond the kernel, one to
// five channels, plane sizes that are no multiple of a packet), in float and double; padding
// reads zero even next to an infinity; nothing is allocated once the sizes have been seen. And
// the same with stride 2 over even planes, where the patches read the input's phases, and the
// input gradient's patches of every phase (ConfigureTransposed) against col2im.
// The cases' plane sizes and column counts reach every part of PatchesTimes's kernel: full
// tiles of 3 packets of rows by 8 (AVX-512) or 4 columns, the tiles of 2 and 1 packets and the
// single rows after them, and the columns after the last full tile (33 columns); and both paths
// of PatchesTransposeTimes: Eigen's kernel on planes under 8 packets, its own on larger ones
// (28 x 28; 17 x 19 with 75 columns of P and 33 of D, past the last full tile of each, and a
// last partial packet of positions; 26 x 24), in tiles of 3 x 8 (AVX-512) or 3 x 4 columns.
// CMake builds this program twice: for the generic target (SSE2 on x86-64: packets of 4
// floats) and, as test_implicit_im2col_native, for the machine (-march=native, as the examples
// and benchmarks are built: on AVX-512, packets of 16 floats and the larger tiles).

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "dlb/core/gemm.hpp"
#include "dlb/core/im2col.hpp"
#include "dlb/core/implicit_im2col.hpp"
#include "support/allocation_counter.hpp"
#include "support/helpers.hpp"

using dlb::Index;
using dlb::Matrix;
using dlb::Op;
using dlb::Shape;
using dlb::Size2D;
using dlb::Window2D;

namespace {

struct Case {
  Shape in;
  Size2D kernel, padding;
  Index outputs;  // n: columns of the right-hand side
  Size2D stride{1};
};

// Shift windows (stride 1, 2 pw = kw - 1), rows and planes of odd sizes; then stride 2.
const std::vector<Case> kCases = {
    {{2, 5, 6}, {3, 3}, {1, 1}, 3},    {{1, 28, 28}, {3, 3}, {1, 1}, 16},
    {{3, 9, 7}, {5, 5}, {2, 2}, 5},    {{4, 6, 11}, {1, 1}, {0, 0}, 7},
    {{2, 7, 5}, {3, 1}, {1, 0}, 4},    {{2, 6, 9}, {2, 3}, {0, 1}, 3},
    {{1, 4, 13}, {3, 3}, {4, 1}, 2},   // padding of the height beyond the kernel
    {{5, 17, 19}, {3, 5}, {1, 2}, 33}, {{2, 24, 24}, {3, 3}, {2, 1}, 6},
    // Stride 2 over even extents: the patches read the input's phases (polyphase).
    {{3, 8, 6}, {3, 3}, {1, 1}, 5, {2, 2}},     // the ResNet's downsampling 3x3
    {{2, 6, 10}, {1, 1}, {0, 0}, 4, {2, 2}},    // its 1x1 shortcut: one phase read
    {{2, 8, 7}, {3, 3}, {1, 1}, 3, {2, 1}},     // stride 2 down, 1 across
    {{1, 6, 8}, {2, 2}, {0, 0}, 3, {2, 2}},     // kw - 2 pw == 2
    {{1, 10, 8}, {5, 3}, {3, 1}, 2, {2, 2}},    // padding of the height beyond half the kernel
    {{4, 28, 28}, {3, 3}, {1, 1}, 17, {2, 2}},  // 14 x 14 positions: the weight gradient's kernel
};

std::string Describe(const Case& c) {
  return c.in.ToString() + ", kernel " + c.kernel.ToString() + ", padding " +
         c.padding.ToString() + ", stride " + c.stride.ToString();
}

template <class T>
T Tolerance() {
  return std::is_same_v<T, float> ? T(2e-5) : T(1e-12);
}

// The input gradient of a convolution W (outputs x C kh kw) at output gradient dY_b, phase by
// phase from ConfigureTransposed's patches, equals col2im(dY_b W): per phase (a, b),
// P'_ab M_ab with M_ab(o * taps + t, c) = W(o, (c kh + ky_t) kw + kx_t) is dX_b's values at rows
// a, a + sh, ... and columns b, b + sw, ... of every plane.
template <class T>
void CheckTransposedPatches(const Case& c, const Window2D& window, std::uint64_t seed) {
  const Size2D out = window.OutputSize(c.in);
  const Index positions = out.height * out.width, outputs = c.outputs;
  const Index kh = c.kernel.height, kw = c.kernel.width;
  const Index sh = c.stride.height, sw = c.stride.width;
  const Matrix<T> w = dlb_test::RandomMatrix<T>(outputs, c.in.channels * kh * kw, seed + 7);
  const Matrix<T> dy = dlb_test::RandomMatrix<T>(outputs * positions, 1, seed + 8);
  const Eigen::Map<const Matrix<T>> d(dy.data(), positions, outputs);
  Matrix<T> d_patches = d * w;
  Matrix<T> dx = Matrix<T>::Zero(c.in.Size(), 1);
  dlb::Col2Im<T>(d_patches, c.in, window, out, dx);
  dlb::ImplicitPatches<T> implicit;
  dlb::GemmWorkspace<T> workspace;
  const Index rows = c.in.height / sh, columns = c.in.width / sw;
  implicit.ConfigureTransposed(c.in, outputs, window);
  implicit.Load(dy.data());  // once for every phase
  for (Index a = 0; a < sh; ++a) {
    for (Index b = 0; b < sw; ++b) {
      INFO("phase " << a << ", " << b);
      implicit.SelectPhase(Size2D{a, b});
      REQUIRE(implicit.Rows() == rows * columns);
      Index taps = 0;
      dlb::ForEachPhaseTap(window, Size2D{a, b}, [&](Index, Index) { ++taps; });
      REQUIRE(implicit.Columns() == outputs * taps);
      Matrix<T> m_transposed(c.in.channels, outputs * taps);  // M_ab^T, as PatchesTimes reads it
      for (Index o = 0; o < outputs; ++o) {
        Index t = 0;
        dlb::ForEachPhaseTap(window, Size2D{a, b}, [&](Index ky, Index kx) {
          for (Index ch = 0; ch < c.in.channels; ++ch) {
            m_transposed(ch, o * taps + t) = w(o, (ch * kh + ky) * kw + kx);
          }
          ++t;
        });
      }
      Matrix<T> phase(rows * columns, c.in.channels);
      dlb::PatchesTimes<T>(implicit, Op::Transpose, m_transposed, phase, T(0), workspace);
      Matrix<T> expected(rows * columns, c.in.channels);
      for (Index ch = 0; ch < c.in.channels; ++ch) {
        for (Index y = 0; y < rows; ++y) {
          for (Index x = 0; x < columns; ++x) {
            expected(y * columns + x, ch) =
                dx((ch * c.in.height + y * sh + a) * c.in.width + x * sw + b, 0);
          }
        }
      }
      CHECK((phase - expected).cwiseAbs().maxCoeff() <=
            Tolerance<T>() * (1 + expected.cwiseAbs().maxCoeff()));
    }
  }
}

template <class T>
void CheckAgainstIm2Col(const Case& c, std::uint64_t seed) {
  INFO(Describe(c) << (std::is_same_v<T, float> ? ", float" : ", double"));
  const Window2D window{c.kernel, c.stride, c.padding};
  REQUIRE(dlb::PatchesAreShifts(c.in, window));
  const Size2D out = window.OutputSize(c.in);
  const Index positions = out.height * out.width;
  const Index columns = c.in.channels * c.kernel.height * c.kernel.width;
  const Matrix<T> x = dlb_test::RandomMatrix<T>(c.in.Size(), 2, seed);
  Matrix<T> patches;
  dlb::Im2Col<T>(x, c.in, window, out, patches);  // both samples' patch matrices

  dlb::ImplicitPatches<T> implicit;
  implicit.Configure(c.in, window);
  REQUIRE(implicit.Rows() == positions);
  REQUIRE(implicit.Columns() == columns);
  dlb::GemmWorkspace<T> workspace;
  const Matrix<T> b = dlb_test::RandomMatrix<T>(columns, c.outputs, seed + 1);
  const Matrix<T> w = dlb_test::RandomMatrix<T>(c.outputs, columns, seed + 2);  // B = W^T
  const Matrix<T> d = dlb_test::RandomMatrix<T>(positions, c.outputs, seed + 3);
  for (Index sample = 0; sample < 2; ++sample) {
    implicit.Load(x.col(sample).data());
    const auto p = patches.middleRows(sample * positions, positions);
    const Matrix<T> start = dlb_test::RandomMatrix<T>(positions, c.outputs, seed + 4);

    // beta 0 ignores y's old values: a NaN there does not survive.
    Matrix<T> y = Matrix<T>::Constant(positions, c.outputs, std::numeric_limits<T>::quiet_NaN());
    dlb::PatchesTimes<T>(implicit, Op::None, b, y, T(0), workspace);
    CHECK((y - p * b).cwiseAbs().maxCoeff() <= Tolerance<T>() * (1 + (p * b).cwiseAbs().maxCoeff()));

    y = start;
    dlb::PatchesTimes<T>(implicit, Op::Transpose, w, y, T(1), workspace);
    const Matrix<T> expected = start + p * w.transpose();
    CHECK((y - expected).cwiseAbs().maxCoeff() <= Tolerance<T>() * (1 + expected.cwiseAbs().maxCoeff()));

    // A column offset (a convolution's bias), over Y's old values or not.
    const Matrix<T> bias = dlb_test::RandomMatrix<T>(c.outputs, 1, seed + 6);
    const Matrix<T> offset = Matrix<T>::Ones(positions, 1) * bias.transpose();
    y.setConstant(std::numeric_limits<T>::quiet_NaN());
    dlb::PatchesTimes<T>(implicit, Op::Transpose, w, y, T(0), workspace, bias.data());
    const Matrix<T> with_bias = p * w.transpose() + offset;
    CHECK((y - with_bias).cwiseAbs().maxCoeff() <= Tolerance<T>() * (1 + with_bias.cwiseAbs().maxCoeff()));
    y = start;
    dlb::PatchesTimes<T>(implicit, Op::None, b, y, T(1), workspace, bias.data());
    const Matrix<T> both = start + p * b + offset;
    CHECK((y - both).cwiseAbs().maxCoeff() <= Tolerance<T>() * (1 + both.cwiseAbs().maxCoeff()));

    const Matrix<T> g_start = dlb_test::RandomMatrix<T>(columns, c.outputs, seed + 5);
    Matrix<T> g = g_start;
    dlb::PatchesTransposeTimes<T>(implicit, d, g, T(1), workspace);
    const Matrix<T> g_expected = g_start + p.transpose() * d;
    CHECK((g - g_expected).cwiseAbs().maxCoeff() <= Tolerance<T>() * (1 + g_expected.cwiseAbs().maxCoeff()));
    g.setConstant(std::numeric_limits<T>::quiet_NaN());
    dlb::PatchesTransposeTimes<T>(implicit, d, g, T(0), workspace);
    CHECK((g - p.transpose() * d).cwiseAbs().maxCoeff() <= Tolerance<T>() * (1 + g_expected.cwiseAbs().maxCoeff()));
  }
  CheckTransposedPatches<T>(c, window, seed);
}

}  // namespace

TEST_CASE("implicit im2col: products equal im2col and Gemm for every shift window", "[im2col]") {
  std::uint64_t seed = 100;
  for (const Case& c : kCases) {
    CheckAgainstIm2Col<float>(c, seed);
    CheckAgainstIm2Col<double>(c, seed);
    seed += 10;
  }
}

TEST_CASE("implicit im2col: PatchesTimes names the sizes that do not match", "[im2col]") {
  dlb::ImplicitPatches<float> implicit;
  implicit.Configure({2, 5, 6}, {Size2D{3}, Size2D{1}, Size2D{1}});  // P is 30 x 18
  dlb::GemmWorkspace<float> workspace;
  Matrix<float> y(30, 4);
  const Matrix<float> w(4, 17);  // op(B) = W^T is 17 x 4: one row short
  CHECK_THROWS_MATCHES(dlb::PatchesTimes<float>(implicit, Op::Transpose, w, y, 0.0f, workspace),
                       dlb::ShapeError,
                       dlb_test::MessageContains({"PatchesTimes: P is 30 x 18, op(B) 17 x 4, Y 30 x 4"}));
}

TEST_CASE("implicit im2col: a shift window has strides of 1 or 2 and rows as wide as the planes'", "[im2col]") {
  const Shape in{2, 8, 8};
  CHECK(dlb::PatchesAreShifts(in, {Size2D{3}, Size2D{1}, Size2D{1}}));
  CHECK(dlb::PatchesAreShifts(in, {Size2D{3}, Size2D{1}, Size2D{0, 1}}));  // rows may shrink
  CHECK(dlb::PatchesAreShifts(in, {Size2D{1}, Size2D{1}, Size2D{0}}));
  CHECK(dlb::PatchesAreShifts(in, {Size2D{3}, Size2D{2}, Size2D{1}}));     // stride 2: phases
  CHECK(dlb::PatchesAreShifts(in, {Size2D{1}, Size2D{2}, Size2D{0}}));
  CHECK(dlb::PatchesAreShifts(in, {Size2D{3}, Size2D{2, 1}, Size2D{1}}));
  CHECK_FALSE(dlb::PatchesAreShifts(in, {Size2D{3}, Size2D{1}, Size2D{0}}));   // 'valid': narrower
  CHECK_FALSE(dlb::PatchesAreShifts(in, {Size2D{2}, Size2D{1}, Size2D{1}}));   // even kernel: wider
  CHECK_FALSE(dlb::PatchesAreShifts(in, {Size2D{3}, Size2D{1, 2}, Size2D{1, 0}}));  // 3 of 4 wide
  CHECK_FALSE(dlb::PatchesAreShifts(in, {Size2D{3}, Size2D{3}, Size2D{1}}));   // stride 3
  CHECK_FALSE(dlb::PatchesAreShifts({2, 7, 8}, {Size2D{3}, Size2D{2}, Size2D{1}}));  // odd rows
  CHECK_FALSE(dlb::PatchesAreShifts({2, 8, 7}, {Size2D{3}, Size2D{2}, Size2D{1}}));  // odd columns
}

TEST_CASE("implicit im2col: a window that does not shift the planes is refused, naming it", "[im2col]") {
  dlb::ImplicitPatches<float> implicit;
  implicit.Configure({2, 8, 8}, {Size2D{3}, Size2D{1}, Size2D{1}});
  CHECK_THROWS_MATCHES(
      implicit.Configure({2, 8, 8}, {Size2D{3}, Size2D{3}, Size2D{1}}), dlb::ArgumentError,
      dlb_test::MessageContains({"ImplicitPatches: the window (kernel 3x3, stride 3x3, padding 1x1)",
                                 "needs a stride of 1, or of 2 over an even extent"}));
  CHECK(implicit.Rows() == 64);  // the previous configuration stays
  CHECK_THROWS_MATCHES(implicit.SelectPhase(Size2D{0}), dlb::ArgumentError,
                       dlb_test::MessageContains({"no phase 0x0 outside ConfigureTransposed"}));
  implicit.ConfigureTransposed({2, 8, 8}, 4, {Size2D{3}, Size2D{2}, Size2D{1}});
  CHECK_THROWS_MATCHES(implicit.SelectPhase(Size2D{2, 0}), dlb::ArgumentError,
                       dlb_test::MessageContains({"ImplicitPatches: no phase 2x0 of stride 2x2"}));
  CHECK(implicit.Rows() == 16);
  CHECK(implicit.Columns() == 4);  // phase (0, 0): the kernel's centre tap per output channel
  // Tables too large to build: a ShapeError, and the previous configuration stays whole.
  CHECK_THROWS_AS(implicit.Configure({1, Index{1} << 30, Index{1} << 30},
                                     {Size2D{3}, Size2D{2}, Size2D{1}}),
                  dlb::ShapeError);
  CHECK(implicit.Rows() == 16);
  CHECK(implicit.Columns() == 4);
  implicit.SelectPhase(Size2D{1});  // still ConfigureTransposed's: 4 taps per output channel
  CHECK(implicit.Columns() == 16);
}

TEST_CASE("implicit im2col: the padding reads zero next to an infinity", "[im2col]") {
  // An infinity in the first column of row 2: the patches of the previous row's last
  // position for kx = 2 (which would wrap onto it) must read the padding's zero, not it
  // (multiplying by a zero mask would give NaN).
  const Shape in{1, 4, 5};
  const Window2D window{Size2D{3}, Size2D{1}, Size2D{1}};
  Matrix<float> x = dlb_test::RandomMatrix<float>(in.Size(), 1, 7);
  x(2 * 5 + 0, 0) = std::numeric_limits<float>::infinity();
  Matrix<float> patches;
  dlb::Im2Col<float>(x, in, window, window.OutputSize(in), patches);
  dlb::ImplicitPatches<float> implicit;
  implicit.Configure(in, window);
  implicit.Load(x.data());
  const Matrix<float> ones = Matrix<float>::Ones(9, 1);
  Matrix<float> y(20, 1);
  dlb::GemmWorkspace<float> workspace;
  dlb::PatchesTimes<float>(implicit, Op::None, ones, y, 0.0f, workspace);
  const Matrix<float> expected = patches * ones;
  for (Index p = 0; p < 20; ++p) {
    INFO("position " << p);
    CHECK(std::isfinite(y(p, 0)) == std::isfinite(expected(p, 0)));
    if (std::isfinite(expected(p, 0))) CHECK(std::abs(y(p, 0) - expected(p, 0)) < 1e-5f);
  }
  CHECK(std::isfinite(y(1 * 5 + 4, 0)));  // the wrap onto the infinity is masked
  CHECK_FALSE(std::isfinite(y(2 * 5 + 0, 0)));
}

TEST_CASE("implicit im2col: nothing is allocated once the sizes have been seen", "[im2col]") {
  const Case& c = kCases[1];
  const Window2D window{c.kernel, Size2D{1}, c.padding};
  const Index positions = 28 * 28, columns = 9;
  const Matrix<float> x = dlb_test::RandomMatrix<float>(c.in.Size(), 1, 3);
  const Matrix<float> w = dlb_test::RandomMatrix<float>(c.outputs, columns, 4);
  Matrix<float> y(positions, c.outputs), g(columns, c.outputs);
  dlb::ImplicitPatches<float> implicit;
  dlb::GemmWorkspace<float> workspace;
  // And a strided convolution's patches over the input's phases, and the input gradient's
  // patches phase by phase (14 x 14 positions: the last rows of PatchesTimes one by one).
  const Window2D strided{Size2D{3}, Size2D{2}, Size2D{1}};
  dlb::ImplicitPatches<float> phases, gradient;
  Matrix<float> strided_y(14 * 14, c.outputs), strided_g(columns, c.outputs);
  Matrix<float> phase_dx(14 * 14, 1);
  const Matrix<float> phase_weight = dlb_test::RandomMatrix<float>(1, 4 * c.outputs, 5);
  auto run = [&] {
    implicit.Configure(c.in, window);
    implicit.Load(x.data());
    dlb::PatchesTimes<float>(implicit, Op::Transpose, w, y, 0.0f, workspace);
    dlb::PatchesTransposeTimes<float>(implicit, y, g, 0.0f, workspace);
    phases.Configure(c.in, strided);
    phases.Load(x.data());
    dlb::PatchesTimes<float>(phases, Op::Transpose, w, strided_y, 0.0f, workspace);
    dlb::PatchesTransposeTimes<float>(phases, strided_y, strided_g, 0.0f, workspace);
    gradient.ConfigureTransposed(c.in, c.outputs, strided);
    gradient.Load(strided_y.data());
    gradient.SelectPhase(Size2D{1});  // rows and columns shifted by 0 and -1: 4 taps
    dlb::PatchesTimes<float>(gradient, Op::Transpose, phase_weight, phase_dx, 0.0f, workspace);
  };
  run();
  const long before = dlb_test::Allocations();
  run();
  run();
  const long made = dlb_test::Allocations() - before;
  CHECK(made == 0);
}
