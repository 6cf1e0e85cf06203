#pragma once
/// \file
/// Which engine runs dlb::Gemm's products: the BLAS the build links (DLB_HAVE_BLAS) or Eigen's
/// own GEMM kernel, chosen once per process and stated in words.
///
/// The BLAS is the default where one is linked, except when it would run kernels far below
/// what the CPU can do: a DYNAMIC_ARCH OpenBLAS that does not recognise a CPU falls back to
/// a generic core (e.g. Debian's 0.3.21 takes a Sapphire Rapids Xeon for "Prescott" and runs
/// SSE3 kernels, 4x slower than its AVX-512 ones). On a CPU with AVX2 or AVX-512 whose
/// OpenBLAS core has no AVX2 kernels, the products go to Eigen's kernels when those were
/// compiled for AVX2 or better; otherwise the BLAS stays and the description says why.
///
/// The decision is a pure function of the facts (ChooseGemmEngine) so that it is testable on
/// any machine; DetectGemmEngineFacts gathers the facts of this process.

#include <Eigen/Core>

#include <atomic>
#include <cctype>
#include <string>
#include <string_view>

#include "dlb/core/blas.hpp"
#include "dlb/core/error.hpp"

namespace dlb {

/// The engines a product can run on.
enum class GemmEngine { Eigen, Blas };

/// Widest x86 vector instruction set of a CPU, of a set of kernels or of a compilation, in
/// increasing order. None: scalar code, or a CPU that is not x86.
enum class SimdLevel { None, Sse, Avx, Avx2, Avx512 };

/// Display name of a level: "no SIMD", "SSE", "AVX", "AVX2", "AVX-512".
inline const char* SimdName(SimdLevel level) {
  switch (level) {
    case SimdLevel::Sse: return "SSE";
    case SimdLevel::Avx: return "AVX";
    case SimdLevel::Avx2: return "AVX2";
    case SimdLevel::Avx512: return "AVX-512";
    case SimdLevel::None: break;
  }
  return "no SIMD";
}

/// What the engine choice depends on.
struct GemmEngineFacts {
  bool blas_linked = false;   ///< the build calls a BLAS (DLB_HAVE_BLAS)
  std::string blas_name;      ///< "OpenBLAS 0.3.21", or the library file name; may be empty
  std::string openblas_core;  ///< OpenBLAS's core ("Haswell", "Prescott"); empty: not OpenBLAS
  SimdLevel cpu = SimdLevel::None;    ///< what this CPU executes
  SimdLevel eigen = SimdLevel::None;  ///< what Eigen's kernels were compiled for
};

/// An engine and one line that says which kernels run the products, and why when it is not
/// the obvious one, e.g. "OpenBLAS 0.3.21 (Haswell kernels)" or "Eigen (AVX2 kernels; OpenBLAS
/// 0.3.21 has core Prescott, generic SSE kernels, on this AVX-512 CPU)".
struct GemmEngineChoice {
  GemmEngine engine = GemmEngine::Eigen;
  std::string description;
};

/// The instruction set of the kernels of an OpenBLAS x86-64 core, by the name
/// openblas_get_corename() reports (case-insensitive). Returns SimdLevel::None for a name it
/// does not know (other architectures, newer cores): such a core is never taken for a generic
/// one.
inline SimdLevel OpenBlasCoreSimd(std::string_view core) {
  std::string name;
  for (char c : core) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view avx512 : {"skylakex", "cooperlake", "sapphirerapids"}) {
    if (name == avx512) return SimdLevel::Avx512;
  }
  for (std::string_view avx2 : {"haswell", "zen", "excavator"}) {
    if (name == avx2) return SimdLevel::Avx2;
  }
  for (std::string_view avx : {"sandybridge", "bulldozer", "piledriver", "steamroller"}) {
    if (name == avx) return SimdLevel::Avx;
  }
  for (std::string_view sse : {"katmai", "coppermine", "northwood", "prescott", "banias", "atom",
                               "core2", "penryn", "dunnington", "nehalem", "athlon", "opteron",
                               "opteron_sse3", "barcelona", "nano", "bobcat"}) {
    if (name == sse) return SimdLevel::Sse;
  }
  return SimdLevel::None;
}

/// Chooses the engine from the facts (pure: no global state is read).
///
/// - No BLAS linked: Eigen.
/// - A BLAS that is not OpenBLAS: the BLAS (its kernels cannot be judged).
/// - OpenBLAS with a known core whose kernels are below AVX2 on a CPU with AVX2 or AVX-512
///   (a generic core): Eigen when Eigen was compiled for AVX2 or better, else the BLAS, with
///   the reason in the description.
/// - Otherwise the BLAS.
inline GemmEngineChoice ChooseGemmEngine(const GemmEngineFacts& facts) {
  const std::string eigen =
      std::string("Eigen (") + SimdName(facts.eigen) + " kernels" +
      (facts.eigen < facts.cpu ? std::string("; this CPU has ") + SimdName(facts.cpu) +
                                     ": compile with -march=native for more)"
                               : std::string(")"));
  if (!facts.blas_linked) return {GemmEngine::Eigen, eigen};
  const std::string blas = facts.blas_name.empty() ? std::string("BLAS") : facts.blas_name;
  if (facts.openblas_core.empty()) return {GemmEngine::Blas, blas};

  const SimdLevel core = OpenBlasCoreSimd(facts.openblas_core);
  const bool generic_core = core != SimdLevel::None && core < SimdLevel::Avx2 &&
                            facts.cpu >= SimdLevel::Avx2;
  if (!generic_core) return {GemmEngine::Blas, blas + " (" + facts.openblas_core + " kernels)"};

  const std::string why = "core " + facts.openblas_core + " runs generic " + SimdName(core) +
                          " kernels on this " + SimdName(facts.cpu) + " CPU";
  if (facts.eigen >= SimdLevel::Avx2) {
    return {GemmEngine::Eigen, "Eigen (" + std::string(SimdName(facts.eigen)) + " kernels; " +
                                   blas + " not used: its " + why + ")"};
  }
  return {GemmEngine::Blas, blas + " (" + facts.openblas_core + " kernels, slow: its " + why +
                                "; Eigen was compiled for " + SimdName(facts.eigen) +
                                " only: compile with -march=native to use Eigen's kernels)"};
}

/// The widest instruction set this CPU executes (None off x86).
inline SimdLevel CpuSimdLevel() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return SimdLevel::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::Avx2;
  if (__builtin_cpu_supports("avx")) return SimdLevel::Avx;
  if (__builtin_cpu_supports("sse2")) return SimdLevel::Sse;
#endif
  return SimdLevel::None;
}

/// The instruction set Eigen's kernels were compiled for in this translation unit (from
/// -march / -m flags through Eigen's EIGEN_VECTORIZE_* macros).
inline SimdLevel EigenSimdLevel() {
#if defined(EIGEN_VECTORIZE_AVX512)
  return SimdLevel::Avx512;
#elif defined(EIGEN_VECTORIZE_AVX2) && defined(EIGEN_VECTORIZE_FMA)
  return SimdLevel::Avx2;
#elif defined(EIGEN_VECTORIZE_AVX)
  return SimdLevel::Avx;
#elif defined(EIGEN_VECTORIZE_SSE2)
  return SimdLevel::Sse;
#else
  return SimdLevel::None;
#endif
}

/// The facts of this process: the build's BLAS, what the loaded OpenBLAS reports (its core
/// follows OPENBLAS_CORETYPE when that is set), the CPU and Eigen's compilation.
inline GemmEngineFacts DetectGemmEngineFacts() {
  GemmEngineFacts facts;
  facts.blas_linked = kHaveBlas;
  if (facts.blas_linked) {
    facts.openblas_core = internal::OpenBlasCoreName();
    facts.blas_name = facts.openblas_core.empty() ? internal::BlasLibraryName()
                                                  : internal::OpenBlasVersion();
  }
  facts.cpu = CpuSimdLevel();
  facts.eigen = EigenSimdLevel();
  return facts;
}

namespace internal {
/// The choice made from this process's facts, once.
inline const GemmEngineChoice& DetectedGemmEngine() {
  static const GemmEngineChoice choice = ChooseGemmEngine(DetectGemmEngineFacts());
  return choice;
}

/// The engine products run on now: the detected one until SetGemmEngine.
inline std::atomic<GemmEngine>& ActiveGemmEngineSlot() {
  static std::atomic<GemmEngine> engine{DetectedGemmEngine().engine};
  return engine;
}
}  // namespace internal

/// The engine dlb::Gemm uses for float and double products (other scalar types always run
/// in Eigen's kernels).
inline GemmEngine ActiveGemmEngine() {
  return internal::ActiveGemmEngineSlot().load(std::memory_order_relaxed);
}

/// One line naming the engine and the kernels that run the products, e.g. for a program's
/// header line: the automatic choice's description, or, after SetGemmEngine chose another
/// engine, that engine with "(set by SetGemmEngine)".
inline std::string GemmEngineDescription() {
  const GemmEngineChoice& detected = internal::DetectedGemmEngine();
  const GemmEngine active = ActiveGemmEngine();
  if (active == detected.engine) return detected.description;
  const GemmEngineFacts facts = DetectGemmEngineFacts();
  GemmEngineFacts forced = facts;
  if (active == GemmEngine::Eigen) forced.blas_linked = false;
  if (active == GemmEngine::Blas) forced.cpu = SimdLevel::None;  // nothing counts as generic
  return ChooseGemmEngine(forced).description + " (set by SetGemmEngine)";
}

/// Makes every later product run on `engine`, overriding the automatic choice (for
/// benchmarks and tests that compare the engines). Call it between products, not during one.
/// Throws ArgumentError for GemmEngine::Blas in a build without a BLAS (DLB_HAVE_BLAS).
inline void SetGemmEngine(GemmEngine engine) {
  if (engine == GemmEngine::Blas && !kHaveBlas) {
    throw ArgumentError(
        "SetGemmEngine: this build has no BLAS (configure with -DDLB_USE_BLAS=ON and a BLAS "
        "installed)");
  }
  internal::ActiveGemmEngineSlot().store(engine, std::memory_order_relaxed);
}

}  // namespace dlb
