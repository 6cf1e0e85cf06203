#pragma once
// Replaces the global operator new and delete (every form a library may call) with ones that
// count allocations and remember the largest, so a test can check that a piece of code
// allocates nothing, or nothing large:
//   const long before = dlb_test::Allocations();  ...  CHECK(dlb_test::Allocations() == before);
//   dlb_test::ResetLargestAllocation();  ...  CHECK(dlb_test::LargestAllocation() <= limit);
// Defines the replacement operators: include it in one source file of a test program only.
// All forms go to malloc/free, so a sanitizer runtime never serves one side of a pair itself
// (its own nothrow new freed by our delete would be reported as a mismatch).

#include <atomic>
#include <cstdlib>
#include <new>

namespace dlb_test {
namespace detail {
inline std::atomic<long> g_allocations{0};
inline std::atomic<std::size_t> g_largest_allocation{0};

inline void Record(std::size_t size) {
  ++g_allocations;
  std::size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
  while (size > seen && !g_largest_allocation.compare_exchange_weak(seen, size)) {
  }
}
}  // namespace detail

/// Allocations made through operator new so far in this program.
inline long Allocations() { return detail::g_allocations.load(); }
/// The largest single allocation since the program started or the last reset, in bytes.
inline std::size_t LargestAllocation() { return detail::g_largest_allocation.load(); }
inline void ResetLargestAllocation() { detail::g_largest_allocation = 0; }
}  // namespace dlb_test

// GCC 12 sees storage from the replaced operator new reach std::free in the replaced operator
// delete and warns of a mismatch; both sides are malloc/free here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t size) {
  dlb_test::detail::Record(size);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return ::operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  dlb_test::detail::Record(size);
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return ::operator new(size, tag);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
