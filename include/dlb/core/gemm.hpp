#pragma once
/// \file
/// The matrix product every layer uses, C = op(A) op(B) + beta C, with op = identity or
/// transpose, run on the engine ActiveGemmEngine() names (blas_engine.hpp).
///
/// - BLAS: sgemm_/dgemm_ with the caller's beta. Eigen's `C.noalias() = A * B` would first
///   zero C and then accumulate into it, an extra pass over C per product.
/// - Eigen: Eigen's GEMM kernel (the one its product expressions call) on packing buffers
///   (GemmWorkspace) that only grow. An Eigen product expression packs into a stack buffer
///   when the packed block fits EIGEN_STACK_ALLOCATION_LIMIT (128 KiB) and into a fresh heap
///   buffer on every call otherwise; its block sizes follow the CPU's cache sizes, so whether
///   a product allocates depended on the machine. Here the buffers belong to the product's
///   part, not to the thread that happens to run it: the pool's threads claim parts in
///   whatever order they arrive (core/parallel.hpp), so a thread's own buffers would see a
///   different largest block from batch to batch, and a step could allocate long after the
///   first batch. A part's buffers see the same blocks every batch of the same size.

#include <algorithm>
#include <limits>
#include <string>
#include <type_traits>

#include "dlb/core/blas.hpp"
#include "dlb/core/blas_engine.hpp"
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

/// C = op_a(A) op_b(B) + beta C by sgemm_/dgemm_. Requires C non-empty and k >= 1. Does
/// nothing in a build without a BLAS and for scalar types other than float and double (its
/// callers never call it then), hence the parameters that may be unused.
template <Scalar T>
void BlasGemm([[maybe_unused]] Op op_a, [[maybe_unused]] const ConstMatrixRef<T>& a,
              [[maybe_unused]] Op op_b, [[maybe_unused]] const ConstMatrixRef<T>& b,
              [[maybe_unused]] Eigen::Ref<Matrix<T>> c, [[maybe_unused]] Index k,
              [[maybe_unused]] T beta) {
#ifdef DLB_HAVE_BLAS
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
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
  }
#endif
}

}  // namespace internal

/// Packing buffers for the Eigen engine's products, grown to the largest block packed into
/// them and then reused: a product with a workspace that has seen its sizes allocates nothing.
/// Used by one product at a time. Code that runs products inside its own parallel parts (a
/// convolution's per-part chunks) keeps one per part and passes it to Gemm.
template <Scalar T>
struct GemmWorkspace {
  Vector<T> packed_lhs;
  Vector<T> packed_rhs;
};

namespace internal {

/// The workspaces of the products the calling thread starts, one per part of their split
/// (part p of every product this thread starts packs into element p).
template <Scalar T>
std::array<GemmWorkspace<T>, kMaxParallelParts>& CallerGemmWorkspaces() {
  thread_local std::array<GemmWorkspace<T>, kMaxParallelParts> workspaces;
  return workspaces;
}

/// Eigen's block sizes for an m x n x k product on one thread, with the packing buffers taken
/// from `workspace` (grown when too small: the only allocation of an Eigen-engine product).
template <Scalar T>
class WorkspaceBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  WorkspaceBlocking(Index m, Index n, Index k, GemmWorkspace<T>& workspace) {
    this->m_mc = m;
    this->m_nc = n;
    this->m_kc = k;
    Eigen::internal::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, Index{1});
    this->m_blockA = Reserve(workspace.packed_lhs, this->m_mc * this->m_kc);
    this->m_blockB = Reserve(workspace.packed_rhs, this->m_kc * this->m_nc);
  }

 private:
  static T* Reserve(Vector<T>& buffer, Index size) {
    if (buffer.size() < size) buffer.resize(size);
    return buffer.data();
  }
};

/// C += op_a(A) op_b(B) by Eigen's GEMM kernel on the calling thread. A transposed
/// column-major operand is passed to the kernel as the row-major matrix it is in memory.
/// Requires C non-empty and k >= 1.
template <Scalar T>
void EigenGemmAccumulate(Op op_a, const ConstMatrixRef<T>& a, Op op_b,
                         const ConstMatrixRef<T>& b, Eigen::Ref<Matrix<T>> c, Index k,
                         GemmWorkspace<T>& workspace) {
  WorkspaceBlocking<T> blocking(c.rows(), c.cols(), k, workspace);
  auto run = [&]<int kLhsOrder, int kRhsOrder>() {
    Eigen::internal::general_matrix_matrix_product<Index, T, kLhsOrder, false, T, kRhsOrder, false,
                                                   Eigen::ColMajor, 1>::run(
        c.rows(), c.cols(), k, a.data(), a.outerStride(), b.data(), b.outerStride(), c.data(), 1,
        c.outerStride(), T(1), blocking, nullptr);
  };
  constexpr int kCol = Eigen::ColMajor, kRow = Eigen::RowMajor;
  if (op_a == Op::None && op_b == Op::None) {
    run.template operator()<kCol, kCol>();
  } else if (op_a == Op::None) {
    run.template operator()<kCol, kRow>();
  } else if (op_b == Op::None) {
    run.template operator()<kRow, kCol>();
  } else {
    run.template operator()<kRow, kRow>();
  }
}

/// C = op_a(A) op_b(B) + beta C on the calling thread, into existing storage of the right
/// shape (a whole matrix or a block of one), on the active engine.
template <Scalar T>
void GemmBlock(Op op_a, const ConstMatrixRef<T>& a, Op op_b, const ConstMatrixRef<T>& b,
               Eigen::Ref<Matrix<T>> c, T beta, GemmWorkspace<T>& workspace) {
  if (c.rows() == 0 || c.cols() == 0) return;
  const Index k = op_a == Op::None ? a.cols() : a.rows();
  if constexpr (kHaveBlas && (std::is_same_v<T, float> || std::is_same_v<T, double>)) {
    if (k > 0 && ActiveGemmEngine() == GemmEngine::Blas) {
      BlasGemm<T>(op_a, a, op_b, b, c, k, beta);
      return;
    }
  }
  if (beta == T(0)) {
    c.setZero();
  } else if (beta != T(1)) {
    c *= beta;
  }
  if (k > 0) EigenGemmAccumulate<T>(op_a, a, op_b, b, c, k, workspace);
}

}  // namespace internal

namespace internal {

/// The sizes m, n, k of op_a(A) op_b(B). Throws ShapeError when the inner sizes differ, and
/// on the BLAS engine when a size or stride exceeds the BLAS's int.
struct GemmSizes {
  Index m, n, k;
};
template <Scalar T>
GemmSizes CheckGemmOperands(Op op_a, const ConstMatrixRef<T>& a, Op op_b,
                            const ConstMatrixRef<T>& b) {
  const Index m = op_a == Op::None ? a.rows() : a.cols();
  const Index k = op_a == Op::None ? a.cols() : a.rows();
  const Index k_b = op_b == Op::None ? b.rows() : b.cols();
  const Index n = op_b == Op::None ? b.cols() : b.rows();
  if (k != k_b) {
    throw ShapeError("Gemm: inner sizes differ: op(A) is " + std::to_string(m) + " x " +
                     std::to_string(k) + ", op(B) is " + std::to_string(k_b) + " x " +
                     std::to_string(n));
  }
  // The BLAS takes int sizes: reject what does not fit here, not inside a parallel block.
  if constexpr (kHaveBlas && (std::is_same_v<T, float> || std::is_same_v<T, double>)) {
    if (ActiveGemmEngine() == GemmEngine::Blas) {
      for (Index size : {m, n, k, a.outerStride(), b.outerStride()}) BlasDimension(size);
    }
  }
  return {m, n, k};
}

/// Throws ShapeError unless C is m x n.
inline void RequireGemmOutput(Index rows, Index cols, const GemmSizes& sizes) {
  if (rows != sizes.m || cols != sizes.n) {
    throw ShapeError("Gemm: C is " + std::to_string(rows) + " x " + std::to_string(cols) +
                     " but the product is " + std::to_string(sizes.m) + " x " +
                     std::to_string(sizes.n));
  }
}

/// Checks Gemm's operands and sizes C (see Gemm); returns k, the inner size.
template <Scalar T>
Index PrepareGemm(Op op_a, const ConstMatrixRef<T>& a, Op op_b, const ConstMatrixRef<T>& b,
                  Matrix<T>& c, T beta) {
  const GemmSizes sizes = CheckGemmOperands<T>(op_a, a, op_b, b);
  if (beta == T(0)) {
    c.resize(sizes.m, sizes.n);
  } else {
    RequireGemmOutput(c.rows(), c.cols(), sizes);
  }
  return sizes.k;
}

}  // namespace internal

/// C = op_a(A) op_b(B) + beta C.
///
/// Shapes: op_a(A) is m x k, op_b(B) is k x n, C is m x n. With beta == 0, C is resized
/// (no allocation when it already has that shape) and its old contents are ignored; with
/// beta != 0, C must already be m x n. Throws ShapeError when the inner sizes differ, and on
/// the BLAS engine when a size or stride exceeds the BLAS's int.
/// With NumThreads() > 1, C is cut into one block of rows or columns (whichever dimension is
/// larger) per part and the parts are computed at once. On the Eigen engine part p packs into
/// the p-th workspace of the calling thread (see GemmWorkspace): the first product of a
/// given size may grow them; products of sizes the calling thread has started before
/// allocate nothing, whichever threads run the parts.
template <Scalar T>
void Gemm(Op op_a, const ConstMatrixRef<T>& a, Op op_b, const ConstMatrixRef<T>& b, Matrix<T>& c,
          T beta = T(0)) {
  const Index m = op_a == Op::None ? a.rows() : a.cols();
  const Index n = op_b == Op::None ? b.cols() : b.rows();
  const Index k = internal::PrepareGemm<T>(op_a, a, op_b, b, c, beta);
  auto& workspaces = internal::CallerGemmWorkspaces<T>();
  // ParallelRanges counts cost in element-wise operations (it splits from 2^15 of them). The
  // GEMM kernels run ~30 flops in the time of one element-wise operation (here 80-190 GFLOP/s
  // against 3-6 G elements/s per core), so a product is split from ~1 Mflop: the 10 x 256 x 50
  // products of the notebook's last layer (0.26 Mflop) took 13 us split in two against ~5 us
  // on one thread.
  constexpr Index kFlopsPerElementOp = 32;
  if (m >= n) {
    ParallelRanges(m, 2 * k * n / kFlopsPerElementOp, [&](int part, Index begin, Index length) {
      const ConstMatrixRef<T> a_rows = op_a == Op::None ? ConstMatrixRef<T>(a.middleRows(begin, length))
                                                        : ConstMatrixRef<T>(a.middleCols(begin, length));
      internal::GemmBlock<T>(op_a, a_rows, op_b, b, c.middleRows(begin, length), beta,
                             workspaces[static_cast<std::size_t>(part)]);
    });
  } else {
    ParallelRanges(n, 2 * k * m / kFlopsPerElementOp, [&](int part, Index begin, Index length) {
      const ConstMatrixRef<T> b_cols = op_b == Op::None ? ConstMatrixRef<T>(b.middleCols(begin, length))
                                                        : ConstMatrixRef<T>(b.middleRows(begin, length));
      internal::GemmBlock<T>(op_a, a, op_b, b_cols, c.middleCols(begin, length), beta,
                             workspaces[static_cast<std::size_t>(part)]);
    });
  }
}

/// Gemm on the calling thread alone, packing into `workspace` on the Eigen engine: for
/// products run inside a part of a parallel loop, with the part's own workspace, so that the
/// part allocates nothing once it has seen its sizes, whichever thread runs it.
template <Scalar T>
void Gemm(Op op_a, const ConstMatrixRef<T>& a, Op op_b, const ConstMatrixRef<T>& b, Matrix<T>& c,
          T beta, GemmWorkspace<T>& workspace) {
  internal::PrepareGemm<T>(op_a, a, op_b, b, c, beta);
  internal::GemmBlock<T>(op_a, a, op_b, b, c, beta, workspace);
}

/// C = op_a(A) op_b(B) + beta C into existing storage (a whole matrix, a block of one, or a
/// Map over a sample's column: how a layer writes its output in place), on the calling
/// thread alone, packing into `workspace` on the Eigen engine. Requires C to be m x n already;
/// with beta == 0 its old contents are ignored. Throws ShapeError like Gemm, and when C has
/// another shape.
template <Scalar T>
void GemmInto(Op op_a, const ConstMatrixRef<T>& a, Op op_b, const ConstMatrixRef<T>& b,
              Eigen::Ref<Matrix<T>> c, T beta, GemmWorkspace<T>& workspace) {
  internal::RequireGemmOutput(c.rows(), c.cols(), internal::CheckGemmOperands<T>(op_a, a, op_b, b));
  internal::GemmBlock<T>(op_a, a, op_b, b, c, beta, workspace);
}

}  // namespace dlb
