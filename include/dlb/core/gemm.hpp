#pragma once
/// \file
/// The matrix product every layer uses, C = op(A) op(B) + beta C, with op = identity or
/// transpose.
///
/// Eigen's `C.noalias() = A * B` first zeroes C and then accumulates into it; when the
/// product goes to a BLAS (EIGEN_USE_BLAS) that is an extra pass over C per product. Calling
/// the BLAS gemm directly with beta = 0 (or beta = 1 onto a prefilled C, e.g. a broadcast
/// bias) skips that pass. Without a BLAS, Eigen's own kernel runs.

#include <algorithm>
#include <limits>
#include <string>
#include <type_traits>

#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Whether a Gemm operand is used as is or transposed.
enum class Op { None, Transpose };

namespace internal {
inline int BlasDimension(Index size) {
  if (size > std::numeric_limits<int>::max()) {
    throw ShapeError("Gemm: dimension " + std::to_string(size) + " exceeds the BLAS int range");
  }
  return static_cast<int>(size);
}

/// C = op_a(A) op_b(B) + beta C on the calling thread, into existing storage of the right
/// shape (a whole matrix or a block of one).
template <Scalar T>
void GemmBlock(Op op_a, const ConstMatrixRef<T>& a, Op op_b, const ConstMatrixRef<T>& b,
               Eigen::Ref<Matrix<T>> c, T beta) {
#ifdef EIGEN_USE_BLAS
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    const Index k = op_a == Op::None ? a.cols() : a.rows();
    if (c.rows() == 0 || c.cols() == 0) return;
    if (k == 0) {
      c *= beta;
      return;
    }
    const char trans_a = op_a == Op::None ? 'N' : 'T';
    const char trans_b = op_b == Op::None ? 'N' : 'T';
    const int m = BlasDimension(c.rows()), n = BlasDimension(c.cols()), kk = BlasDimension(k);
    const int lda = BlasDimension(std::max<Index>(1, a.outerStride()));
    const int ldb = BlasDimension(std::max<Index>(1, b.outerStride()));
    const int ldc = BlasDimension(std::max<Index>(1, c.outerStride()));
    const T alpha = T(1);
    if constexpr (std::is_same_v<T, float>) {
      sgemm_(&trans_a, &trans_b, &m, &n, &kk, &alpha, a.data(), &lda, b.data(), &ldb, &beta,
             c.data(), &ldc);
    } else {
      dgemm_(&trans_a, &trans_b, &m, &n, &kk, &alpha, a.data(), &lda, b.data(), &ldb, &beta,
             c.data(), &ldc);
    }
    return;
  }
#endif
  if (beta == T(0)) {
    c.setZero();
  } else if (beta != T(1)) {
    c *= beta;
  }
  // Accumulating into C avoids the temporary Eigen would otherwise evaluate into.
  if (op_a == Op::None && op_b == Op::None) {
    c.noalias() += a * b;
  } else if (op_a == Op::None) {
    c.noalias() += a * b.transpose();
  } else if (op_b == Op::None) {
    c.noalias() += a.transpose() * b;
  } else {
    c.noalias() += a.transpose() * b.transpose();
  }
}

}  // namespace internal

/// C = op_a(A) op_b(B) + beta C.
///
/// Shapes: op_a(A) is m x k, op_b(B) is k x n, C is m x n. With beta == 0, C is resized
/// (no allocation when it already has that shape) and its old contents are ignored; with
/// beta != 0, C must already be m x n. Throws ShapeError when the inner sizes differ.
/// With NumThreads() > 1, C is cut into one block of rows or columns (whichever dimension is
/// larger) per thread and the blocks are computed at once.
template <Scalar T>
void Gemm(Op op_a, const ConstMatrixRef<T>& a, Op op_b, const ConstMatrixRef<T>& b, Matrix<T>& c,
          T beta = T(0)) {
  const Index m = op_a == Op::None ? a.rows() : a.cols();
  const Index k = op_a == Op::None ? a.cols() : a.rows();
  const Index k_b = op_b == Op::None ? b.rows() : b.cols();
  const Index n = op_b == Op::None ? b.cols() : b.rows();
  if (k != k_b) {
    throw ShapeError("Gemm: inner sizes differ: op(A) is " + std::to_string(m) + " x " +
                     std::to_string(k) + ", op(B) is " + std::to_string(k_b) + " x " +
                     std::to_string(n));
  }
  if (beta == T(0)) {
    c.resize(m, n);
  } else if (c.rows() != m || c.cols() != n) {
    throw ShapeError("Gemm: C is " + std::to_string(c.rows()) + " x " + std::to_string(c.cols()) +
                     " but the product is " + std::to_string(m) + " x " + std::to_string(n));
  }
  // Cost per row (or column) of C is 2 k n (or 2 k m) flops: worth splitting from ~32 kflop.
  if (m >= n) {
    ParallelRanges(m, 2 * k * n, [&](int, Index begin, Index length) {
      const ConstMatrixRef<T> a_rows = op_a == Op::None ? ConstMatrixRef<T>(a.middleRows(begin, length))
                                                        : ConstMatrixRef<T>(a.middleCols(begin, length));
      internal::GemmBlock<T>(op_a, a_rows, op_b, b, c.middleRows(begin, length), beta);
    });
  } else {
    ParallelRanges(n, 2 * k * m, [&](int, Index begin, Index length) {
      const ConstMatrixRef<T> b_cols = op_b == Op::None ? ConstMatrixRef<T>(b.middleCols(begin, length))
                                                        : ConstMatrixRef<T>(b.middleRows(begin, length));
      internal::GemmBlock<T>(op_a, a, op_b, b_cols, c.middleCols(begin, length), beta);
    });
  }
}

}  // namespace dlb
