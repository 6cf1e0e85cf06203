#pragma once
/// \file
/// The BLAS a build may hand its matrix products to, and what the loaded BLAS says about itself.
///
/// DLB_HAVE_BLAS (put on dlb::dlb by CMake when DLB_USE_BLAS finds a BLAS, which is then
/// linked) makes sgemm_/dgemm_ callable. Whether they are actually used is decided at run time
/// (see blas_engine.hpp). The OpenBLAS queries are looked up with dlsym, so a program linked to
/// another BLAS, or to none, still builds and runs: they then report "unknown".

#include <dlfcn.h>

#include <string>

#ifdef DLB_HAVE_BLAS
// The Fortran BLAS entry points, declared exactly as Eigen's Eigen/src/misc/blas.h does, so that
// a program that also defines EIGEN_USE_BLAS sees one consistent declaration.
extern "C" {
int sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
           const float*, const int*, const float*, const int*, const float*, float*, const int*);
int dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
           const double*, const int*, const double*, const int*, const double*, double*,
           const int*);
}
#endif

namespace dlb {

/// Whether this build can call a BLAS (DLB_HAVE_BLAS; CMake option DLB_USE_BLAS).
inline constexpr bool kHaveBlas =
#ifdef DLB_HAVE_BLAS
    true;
#else
    false;
#endif

namespace internal {

/// A function of the loaded libraries by name, or nullptr when no loaded library defines it.
template <class Fn>
Fn LoadedFunction(const char* symbol) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, symbol));
}

/// OpenBLAS's kernel family as it reports it ("Haswell", "SkylakeX", "Prescott", ...): chosen
/// from the CPU when the library loads, or forced by OPENBLAS_CORETYPE. Empty when the process
/// has no OpenBLAS.
inline std::string OpenBlasCoreName() {
  if (auto fn = LoadedFunction<char* (*)()>("openblas_get_corename")) {
    if (const char* name = fn()) return name;
  }
  return "";
}

/// "OpenBLAS 0.3.21": the first two words of openblas_get_config(). Empty without OpenBLAS.
inline std::string OpenBlasVersion() {
  if (auto fn = LoadedFunction<char* (*)()>("openblas_get_config")) {
    if (const char* config = fn()) {
      const std::string text = config;
      const std::size_t first = text.find(' ');
      const std::size_t second = first == std::string::npos ? first : text.find(' ', first + 1);
      return text.substr(0, second);
    }
  }
  return "";
}

/// File name of the library whose sgemm_ this build calls ("libopenblas.so.0", "libblas.so.3"),
/// to name a BLAS that is not OpenBLAS. Empty without DLB_HAVE_BLAS or when unknown.
inline std::string BlasLibraryName() {
#ifdef DLB_HAVE_BLAS
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&sgemm_), &info) != 0 && info.dli_fname != nullptr) {
    const std::string path = info.dli_fname;
    return path.substr(path.find_last_of('/') + 1);
  }
#endif
  return "";
}

/// Sets the thread pool of OpenBLAS or BLIS, whichever is loaded (no effect otherwise).
inline void SetBlasThreads(int threads) {
  using SetThreadsFn = void (*)(int);
  for (const char* symbol : {"openblas_set_num_threads", "bli_thread_set_num_threads"}) {
    if (auto fn = LoadedFunction<SetThreadsFn>(symbol)) fn(threads);
  }
}

}  // namespace internal
}  // namespace dlb
