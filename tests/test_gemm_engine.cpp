// The choice of the engine that runs dlb::Gemm's products (core/blas_engine.hpp): the pure
// decision for every kind of machine, the run-time override, and the products themselves on
// each engine. The case tagged [generic-core] is hidden: CTest runs it alone under
// OPENBLAS_CORETYPE=PRESCOTT, which makes OpenBLAS run its generic SSE3 kernels whatever the
// CPU (how Debian's OpenBLAS 0.3.21 behaves on CPUs newer than it knows).
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "dlb/core/blas_engine.hpp"
#include "dlb/core/gemm.hpp"
#include "support/helpers.hpp"

using Catch::Matchers::Contains;
using dlb::GemmEngine;
using dlb::GemmEngineFacts;
using dlb::Index;
using dlb::Matrix;
using dlb::Op;
using dlb::SimdLevel;

#ifdef DLB_HAVE_BLAS
// Counting stand-ins for the BLAS entry points: the test program's own definitions take
// precedence over the library's, count the calls and forward to the library's (RTLD_NEXT), so
// a test can tell whether a product ran in the BLAS at all.
namespace {
int blas_calls = 0;
template <class Fn>
Fn NextDefinition(const char* symbol) {
  static_assert(sizeof(Fn) == sizeof(void*));
  void* fn = dlsym(RTLD_NEXT, symbol);
  if (fn == nullptr) std::abort();  // the BLAS the build linked must define it
  return reinterpret_cast<Fn>(fn);
}
}  // namespace

extern "C" int sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
                      const float* alpha, const float* a, const int* lda, const float* b,
                      const int* ldb, const float* beta, float* c, const int* ldc) {
  ++blas_calls;
  static const auto next = NextDefinition<decltype(&sgemm_)>("sgemm_");
  return next(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

extern "C" int dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
                      const double* alpha, const double* a, const int* lda, const double* b,
                      const int* ldb, const double* beta, double* c, const int* ldc) {
  ++blas_calls;
  static const auto next = NextDefinition<decltype(&dgemm_)>("dgemm_");
  return next(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
#else
namespace {
int blas_calls = 0;
}  // namespace
#endif

namespace {

/// Runs dlb::Gemm's products on one engine for its lifetime.
struct EngineScope {
  std::optional<GemmEngine> saved = dlb::GemmEngineOverride();
  explicit EngineScope(GemmEngine engine) { dlb::SetGemmEngine(engine); }
  ~EngineScope() { dlb::SetGemmEngine(saved); }
  EngineScope(const EngineScope&) = delete;
  EngineScope& operator=(const EngineScope&) = delete;
};

std::vector<GemmEngine> Engines() {
  if (dlb::kHaveBlas) return {GemmEngine::Eigen, GemmEngine::Blas};
  return {GemmEngine::Eigen};
}

GemmEngineFacts OpenBlasFacts(const std::string& core, SimdLevel cpu, SimdLevel eigen) {
  GemmEngineFacts facts;
  facts.blas_linked = true;
  facts.blas_name = "OpenBLAS 0.3.21";
  facts.openblas_core = core;
  facts.cpu = cpu;
  facts.eigen = eigen;
  return facts;
}

/// op(A) op(B) + beta C0 computed naively in long double, the reference for Gemm.
template <class T>
Matrix<T> NaiveGemm(Op op_a, const Matrix<T>& a, Op op_b, const Matrix<T>& b, T beta,
                    const Matrix<T>& c0) {
  const Matrix<T> lhs = op_a == Op::None ? a : Matrix<T>(a.transpose());
  const Matrix<T> rhs = op_b == Op::None ? b : Matrix<T>(b.transpose());
  Matrix<T> c(lhs.rows(), rhs.cols());
  for (Index i = 0; i < c.rows(); ++i) {
    for (Index j = 0; j < c.cols(); ++j) {
      long double sum = beta == T(0) ? 0.0L : static_cast<long double>(beta) * c0(i, j);
      for (Index k = 0; k < lhs.cols(); ++k) sum += static_cast<long double>(lhs(i, k)) * rhs(k, j);
      c(i, j) = static_cast<T>(sum);
    }
  }
  return c;
}

/// Every transpose combination and beta 0, 1 and 0.5, at sizes that span several of Eigen's
/// blocks (k > its kc on common CPUs) and odd edges; checks each against NaiveGemm.
template <class T>
void CheckProducts(double tolerance) {
  const Index m = 67, n = 45, k = 600;
  for (Op op_a : {Op::None, Op::Transpose}) {
    for (Op op_b : {Op::None, Op::Transpose}) {
      const Matrix<T> a = op_a == Op::None ? dlb_test::RandomMatrix<T>(m, k, 1)
                                           : dlb_test::RandomMatrix<T>(k, m, 1);
      const Matrix<T> b = op_b == Op::None ? dlb_test::RandomMatrix<T>(k, n, 2)
                                           : dlb_test::RandomMatrix<T>(n, k, 2);
      for (T beta : {T(0), T(1), T(0.5)}) {
        INFO("op_a " << (op_a == Op::None ? "N" : "T") << ", op_b "
                     << (op_b == Op::None ? "N" : "T") << ", beta " << beta);
        const Matrix<T> c0 = dlb_test::RandomMatrix<T>(m, n, 3);
        Matrix<T> c = c0;
        dlb::Gemm<T>(op_a, a, op_b, b, c, beta);
        CHECK(c.isApprox(NaiveGemm<T>(op_a, a, op_b, b, beta, c0), static_cast<T>(tolerance)));
      }
    }
  }
}

}  // namespace

TEST_CASE("OpenBlasCoreSimd knows the x86-64 cores of OpenBLAS and no others") {
  CHECK(dlb::OpenBlasCoreSimd("Prescott") == SimdLevel::Sse);
  CHECK(dlb::OpenBlasCoreSimd("PRESCOTT") == SimdLevel::Sse);  // OPENBLAS_CORETYPE's spelling
  for (const char* core : {"Katmai", "Core2", "Nehalem", "Barcelona", "Opteron_SSE3", "Atom"}) {
    CHECK(dlb::OpenBlasCoreSimd(core) == SimdLevel::Sse);
  }
  CHECK(dlb::OpenBlasCoreSimd("Sandybridge") == SimdLevel::Avx);
  CHECK(dlb::OpenBlasCoreSimd("Piledriver") == SimdLevel::Avx);
  CHECK(dlb::OpenBlasCoreSimd("Haswell") == SimdLevel::Avx2);
  CHECK(dlb::OpenBlasCoreSimd("Zen") == SimdLevel::Avx2);
  CHECK(dlb::OpenBlasCoreSimd("SkylakeX") == SimdLevel::Avx512);
  CHECK(dlb::OpenBlasCoreSimd("Cooperlake") == SimdLevel::Avx512);
  CHECK(dlb::OpenBlasCoreSimd("SapphireRapids") == SimdLevel::Avx512);
  for (const char* other : {"Unknown", "NEOVERSEN1", "POWER9", "", "Prescott2"}) {
    CHECK(dlb::OpenBlasCoreSimd(other) == SimdLevel::None);
  }
}

TEST_CASE("ChooseGemmEngine: without a BLAS the products run in Eigen's kernels") {
  GemmEngineFacts facts;
  facts.cpu = SimdLevel::Avx2;
  facts.eigen = SimdLevel::Avx2;
  auto choice = dlb::ChooseGemmEngine(facts);
  CHECK(choice.engine == GemmEngine::Eigen);
  CHECK(choice.description == "Eigen (AVX2 kernels)");
  facts.eigen = SimdLevel::Sse;
  choice = dlb::ChooseGemmEngine(facts);
  CHECK(choice.engine == GemmEngine::Eigen);
  CHECK_THAT(choice.description, Contains("SSE kernels") && Contains("this CPU has AVX2") &&
                                     Contains("-march=native"));
}

TEST_CASE("ChooseGemmEngine keeps OpenBLAS on a core that matches the CPU") {
  auto choice = dlb::ChooseGemmEngine(OpenBlasFacts("Haswell", SimdLevel::Avx2, SimdLevel::Sse));
  CHECK(choice.engine == GemmEngine::Blas);
  CHECK(choice.description == "OpenBLAS 0.3.21 (Haswell kernels)");
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("Haswell", SimdLevel::Avx2, SimdLevel::Avx2));
  CHECK(choice.engine == GemmEngine::Blas);
  CHECK(choice.description ==
        "OpenBLAS 0.3.21 (Haswell kernels); stride-1 and 2 convolutions: Eigen (AVX2 kernels, patches "
        "read from the image)");
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("Haswell", SimdLevel::Avx2, SimdLevel::Avx512));
  CHECK(choice.engine == GemmEngine::Blas);
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("SkylakeX", SimdLevel::Avx512, SimdLevel::Avx512));
  CHECK(choice.engine == GemmEngine::Blas);
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("SkylakeX", SimdLevel::Avx512, SimdLevel::Sse));
  CHECK(choice.engine == GemmEngine::Blas);
  CHECK(choice.description == "OpenBLAS 0.3.21 (SkylakeX kernels)");
  // A generic core on a CPU that has nothing better is the right core.
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("Prescott", SimdLevel::Sse, SimdLevel::None));
  CHECK(choice.engine == GemmEngine::Blas);
  CHECK(choice.description == "OpenBLAS 0.3.21 (Prescott kernels)");
  // A core it does not know (another architecture, a newer CPU) is never called generic.
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("NEOVERSEN1", SimdLevel::None, SimdLevel::None));
  CHECK(choice.engine == GemmEngine::Blas);
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("Zen5", SimdLevel::Avx512, SimdLevel::Avx512));
  CHECK(choice.engine == GemmEngine::Blas);
}

TEST_CASE("ChooseGemmEngine sends convolutions' patch products to Eigen compiled for the CPU") {
  // Eigen as wide as the CPU: the BLAS runs the products, Eigen the convolutions' patches.
  for (SimdLevel cpu : {SimdLevel::Sse, SimdLevel::Avx2, SimdLevel::Avx512}) {
    INFO("CPU " << dlb::SimdName(cpu));
    const auto choice = dlb::ChooseGemmEngine(OpenBlasFacts(
        cpu == SimdLevel::Sse ? "Prescott" : cpu == SimdLevel::Avx2 ? "Haswell" : "SkylakeX", cpu, cpu));
    CHECK(choice.engine == GemmEngine::Blas);
    CHECK(choice.implicit_patches);
    CHECK_THAT(choice.description,
               Contains(std::string("stride-1 and 2 convolutions: Eigen (") + dlb::SimdName(cpu)));
  }
  // Eigen narrower than the CPU (no -march=native): everything on the BLAS, im2col included.
  auto choice =
      dlb::ChooseGemmEngine(OpenBlasFacts("SkylakeX", SimdLevel::Avx512, SimdLevel::Avx2));
  CHECK(choice.engine == GemmEngine::Blas);
  CHECK_FALSE(choice.implicit_patches);
  CHECK(choice.description == "OpenBLAS 0.3.21 (SkylakeX kernels)");
  // A BLAS that is not OpenBLAS is judged the same way.
  GemmEngineFacts facts;
  facts.blas_linked = true;
  facts.blas_name = "libblis.so.4";
  facts.cpu = facts.eigen = SimdLevel::Avx512;
  CHECK(dlb::ChooseGemmEngine(facts).implicit_patches);
  facts.eigen = SimdLevel::Sse;
  CHECK_FALSE(dlb::ChooseGemmEngine(facts).implicit_patches);
  // The Eigen engine runs every product, the patches' too.
  facts.blas_linked = false;
  CHECK(dlb::ChooseGemmEngine(facts).implicit_patches);
  CHECK(dlb::ChooseGemmEngine(OpenBlasFacts("Haswell", SimdLevel::Avx512, SimdLevel::Avx512))
            .implicit_patches);
}

TEST_CASE("ChooseGemmEngine sends products away from a generic OpenBLAS core to Eigen's kernels") {
  for (SimdLevel cpu : {SimdLevel::Avx2, SimdLevel::Avx512}) {
    for (const char* core : {"Prescott", "Core2", "Katmai", "Nehalem", "Sandybridge"}) {
      INFO("core " << core << ", CPU " << dlb::SimdName(cpu));
      const auto choice = dlb::ChooseGemmEngine(OpenBlasFacts(core, cpu, cpu));
      CHECK(choice.engine == GemmEngine::Eigen);
      CHECK_THAT(choice.description,
                 Contains(std::string("Eigen (") + dlb::SimdName(cpu) + " kernels") &&
                     Contains(std::string("core ") + core) && Contains("generic") &&
                     Contains("OpenBLAS 0.3.21"));
    }
  }
  const auto choice =
      dlb::ChooseGemmEngine(OpenBlasFacts("Prescott", SimdLevel::Avx512, SimdLevel::Avx2));
  CHECK(choice.engine == GemmEngine::Eigen);
  CHECK(choice.description ==
        "Eigen (AVX2 kernels; OpenBLAS 0.3.21 not used: its core Prescott runs generic SSE "
        "kernels on this AVX-512 CPU)");
}

TEST_CASE("ChooseGemmEngine sends products from a core narrower than the CPU to wider Eigen") {
  // Debian's OpenBLAS 0.3.21 on a Zen 5: AVX2 kernels on an AVX-512 CPU.
  auto choice =
      dlb::ChooseGemmEngine(OpenBlasFacts("Haswell", SimdLevel::Avx512, SimdLevel::Avx512));
  CHECK(choice.engine == GemmEngine::Eigen);
  CHECK(choice.description ==
        "Eigen (AVX-512 kernels; OpenBLAS 0.3.21 not used: its core Haswell runs AVX2 kernels "
        "on this AVX-512 CPU)");
  // Eigen no wider than the core: the BLAS stays; the core is not generic, so it is not slow.
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("Haswell", SimdLevel::Avx512, SimdLevel::Avx2));
  CHECK(choice.engine == GemmEngine::Blas);
  CHECK(choice.description == "OpenBLAS 0.3.21 (Haswell kernels; this CPU has AVX-512)");
  // A generic core on an AVX-only CPU, and AVX Eigen: Eigen is wider.
  choice = dlb::ChooseGemmEngine(OpenBlasFacts("Core2", SimdLevel::Avx, SimdLevel::Avx));
  CHECK(choice.engine == GemmEngine::Eigen);
  CHECK_THAT(choice.description, Contains("its core Core2 runs SSE kernels on this AVX CPU"));
}

TEST_CASE("ChooseGemmEngine keeps a generic OpenBLAS core when Eigen is no better, and says so") {
  for (SimdLevel eigen : {SimdLevel::None, SimdLevel::Sse}) {
    const auto choice =
        dlb::ChooseGemmEngine(OpenBlasFacts("Prescott", SimdLevel::Avx512, eigen));
    CHECK(choice.engine == GemmEngine::Blas);
    CHECK_THAT(choice.description, Contains("OpenBLAS 0.3.21 (Prescott kernels, slow") &&
                                       Contains("generic SSE kernels on this AVX-512 CPU") &&
                                       Contains(std::string("compiled for ") +
                                                dlb::SimdName(eigen)) &&
                                       Contains("-march=native"));
  }
}

TEST_CASE("ChooseGemmEngine keeps a BLAS that is not OpenBLAS and names it") {
  GemmEngineFacts facts;
  facts.blas_linked = true;
  facts.blas_name = "libblis.so.4";
  facts.cpu = SimdLevel::Avx512;
  facts.eigen = SimdLevel::Avx512;
  auto choice = dlb::ChooseGemmEngine(facts);
  CHECK(choice.engine == GemmEngine::Blas);
  CHECK(choice.description ==
        "libblis.so.4; stride-1 and 2 convolutions: Eigen (AVX-512 kernels, patches read from the image)");
  facts.blas_name.clear();
  facts.eigen = SimdLevel::Avx2;
  CHECK(dlb::ChooseGemmEngine(facts).description == "BLAS");
}

TEST_CASE("the detected engine is the decision on this process's facts") {
  const GemmEngineFacts facts = dlb::DetectGemmEngineFacts();
  CHECK(facts.blas_linked == dlb::kHaveBlas);
  CHECK(facts.eigen == dlb::EigenSimdLevel());
  const auto choice = dlb::ChooseGemmEngine(facts);
  INFO("detected: " << choice.description);
  CHECK(dlb::internal::DetectedGemmEngine().engine == choice.engine);
  CHECK(dlb::internal::DetectedGemmEngine().description == choice.description);
  CHECK_FALSE(dlb::GemmEngineDescription().empty());
}

TEST_CASE("SetGemmEngine overrides the choice, and refuses a BLAS the build lacks") {
  const GemmEngine detected = dlb::internal::DetectedGemmEngine().engine;
  {
    EngineScope scope(GemmEngine::Eigen);
    CHECK(dlb::ActiveGemmEngine() == GemmEngine::Eigen);
    CHECK(dlb::GemmEngineOverride() == GemmEngine::Eigen);
    CHECK(dlb::ImplicitPatchesEnabled());
    CHECK_THAT(dlb::GemmEngineDescription(), Contains("Eigen (") && Contains("(set by SetGemmEngine)"));
  }
  // The scope restored the automatic choice, not a forced copy of it.
  CHECK(dlb::ActiveGemmEngine() == detected);
  CHECK_FALSE(dlb::GemmEngineOverride().has_value());
  CHECK(dlb::ImplicitPatchesEnabled() == dlb::internal::DetectedGemmEngine().implicit_patches);
  CHECK(dlb::GemmEngineDescription() == dlb::internal::DetectedGemmEngine().description);
  if (dlb::kHaveBlas) {
    EngineScope scope(GemmEngine::Blas);
    CHECK(dlb::ActiveGemmEngine() == GemmEngine::Blas);
    CHECK_FALSE(dlb::ImplicitPatchesEnabled());  // forced: every product on the BLAS
    CHECK_THAT(dlb::GemmEngineDescription(),
               Contains("(set by SetGemmEngine)") && !Contains("stride-1 and 2 convolutions"));
    dlb::SetGemmEngine(std::nullopt);
    CHECK_FALSE(dlb::GemmEngineOverride().has_value());
    CHECK(dlb::ActiveGemmEngine() == detected);
  } else {
    REQUIRE_THROWS_MATCHES(dlb::SetGemmEngine(GemmEngine::Blas), dlb::ArgumentError,
                           dlb_test::What(Contains("this build has no BLAS")));
    CHECK(dlb::ActiveGemmEngine() == GemmEngine::Eigen);
  }
}

TEST_CASE("every engine computes every transpose combination and beta correctly") {
  for (GemmEngine engine : Engines()) {
    INFO("engine " << (engine == GemmEngine::Blas ? "BLAS" : "Eigen"));
    EngineScope scope(engine);
    const int calls_before = blas_calls;
    CheckProducts<double>(1e-12);
    CheckProducts<float>(1e-5);
    // The products ran where the engine says: in the BLAS exactly when it is the BLAS.
    if (engine == GemmEngine::Blas) {
      CHECK(blas_calls > calls_before);
    } else {
      CHECK(blas_calls == calls_before);
    }
  }
}

TEST_CASE("beta 0 writes the product over C without reading C, at every edge of the kernel") {
  // Eigen's kernel adds into C, so with beta 0 an engine must discard C's old values first
  // (zero it, or store without reading it): NaN and infinity there must not reach the result,
  // on every path of the kernel: row counts around its packet widths, column counts around
  // its register block, and sizes beyond one block of rows, columns and depth.
  const Index ms[] = {1, 2, 3, 5, 8, 15, 16, 17, 33, 47, 48, 49, 64, 97};
  const Index ns[] = {1, 2, 3, 4, 5, 7, 8, 9, 13};
  const Index ks[] = {1, 3, 17, 300};
  for (GemmEngine engine : Engines()) {
    EngineScope scope(engine);
    auto check = [](Index m, Index n, Index k, Op op_a, Op op_b) {
      INFO(m << " x " << n << " x " << k << ", op_a " << (op_a == Op::None ? "N" : "T")
             << ", op_b " << (op_b == Op::None ? "N" : "T"));
      const Matrix<float> a = op_a == Op::None ? dlb_test::RandomMatrix<float>(m, k, 7)
                                               : dlb_test::RandomMatrix<float>(k, m, 7);
      const Matrix<float> b = op_b == Op::None ? dlb_test::RandomMatrix<float>(k, n, 8)
                                               : dlb_test::RandomMatrix<float>(n, k, 8);
      Matrix<float> over_garbage(m, n);
      for (Index j = 0; j < n; ++j) {
        for (Index i = 0; i < m; ++i) {
          over_garbage(i, j) = (i + j) % 2 == 0 ? std::numeric_limits<float>::quiet_NaN()
                                                : std::numeric_limits<float>::infinity();
        }
      }
      Matrix<float> over_zero = Matrix<float>::Zero(m, n);
      dlb::Gemm<float>(op_a, a, op_b, b, over_garbage, 0.0f);
      dlb::Gemm<float>(op_a, a, op_b, b, over_zero, 1.0f);  // 0 + AB: the same sums
      CHECK(over_garbage.allFinite());
      CHECK(over_garbage == over_zero);
    };
    for (Index m : ms) {
      for (Index n : ns) {
        for (Index k : ks) check(m, n, k, Op::None, Op::None);
      }
    }
    // Several blocks of rows, columns and depth (Eigen's mc, nc and kc), every transpose.
    for (Op op_a : {Op::None, Op::Transpose}) {
      for (Op op_b : {Op::None, Op::Transpose}) check(1000, 300, 700, op_a, op_b);
    }
  }
}

TEST_CASE("every engine handles an empty inner size and an empty result") {
  for (GemmEngine engine : Engines()) {
    EngineScope scope(engine);
    const Matrix<float> a(3, 0), b(0, 4);
    Matrix<float> c = Matrix<float>::Constant(3, 4, 2.0f);
    dlb::Gemm<float>(Op::None, a, Op::None, b, c, 0.5f);
    CHECK(c.isApproxToConstant(1.0f));
    dlb::Gemm<float>(Op::None, a, Op::None, b, c);
    CHECK(c.isZero());
    const Matrix<float> empty_rows(0, 5), rhs = Matrix<float>::Ones(5, 4);
    dlb::Gemm<float>(Op::None, empty_rows, Op::None, rhs, c);
    CHECK(c.rows() == 0);
    CHECK(c.cols() == 4);
  }
}

TEST_CASE("a generic OpenBLAS core does not run the products", "[.generic-core]") {
  // Run by CTest with OPENBLAS_CORETYPE=PRESCOTT (tests/CMakeLists.txt).
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  REQUIRE(forced != nullptr);
  REQUIRE(dlb::kHaveBlas);
  const GemmEngineFacts facts = dlb::DetectGemmEngineFacts();
  INFO("OPENBLAS_CORETYPE=" << forced << ", OpenBLAS core " << facts.openblas_core << ", CPU "
                            << dlb::SimdName(facts.cpu) << ", Eigen "
                            << dlb::SimdName(facts.eigen) << ": "
                            << dlb::GemmEngineDescription());
  // The environment took effect: OpenBLAS runs a generic core.
  REQUIRE(dlb::OpenBlasCoreSimd(facts.openblas_core) == SimdLevel::Sse);

  const int calls_before = blas_calls;
  CheckProducts<float>(1e-5);
  CheckProducts<double>(1e-12);
  if (facts.cpu > SimdLevel::Sse && facts.eigen > SimdLevel::Sse) {
    CHECK(dlb::ActiveGemmEngine() == GemmEngine::Eigen);
    CHECK(blas_calls == calls_before);  // not one product went to the generic kernels
    CHECK_THAT(dlb::GemmEngineDescription(),
               Contains("Eigen (") && Contains("core " + facts.openblas_core));
    if (facts.cpu >= SimdLevel::Avx2) CHECK_THAT(dlb::GemmEngineDescription(), Contains("generic"));
  } else if (facts.cpu >= SimdLevel::Avx2) {
    WARN("Eigen was compiled for " << dlb::SimdName(facts.eigen)
                                   << " only (DLB_NATIVE=OFF?): the BLAS must stay and say so");
    CHECK(dlb::ActiveGemmEngine() == GemmEngine::Blas);
    CHECK_THAT(dlb::GemmEngineDescription(), Contains("slow") && Contains("-march=native"));
  } else {
    WARN("this CPU has no AVX: a generic core is the right one and stays");
    CHECK(dlb::ActiveGemmEngine() == GemmEngine::Blas);
  }
}
