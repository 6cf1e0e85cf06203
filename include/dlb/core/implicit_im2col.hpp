#pragma once
/// \file
/// Products with one sample's patch matrix that read the patches straight from the image
/// while Eigen's GEMM packs them ("implicit im2col"), for windows whose patches are shifts of
/// the image planes: stride 1 and an output as wide as the input ("same" widths, 2 pw = kw - 1).
///
/// With Wo == W and stride 1, output position p = oy*W + ox of patch column
/// k = (c*kh + ky)*kw + kx reads input position p + (ky - ph)*W + (kx - pw) of plane c (see
/// dlb/core/im2col.hpp for the patch matrix P): a column of P is the plane shifted by a
/// constant, less the entries whose ox + kx - pw falls outside [0, W) (which wrap to the
/// neighbouring row) and those whose row falls outside the plane. ImplicitPatches copies a
/// sample's planes between zero margins (so rows outside the plane read zeros) and keeps, per
/// kx, a mask of the positions whose column is inside the plane. Eigen's packing routine then
/// reads P(p..p+n, k) as one unaligned load and one AND with the mask: the patch matrix is
/// never written, and the pass that im2col spends writing it and the packing reading it back
/// is saved: a 16 -> 16 channel 3x3 convolution on 28 x 28, batch 128, took half the time for
/// its forward and its dW, and a ResNet epoch 11% less (docs/performance.md).
///
/// This uses Eigen 3.4's internal GEMM building blocks (gemm_pack_lhs, gemm_pack_rhs,
/// gebp_kernel, the data mappers), as dlb::Gemm's Eigen engine already does through
/// general_matrix_matrix_product; tests/test_implicit_im2col.cpp checks every product
/// against im2col and dlb::Gemm.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/gemm.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"

namespace dlb {

/// Whether `window`'s patches over `in` are shifts of the planes (ImplicitPatches applies):
/// stride 1 and an output as wide as the input (2 pw == kw - 1), with an output of at least
/// one position.
inline bool PatchesAreShifts(const Shape& in, const Window2D& window) {
  if (window.stride.height != 1 || window.stride.width != 1) return false;
  if (2 * window.padding.width != window.kernel.width - 1) return false;
  const Size2D out = window.OutputSize(in);
  return out.height >= 1 && out.width == in.width;
}

/// One sample's patch matrix P (Ho*W x C*kh*kw) for a window where PatchesAreShifts, held as
/// the sample's planes between zero margins and a mask per kernel column, for the products
/// PatchesTimes and PatchesTransposeTimes. Load() takes the sample; the tables follow the
/// shape and window given to Configure, and reuse their storage: once a shape has been seen,
/// Configure and Load allocate nothing.
template <Scalar T>
class ImplicitPatches {
 public:
  /// Bits of T (all ones where a position is inside the plane, 0 outside).
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  static_assert(sizeof(Bits) == sizeof(T), "ImplicitPatches needs a 4- or 8-byte scalar");

  /// Sets the image shape and window (nothing to do when they are the last ones). Throws
  /// ArgumentError unless PatchesAreShifts(in, window), and ShapeError when a size of the
  /// tables overflows Index.
  void Configure(const Shape& in, const Window2D& window) {
    if (in == in_ && window == window_) return;
    if (!PatchesAreShifts(in, window)) {
      throw ArgumentError("ImplicitPatches: the window (kernel " + window.kernel.ToString() +
                          ", stride " + window.stride.ToString() + ", padding " +
                          window.padding.ToString() + ") over " + in.ToString() +
                          " does not read shifted planes: it needs stride 1 and an output as "
                          "wide as the input");
    }
    const Index kh = window.kernel.height, kw = window.kernel.width;
    const Index ph = window.padding.height, pw = window.padding.width;
    const Index plane = CheckedMultiply(in.height, in.width, "ImplicitPatches: the plane");
    const Index positions = CheckedMultiply(window.OutputSize(in).height, in.width,
                                            "ImplicitPatches: the output positions");
    const Index margin = CheckedAdd(CheckedMultiply(ph, in.width, "ImplicitPatches: the margin"),
                                    pw, "ImplicitPatches: the margin");
    const Index plane_stride = CheckedAdd(plane, margin, "ImplicitPatches: a plane and margin");
    const Index guarded_size = CheckedAdd(
        margin, CheckedMultiply(in.channels, plane_stride, "ImplicitPatches: the planes"),
        "ImplicitPatches: the planes");
    const Index mask_size = CheckedMultiply(kw, positions, "ImplicitPatches: the masks");
    const Index columns = CheckedMultiply(in.channels, CheckedMultiply(kh, kw, "ImplicitPatches: the kernel"),
                                          "ImplicitPatches: the columns");
    in_ = in;
    window_ = window;
    positions_ = positions;
    margin_ = margin;
    plane_stride_ = plane_stride;
    // Zero everywhere; Load writes only the planes, so the margins stay zero.
    guarded_.setZero(guarded_size);
    // masks_.segment(kx * positions, positions): all ones where 0 <= ox + kx - pw < W.
    masks_.resize(mask_size);
    const T inside = std::bit_cast<T>(~Bits{0}), outside = std::bit_cast<T>(Bits{0});
    for (Index kx = 0; kx < kw; ++kx) {
      for (Index p = 0; p < positions_; ++p) {
        const Index column = p % in.width + kx - pw;
        masks_(kx * positions_ + p) = column >= 0 && column < in.width ? inside : outside;
      }
    }
    offsets_.resize(static_cast<std::size_t>(columns));
    mask_offsets_.resize(static_cast<std::size_t>(columns));
    for (Index c = 0; c < in.channels; ++c) {
      for (Index ky = 0; ky < kh; ++ky) {
        for (Index kx = 0; kx < kw; ++kx) {
          const auto k = static_cast<std::size_t>((c * kh + ky) * kw + kx);
          offsets_[k] = margin_ + c * plane_stride_ + (ky - ph) * in.width + (kx - pw);
          mask_offsets_[k] = kx == pw ? kNoMask : kx * positions_;
        }
      }
    }
  }

  /// Takes the sample (in.Size() values, C x H x W) whose patches the products read.
  void Load(const T* sample) {
    const Index plane = in_.height * in_.width;
    for (Index c = 0; c < in_.channels; ++c) {
      std::copy_n(sample + c * plane, plane, guarded_.data() + margin_ + c * plane_stride_);
    }
  }

  /// Rows of P (Ho*W) and columns (C*kh*kw).
  Index Rows() const { return positions_; }
  Index Columns() const { return static_cast<Index>(offsets_.size()); }

  /// Eigen's data-mapper view of P from (row0, column0) on, as gemm_pack_lhs reads it.
  class Mapper {
   public:
    using LinearMapper = void;  // gemm_pack_lhs names the type and never uses it
    Mapper(const ImplicitPatches& patches, Index row0, Index column0)
        : patches_(&patches), row0_(row0), column0_(column0) {}
    Mapper getSubMapper(Index i, Index j) const { return {*patches_, row0_ + i, column0_ + j}; }
    /// P(row0 + i .. + n, column0 + k) for a packet of n values.
    template <class Packet>
    EIGEN_ALWAYS_INLINE Packet loadPacket(Index i, Index k) const {
      const auto column = static_cast<std::size_t>(column0_ + k);
      const Index row = row0_ + i;
      Packet values = Eigen::internal::ploadu<Packet>(patches_->guarded_.data() +
                                                      patches_->offsets_[column] + row);
      if (const Index mask = patches_->mask_offsets_[column]; mask != kNoMask) {
        values = Eigen::internal::pand(
            values, Eigen::internal::ploadu<Packet>(patches_->masks_.data() + mask + row));
      }
      return values;
    }
    /// P(row0 + i, column0 + k).
    EIGEN_ALWAYS_INLINE T operator()(Index i, Index k) const {
      const auto column = static_cast<std::size_t>(column0_ + k);
      const Index row = row0_ + i;
      const Index mask = patches_->mask_offsets_[column];
      if (mask != kNoMask && std::bit_cast<Bits>(patches_->masks_(mask + row)) == 0) return T(0);
      return patches_->guarded_(patches_->offsets_[column] + row);
    }

   private:
    const ImplicitPatches* patches_;
    Index row0_, column0_;
  };

  /// The view of P^T (C*kh*kw x Ho*W) as a row-major lhs: element (i, k) is P(k, i), and a
  /// packet along k is a packet down P's column i.
  class TransposedMapper {
   public:
    using LinearMapper = void;
    explicit TransposedMapper(Mapper patches) : patches_(patches) {}
    TransposedMapper getSubMapper(Index i, Index j) const {
      return TransposedMapper(patches_.getSubMapper(j, i));
    }
    template <class Packet>
    EIGEN_ALWAYS_INLINE Packet loadPacket(Index i, Index k) const {
      return patches_.template loadPacket<Packet>(k, i);
    }
    EIGEN_ALWAYS_INLINE T operator()(Index i, Index k) const { return patches_(k, i); }

   private:
    Mapper patches_;
  };

 private:
  // Offsets, not pointers, so that a copy (a copied layer's workspace) reads its own tables.
  static constexpr Index kNoMask = -1;
  Shape in_{0, 0, 0};
  Window2D window_{Size2D{0}, Size2D{0}, Size2D{0}};
  Index positions_ = 0, margin_ = 0, plane_stride_ = 0;
  Vector<T> guarded_;                    // margin, then per channel: plane, margin
  Vector<T> masks_;                      // kw x positions bit masks
  std::vector<Index> offsets_;           // per column k: where P(0, k) sits in guarded_
  std::vector<Index> mask_offsets_;      // per column k: where its kx's mask starts in masks_
                                         // (kNoMask: kx == pw, every column inside)
};

namespace internal {

/// C (m x n, column-major at `c` with column stride c_stride) += A B, with A read through
/// `lhs` (an Eigen data mapper of storage order kLhsOrder) and B through `rhs`, by Eigen's
/// packing routines and kernel on the calling thread, packing into `workspace`: the loop of
/// Eigen's sequential general_matrix_matrix_product::run with our own mappers.
template <Scalar T, int kLhsOrder, class LhsMapper, class RhsMapper, int kRhsOrder>
void PackedProductAccumulate(const LhsMapper& lhs, const RhsMapper& rhs, Index m, Index n,
                             Index depth, T* c, Index c_stride, GemmWorkspace<T>& workspace) {
  using Traits = Eigen::internal::gebp_traits<T, T>;
  using ResMapper = Eigen::internal::blas_data_mapper<T, Index, Eigen::ColMajor, Eigen::Unaligned, 1>;
  Eigen::internal::gemm_pack_lhs<T, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                                 typename Traits::LhsPacket4Packing, kLhsOrder>
      pack_lhs;
  Eigen::internal::gemm_pack_rhs<T, Index, RhsMapper, Traits::nr, kRhsOrder> pack_rhs;
  Eigen::internal::gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp;
  WorkspaceBlocking<T> blocking(m, n, depth, workspace);
  const Index kc = blocking.kc();
  const Index mc = std::min(m, blocking.mc());
  const Index nc = std::min(n, blocking.nc());
  T* block_a = blocking.blockA();
  T* block_b = blocking.blockB();
  const ResMapper result(c, c_stride);
  const bool pack_rhs_once = mc != m && kc == depth && nc == n;
  for (Index i2 = 0; i2 < m; i2 += mc) {
    const Index actual_mc = std::min(i2 + mc, m) - i2;
    for (Index k2 = 0; k2 < depth; k2 += kc) {
      const Index actual_kc = std::min(k2 + kc, depth) - k2;
      pack_lhs(block_a, lhs.getSubMapper(i2, k2), actual_kc, actual_mc);
      for (Index j2 = 0; j2 < n; j2 += nc) {
        const Index actual_nc = std::min(j2 + nc, n) - j2;
        if (!pack_rhs_once || i2 == 0) {
          pack_rhs(block_b, rhs.getSubMapper(k2, j2), actual_kc, actual_nc);
        }
        gebp(result.getSubMapper(i2, j2), block_a, block_b, actual_mc, actual_kc, actual_nc, T(1));
      }
    }
  }
}

/// Eigen's mapper of a column-major matrix (kOrder ColMajor) or of the transpose of one read
/// as the row-major matrix it is in memory (kOrder RowMajor).
template <Scalar T, int kOrder>
using ConstMapper = Eigen::internal::const_blas_data_mapper<T, Index, kOrder>;

}  // namespace internal

/// Y = P op(B) + beta Y on the calling thread, with P the loaded sample's patch matrix
/// (ImplicitPatches, Rows() x Columns()), op(B) Columns() x n (B itself, or B^T for a weight
/// stored out x columns), Y Rows() x n in existing storage (e.g. a Map over a sample's output
/// column). beta is 0 (Y's old values ignored) or 1. Packs into `workspace`: allocates nothing
/// once the workspace has seen the sizes.
template <Scalar T>
void PatchesTimes(const ImplicitPatches<T>& patches, Op op_b, const ConstMatrixRef<T>& b,
                  Eigen::Ref<Matrix<T>> y, T beta, GemmWorkspace<T>& workspace) {
  if (beta == T(0)) y.setZero();
  const typename ImplicitPatches<T>::Mapper lhs(patches, 0, 0);
  const Index depth = patches.Columns();
  if (op_b == Op::None) {
    internal::PackedProductAccumulate<T, Eigen::ColMajor, decltype(lhs),
                                      internal::ConstMapper<T, Eigen::ColMajor>, Eigen::ColMajor>(
        lhs, internal::ConstMapper<T, Eigen::ColMajor>(b.data(), b.outerStride()), y.rows(),
        y.cols(), depth, y.data(), y.outerStride(), workspace);
  } else {
    internal::PackedProductAccumulate<T, Eigen::ColMajor, decltype(lhs),
                                      internal::ConstMapper<T, Eigen::RowMajor>, Eigen::RowMajor>(
        lhs, internal::ConstMapper<T, Eigen::RowMajor>(b.data(), b.outerStride()), y.rows(),
        y.cols(), depth, y.data(), y.outerStride(), workspace);
  }
}

/// G = P^T D + beta G on the calling thread: P the loaded sample's patch matrix (Rows() x
/// Columns()), D Rows() x n (column-major, e.g. a Map over a sample's output gradient), G
/// Columns() x n in existing storage. beta is 0 or 1. Allocates nothing once `workspace` has
/// seen the sizes.
template <Scalar T>
void PatchesTransposeTimes(const ImplicitPatches<T>& patches, const ConstMatrixRef<T>& d,
                           Eigen::Ref<Matrix<T>> g, T beta, GemmWorkspace<T>& workspace) {
  if (beta == T(0)) g.setZero();
  const typename ImplicitPatches<T>::TransposedMapper lhs(
      typename ImplicitPatches<T>::Mapper(patches, 0, 0));
  internal::PackedProductAccumulate<T, Eigen::RowMajor, decltype(lhs),
                                    internal::ConstMapper<T, Eigen::ColMajor>, Eigen::ColMajor>(
      lhs, internal::ConstMapper<T, Eigen::ColMajor>(d.data(), d.outerStride()), g.rows(),
      g.cols(), patches.Rows(), g.data(), g.outerStride(), workspace);
}

}  // namespace dlb
