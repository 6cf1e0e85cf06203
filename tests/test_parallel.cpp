// The library's own threading (dlb::SetNumThreads > 1): every parallel loop covers its range
// exactly once, and products, layers, optimizer steps and batches give the same numbers as on
// one thread. The pool (core/parallel.hpp) runs with or without OpenMP; it is safe to call
// from several user threads at once (the last cases; build this test with -fsanitize=thread
// to check that, see bench/README.md "Contention"). The default thread count comes from the
// environment, the affinity mask and the cgroup CPU quota (core/cpu_count.hpp), read here
// from made-up values and cgroup trees.
#include <catch2/catch.hpp>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dlb/core/cpu_count.hpp"
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

TEST_CASE("GemmInto writes into a block or a Map in place, and refuses another shape") {
  const Matrix<double> a = dlb_test::RandomMatrix<double>(40, 12, 3);
  const Matrix<double> b = dlb_test::RandomMatrix<double>(7, 12, 4);
  const Matrix<double> expected = NaiveProduct(Op::None, a, Op::Transpose, b);  // 40 x 7
  dlb::GemmWorkspace<double> workspace;
  // Into rows 10..49 of a taller matrix (outer stride 60): the rows around stay untouched.
  Matrix<double> tall = Matrix<double>::Constant(60, 7, 5.0);
  dlb::GemmInto<double>(Op::None, a, Op::Transpose, b, tall.middleRows(10, 40), 0.0, workspace);
  CHECK(tall.middleRows(10, 40).isApprox(expected, 1e-12));
  CHECK((tall.topRows(10).array() == 5.0).all());
  CHECK((tall.bottomRows(10).array() == 5.0).all());
  // Into a Map over one column (a sample's 40 x 7 values), accumulating with beta = 1.
  Matrix<double> column = Matrix<double>::Ones(280, 1);
  Eigen::Map<Matrix<double>> view(column.data(), 40, 7);
  dlb::GemmInto<double>(Op::None, a, Op::Transpose, b, view, 1.0, workspace);
  CHECK(view.isApprox((expected.array() + 1.0).matrix(), 1e-12));
  Matrix<double> wrong = Matrix<double>::Zero(40, 6);
  REQUIRE_THROWS_MATCHES(
      dlb::GemmInto<double>(Op::None, a, Op::Transpose, b, wrong, 0.0, workspace),
      dlb::ShapeError, dlb_test::What(Catch::Matchers::Contains("C is 40 x 6 but the product is 40 x 7")));
  REQUIRE_THROWS_MATCHES(
      dlb::GemmInto<double>(Op::None, a, Op::None, b, wrong, 0.0, workspace), dlb::ShapeError,
      dlb_test::What(Catch::Matchers::Contains("inner sizes differ")));
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
    dlb::DataSet<double> data(x, y, {.batch_size = 128, .drop_last = true, .seed = 9});
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

// ---------------------------------------------------------------------------------------------
// The default thread count

namespace {

/// A fresh directory under the system's temporary directory, removed with its contents at the
/// end: a made-up cgroup tree.
struct TempTree {
  std::filesystem::path root;
  TempTree() {
    std::string pattern = (std::filesystem::temp_directory_path() / "dlb-cgroup-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    root = pattern;
  }
  ~TempTree() {
    std::error_code error;
    std::filesystem::remove_all(root, error);
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;
  void Write(const std::string& relative, const std::string& text) const {
    const std::filesystem::path path = root / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }
};

/// Sets an environment variable (nullptr: unsets it) for its lifetime.
struct EnvVar {
  std::string name;
  std::optional<std::string> saved;
  EnvVar(std::string variable, const char* value) : name(std::move(variable)) {
    if (const char* old = std::getenv(name.c_str())) saved = old;
    if (value != nullptr) {
      setenv(name.c_str(), value, 1);
    } else {
      unsetenv(name.c_str());
    }
  }
  ~EnvVar() {
    if (saved) {
      setenv(name.c_str(), saved->c_str(), 1);
    } else {
      unsetenv(name.c_str());
    }
  }
  EnvVar(const EnvVar&) = delete;
  EnvVar& operator=(const EnvVar&) = delete;
};

}  // namespace

TEST_CASE("thread-count variables hold a whole number >= 1, or OpenMP's list") {
  using dlb::internal::ParseThreadCount;
  CHECK(ParseThreadCount("4", false) == 4);
  CHECK(ParseThreadCount(" 3 \n", false) == 3);
  CHECK(ParseThreadCount("4,2", true) == 4);
  CHECK(ParseThreadCount("65536", false) == 65536);
  for (const char* bad : {"", " ", "0", "-1", "2.5", "abc", "4x", "4,2", "65537", "99999999999"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(ParseThreadCount(bad, false).has_value());
  }
  CHECK_FALSE(ParseThreadCount(",2", true).has_value());
}

TEST_CASE("the default thread count: DLB_NUM_THREADS, then OMP_NUM_THREADS, then the CPUs allowed") {
  using dlb::internal::ChooseThreadCount;
  CHECK(ChooseThreadCount("3", "5", 2, std::nullopt, 8) == 3);
  CHECK(ChooseThreadCount(nullptr, "5,1", 2, std::nullopt, 8) == 5);
  std::vector<std::string> ignored;
  CHECK(ChooseThreadCount("lots", "5", 2, 1.0, 8, &ignored) == 5);
  REQUIRE(ignored.size() == 1);
  CHECK(ignored[0] == "dlb: ignoring DLB_NUM_THREADS='lots': expected a whole number from 1 to 65536");
  CHECK(ChooseThreadCount("0", "", 2, std::nullopt, 8, &ignored) == 2);
  CHECK(ignored.size() == 3);
  // The affinity mask, cut by the cgroup quota rounded up; the hardware when the mask is unknown.
  CHECK(ChooseThreadCount(nullptr, nullptr, 4, std::nullopt, 8) == 4);
  CHECK(ChooseThreadCount(nullptr, nullptr, 4, 1.5, 8) == 2);
  CHECK(ChooseThreadCount(nullptr, nullptr, 4, 0.2, 8) == 1);
  CHECK(ChooseThreadCount(nullptr, nullptr, 4, 16.0, 8) == 4);
  CHECK(ChooseThreadCount(nullptr, nullptr, 0, 3.0, 6) == 3);
  CHECK(ChooseThreadCount(nullptr, nullptr, 0, std::nullopt, 6) == 6);
  CHECK(ChooseThreadCount(nullptr, nullptr, 0, std::nullopt, 0) == 1);
}

TEST_CASE("cgroup v2: the tightest cpu.max of the process's cgroup and its ancestors") {
  using dlb::internal::CgroupCpuLimit;
  TempTree tree;
  tree.Write("user.slice/cpu.max", "max 100000\n");
  tree.Write("user.slice/job/cpu.max", "250000 100000\n");
  tree.Write("tight/cpu.max", "100000 100000\n");
  tree.Write("tight/loose/cpu.max", "max 100000\n");
  CHECK(CgroupCpuLimit(tree.root, "0::/user.slice/job\n") == Approx(2.5));
  CHECK(CgroupCpuLimit(tree.root, "0::/tight/loose\n") == Approx(1.0));
  CHECK_FALSE(CgroupCpuLimit(tree.root, "0::/user.slice\n").has_value());
  CHECK_FALSE(CgroupCpuLimit(tree.root, "0::/\n").has_value());
  CHECK_FALSE(CgroupCpuLimit(tree.root, "").has_value());
  CHECK(dlb::internal::ParseCgroupV2CpuMax("50000 100000") == Approx(0.5));
  CHECK_FALSE(dlb::internal::ParseCgroupV2CpuMax("garbage").has_value());
  CHECK_FALSE(dlb::internal::ParseCgroupV2CpuMax("-1 100000").has_value());

  // A container with a cgroup namespace: its own cgroup is the mount's root, seen as "/".
  TempTree container;
  container.Write("cpu.max", "50000 100000\n");
  CHECK(CgroupCpuLimit(container.root, "0::/\n") == Approx(0.5));
  // A path the mount does not have (no namespace): the limit at the mount's root still counts.
  CHECK(CgroupCpuLimit(container.root, "0::/kubepods/pod1/abc\n") == Approx(0.5));
}

TEST_CASE("cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us under the cpu controller's mount") {
  using dlb::internal::CgroupCpuLimit;
  const std::string self = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n";
  TempTree joint;  // mounted as "cpu,cpuacct", without the "cpu" link
  joint.Write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "150000\n");
  joint.Write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  joint.Write("cpu,cpuacct/docker/cpu.cfs_quota_us", "-1\n");
  joint.Write("cpu,cpuacct/docker/cpu.cfs_period_us", "100000\n");
  CHECK(CgroupCpuLimit(joint.root, self) == Approx(1.5));

  TempTree unlimited;
  unlimited.Write("cpu/docker/abc/cpu.cfs_quota_us", "-1\n");
  unlimited.Write("cpu/docker/abc/cpu.cfs_period_us", "100000\n");
  CHECK_FALSE(CgroupCpuLimit(unlimited.root, self).has_value());
  CHECK_FALSE(CgroupCpuLimit(unlimited.root, "3:cpuset:/\n").has_value());

  // Without a cgroup namespace: /proc/self/cgroup names the host's path, the mount holds the
  // container's cgroup at its root.
  TempTree bind;
  bind.Write("cpu/cpu.cfs_quota_us", "200000\n");
  bind.Write("cpu/cpu.cfs_period_us", "100000\n");
  CHECK(CgroupCpuLimit(bind.root, "2:cpu:/docker/xyz\n") == Approx(2.0));
}

TEST_CASE("this process's default follows its affinity mask and the variables") {
  const EnvVar no_dlb("DLB_NUM_THREADS", nullptr), no_omp("OMP_NUM_THREADS", nullptr);
  cpu_set_t saved;
  REQUIRE(sched_getaffinity(0, sizeof saved, &saved) == 0);
  CHECK(dlb::internal::AffinityCpuCount() == CPU_COUNT(&saved));
  int first = 0;
  while (!CPU_ISSET(first, &saved)) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  // As under `taskset -c <first>`: one CPU allowed, one thread.
  REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  CHECK(dlb::internal::AffinityCpuCount() == 1);
  CHECK(dlb::internal::DetectThreadCount() == 1);
  {
    const EnvVar omp("OMP_NUM_THREADS", "3,1");
    CHECK(dlb::internal::DetectThreadCount() == 3);
    const EnvVar dlb_threads("DLB_NUM_THREADS", "5");
    CHECK(dlb::internal::DetectThreadCount() == 5);
  }
  REQUIRE(sched_setaffinity(0, sizeof saved, &saved) == 0);
  CHECK(dlb::internal::DetectThreadCount() >= 1);
  CHECK(dlb::DefaultNumThreads() >= 1);
}

// ---------------------------------------------------------------------------------------------
// The pool

TEST_CASE("part p of P covers n p / P up to n (p+1) / P, whichever thread runs it") {
  Threads scope(3);
  const Index n = 1000;
  std::vector<Index> begins(dlb::kMaxParallelParts, -1), lengths(dlb::kMaxParallelParts, -1);
  const int parts = dlb::ParallelRanges(n, 1 << 10, [&](int part, Index begin, Index length) {
    begins[static_cast<std::size_t>(part)] = begin;
    lengths[static_cast<std::size_t>(part)] = length;
  });
  REQUIRE(parts == 3);
  for (int p = 0; p < parts; ++p) {
    CHECK(begins[static_cast<std::size_t>(p)] == n * p / parts);
    CHECK(lengths[static_cast<std::size_t>(p)] == n * (p + 1) / parts - n * p / parts);
  }
}

TEST_CASE("a ParallelRanges inside a part runs inline, as one part") {
  // Catch's assertions are not thread-safe: parts record what they saw, checked afterwards.
  Threads scope(2);
  struct Seen {
    int parts = 0, inner_part = -1;
    Index inner_begin = -1, inner_length = -1;
    std::thread::id outer, inner;
  };
  std::vector<Seen> seen(dlb::kMaxParallelParts);
  const int parts = dlb::ParallelRanges(64, 1 << 10, [&](int part, Index, Index) {
    Seen& mine = seen[static_cast<std::size_t>(part)];
    mine.outer = std::this_thread::get_id();
    mine.parts = dlb::ParallelRanges(1 << 16, 1 << 10, [&](int inner, Index begin, Index length) {
      mine.inner_part = inner;
      mine.inner_begin = begin;
      mine.inner_length = length;
      mine.inner = std::this_thread::get_id();
    });
  });
  REQUIRE(parts == 2);
  for (int p = 0; p < parts; ++p) {
    const Seen& mine = seen[static_cast<std::size_t>(p)];
    CHECK(mine.parts == 1);
    CHECK(mine.inner_part == 0);
    CHECK(mine.inner_begin == 0);
    CHECK(mine.inner_length == Index{1} << 16);
    CHECK(mine.inner == mine.outer);
  }
}

TEST_CASE("an exception in a part reaches the caller, and the pool keeps working") {
  Threads scope(2);
  for (int round = 0; round < 20; ++round) {
    REQUIRE_THROWS_MATCHES(dlb::ParallelRanges(1000, 1 << 10,
                                               [](int part, Index, Index) {
                                                 if (part == 1) throw std::runtime_error("part 1");
                                               }),
                           std::runtime_error, Catch::Message("part 1"));
    std::atomic<Index> covered{0};
    CHECK(dlb::ParallelRanges(1000, 1 << 10, [&](int, Index, Index length) { covered += length; }) == 2);
    CHECK(covered == 1000);
  }
}

TEST_CASE("thread counts above kMaxParallelParts split into kMaxParallelParts parts") {
  Threads scope(dlb::kMaxParallelParts + 10);
  std::atomic<Index> covered{0};
  std::atomic<int> largest_part{-1};
  CHECK(dlb::ParallelRanges(10000, 1 << 10, [&](int part, Index, Index length) {
    covered += length;
    int seen = largest_part.load();
    while (part > seen && !largest_part.compare_exchange_weak(seen, part)) {
    }
  }) == dlb::kMaxParallelParts);
  CHECK(covered == 10000);
  CHECK(largest_part == dlb::kMaxParallelParts - 1);
}

TEST_CASE("ParallelRanges and Gemm from several user threads at once") {
  // A user may run the library from several threads (e.g. Forward on 4 threads). Each loop
  // must be complete and give the numbers it gives alone, whether it got the pool or ran its
  // parts inline. Built with -fsanitize=thread this also checks the pool's synchronization.
  Threads scope(3);
  const Matrix<double> a = dlb_test::RandomMatrix<double>(120, 90, 11);
  const Matrix<double> b = dlb_test::RandomMatrix<double>(90, 100, 12);
  Matrix<double> expected;
  dlb::Gemm<double>(Op::None, a, Op::None, b, expected);
  constexpr int kUsers = 4, kRounds = 60;
  constexpr Index kItems = 30000;
  // sum of i over 0 .. kItems-1, exact in doubles
  const double expected_sum = static_cast<double>(kItems) * (kItems - 1) / 2;
  std::vector<int> failures(kUsers, 0);
  std::vector<std::thread> users;
  for (int user = 0; user < kUsers; ++user) {
    users.emplace_back([&, user] {
      Matrix<double> c;
      for (int round = 0; round < kRounds; ++round) {
        std::array<double, dlb::kMaxParallelParts> partial{};
        const int parts = dlb::ParallelRanges(kItems, 64, [&](int part, Index begin, Index length) {
          double sum = 0;
          for (Index i = begin; i < begin + length; ++i) sum += static_cast<double>(i);
          partial[static_cast<std::size_t>(part)] = sum;
        });
        double total = 0;
        for (int p = 0; p < parts; ++p) total += partial[static_cast<std::size_t>(p)];
        if (parts != 3 || total != expected_sum) ++failures[static_cast<std::size_t>(user)];
        dlb::Gemm<double>(Op::None, a, Op::None, b, c);
        if (c != expected) ++failures[static_cast<std::size_t>(user)];
      }
    });
  }
  for (std::thread& user : users) user.join();
  for (int user = 0; user < kUsers; ++user) CHECK(failures[static_cast<std::size_t>(user)] == 0);
}
