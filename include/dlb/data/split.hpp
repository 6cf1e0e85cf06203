#pragma once
/// \file
/// Stratified train/test split (like scikit-learn's train_test_split(..., stratify=y)): each
/// class is divided in the same proportion, so a held-out set keeps the class balance.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// The two parts of a split: samples are columns of the matrices, one label per column.
template <Scalar T>
struct Split {
  Matrix<T> train_x;
  Labels train_y;
  Matrix<T> test_x;
  Labels test_y;
};

namespace internal {

template <Scalar T>
void GatherColumns(const Matrix<T>& X, const Labels& y, const std::vector<Index>& columns,
                   Matrix<T>& out_x, Labels& out_y) {
  out_x.resize(X.rows(), static_cast<Index>(columns.size()));
  out_y.resize(static_cast<Index>(columns.size()));
  for (std::size_t k = 0; k < columns.size(); ++k) {
    out_x.col(static_cast<Index>(k)) = X.col(columns[k]);
    out_y(static_cast<Index>(k)) = y(columns[k]);
  }
}

}  // namespace internal

/// Splits the columns of X (features x samples) and their labels y into a training and a
/// test part. For every class c with n_c samples, its sample indices are shuffled with gen
/// (Fisher-Yates driven by SampleIndex, so the result is the same on every platform) and the
/// first round(test_fraction * n_c) go to the test part, the rest to the training part.
/// Within each part samples keep their original relative order (shuffle for training
/// separately). Deterministic for a given generator state; gen is advanced.
/// Throws ArgumentError unless 0 < test_fraction < 1 or when either part would be empty,
/// ShapeError if X.cols() != y.size().
template <Scalar T>
Split<T> StratifiedSplit(const Matrix<T>& X, const Labels& y, double test_fraction,
                         Generator& gen) {
  if (!(test_fraction > 0.0 && test_fraction < 1.0)) {
    throw ArgumentError("StratifiedSplit: test_fraction must be in (0, 1), got " +
                        std::to_string(test_fraction));
  }
  if (X.cols() != y.size()) {
    throw ShapeError("StratifiedSplit: X has " + std::to_string(X.cols()) +
                     " samples (columns) but y has " + std::to_string(y.size()) + " labels");
  }
  // The samples grouped by class, classes in increasing label order and each class's samples
  // in data order (labels need not be small or dense; the order, hence the use of gen, is
  // deterministic): a stable sort of the sample indices by label.
  std::vector<Index> by_class(static_cast<std::size_t>(y.size()));
  for (Index i = 0; i < y.size(); ++i) by_class[static_cast<std::size_t>(i)] = i;
  std::stable_sort(by_class.begin(), by_class.end(), [&](Index a, Index b) { return y(a) < y(b); });

  std::vector<char> in_test(static_cast<std::size_t>(y.size()), 0);
  Index test_count = 0;
  Index classes = 0;
  for (auto first = by_class.begin(); first != by_class.end(); ++classes) {
    const auto last = std::find_if(first, by_class.end(), [&](Index i) { return y(i) != y(*first); });
    const auto size = static_cast<std::size_t>(last - first);
    // A Fisher-Yates shuffle of the class's samples, then its first `take` go to the test part.
    for (std::size_t i = size - 1; i > 0; --i) {
      const auto j = static_cast<std::size_t>(SampleIndex(gen, i + 1));
      std::swap(first[static_cast<std::ptrdiff_t>(i)], first[static_cast<std::ptrdiff_t>(j)]);
    }
    const auto take = static_cast<std::size_t>(std::llround(test_fraction * static_cast<double>(size)));
    for (std::size_t k = 0; k < take; ++k) {
      in_test[static_cast<std::size_t>(first[static_cast<std::ptrdiff_t>(k)])] = 1;
    }
    test_count += static_cast<Index>(take);
    first = last;
  }
  if (test_count == 0 || test_count == y.size()) {
    throw ArgumentError("StratifiedSplit: test_fraction " + std::to_string(test_fraction) + " of " +
                        std::to_string(y.size()) + " samples in " + std::to_string(classes) +
                        " classes leaves the " + (test_count == 0 ? "test" : "training") +
                        " part empty");
  }

  std::vector<Index> train_columns;
  std::vector<Index> test_columns;
  train_columns.reserve(static_cast<std::size_t>(y.size() - test_count));
  test_columns.reserve(static_cast<std::size_t>(test_count));
  for (Index i = 0; i < y.size(); ++i) {
    (in_test[static_cast<std::size_t>(i)] ? test_columns : train_columns).push_back(i);
  }
  Split<T> split;
  internal::GatherColumns(X, y, train_columns, split.train_x, split.train_y);
  internal::GatherColumns(X, y, test_columns, split.test_x, split.test_y);
  return split;
}

}  // namespace dlb
