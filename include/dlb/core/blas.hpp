#pragma once
/// \file
/// The BLAS a build may hand its matrix products to, and what the loaded BLAS says about itself.
///
/// DLB_HAVE_BLAS (put on dlb::dlb by CMake when DLB_USE_BLAS finds a BLAS, which is then
/// linked) makes sgemm_/dgemm_ callable. Whether they are actually used is decided at run time
/// (see blas_engine.hpp). The OpenBLAS and BLIS queries are weak references, so a program
/// linked to another BLAS, or to none, still builds and runs: they then report "unknown".
/// No <dlfcn.h>: a program that includes the library does not get the dynamic loader's API.

#include <cstdint>
#include <cstdio>
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

namespace dlb::internal {

// OpenBLAS's and BLIS's queries as weak references: their address is null unless a library
// of the process defines them (as dlsym(RTLD_DEFAULT, ...) would find them, without the
// dynamic loader's header). The asm labels bind names of our own to the libraries' symbols,
// so these declarations cannot clash with a <cblas.h> or <blis.h> in the same program.
char* OpenBlasGetCorenameSymbol() __asm__("openblas_get_corename") __attribute__((weak));
char* OpenBlasGetConfigSymbol() __asm__("openblas_get_config") __attribute__((weak));
void OpenBlasSetNumThreadsSymbol(int) __asm__("openblas_set_num_threads") __attribute__((weak));
// BLIS's dim_t is a 64-bit integer (gint_t) in its default configuration.
void BliThreadSetNumThreadsSymbol(std::int64_t) __asm__("bli_thread_set_num_threads")
    __attribute__((weak));

}  // namespace dlb::internal

namespace dlb {

/// Whether this build can call a BLAS (DLB_HAVE_BLAS; CMake option DLB_USE_BLAS).
inline constexpr bool kHaveBlas =
#ifdef DLB_HAVE_BLAS
    true;
#else
    false;
#endif

namespace internal {

/// The file name ("libblas.so.3") of the library mapped at `address` in this process, from
/// /proc/self/maps; empty where that is unknown (not Linux, anonymous memory).
inline std::string LibraryNameAt(const void* address) {
#if defined(__linux__)
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) return "";
  const auto where = reinterpret_cast<std::uintptr_t>(address);
  std::string name;
  char line[4096];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    // "begin-end perms offset dev inode   path"
    unsigned long long begin = 0, end = 0;
    int path_at = 0;
    if (std::sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &begin, &end, &path_at) != 2 ||
        path_at == 0 || where < begin || where >= end) {
      continue;
    }
    std::string path = line + path_at;
    while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
    name = path.substr(path.find_last_of('/') + 1);
    break;
  }
  std::fclose(maps);
  return name;
#else
  (void)address;
  return "";
#endif
}

/// OpenBLAS's kernel family as it reports it ("Haswell", "SkylakeX", "Prescott", ...): chosen
/// from the CPU when the library loads, or forced by OPENBLAS_CORETYPE. Empty when the process
/// has no OpenBLAS.
inline std::string OpenBlasCoreName() {
  if (&OpenBlasGetCorenameSymbol != nullptr) {
    if (const char* name = OpenBlasGetCorenameSymbol()) return name;
  }
  return "";
}

/// "OpenBLAS 0.3.21": the first two words of openblas_get_config(). Empty without OpenBLAS.
inline std::string OpenBlasVersion() {
  if (&OpenBlasGetConfigSymbol != nullptr) {
    if (const char* config = OpenBlasGetConfigSymbol()) {
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
  return LibraryNameAt(reinterpret_cast<const void*>(&sgemm_));
#else
  return "";
#endif
}

/// Sets the thread pool of OpenBLAS or BLIS, whichever is loaded (no effect otherwise).
inline void SetBlasThreads(int threads) {
  if (&OpenBlasSetNumThreadsSymbol != nullptr) OpenBlasSetNumThreadsSymbol(threads);
  if (&BliThreadSetNumThreadsSymbol != nullptr) BliThreadSetNumThreadsSymbol(threads);
}

}  // namespace internal
}  // namespace dlb
