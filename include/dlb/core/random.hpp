#pragma once
/// \file
/// The one random source every stochastic block takes (weight init, dropout, shuffling,
/// augmentation). The generator and the distributions are implemented here rather than taken
/// from `<random>`: std::normal_distribution differs between standard libraries, and so does
/// the text a std::mt19937_64 saves its state as (libstdc++ appends its position, libc++ does
/// not), so the same seed gives the same network, and a checkpoint's generator state the same
/// stream, on every platform. (Leaving `<random>` out also spares every program that includes
/// the library the header's parse, about 0.1 s.)

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <optional>
#include <span>

#include "dlb/core/types.hpp"

namespace dlb {

/// The 64-bit Mersenne Twister, MT19937-64 (Matsumoto and Nishimura, 2000): the engine the C++
/// standard names std::mt19937_64, with the same output for the same seed (the standard fixes
/// the sequence: the 10000th draw from the default seed 5489 is 9981545732273789042).
///
/// Represents: 312 words of state and the position of the next word to temper (312 when the
/// state is used up and must be regenerated). Satisfies std::uniform_random_bit_generator,
/// so it also drives the standard algorithms (std::shuffle).
/// State as words (Words, SetWords): the 312 state words then the position, 313 values; the
/// layout libstdc++ writes for std::mt19937_64, so a checkpoint saved before this class keeps
/// its meaning.
class Generator {
 public:
  using result_type = std::uint64_t;
  static constexpr std::size_t kStateWords = 312;
  /// Words() and SetWords(): the state words, then the position.
  static constexpr std::size_t kWords = kStateWords + 1;
  static constexpr result_type kDefaultSeed = 5489;

  explicit Generator(result_type seed_value = kDefaultSeed) { seed(seed_value); }

  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }

  /// Restarts the sequence from `value` (the standard's seeding: x_0 = value,
  /// x_i = 6364136223846793005 (x_{i-1} xor (x_{i-1} >> 62)) + i).
  void seed(result_type value = kDefaultSeed) {
    state_[0] = value;
    for (std::size_t i = 1; i < kStateWords; ++i) {
      state_[i] = 6364136223846793005ULL * (state_[i - 1] ^ (state_[i - 1] >> 62)) + i;
    }
    position_ = kStateWords;
  }

  /// The next 64 random bits.
  result_type operator()() {
    if (position_ >= kStateWords) Regenerate();
    result_type y = state_[position_++];
    y ^= (y >> 29) & 0x5555555555555555ULL;
    y ^= (y << 17) & 0x71D67FFFEDA60000ULL;
    y ^= (y << 37) & 0xFFF7EEE000000000ULL;
    y ^= y >> 43;
    return y;
  }

  /// The full state: kStateWords words, then the position (0..kStateWords).
  std::array<std::uint64_t, kWords> Words() const {
    std::array<std::uint64_t, kWords> words{};
    for (std::size_t i = 0; i < kStateWords; ++i) words[i] = state_[i];
    words[kStateWords] = position_;
    return words;
  }
  /// Why `words` cannot be a Words() state: a count other than kWords, a position above
  /// kStateWords, or state words all zero (a state no seed gives, from which the twister
  /// draws zeros forever); nullptr when they can.
  static const char* WordsProblem(std::span<const std::uint64_t> words) {
    if (words.size() != kWords) return "a generator's state is 313 words";
    if (words[kStateWords] > kStateWords) return "its position (the last word) is above 312";
    if (std::all_of(words.begin(), words.begin() + kStateWords,
                    [](std::uint64_t word) { return word == 0; })) {
      return "its 312 state words are all zero, which no seed gives";
    }
    return nullptr;
  }
  /// The generator whose Words() are `words`, or none where WordsProblem names a problem.
  static std::optional<Generator> FromWords(std::span<const std::uint64_t> words) {
    if (WordsProblem(words) != nullptr) return std::nullopt;
    Generator gen;
    std::copy(words.begin(), words.begin() + kStateWords, gen.state_.begin());
    gen.position_ = static_cast<std::size_t>(words[kStateWords]);
    return gen;
  }

  friend bool operator==(const Generator&, const Generator&) = default;

 private:
  /// The twist: every state word from itself, the next and the one 156 ahead.
  void Regenerate() {
    constexpr std::uint64_t kUpper = ~std::uint64_t{0} << 31, kLower = ~kUpper;
    constexpr std::size_t kShift = 156;
    for (std::size_t i = 0; i < kStateWords; ++i) {
      const std::uint64_t y = (state_[i] & kUpper) | (state_[(i + 1) % kStateWords] & kLower);
      state_[i] = state_[(i + kShift) % kStateWords] ^ (y >> 1) ^
                  ((y & 1) != 0 ? 0xB5026F5AA96619E9ULL : 0);
    }
    position_ = 0;
  }

  std::array<std::uint64_t, kStateWords> state_{};
  std::size_t position_ = kStateWords;
};

/// Uniform draw in [0, 1): u = k * 2^-b with k uniform on b bits, b = 24 for float and 53
/// otherwise, so rounding to T can never produce 1.
template <Scalar T>
T SampleUniform(Generator& gen) {
  if constexpr (std::numeric_limits<T>::digits <= 24) {
    return static_cast<T>(gen() >> 40) * T(0x1.0p-24);
  } else {
    return static_cast<T>(static_cast<double>(gen() >> 11) * 0x1.0p-53);
  }
}

/// Standard normal draw N(0, 1) by the Box-Muller transform:
/// z = sqrt(-2 ln u1) * cos(2 pi u2), with u1 in (0, 1].
template <Scalar T>
T SampleNormal(Generator& gen) {
  const double u1 = 1.0 - static_cast<double>(gen() >> 11) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(gen() >> 11) * 0x1.0p-53;
  return static_cast<T>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
}

/// Uniform integer in [0, n) without modulo bias (rejection sampling); n > 0.
inline std::uint64_t SampleIndex(Generator& gen, std::uint64_t n) {
  const std::uint64_t limit = Generator::max() - Generator::max() % n;
  std::uint64_t x;
  do {
    x = gen();
  } while (x >= limit);
  return x % n;
}

}  // namespace dlb
