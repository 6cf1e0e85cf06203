#pragma once
/// \file
/// Which engine runs dlb::Gemm's products: the BLAS the build links (DLB_HAVE_BLAS) or Eigen's
/// own GEMM kernel, chosen once per process and stated in words.
///
/// The BLAS is the default where one is linked, except when it runs kernels below what the
/// CPU can do: a DYNAMIC_ARCH OpenBLAS that does not recognise a CPU falls back to an older
/// core. Debian's 0.3.21 takes a Sapphire Rapids Xeon for "Prescott" and runs generic SSE3
/// kernels, 4x slower than its AVX-512 ones, and gives a Zen 5 the AVX2 "Haswell" kernels,
/// slower there than Eigen's AVX-512 ones. When the OpenBLAS core's kernels are narrower than
/// the CPU's vectors and Eigen's kernels were compiled wider than the core's, the products go
/// to Eigen; otherwise the BLAS stays, and the description says so when its core is generic.
///
/// One kind of product only the library's and Eigen's kernels can run: a convolution's product
/// with patches read from the image (dlb/core/implicit_im2col.hpp), which saves im2col's
/// pass. With Eigen's kernels compiled for the CPU's widest vectors (-march=native), these
/// go to Eigen even where the BLAS runs the other products: on an AVX-512 Xeon with OpenBLAS's
/// SkylakeX kernels, a ResNet epoch at 2 threads took 79 s with every product on OpenBLAS and
/// 63.5 s with Eigen's (docs/performance.md).
///
/// The decision is a pure function of the facts (ChooseGemmEngine) so that it is testable on
/// any machine; DetectGemmEngineFacts gathers the facts of this process.

#include <Eigen/Core>

#include <atomic>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

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
  /// Whether convolutions run their products on patches read from the image (Eigen's
  /// kernels) where their windows allow it, rather than on im2col and `engine`.
  bool implicit_patches = true;
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
/// - A BLAS that is not OpenBLAS, or an OpenBLAS core this table does not know: the BLAS (its
///   kernels cannot be judged).
/// - An OpenBLAS core whose kernels are narrower than the CPU's vectors: OpenBLAS did not
///   recognise the CPU (every version that knows an AVX-512 CPU gives it AVX-512 kernels).
///   Then Eigen, when its kernels were compiled wider than the core's; otherwise the BLAS,
///   and when the core is generic (below AVX2 on an AVX2 or AVX-512 CPU) the description says
///   that it is slow and how to get Eigen's kernels instead.
/// - Otherwise the BLAS.
/// Convolutions read their patches from the image (implicit_patches) on the Eigen engine, and
/// on the BLAS when Eigen's kernels were compiled for this CPU's widest vectors; the
/// description then says so.
inline GemmEngineChoice ChooseGemmEngine(const GemmEngineFacts& facts) {
  const std::string eigen =
      std::string("Eigen (") + SimdName(facts.eigen) + " kernels" +
      (facts.eigen < facts.cpu ? std::string("; this CPU has ") + SimdName(facts.cpu) +
                                     ": compile with -march=native for more)"
                               : std::string(")"));
  if (!facts.blas_linked) return {GemmEngine::Eigen, true, eigen};
  // The BLAS runs the products; convolutions' patch products go to Eigen when it is compiled
  // for everything the CPU has (then they beat im2col and the BLAS).
  const bool patches_on_eigen = facts.eigen != SimdLevel::None && facts.eigen >= facts.cpu;
  const auto on_blas = [&](std::string description) {
    if (patches_on_eigen) {
      description += std::string("; stride-1 and 2 convolutions: Eigen (") + SimdName(facts.eigen) +
                     " kernels, patches read from the image)";
    }
    return GemmEngineChoice{GemmEngine::Blas, patches_on_eigen, std::move(description)};
  };
  const std::string blas = facts.blas_name.empty() ? std::string("BLAS") : facts.blas_name;
  if (facts.openblas_core.empty()) return on_blas(blas);

  const SimdLevel core = OpenBlasCoreSimd(facts.openblas_core);
  const std::string kernels = blas + " (" + facts.openblas_core + " kernels";
  if (core == SimdLevel::None || core >= facts.cpu) return on_blas(kernels + ")");

  const bool generic = core < SimdLevel::Avx2 && facts.cpu >= SimdLevel::Avx2;
  const std::string why = "core " + facts.openblas_core + " runs " + (generic ? "generic " : "") +
                          SimdName(core) + " kernels on this " + SimdName(facts.cpu) + " CPU";
  if (facts.eigen > core) {
    return {GemmEngine::Eigen, true,
            "Eigen (" + std::string(SimdName(facts.eigen)) + " kernels; " + blas +
                " not used: its " + why + ")"};
  }
  if (!generic) return on_blas(kernels + "; this CPU has " + SimdName(facts.cpu) + ")");
  return on_blas(kernels + ", slow: its " + why + "; Eigen was compiled for " +
                 SimdName(facts.eigen) +
                 " only: compile with -march=native to use Eigen's kernels)");
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

/// The engine SetGemmEngine forced: -1 none (the automatic choice), else a GemmEngine.
inline std::atomic<int>& GemmEngineOverrideSlot() {
  static std::atomic<int> engine{-1};
  return engine;
}
}  // namespace internal

/// The engine SetGemmEngine forced, or std::nullopt while the automatic choice stands.
inline std::optional<GemmEngine> GemmEngineOverride() {
  const int engine = internal::GemmEngineOverrideSlot().load(std::memory_order_relaxed);
  if (engine < 0) return std::nullopt;
  return static_cast<GemmEngine>(engine);
}

/// The engine dlb::Gemm uses for float and double products (other scalar types always run
/// in Eigen's kernels): the one SetGemmEngine forced, else the automatic choice.
inline GemmEngine ActiveGemmEngine() {
  return GemmEngineOverride().value_or(internal::DetectedGemmEngine().engine);
}

/// Whether a convolution whose patches are shifts of the image (PatchesAreShifts) reads them
/// from the image on Eigen's kernels now (GemmEngineChoice::implicit_patches), rather than
/// writing them out (im2col) for the active engine. Forcing an engine decides it: Eigen, yes;
/// the BLAS, no (every product then runs on the BLAS).
inline bool ImplicitPatchesEnabled() {
  const std::optional<GemmEngine> forced = GemmEngineOverride();
  if (forced) return *forced == GemmEngine::Eigen;
  return internal::DetectedGemmEngine().implicit_patches;
}

/// One line naming the engine and the kernels that run the products, e.g. for a program's
/// header line: the automatic choice's description, or, after SetGemmEngine forced an
/// engine, that engine with "(set by SetGemmEngine)".
inline std::string GemmEngineDescription() {
  const std::optional<GemmEngine> forced_engine = GemmEngineOverride();
  if (!forced_engine) return internal::DetectedGemmEngine().description;
  GemmEngineFacts forced = DetectGemmEngineFacts();
  if (*forced_engine == GemmEngine::Eigen) forced.blas_linked = false;
  if (*forced_engine == GemmEngine::Blas) {
    forced.cpu = SimdLevel::None;    // nothing counts as generic
    forced.eigen = SimdLevel::None;  // and no product goes to Eigen
  }
  return ChooseGemmEngine(forced).description + " (set by SetGemmEngine)";
}

/// Makes every later product run on `engine` (convolutions too: on Eigen they read their
/// patches from the image, on the BLAS they run on im2col), overriding the automatic choice,
/// for benchmarks and tests that compare the engines; std::nullopt returns to the automatic
/// choice. Call it between products, not during one. Throws ArgumentError for
/// GemmEngine::Blas in a build without a BLAS (DLB_HAVE_BLAS).
inline void SetGemmEngine(std::optional<GemmEngine> engine) {
  if (engine == GemmEngine::Blas && !kHaveBlas) {
    throw ArgumentError(
        "SetGemmEngine: this build has no BLAS (configure with -DDLB_USE_BLAS=ON and a BLAS "
        "installed)");
  }
  internal::GemmEngineOverrideSlot().store(engine ? static_cast<int>(*engine) : -1,
                                           std::memory_order_relaxed);
}

}  // namespace dlb
