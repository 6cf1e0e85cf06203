// The library's own threading (dlb::SetNumThreads > 1): every parallel loop covers its range
// exactly once, and products, layers, optimizer steps and batches give the same numbers as on
// one thread.
//
// Without OpenMP the library runs everything on the calling thread, so the cases that compare
// threads would compare one thread with itself: they report "[skipped]" in a Catch warning
// instead, which CTest shows as Skipped (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt).
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "dlb/core/gemm.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/threads.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/model/mlp.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/nesterov.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/training/divergence_guard.hpp"
#include "support/helpers.hpp"

using dlb::Index;
using dlb::Matrix;
using dlb::Op;

namespace {

/// Sets the library's thread count for its lifetime.
struct Threads {
  int saved = dlb::NumThreads();
  explicit Threads(int n) { dlb::SetNumThreads(n); }
  ~Threads() { dlb::SetNumThreads(saved); }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
};

/// op(A) op(B) computed naively in long double, the reference for Gemm.
Matrix<double> NaiveProduct(Op op_a, const Matrix<double>& a, Op op_b, const Matrix<double>& b) {
  const Matrix<double> lhs = op_a == Op::None ? a : Matrix<double>(a.transpose());
  const Matrix<double> rhs = op_b == Op::None ? b : Matrix<double>(b.transpose());
  Matrix<double> c(lhs.rows(), rhs.cols());
  for (Index i = 0; i < c.rows(); ++i) {
    for (Index j = 0; j < c.cols(); ++j) {
      long double sum = 0;
      for (Index k = 0; k < lhs.cols(); ++k) sum += static_cast<long double>(lhs(i, k)) * rhs(k, j);
      c(i, j) = static_cast<double>(sum);
    }
  }
  return c;
}

/// True when this build runs the library's loops on several threads. Otherwise warns with the
/// "[skipped]" marker that CTest turns into a Skipped result; the caller then returns.
bool HaveThreads() {
#ifdef _OPENMP
  return true;
#else
  WARN("[skipped] built without OpenMP: the library runs on one thread, nothing to compare");
  return false;
#endif
}

}  // namespace

TEST_CASE("ParallelRanges covers 0..n-1 exactly once, in contiguous parts") {
  for (int threads : {1, 2, 3, 7}) {
    Threads scope(threads);
    for (Index n : {Index{1}, Index{2}, Index{5}, Index{1000}, Index{100003}}) {
      std::vector<int> hits(static_cast<std::size_t>(n), 0);
      const int parts = dlb::ParallelRanges(n, 1 << 10, [&](int, Index begin, Index length) {
        for (Index i = begin; i < begin + length; ++i) ++hits[static_cast<std::size_t>(i)];
      });
      CHECK(parts >= 1);
      CHECK(parts <= threads);
      for (int h : hits) REQUIRE(h == 1);
    }
  }
}

TEST_CASE("ParallelRanges splits a large enough loop into one part per thread") {
  if (!HaveThreads()) return;
  for (int threads : {1, 2, 3, 7}) {
    Threads scope(threads);
    for (Index n : {Index{1}, Index{2}, Index{5}, Index{1000}, Index{100003}}) {
      INFO(threads << " threads, n " << n);
      const int parts = dlb::ParallelRanges(n, 1 << 10, [](int, Index, Index) {});
      // n * cost >= 2^15 from n = 32 on: small loops stay on one thread.
      const Index expected = n < 32 ? 1 : std::min<Index>(threads, n);
      CHECK(parts == expected);
      std::vector<int> seen(static_cast<std::size_t>(dlb::kMaxParallelParts), 0);
      dlb::ParallelRanges(n, 1 << 10, [&](int part, Index, Index) { seen[part] = 1; });
      int distinct = 0;
      for (int v : seen) distinct += v;
      CHECK(distinct == expected);
    }
  }
}

TEST_CASE("Gemm matches a naive product for every transpose combination and thread count") {
  const Matrix<double> a = dlb_test::RandomMatrix<double>(170, 90, 1);
  const Matrix<double> b = dlb_test::RandomMatrix<double>(90, 130, 2);
  const Matrix<double> at = a.transpose(), bt = b.transpose();
  const Matrix<double> expected = NaiveProduct(Op::None, a, Op::None, b);
  for (int threads : {1, 2, 3}) {
    Threads scope(threads);
    Matrix<double> c;
    dlb::Gemm<double>(Op::None, a, Op::None, b, c);
    CHECK(c.isApprox(expected, 1e-12));
    dlb::Gemm<double>(Op::Transpose, at, Op::None, b, c);
    CHECK(c.isApprox(expected, 1e-12));
    dlb::Gemm<double>(Op::None, a, Op::Transpose, bt, c);
    CHECK(c.isApprox(expected, 1e-12));
    dlb::Gemm<double>(Op::Transpose, at, Op::Transpose, bt, c);
    CHECK(c.isApprox(expected, 1e-12));
    // Wide result (split by columns) and beta = 1 accumulation onto existing values.
    Matrix<double> wide = Matrix<double>::Ones(130, 170);
    dlb::Gemm<double>(Op::Transpose, b, Op::Transpose, a, wide, 1.0);
    CHECK(wide.isApprox((expected.transpose().array() + 1.0).matrix(), 1e-12));
    dlb::Gemm<double>(Op::None, bt, Op::None, at, c);
    CHECK(c.isApprox(expected.transpose(), 1e-12));
  }
}

TEST_CASE("Gemm rejects mismatched inner sizes and a wrong C for beta != 0") {
  const Matrix<double> a = Matrix<double>::Ones(3, 4), b = Matrix<double>::Ones(5, 2);
  Matrix<double> c;
  REQUIRE_THROWS_MATCHES(dlb::Gemm<double>(Op::None, a, Op::None, b, c), dlb::ShapeError,
                         dlb_test::What(Catch::Matchers::Contains("inner sizes differ")));
  Matrix<double> wrong = Matrix<double>::Zero(2, 2);
  const Matrix<double> square = Matrix<double>::Ones(3, 3);
  REQUIRE_THROWS_MATCHES(dlb::Gemm<double>(Op::None, square, Op::None, square, wrong, 1.0),
                         dlb::ShapeError, dlb_test::What(Catch::Matchers::Contains("C is 2 x 2")));
}

TEST_CASE("training steps on two threads give the one-thread numbers") {
  if (!HaveThreads()) return;
  // Gathering, every layer, the loss, the guard and two update rules, run on one and on two
  // threads from the same seed: only the summation order inside products may differ.
  const Matrix<double> x = dlb_test::RandomMatrix<double>(300, 512, 3);
  dlb::Labels y(512);
  for (Index j = 0; j < y.size(); ++j) y(j) = static_cast<dlb::Label>(j % 10);

  auto train = [&](int threads, bool nesterov) {
    Threads scope(threads);
    dlb::ModelNN<double> model =
        dlb::MakeMlp<double>(300, {200, 120}, 10, dlb::Activation::Tanh, dlb::Init::Xavier, 5);
    dlb::Optimizer<double> optimizer =
        nesterov ? dlb::Optimizer<double>(model, dlb::Nesterov<double>(0.05))
                 : dlb::Optimizer<double>(model, dlb::Adam<double>(1e-3));
    dlb::DivergenceGuard<double> guard(optimizer.Parameters());
    dlb::DataSet<double> data(x, y, 128, true, true, 9);
    dlb::CrossEntropyLoss<double> loss;
    Matrix<double> dlogits;
    std::vector<double> losses;
    for (const auto& batch : data) {
      losses.push_back(loss.Compute(model.Forward(batch.x), batch.y, dlogits));
      model.Backward(dlogits);
      guard.CheckGradients(1, 1);
      guard.Snapshot();
      optimizer.Step();
      guard.CheckParametersOrRestore(1, 1);
    }
    std::vector<Matrix<double>> params;
    for (const auto& p : model.Parameters()) params.push_back(*p.value);
    return std::make_pair(losses, params);
  };
  for (bool nesterov : {false, true}) {
    const auto [losses1, params1] = train(1, nesterov);
    const auto [losses2, params2] = train(2, nesterov);
    REQUIRE(losses1.size() == 4);
    for (std::size_t i = 0; i < losses1.size(); ++i) CHECK(losses2[i] == Approx(losses1[i]).epsilon(1e-12));
    for (std::size_t i = 0; i < params1.size(); ++i) CHECK(params2[i].isApprox(params1[i], 1e-12));
  }
}
