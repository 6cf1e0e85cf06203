#pragma once
// Running a piece of a test in a child process whose address space is limited (RLIMIT_AS,
// `ulimit -v`), to see that running out of memory gives a clean error and not an abort.

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <functional>

namespace dlb_test {

// AddressSanitizer reserves terabytes of address space for itself, so a limit would starve it:
// tests that need RunUnderAddressLimit skip it in sanitizer builds.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

/// Runs body(limit) in a forked child whose address space may grow by `headroom` bytes beyond
/// what it has at the fork (limit: the resulting RLIMIT_AS in bytes), and returns the child's
/// exit code: body's result, 100 + the signal number when it was killed (an abort gives 106),
/// or 90 to 93 when the child could not be set up or waited for. body must not throw (catch
/// inside and return a code).
inline int RunUnderAddressLimit(std::uint64_t headroom,
                                const std::function<int(std::uint64_t)>& body) {
  const pid_t child = ::fork();
  if (child < 0) return 91;
  if (child == 0) {
    std::FILE* statm = std::fopen("/proc/self/statm", "r");
    unsigned long long pages = 0;
    if (statm == nullptr || std::fscanf(statm, "%llu", &pages) != 1) ::_exit(90);
    std::fclose(statm);
    const std::uint64_t bytes =
        pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) + headroom;
    const rlimit limit{static_cast<rlim_t>(bytes), static_cast<rlim_t>(bytes)};
    if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(90);
    ::_exit(body(bytes));
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child) return 92;
  if (WIFSIGNALED(status)) return 100 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 93;
}

}  // namespace dlb_test
