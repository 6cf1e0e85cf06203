#pragma once
// Shared test helpers: seeded random matrices, exception-message matchers for
// REQUIRE_THROWS_MATCHES, and a synthetic classification data set.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/random.hpp"
#include "dlb/core/types.hpp"

namespace dlb_test {

/// rows x cols matrix with entries uniform in [lo, hi), reproducible from `seed`.
template <dlb::Scalar T = double>
dlb::Matrix<T> RandomMatrix(dlb::Index rows, dlb::Index cols, std::uint64_t seed, double lo = -1.0,
                            double hi = 1.0) {
  dlb::Generator gen(seed);
  dlb::Matrix<T> m(rows, cols);
  for (dlb::Index i = 0; i < m.size(); ++i) {
    m.data()[i] = static_cast<T>(lo + (hi - lo) * dlb::SampleUniform<double>(gen));
  }
  return m;
}

/// Like RandomMatrix, but every entry has magnitude in [margin, margin + scale): keeps inputs
/// of ReLU/LeakyReLU away from their kink at 0, so finite differences never straddle it.
inline dlb::Matrix<double> RandomAwayFromZero(dlb::Index rows, dlb::Index cols,
                                              std::uint64_t seed, double margin = 0.1,
                                              double scale = 1.0) {
  dlb::Matrix<double> m = RandomMatrix<double>(rows, cols, seed);
  for (dlb::Index i = 0; i < m.size(); ++i) {
    const double u = m.data()[i];
    m.data()[i] = std::copysign(margin + scale * std::abs(u), u);
  }
  return m;
}

/// Adapts a string matcher (e.g. Catch::Matchers::Contains("x") && Contains("y")) to an
/// exception's what(), for REQUIRE_THROWS_MATCHES(expr, dlb::ShapeError, What(Contains(...))).
/// Catch2 v2's own string matchers cannot take the exception object directly.
template <class StringMatcher>
class WhatMatcher : public Catch::MatcherBase<std::exception> {
 public:
  explicit WhatMatcher(StringMatcher inner) : inner_(std::move(inner)) {}
  bool match(const std::exception& e) const override { return inner_.match(e.what()); }
  std::string describe() const override { return "what() " + inner_.describe(); }

 private:
  StringMatcher inner_;
};

template <class StringMatcher>
WhatMatcher<StringMatcher> What(StringMatcher inner) {
  return WhatMatcher<StringMatcher>(std::move(inner));
}

/// Matches an exception whose what() contains every given fragment: the short form of
/// What(Contains("a") && Contains("b") && ...), e.g.
/// REQUIRE_THROWS_MATCHES(expr, dlb::FileError, MessageContains({"truncated header", path})).
class MessageContains : public Catch::MatcherBase<std::exception> {
 public:
  MessageContains(std::initializer_list<std::string> parts) : parts_(parts) {}
  explicit MessageContains(std::vector<std::string> parts) : parts_(std::move(parts)) {}
  bool match(const std::exception& error) const override {
    const std::string message = error.what();
    for (const std::string& part : parts_) {
      if (message.find(part) == std::string::npos) return false;
    }
    return true;
  }
  std::string describe() const override {
    std::string text = "has a message containing";
    for (const std::string& part : parts_) text += " \"" + part + "\"";
    return text;
  }

 private:
  std::vector<std::string> parts_;
};

/// A features x n data set of `classes` Gaussian clusters: class c has a random centre with
/// coordinates in [-center_scale, center_scale) and unit-variance noise around it. Labels cycle
/// 0, 1, ..., classes-1 so every class is equally represented.
template <dlb::Scalar T>
struct Clusters {
  dlb::Matrix<T> x;
  dlb::Labels y;
};

template <dlb::Scalar T>
Clusters<T> MakeClusters(dlb::Index features, dlb::Index n, int classes, std::uint64_t seed,
                         double center_scale = 3.0, double noise = 1.0) {
  dlb::Generator gen(seed);
  dlb::Matrix<double> centers(features, classes);
  for (dlb::Index i = 0; i < centers.size(); ++i) {
    centers.data()[i] = center_scale * (2.0 * dlb::SampleUniform<double>(gen) - 1.0);
  }
  Clusters<T> data{dlb::Matrix<T>(features, n), dlb::Labels(n)};
  for (dlb::Index j = 0; j < n; ++j) {
    const int c = static_cast<int>(j % classes);
    data.y(j) = c;
    for (dlb::Index i = 0; i < features; ++i) {
      data.x(i, j) = static_cast<T>(centers(i, c) + noise * dlb::SampleNormal<double>(gen));
    }
  }
  return data;
}

}  // namespace dlb_test
