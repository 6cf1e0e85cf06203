#pragma once
/// \file
/// Allocations that say what they need: a request too large for this machine becomes a
/// MemoryError naming what needed how much ("Linear(784 -> 16777216): its weights and
/// gradients need 105 GB, more than the 23.3 GB of physical memory"), raised before the
/// allocation is tried, instead of an abort on an uncaught std::bad_alloc or a visit of the
/// kernel's out-of-memory killer halfway through filling the memory.

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <iterator>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "dlb/core/error.hpp"

namespace dlb {

/// A buffer the library needed could not be allocated, or would exceed MemoryCeiling().
class MemoryError : public Error {
 public:
  using Error::Error;
};

/// bytes in words: "512 bytes", "1.50 kB", "52.6 GB" (decimal units, 1 GB = 10^9 bytes,
/// three significant digits).
inline std::string FormatBytes(double bytes) {
  if (bytes < 1000) return std::to_string(static_cast<long long>(bytes)) + " bytes";
  static constexpr const char* kUnits[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  int unit = 0;
  bytes /= 1000;
  while (bytes >= 999.5 && unit + 1 < static_cast<int>(std::size(kUnits))) {
    bytes /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, bytes < 9.995 ? "%.2f %s" : bytes < 99.95 ? "%.1f %s" : "%.0f %s",
                bytes, kUnits[unit]);
  return text;
}

/// The most memory this process may hold, and what sets it.
struct MemoryCeiling {
  double bytes;       ///< +infinity when nothing is known
  const char* limit;  ///< "physical memory", "address-space limit (ulimit -v)" ...
};

/// This process's memory ceiling: the machine's physical memory, lowered by the address-space
/// and data-segment limits (RLIMIT_AS, RLIMIT_DATA) when they are set. An upper bound, not
/// what is free now: it catches the requests no state of the machine could serve.
inline MemoryCeiling CurrentMemoryCeiling() {
  MemoryCeiling ceiling{std::numeric_limits<double>::infinity(), "memory"};
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    ceiling = {static_cast<double>(pages) * static_cast<double>(page_size), "physical memory"};
  }
  const struct {
    int resource;
    const char* name;
  } kLimits[] = {{RLIMIT_AS, "address-space limit (ulimit -v)"},
                 {RLIMIT_DATA, "data-segment limit (ulimit -d)"}};
  for (const auto& [resource, name] : kLimits) {
    struct rlimit limit {};
    if (::getrlimit(resource, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
        static_cast<double>(limit.rlim_cur) < ceiling.bytes) {
      ceiling = {static_cast<double>(limit.rlim_cur), name};
    }
  }
  return ceiling;
}

/// Throws MemoryError when `bytes` exceed CurrentMemoryCeiling(). `what` names the request
/// and reads before " need ...", e.g. "Linear(784 -> 350): its weights and gradients".
inline void RequireMemory(double bytes, const std::string& what) {
  const MemoryCeiling ceiling = CurrentMemoryCeiling();
  if (bytes > ceiling.bytes) {
    throw MemoryError(what + " need " + FormatBytes(bytes) + ", more than the " +
                      FormatBytes(ceiling.bytes) + " of " + ceiling.limit + " this process has");
  }
}

/// Runs allocate() once RequireMemory(bytes, what) has passed, and turns a std::bad_alloc or
/// std::length_error from it (memory exhausted, or a size Eigen or std::vector cannot hold)
/// into a MemoryError saying that `what` need `bytes`. Whatever else allocate() throws passes.
template <class F>
void AllocateOrThrow(double bytes, const std::string& what, F&& allocate) {
  RequireMemory(bytes, what);
  try {
    allocate();
  } catch (const std::bad_alloc&) {
    throw MemoryError(what + " need " + FormatBytes(bytes) + ": out of memory");
  } catch (const std::length_error&) {
    throw MemoryError(what + " need " + FormatBytes(bytes) + ": more than a buffer can hold");
  }
}

}  // namespace dlb
