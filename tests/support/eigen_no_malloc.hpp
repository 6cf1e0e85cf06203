#pragma once
// Makes every heap allocation by Eigen while allocations are forbidden
// (Eigen::internal::set_is_malloc_allowed(false)) throw dlb_test::EigenAssertion, in Debug and
// Release builds alike, so that Catch reports the failing expression instead of the whole
// program aborting. EIGEN_RUNTIME_NO_MALLOC makes every Eigen allocation call
// eigen_assert(is_malloc_allowed()), and eigen_assert is defined here to throw.
// Include it before anything else in the test file (both macros must precede Eigen).
#define EIGEN_RUNTIME_NO_MALLOC
#include <stdexcept>
namespace dlb_test {
struct EigenAssertion : std::logic_error {
  using std::logic_error::logic_error;
};
}  // namespace dlb_test
#define eigen_assert(x)                                                                 \
  do {                                                                                  \
    if (!(x)) throw ::dlb_test::EigenAssertion("eigen_assert(" #x ") failed");          \
  } while (false)

