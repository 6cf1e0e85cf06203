// Memory that cannot be had is a MemoryError naming what needed how much (issue 12), never an
// abort on std::bad_alloc.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "dlb/core/memory.hpp"
#include "dlb/layers/linear.hpp"
#include "support/address_limit.hpp"
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
  // A size whose element count overflows is refused by the checked arithmetic of the layer's
  // options, before any size is computed from it.
  REQUIRE_THROWS_MATCHES(dlb::Linear<double>(Eigen::Index{1} << 40, Eigen::Index{1} << 40),
                         dlb::ArgumentError,
                         MessageContains({"Linear: a tensor of 1099511627776 x 1099511627776 values "
                                          "is out of range"}));
}

TEST_CASE("The memory ceiling follows the address-space limit (ulimit -v)", "[memory]") {
  if (dlb_test::kAddressSanitizer) {
    SUCCEED("skipped under AddressSanitizer (see support/address_limit.hpp)");
    return;
  }
  const double physical = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) *
                          static_cast<double>(::sysconf(_SC_PAGESIZE));
  // 1 GiB beyond what the process has: below the physical memory of any machine this runs on
  // (checked), so the limit is what the error must name.
  const int code = dlb_test::RunUnderAddressLimit(std::uint64_t{1} << 30, [&](std::uint64_t limit) {
    if (static_cast<double>(limit) >= physical) return 1;
    if (dlb::CurrentMemoryCeiling().bytes != static_cast<double>(limit)) return 2;
    try {
      dlb::Linear<float>(40000, 40000);  // 12.8 GB
      return 3;
    } catch (const dlb::MemoryError& e) {
      const std::string expected =
          "Linear(40000 -> 40000): its weights and gradients need 12.8 GB, more than the " +
          dlb::FormatBytes(static_cast<double>(limit)) +
          " of address-space limit (ulimit -v) this process has";
      return std::string(e.what()) == expected ? 0 : 4;
    } catch (...) {
      return 5;
    }
  });
  CHECK(code == 0);
}
