// Memory that cannot be had is a MemoryError naming what needed how much (issue 12), never an
// abort on std::bad_alloc.

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "dlb/core/memory.hpp"
#include "dlb/layers/linear.hpp"
#include "support/helpers.hpp"

using dlb_test::MessageContains;

TEST_CASE("FormatBytes writes sizes with three significant digits", "[memory]") {
  CHECK(dlb::FormatBytes(0) == "0 bytes");
  CHECK(dlb::FormatBytes(999) == "999 bytes");
  CHECK(dlb::FormatBytes(1000) == "1.00 kB");
  CHECK(dlb::FormatBytes(1536) == "1.54 kB");
  CHECK(dlb::FormatBytes(99'949) == "99.9 kB");
  CHECK(dlb::FormatBytes(999'499) == "999 kB");
  CHECK(dlb::FormatBytes(999'500) == "1.00 MB");
  CHECK(dlb::FormatBytes(784.0 * 16777216 * 4) == "52.6 GB");
  CHECK(dlb::FormatBytes(2.2518e15) == "2.25 PB");
}

TEST_CASE("RequireMemory refuses more than the machine has, up front", "[memory]") {
  const dlb::MemoryCeiling ceiling = dlb::CurrentMemoryCeiling();
  REQUIRE(std::isfinite(ceiling.bytes));  // sysconf knows the physical memory on Linux
  CHECK_NOTHROW(dlb::RequireMemory(1e6, "a small buffer"));
  REQUIRE_THROWS_MATCHES(dlb::RequireMemory(ceiling.bytes * 2, "the test's buffers"),
                         dlb::MemoryError,
                         MessageContains({"the test's buffers need ", ", more than the ",
                                          dlb::FormatBytes(ceiling.bytes), ceiling.limit}));
}

TEST_CASE("AllocateOrThrow turns bad_alloc and length_error into MemoryError", "[memory]") {
  REQUIRE_THROWS_MATCHES(dlb::AllocateOrThrow(5e8, "the buffer", [] { throw std::bad_alloc(); }),
                         dlb::MemoryError,
                         MessageContains({"the buffer need 500 MB: out of memory"}));
  REQUIRE_THROWS_MATCHES(
      dlb::AllocateOrThrow(1e3, "the vector",
                           [] { std::vector<int>().reserve(std::vector<int>().max_size() + 1); }),
      dlb::MemoryError, MessageContains({"the vector need 1.00 kB: more than a buffer can hold"}));
  // Other errors pass unchanged.
  REQUIRE_THROWS_AS(dlb::AllocateOrThrow(1e3, "x", [] { throw dlb::ShapeError("s"); }),
                    dlb::ShapeError);
  bool ran = false;
  dlb::AllocateOrThrow(1e3, "x", [&] { ran = true; });
  CHECK(ran);
}

TEST_CASE("Linear too large for memory is a MemoryError with its size, before allocating",
          "[memory]") {
  // 2^24 x 2^24 floats, twice (weights and gradients): 2.25 PB, on any machine.
  REQUIRE_THROWS_MATCHES(dlb::Linear<float>(16777216, 16777216), dlb::MemoryError,
                         MessageContains({"Linear(16777216 -> 16777216): its weights and "
                                          "gradients need 2.25 PB, more than the"}));
  // A size whose element count overflows Index is refused before Eigen sees it.
  REQUIRE_THROWS_AS(dlb::Linear<double>(Eigen::Index{1} << 40, Eigen::Index{1} << 40),
                    dlb::MemoryError);
}

#if defined(__SANITIZE_ADDRESS__)
#define DLB_TEST_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DLB_TEST_ADDRESS_SANITIZER 1
#endif
#endif

TEST_CASE("The memory ceiling follows the address-space limit (ulimit -v)", "[memory]") {
#ifdef DLB_TEST_ADDRESS_SANITIZER
  SUCCEED("skipped under AddressSanitizer, which an address-space limit would starve");
#else
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // 1 GiB of address space beyond what the process has: below the physical memory of any
    // machine this runs on, so the limit is what the error must name.
    std::FILE* statm = std::fopen("/proc/self/statm", "r");
    unsigned long long pages = 0;
    if (statm == nullptr || std::fscanf(statm, "%llu", &pages) != 1) ::_exit(9);
    std::fclose(statm);
    const double physical = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) *
                            static_cast<double>(::sysconf(_SC_PAGESIZE));
    const rlim_t bytes = pages * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + (rlim_t{1} << 30);
    if (static_cast<double>(bytes) >= physical) ::_exit(8);
    const rlimit limit{bytes, bytes};
    if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(10);
    const dlb::MemoryCeiling ceiling = dlb::CurrentMemoryCeiling();
    if (ceiling.bytes != static_cast<double>(bytes)) ::_exit(11);
    try {
      dlb::Linear<float>(40000, 40000);  // 12.8 GB
      ::_exit(12);
    } catch (const dlb::MemoryError& e) {
      const std::string expected = "Linear(40000 -> 40000): its weights and gradients need 12.8 GB, "
                                   "more than the " + dlb::FormatBytes(static_cast<double>(bytes)) +
                                   " of address-space limit (ulimit -v) this process has";
      ::_exit(std::string(e.what()) == expected ? 0 : 13);
    } catch (...) {
      ::_exit(14);
    }
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
#endif
}
