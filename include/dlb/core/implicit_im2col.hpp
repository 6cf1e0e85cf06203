#pragma once
/// \file
/// Products with one sample's patch matrix that read the patches straight from the image
/// ("implicit im2col"), for windows whose patches are shifts of planes: stride 1 and an output
/// as wide as the input ("same" widths, 2 pw = kw - 1), or stride 2 over even planes, whose
/// patches are shifts of the input's phases (its even and odd rows and columns).
///
/// With Wo == W and stride 1, output position p = oy*W + ox of patch column
/// k = (c*kh + ky)*kw + kx reads input position p + (ky - ph)*W + (kx - pw) of plane c (see
/// dlb/core/im2col.hpp for the patch matrix P): a column of P is the plane shifted by a
/// constant, less the entries whose ox + kx - pw falls outside [0, W) (which wrap to the
/// neighbouring row) and those whose row falls outside the plane. With stride 2, input row
/// 2 oy - ph + ky is row oy + shift of the phase of rows (ky - ph) mod 2 (PatchTap), so the
/// same holds of the phase planes, W/2 wide: a strided convolution reads shifted planes too
/// (its polyphase form), and so does its input gradient, phase by phase. ImplicitPatches
/// copies a sample's planes (or phases) between zero margins (so rows outside a plane read
/// zeros) and keeps, per column shift, a mask of the positions whose column is inside the
/// plane, so that P(p..p+n, k) is one unaligned load and one AND with the mask: the patch
/// matrix is never written, and the pass that im2col spends writing it and the products
/// reading it back is saved. PatchesTimes (P B: a convolution's output, and its input gradient
/// as the transposed convolution) and PatchesTransposeTimes (P^T D: the weight gradient) run
/// their own register-tiled kernels on those loads; on small planes PatchesTransposeTimes has
/// Eigen's packing routine read them instead (a 16 -> 16 channel 3x3 convolution on 28 x 28,
/// batch 128, took half the time for its forward and its dW with Eigen's kernels reading the
/// planes, and a ResNet epoch 11% less; the two kernels then took more off, and the strided
/// convolutions' phases more again: docs/performance.md).
///
/// The small planes' path uses Eigen 3.4's internal GEMM building blocks (gemm_pack_lhs,
/// gemm_pack_rhs, gebp_kernel, the data mappers), as dlb::Gemm's Eigen engine already does
/// through general_matrix_matrix_product, and the kernels Eigen's packet functions (ploadu,
/// pand, pmadd, predux: the target's vectors); tests/test_implicit_im2col.cpp checks every
/// product against im2col and dlb::Gemm, built for the generic target and for the machine.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/gemm.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"

namespace dlb {

/// Whether `window`'s patches over `in` are shifts of planes, so that ImplicitPatches reads
/// them: in each direction a stride of 1, or of 2 over an even extent (the planes are then the
/// input's phases, every second row or column); an output row as wide as the planes' (W with
/// stride 1: 2 pw == kw - 1; W / 2 with stride 2: kw - 2 pw is 1 or 2, e.g. a 3x3 kernel
/// with padding 1 or a 1x1 without); and an output of at least one position.
inline bool PatchesAreShifts(const Shape& in, const Window2D& window) {
  const auto stride_fits = [](Index stride, Index extent) {
    return stride == 1 || (stride == 2 && extent % 2 == 0);
  };
  if (!stride_fits(window.stride.height, in.height) || !stride_fits(window.stride.width, in.width)) {
    return false;
  }
  const Size2D out = window.OutputSize(in);
  return out.height >= 1 && out.width == in.width / window.stride.width;
}

/// Calls f(i, p) for every value of phase `phase` (a, b) of a plane of height x width values
/// stored row by row, the values at rows a, a + sh, ... and columns b, b + sw, ... of `stride`
/// (sh, sw): i is the value's index in the phase, (height / sh) x (width / sw) stored row by
/// row, p its index in the plane, i = y (width / sw) + x and p = (sh y + a) width + sw x + b.
/// The one description of a phase, for copying it out of a plane (ImplicitPatches::Load) and
/// into one (Conv2D's input gradient by phases).
/// Requires: height and width multiples of the stride's, 0 <= a < sh and 0 <= b < sw.
template <class F>
void ForEachPhaseValue(Index height, Index width, Size2D stride, Size2D phase, F&& f) {
  const Index rows = height / stride.height, columns = width / stride.width;
  for (Index y = 0; y < rows; ++y) {
    const Index row = (stride.height * y + phase.height) * width + phase.width;
    for (Index x = 0; x < columns; ++x) f(y * columns + x, row + stride.width * x);
  }
}

/// One tap of a window along one direction, as the planes of ImplicitPatches see it: kernel
/// index t reads input index s*o - p + t for output index o, i.e. index o + shift of the
/// phase plane `phase` (the input's indices phase, phase + s, phase + 2s, ...), with
/// t - p = s*shift + phase, 0 <= phase < s.
struct PatchTap {
  Index phase, shift;
  static PatchTap Of(Index t, Index stride, Index padding) {
    const Index u = t - padding;
    const Index phase = ((u % stride) + stride) % stride;
    return {phase, (u - phase) / stride};
  }
};

/// Calls f(ky, kx, row tap, column tap) for every tap of `window`, kernel rows then columns in
/// ascending order, with the PatchTap of each direction.
template <class F>
void ForEachTap(const Window2D& window, F&& f) {
  for (Index ky = 0; ky < window.kernel.height; ++ky) {
    const PatchTap row = PatchTap::Of(ky, window.stride.height, window.padding.height);
    for (Index kx = 0; kx < window.kernel.width; ++kx) {
      f(ky, kx, row, PatchTap::Of(kx, window.stride.width, window.padding.width));
    }
  }
}

/// Calls f(ky, kx) for every tap of `window` (in ForEachTap's order) that reads the input's
/// phase `phase` (row phase, column phase: see PatchTap): the columns of
/// ImplicitPatches::ConfigureTransposed's patches per output channel, in their order.
template <class F>
void ForEachPhaseTap(const Window2D& window, Size2D phase, F&& f) {
  ForEachTap(window, [&](Index ky, Index kx, PatchTap row, PatchTap column) {
    if (row.phase == phase.height && column.phase == phase.width) f(ky, kx);
  });
}

/// A patch matrix read from planes instead of written out, for the products PatchesTimes and
/// PatchesTransposeTimes, in one of two configurations:
///   - Configure(in, window): one sample's patch matrix P (Ho*Wo x C*kh*kw, im2col's, see
///     dlb/core/im2col.hpp) for a window where PatchesAreShifts. Column k = (c*kh + ky)*kw + kx
///     is a plane of the sample, shifted: with stride 1 the channel's plane itself (position
///     p = oy*W + ox reads p + (ky - ph)*W + (kx - pw)); with stride 2 in a direction, the
///     phase of the plane that the tap reads (PatchTap), so that a strided convolution reads
///     shifted planes too (its "polyphase" form). Load takes the sample X_b (C x H x W) and
///     splits it into the phases its columns read.
///   - ConfigureTransposed(in, out_channels, window), then SelectPhase(a, b): the patches
///     P'_ab of an output gradient dY_b (out_channels x Ho x Wo) whose product with the taps
///     of phase (a, b) gives that phase of the input gradient: dX_b(c, s y + a, s x + b) = sum over the taps
///     (ky, kx) of the phase (ForEachPhaseTap) and o of W(o, c, ky, kx) dY_b(o, y - shift_y,
///     x - shift_x), i.e. P'_ab is (H/sh * W/sw) x (out_channels * taps), column o*taps + t
///     the plane o shifted by minus tap t's shifts. With stride 1 this is the transposed
///     convolution (one phase, every tap). Load takes dY_b.
/// The planes sit between zero margins, so that rows outside a plane read zeros, and each
/// distinct column shift has a mask of the positions whose column stays inside the plane, so
/// that P(p..p+n, k) is one unaligned load and one AND: the patch matrix is never written.
/// The tables follow the configuration and reuse their storage: once a configuration has been
/// seen, Configure, ConfigureTransposed, SelectPhase and Load allocate nothing. One Load of
/// dY_b serves every phase.
template <Scalar T>
class ImplicitPatches {
 public:
  /// Bits of T (all ones where a position is inside the plane, 0 outside).
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  static_assert(sizeof(Bits) == sizeof(T), "ImplicitPatches needs a 4- or 8-byte scalar");

  /// The patches of a sample of shape `in` under `window` (nothing to do when they are the
  /// last configuration). Throws ArgumentError unless PatchesAreShifts(in, window), and
  /// ShapeError when a size of the tables overflows Index.
  void Configure(const Shape& in, const Window2D& window) {
    const Key key{in, window, false, 0};
    if (key == key_) return;
    RequireShifts(in, window);
    const Size2D out = window.OutputSize(in);
    const Index sh = window.stride.height, sw = window.stride.width;
    // The phases that some tap reads, in order, and the plane of (phase, channel).
    std::vector<bool> used(static_cast<std::size_t>(sh * sw), false);
    ForEachTap(window, [&](Index, Index, PatchTap row, PatchTap column) {
      used[static_cast<std::size_t>(row.phase * sw + column.phase)] = true;
    });
    std::vector<Index> phase_plane(used.size(), -1), load_phases;
    for (std::size_t phase = 0; phase < used.size(); ++phase) {
      if (!used[phase]) continue;
      phase_plane[phase] = static_cast<Index>(load_phases.size()) * in.channels;
      load_phases.push_back(static_cast<Index>(phase));
    }
    std::vector<Column> columns;
    columns.reserve(static_cast<std::size_t>(
        CheckedMultiply(in.channels, CheckedMultiply(window.kernel.height, window.kernel.width,
                                                     "ImplicitPatches: the kernel"),
                        "ImplicitPatches: the columns")));
    for (Index c = 0; c < in.channels; ++c) {
      ForEachTap(window, [&](Index, Index, PatchTap row, PatchTap column) {
        columns.push_back({phase_plane[static_cast<std::size_t>(row.phase * sw + column.phase)] + c,
                           row.shift, column.shift});
      });
    }
    // Build checks every size before it changes anything, so a throw keeps the previous
    // configuration whole; the members below change only after it.
    Build(CheckedMultiply(in.channels, static_cast<Index>(load_phases.size()),
                          "ImplicitPatches: the planes"),
          Size2D{in.height / sh, in.width / sw}, out.height, columns);
    load_phases_ = std::move(load_phases);
    load_shape_ = in;
    load_stride_ = window.stride;
    key_ = key;
    first_column_ = 0;
    columns_ = static_cast<Index>(columns.size());
  }

  /// The patches P'_ab of an output gradient for every phase (a, b) of the input gradient of a
  /// convolution from `in` to out_channels planes under `window` (see the class comment;
  /// nothing to do when they are the last configuration), phase (0, 0) selected: SelectPhase
  /// picks the phase whose columns the products read, with no new Load. Throws ArgumentError
  /// unless PatchesAreShifts(in, window) and out_channels >= 1, and ShapeError when a size of
  /// the tables overflows Index.
  void ConfigureTransposed(const Shape& in, Index out_channels, const Window2D& window) {
    const Key key{in, window, true, out_channels};
    if (key == key_) {
      SelectPhase(Size2D{0});
      return;
    }
    RequireShifts(in, window);
    if (out_channels < 1) {
      throw ArgumentError("ImplicitPatches: a convolution needs an output channel, got " +
                          std::to_string(out_channels));
    }
    const Size2D out = window.OutputSize(in);
    const Index sh = window.stride.height, sw = window.stride.width;
    std::vector<Column> columns;
    columns.reserve(static_cast<std::size_t>(CheckedMultiply(
        out_channels, CheckedMultiply(window.kernel.height, window.kernel.width, "ImplicitPatches: the kernel"),
        "ImplicitPatches: the columns")));
    std::vector<Index> phase_columns{0};
    for (Index phase = 0; phase < sh * sw; ++phase) {
      const Size2D of{phase / sw, phase % sw};
      for (Index o = 0; o < out_channels; ++o) {
        ForEachPhaseTap(window, of, [&](Index ky, Index kx) {
          columns.push_back({o, -PatchTap::Of(ky, sh, window.padding.height).shift,
                             -PatchTap::Of(kx, sw, window.padding.width).shift});
        });
      }
      phase_columns.push_back(static_cast<Index>(columns.size()));
    }
    Build(out_channels, out, in.height / sh, columns);  // as in Configure: checks first
    phase_columns_ = std::move(phase_columns);
    load_phases_.assign(1, 0);
    load_shape_ = Shape{out_channels, out.height, out.width};
    load_stride_ = Size2D{1};
    transposed_stride_ = window.stride;
    key_ = key;
    SelectPhase(Size2D{0});
  }

  /// After ConfigureTransposed: P'_ab for phase (a, b) of its window's stride is the matrix
  /// the products read (Columns(), ColumnValues, ...: out_channels x the phase's taps
  /// columns, in ForEachPhaseTap's order per channel; none where no tap reads the phase).
  /// Throws ArgumentError for a phase outside the stride, or after Configure.
  void SelectPhase(Size2D phase) {
    const Index sh = transposed_stride_.height, sw = transposed_stride_.width;
    if (!key_.transposed || phase.height < 0 || phase.height >= sh || phase.width < 0 ||
        phase.width >= sw) {
      throw ArgumentError("ImplicitPatches: no phase " + phase.ToString() +
                          (key_.transposed ? " of stride " + transposed_stride_.ToString()
                                           : " outside ConfigureTransposed's patches"));
    }
    const auto index = static_cast<std::size_t>(phase.height * sw + phase.width);
    first_column_ = phase_columns_[index];
    columns_ = phase_columns_[index + 1] - first_column_;
  }

  /// Takes the sample (Configure: C x H x W values, X_b; ConfigureTransposed: out_channels x
  /// Ho x Wo, dY_b) whose patches the products read, split into the phases its columns read.
  void Load(const T* sample) {
    const Index channels = load_shape_.channels, height = load_shape_.height,
                width = load_shape_.width;
    const Index sh = load_stride_.height, sw = load_stride_.width;
    const Index plane = height * width;
    if (sh == 1 && sw == 1) {
      for (Index c = 0; c < channels; ++c) {
        std::copy_n(sample + c * plane, plane, guarded_.data() + margin_ + c * plane_stride_);
      }
      return;
    }
    for (std::size_t slot = 0; slot < load_phases_.size(); ++slot) {
      const Size2D phase{load_phases_[slot] / sw, load_phases_[slot] % sw};
      for (Index c = 0; c < channels; ++c) {
        const T* from = sample + c * plane;
        T* to = guarded_.data() + margin_ +
                (static_cast<Index>(slot) * channels + c) * plane_stride_;
        ForEachPhaseValue(height, width, load_stride_, phase,
                          [&](Index i, Index p) { to[i] = from[p]; });
      }
    }
  }

  /// Rows of P (positions: Ho*Wo, or H/sh * W/sw for ConfigureTransposed) and columns.
  Index Rows() const { return positions_; }
  Index Columns() const { return columns_; }

  /// Where column k of P starts: P(p, k) is ColumnValues(k)[p] wherever ColumnMask(k) is null
  /// or ColumnMask(k)[p]'s bits are all set, and 0 where they are clear (the position's
  /// column plus the column's shift falls outside the plane; the value there belongs to the
  /// neighbouring row). Both are valid for p in [0, Rows()).
  const T* ColumnValues(Index k) const {
    return guarded_.data() + offsets_[static_cast<std::size_t>(first_column_ + k)];
  }
  const T* ColumnMask(Index k) const {
    const Index mask = mask_offsets_[static_cast<std::size_t>(first_column_ + k)];
    return mask == unshifted_mask_ ? nullptr : masks_.data() + mask;
  }

  /// The mask of column k's shift for every column, all ones where the shift is 0 (where
  /// ColumnMask is null): P(p, k) is ColumnValues(k)[p] AND ColumnMaskOrOnes(k)[p], for p in
  /// [0, Rows()), with one instruction per packet and no branch.
  const T* ColumnMaskOrOnes(Index k) const {
    return masks_.data() + mask_offsets_[static_cast<std::size_t>(first_column_ + k)];
  }

  /// Eigen's data-mapper view of P from (row0, column0) on, as gemm_pack_lhs reads it.
  class Mapper {
   public:
    using LinearMapper = void;  // gemm_pack_lhs names the type and never uses it
    Mapper(const ImplicitPatches& patches, Index row0, Index column0)
        : patches_(&patches), row0_(row0), column0_(patches.first_column_ + column0) {}
    Mapper getSubMapper(Index i, Index j) const {
      Mapper sub = *this;
      sub.row0_ += i;
      sub.column0_ += j;
      return sub;
    }
    /// P(row0 + i .. + n, column0 + k) for a packet of n values.
    template <class Packet>
    EIGEN_ALWAYS_INLINE Packet loadPacket(Index i, Index k) const {
      const auto column = static_cast<std::size_t>(column0_ + k);
      const Index row = row0_ + i;
      Packet values = Eigen::internal::ploadu<Packet>(patches_->guarded_.data() +
                                                      patches_->offsets_[column] + row);
      if (const Index mask = patches_->mask_offsets_[column]; mask != patches_->unshifted_mask_) {
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
      if (std::bit_cast<Bits>(patches_->masks_(mask + row)) == 0) return T(0);
      return patches_->guarded_(patches_->offsets_[column] + row);
    }

   private:
    const ImplicitPatches* patches_;
    Index row0_, column0_;  // column0_ counts from the first of all columns, not the phase's
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
  /// Column k of P: plane `plane`'s values shifted by `row_shift` rows and `column_shift`
  /// columns (position (y, x) reads the plane's (y + row_shift, x + column_shift)).
  struct Column {
    Index plane, row_shift, column_shift;
  };
  /// What the tables were built for (Configure: transposed false, out_channels 0).
  struct Key {
    Shape in{0, 0, 0};
    Window2D window{Size2D{0}, Size2D{0}, Size2D{0}};
    bool transposed = true;
    Index out_channels = -1;
    bool operator==(const Key&) const = default;
  };

  static void RequireShifts(const Shape& in, const Window2D& window) {
    if (!PatchesAreShifts(in, window)) {
      throw ArgumentError("ImplicitPatches: the window (kernel " + window.kernel.ToString() +
                          ", stride " + window.stride.ToString() + ", padding " +
                          window.padding.ToString() + ") over " + in.ToString() +
                          " does not read shifted planes: it needs a stride of 1, or of 2 over "
                          "an even extent, and an output row as wide as the input's (stride 1) "
                          "or half as wide (stride 2)");
    }
  }

  /// The tables for `planes` planes of `plane` (rows x width) values and output positions of
  /// `output_rows` rows of plane.width, with `columns` as P's columns. The margin between the
  /// planes covers every read of every column (masked reads included): rows outside a plane
  /// then read zeros.
  void Build(Index planes, Size2D plane, Index output_rows, const std::vector<Column>& columns) {
    const Index width = plane.width;
    const Index positions = CheckedMultiply(output_rows, width, "ImplicitPatches: the positions");
    const Index plane_size = CheckedMultiply(plane.height, width, "ImplicitPatches: a plane");
    Index lowest_shift = 0, highest_shift = 0, lowest_column = 0, highest_column = 0;
    for (const Column& column : columns) {
      // Each shift's size checked, then signed: |shift| <= |row_shift| width + |column_shift|.
      CheckedAdd(CheckedMultiply(std::abs(column.row_shift), width, "ImplicitPatches: a shift"),
                 std::abs(column.column_shift), "ImplicitPatches: a shift");
      const Index shift = column.row_shift * width + column.column_shift;
      lowest_shift = std::min(lowest_shift, shift);
      highest_shift = std::max(highest_shift, shift);
      lowest_column = std::min(lowest_column, column.column_shift);
      highest_column = std::max(highest_column, column.column_shift);
    }
    // Reads span [lowest_shift, positions - 1 + highest_shift] around a plane's start.
    const Index beyond = positions + highest_shift - plane_size;
    const Index margin = std::max({Index{0}, -lowest_shift, beyond});
    const Index plane_stride = CheckedAdd(plane_size, margin, "ImplicitPatches: a plane and margin");
    const Index guarded_size = CheckedAdd(
        margin, CheckedMultiply(planes, plane_stride, "ImplicitPatches: the planes"),
        "ImplicitPatches: the planes");
    const Index shifts = highest_column - lowest_column + 1;
    const Index mask_size = CheckedMultiply(shifts, positions, "ImplicitPatches: the masks");
    positions_ = positions;
    margin_ = margin;
    plane_stride_ = plane_stride;
    // Zero everywhere; Load writes only the planes, so the margins stay zero.
    guarded_.setZero(guarded_size);
    // masks_.segment((shift - lowest_column) * positions, positions): all ones where
    // 0 <= x + shift < width for position p's column x = p % width.
    masks_.resize(mask_size);
    const T inside = std::bit_cast<T>(~Bits{0}), outside = std::bit_cast<T>(Bits{0});
    for (Index shift = lowest_column; shift <= highest_column; ++shift) {
      for (Index p = 0; p < positions; ++p) {
        const Index x = p % width + shift;
        masks_((shift - lowest_column) * positions + p) = x >= 0 && x < width ? inside : outside;
      }
    }
    const std::size_t count = columns.size();
    offsets_.resize(count);
    mask_offsets_.resize(count);
    unshifted_mask_ = -lowest_column * positions;
    for (std::size_t k = 0; k < count; ++k) {
      const Column& column = columns[k];
      offsets_[k] = margin + column.plane * plane_stride + column.row_shift * width + column.column_shift;
      mask_offsets_[k] = (column.column_shift - lowest_column) * positions;
    }
  }

  // Offsets, not pointers, so that a copy (a copied layer's workspace) reads its own tables.
  Key key_;
  Index first_column_ = 0, columns_ = 0;  // the columns the products read (SelectPhase)
  Size2D transposed_stride_{1};          // ConfigureTransposed's window's stride
  std::vector<Index> phase_columns_;     // its phase i's columns: [phase_columns_[i], [i + 1])
  Shape load_shape_{0, 0, 0};            // what Load takes: channels x height x width
  Size2D load_stride_{1};                // and splits into phases of this stride
  std::vector<Index> load_phases_;       // the phases (a * sw + b) that Load writes, in order
  Index positions_ = 0, margin_ = 0, plane_stride_ = 0;
  Vector<T> guarded_;                    // margin, then per plane: plane, margin
  Vector<T> masks_;                      // per column shift, positions bit masks
  std::vector<Index> offsets_;           // per column k: where P(0, k) sits in guarded_
  std::vector<Index> mask_offsets_;      // per column k: where its shift's mask starts in masks_
  Index unshifted_mask_ = 0;             // where shift 0's (all ones) starts: ColumnMask null
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

namespace internal {

/// The register tile of PatchesTimes's kernel: kRowVectors packets of rows (positions) by
/// kColumns columns of Y, accumulated in as many registers, plus the row packets and one
/// broadcast value: 3 x 8 with 32 vector registers (AVX-512), 3 x 4 with 16 (AVX2, SSE, NEON).
template <Scalar T>
struct PatchesTile {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  static constexpr int kLanes = Eigen::internal::unpacket_traits<Packet>::size;
  static constexpr int kRowVectors = 3;
  static constexpr int kColumns = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS >= 32 ? 8 : 4;
};

/// The operands of one PatchesTimes call as its kernel reads them: Y (n columns, column-major:
/// y + o*ldy + p) = P B (+ Y where `accumulate`) (+ bias(o) in column o where `bias` is not
/// null), with B row-major: b + k*ldb + o = B(k, o).
template <Scalar T>
struct PatchesOperands {
  const ImplicitPatches<T>& patches;
  const T* b;
  Index ldb, n;
  T* y;
  Index ldy;
  bool accumulate;
  const T* bias;
};

/// Y's tile of rows p0 .. p0 + kRows*lanes and columns o0 .. o0 + kCols: per column k of P,
/// kRows packets of it (masked) times kCols broadcast values of B's row k, added into kRows x
/// kCols accumulators (which start at the bias); Y read (accumulate) and written once at the
/// end. Requires every row of the tile < patches.Rows(). The index sequences unroll the tile.
template <Scalar T, int kRows, int kCols, std::size_t... kR, std::size_t... kC>
void PatchesTimesTile(const PatchesOperands<T>& op, Index p0, Index o0, std::index_sequence<kR...>,
                      std::index_sequence<kC...>) {
  namespace ei = Eigen::internal;
  using Packet = typename PatchesTile<T>::Packet;
  constexpr int kLanes = PatchesTile<T>::kLanes;
  Packet acc[kRows][kCols] = {};  // zeros
  if (op.bias != nullptr) {
    const auto start = [&](auto c) {
      const Packet bias = ei::pset1<Packet>(op.bias[o0 + static_cast<Index>(decltype(c)::value)]);
      ((acc[kR][decltype(c)::value] = bias), ...);
    };
    (start(std::integral_constant<std::size_t, kC>{}), ...);
  }
  const Index depth = op.patches.Columns();
  for (Index k = 0; k < depth; ++k) {
    const T* values = op.patches.ColumnValues(k) + p0;
    Packet a[kRows] = {ei::ploadu<Packet>(values + kR * kLanes)...};
    if (const T* mask = op.patches.ColumnMask(k)) {
      ((a[kR] = ei::pand(a[kR], ei::ploadu<Packet>(mask + p0 + kR * kLanes))), ...);
    }
    const T* row = op.b + k * op.ldb + o0;
    const auto column = [&](const Packet& broadcast, auto c) {
      ((acc[kR][decltype(c)::value] = ei::pmadd(a[kR], broadcast, acc[kR][decltype(c)::value])),
       ...);
    };
    (column(ei::pset1<Packet>(row[kC]), std::integral_constant<std::size_t, kC>{}), ...);
  }
  const auto store = [&](auto r, auto c) {
    T* out = op.y + (o0 + static_cast<Index>(decltype(c)::value)) * op.ldy + p0 +
             static_cast<Index>(decltype(r)::value) * kLanes;
    Packet& sum = acc[decltype(r)::value][decltype(c)::value];
    if (op.accumulate) sum = ei::padd(sum, ei::ploadu<Packet>(out));
    ei::pstoreu(out, sum);
  };
  const auto store_column = [&](auto c) {
    (store(std::integral_constant<std::size_t, kR>{}, c), ...);
  };
  (store_column(std::integral_constant<std::size_t, kC>{}), ...);
}

/// The tiles of kRows row packets from row p0 on, over every column of Y: full tiles of
/// PatchesTile::kColumns, then one column at a time.
template <Scalar T, int kRows>
void PatchesTimesRows(const PatchesOperands<T>& op, Index p0) {
  constexpr int kColumns = PatchesTile<T>::kColumns;
  Index o0 = 0;
  for (; o0 + kColumns <= op.n; o0 += kColumns) {
    PatchesTimesTile<T, kRows, kColumns>(op, p0, o0, std::make_index_sequence<kRows>{},
                                         std::make_index_sequence<kColumns>{});
  }
  for (; o0 < op.n; ++o0) {
    PatchesTimesTile<T, kRows, 1>(op, p0, o0, std::make_index_sequence<kRows>{},
                                  std::make_index_sequence<1>{});
  }
}

/// Y(p, :) for one row p (the rows after the last full packet of rows): P's row gathered into
/// `row` (Columns() values), then B's rows times its values, a packet of columns at a time.
template <Scalar T>
void PatchesTimesRow(const PatchesOperands<T>& op, Index p, T* row) {
  namespace ei = Eigen::internal;
  using Packet = typename PatchesTile<T>::Packet;
  constexpr int kLanes = PatchesTile<T>::kLanes;
  const typename ImplicitPatches<T>::Mapper patch(op.patches, 0, 0);
  const Index depth = op.patches.Columns();
  for (Index k = 0; k < depth; ++k) row[k] = patch(p, k);
  const auto finish = [&](Index o, T sum) {
    if (op.bias != nullptr) sum += op.bias[o];
    T& out = op.y[o * op.ldy + p];
    out = op.accumulate ? out + sum : sum;
  };
  Index o0 = 0;
  for (; o0 + kLanes <= op.n; o0 += kLanes) {
    // Four sums over k = 0, 1, 2, 3 mod 4, so that four multiply-adds are in flight rather
    // than one waiting for the last (a 1-row tail of 576 columns took 17% of its product).
    Packet acc[4] = {};
    const auto add = [&](Index k, Packet& sum) {
      sum = ei::pmadd(ei::pset1<Packet>(row[k]), ei::ploadu<Packet>(op.b + k * op.ldb + o0), sum);
    };
    Index k = 0;
    for (; k + 4 <= depth; k += 4) {
      for (int chain = 0; chain < 4; ++chain) add(k + chain, acc[chain]);
    }
    for (; k < depth; ++k) add(k, acc[0]);
    alignas(64) T lanes[kLanes];
    ei::pstoreu(lanes, ei::padd(ei::padd(acc[0], acc[1]), ei::padd(acc[2], acc[3])));
    for (int i = 0; i < kLanes; ++i) finish(o0 + i, lanes[i]);
  }
  for (; o0 < op.n; ++o0) {
    T sum = T(0);
    for (Index k = 0; k < depth; ++k) sum += row[k] * op.b[k * op.ldb + o0];
    finish(o0, sum);
  }
}

/// The register tile of PatchesTransposeTimes's kernel: kPatchColumns columns of P by
/// kGradientColumns columns of D, one accumulator packet each, plus P's packets and one of D's:
/// 3 x 8 with 32 vector registers (AVX-512), 3 x 4 with 16.
template <Scalar T>
struct TransposeTile {
  static constexpr int kPatchColumns = 3;
  static constexpr int kGradientColumns = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS >= 32 ? 8 : 4;
};

/// Makes the compiler keep `packet` in a vector register. GCC otherwise folds each use of a
/// loaded packet into a multiply-add's memory operand, which reloads it once per use: in
/// PatchesTransposeTile, a packet of D 3 times instead of once, and the kernel ran at 120-135
/// GFLOP/s instead of 160-175 on a 16 -> 16 channel 28 x 28 weight gradient (AVX-512). "v" is
/// x86's vector register (SSE to AVX-512), "w" AArch64's; elsewhere a no-op. Eigen's own
/// EIGEN_OPTIMIZATION_BARRIER also allows memory and the first 16 registers only (145-157).
template <class Packet>
EIGEN_ALWAYS_INLINE void KeepInRegister(Packet& packet) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+v"(packet));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(packet));
#else
  (void)packet;
#endif
}

/// The operands of one PatchesTransposeTimes call as its own kernel reads them: G (column-major:
/// g + o*ldg + k) += P^T D over the first `packets` packets of rows, with D column-major
/// (d + o*ldd + p), and, where `tail_patches` is not null, over one more packet read from
/// tail_patches + k*kLanes and tail_gradient + o*kLanes: the last Rows() % kLanes rows of P
/// (masked) and of D, zero-padded to a packet.
template <Scalar T>
struct TransposeOperands {
  const ImplicitPatches<T>& patches;
  const T* d;
  Index ldd, packets;
  const T* tail_patches;
  const T* tail_gradient;
  T* g;
  Index ldg;
};

/// G's tile of rows k0 .. k0 + kRows by columns o0 .. o0 + kCols: per packet of positions,
/// kRows masked packets of P's columns times kCols packets of D's columns (one at a time, held
/// in a register) added into kRows x kCols accumulators, each the lane-wise partial sums of one
/// dot product G(k, o); their horizontal sums are added to G at the end.
template <Scalar T, int kRows, int kCols, std::size_t... kR, std::size_t... kC>
void PatchesTransposeTile(const TransposeOperands<T>& op, Index k0, Index o0,
                          std::index_sequence<kR...>, std::index_sequence<kC...>) {
  namespace ei = Eigen::internal;
  using Packet = typename PatchesTile<T>::Packet;
  constexpr Index kLanes = PatchesTile<T>::kLanes;
  Packet acc[kRows][kCols] = {};  // zeros
  const T* values[kRows] = {op.patches.ColumnValues(k0 + static_cast<Index>(kR))...};
  const T* masks[kRows] = {op.patches.ColumnMaskOrOnes(k0 + static_cast<Index>(kR))...};
  const T* gradients[kCols] = {op.d + (o0 + static_cast<Index>(kC)) * op.ldd...};
  // acc(:, c) += a * gradient, for the kRows packets a of P's columns.
  const auto add = [&](const Packet (&a)[kRows], auto c, Packet gradient) {
    KeepInRegister(gradient);
    ((acc[kR][decltype(c)::value] = ei::pmadd(a[kR], gradient, acc[kR][decltype(c)::value])),
     ...);
  };
  for (Index q = 0; q < op.packets; ++q) {
    const Index p = q * kLanes;
    const Packet a[kRows] = {ei::pand(ei::ploadu<Packet>(values[kR] + p),
                                      ei::ploadu<Packet>(masks[kR] + p))...};
    (add(a, std::integral_constant<std::size_t, kC>{}, ei::ploadu<Packet>(gradients[kC] + p)),
     ...);
  }
  if (op.tail_patches != nullptr) {
    const Packet a[kRows] = {
        ei::ploadu<Packet>(op.tail_patches + (k0 + static_cast<Index>(kR)) * kLanes)...};
    (add(a, std::integral_constant<std::size_t, kC>{},
         ei::ploadu<Packet>(op.tail_gradient + (o0 + static_cast<Index>(kC)) * kLanes)),
     ...);
  }
  const auto store_row = [&](auto r) {
    ((op.g[(o0 + static_cast<Index>(kC)) * op.ldg + k0 + static_cast<Index>(decltype(r)::value)] +=
      ei::predux(acc[decltype(r)::value][kC])),
     ...);
  };
  (store_row(std::integral_constant<std::size_t, kR>{}), ...);
}

/// The tiles of kCols columns of D from o0 on, over every column of P: full tiles of
/// TransposeTile::kPatchColumns, then one column at a time. D's columns stay in the first-level
/// cache while P's stream past them, shifts of the same planes one after another.
template <Scalar T, int kCols>
void PatchesTransposeColumns(const TransposeOperands<T>& op, Index o0, Index depth) {
  constexpr int kRows = TransposeTile<T>::kPatchColumns;
  Index k0 = 0;
  for (; k0 + kRows <= depth; k0 += kRows) {
    PatchesTransposeTile<T, kRows, kCols>(op, k0, o0, std::make_index_sequence<kRows>{},
                                          std::make_index_sequence<kCols>{});
  }
  for (; k0 < depth; ++k0) {
    PatchesTransposeTile<T, 1, kCols>(op, k0, o0, std::make_index_sequence<1>{},
                                      std::make_index_sequence<kCols>{});
  }
}

/// PatchesTransposeTimes's own kernel runs on planes of at least this many packets of
/// positions (128 floats: 14 x 14 planes and larger), Eigen's below (see there). On 14 x 14
/// planes (12 packets) the two ran alike (113-119 GFLOP/s against Eigen's 107-113), on 7 x 7
/// Eigen's was 2.5 times faster.
inline constexpr Index kTransposeDirectMinimumPackets = 8;

}  // namespace internal

/// Y = P op(B) + 1 c^T + beta Y on the calling thread, with P the loaded sample's patch matrix
/// (ImplicitPatches, Rows() x Columns()), op(B) Columns() x n (B itself, or B^T for a weight
/// stored out x columns), c an optional column offset (`bias`: n values, or null for none; a
/// convolution's bias), Y Rows() x n in existing storage (e.g. a Map over a sample's output
/// column). beta is 0 (Y's old values ignored) or 1. op(B) = B is first copied transposed
/// into `workspace` (as are the last rows of P, one at a time); op(B) = B^T is read in place.
/// Allocates nothing once the workspace has seen the sizes. Throws ShapeError when the sizes
/// do not match.
///
/// Its own kernel, not Eigen's GEMM: P is never packed. Each register tile of Y (PatchesTile:
/// 48 rows by 8 columns of floats on AVX-512) loads its rows of P's columns straight from the
/// shifted planes (one unaligned load and, off the kernel's centre column, one AND with the
/// mask per packet) and multiplies them by broadcast values of op(B)'s rows, where Eigen's
/// GEMM packed P (9 copies of each input for a 3x3 kernel) on every call and started from a
/// zeroed Y: CNN and ResNet epochs took up to a third less (docs/performance.md). Rows after
/// the last full packet take a row at a time, vectorised over the columns. The sum over k
/// runs in column order, so the result rounds differently from a GEMM's blocked sum, within
/// its usual error.
template <Scalar T>
void PatchesTimes(const ImplicitPatches<T>& patches, Op op_b, const ConstMatrixRef<T>& b,
                  Eigen::Ref<Matrix<T>> y, T beta, GemmWorkspace<T>& workspace,
                  const T* bias = nullptr) {
  const Index depth = patches.Columns(), n = y.cols();
  const Index b_rows = op_b == Op::None ? b.rows() : b.cols();
  const Index b_columns = op_b == Op::None ? b.cols() : b.rows();
  if (y.rows() != patches.Rows() || b_rows != depth || b_columns != n) {
    throw ShapeError("PatchesTimes: P is " + std::to_string(patches.Rows()) + " x " +
                     std::to_string(depth) + ", op(B) " + std::to_string(b_rows) + " x " +
                     std::to_string(b_columns) + ", Y " + std::to_string(y.rows()) + " x " +
                     std::to_string(n));
  }
  // op(B) as a row-major matrix: B^T is B's own storage; B is copied transposed.
  internal::PatchesOperands<T> op{patches, b.data(), b.outerStride(), n, y.data(),
                                  y.outerStride(), beta != T(0), bias};
  if (op_b == Op::None) {
    if (workspace.packed_rhs.size() < depth * n) workspace.packed_rhs.resize(depth * n);
    Eigen::Map<Matrix<T>>(workspace.packed_rhs.data(), n, depth) = b.transpose();
    op.b = workspace.packed_rhs.data();
    op.ldb = n;
  }
  constexpr Index kLanes = internal::PatchesTile<T>::kLanes;
  constexpr Index kTileRows = internal::PatchesTile<T>::kRowVectors * kLanes;
  const Index positions = y.rows();
  Index p0 = 0;
  for (; p0 + kTileRows <= positions; p0 += kTileRows) {
    internal::PatchesTimesRows<T, internal::PatchesTile<T>::kRowVectors>(op, p0);
  }
  // The last rows: a tile of two packets or one, then one row at a time.
  if (p0 + 2 * kLanes <= positions) {
    internal::PatchesTimesRows<T, 2>(op, p0);
    p0 += 2 * kLanes;
  } else if (p0 + kLanes <= positions) {
    internal::PatchesTimesRows<T, 1>(op, p0);
    p0 += kLanes;
  }
  if (p0 < positions) {
    if (workspace.packed_lhs.size() < depth) workspace.packed_lhs.resize(depth);
    for (; p0 < positions; ++p0) internal::PatchesTimesRow<T>(op, p0, workspace.packed_lhs.data());
  }
}

/// G = P^T D + beta G on the calling thread: P the loaded sample's patch matrix (Rows() x
/// Columns()), D Rows() x n (column-major, e.g. a Map over a sample's output gradient), G
/// Columns() x n in existing storage. beta is 0 or 1. Allocates nothing once `workspace` has
/// seen the sizes. Throws ShapeError when the sizes do not match.
///
/// G(k, o) is the dot product of P's column k (a shifted plane, masked) with D's column o, both
/// contiguous in memory. On planes of internal::kTransposeDirectMinimumPackets packets of
/// positions or more, its own kernel multiplies them straight from the planes, vectorised over
/// the positions: a register tile of 3 columns of P by 8 of D (AVX-512; by 4 with 16 registers)
/// sums a packet of positions at a time in lanes, with D's 8 columns held in the first-level
/// cache while P's stream past, and adds the horizontal sums to G once per tile. Eigen's GEMM
/// packs P^T for every sample, 9 copies of each input for a 3x3 kernel: a 16 -> 16 channel 3x3
/// convolution's weight gradient on 28 x 28 planes ran at 84-94 GFLOP/s that way, 160-175 in
/// the kernel (docs/performance.md). Smaller planes, where the horizontal sums cost as much as
/// the products (7 x 7: 40-50 GFLOP/s against Eigen's 125), keep Eigen's kernel with P^T read
/// by its packing routine. The sum over positions runs in lanes, so it rounds differently from
/// a GEMM's blocked sum, within its usual error.
template <Scalar T>
void PatchesTransposeTimes(const ImplicitPatches<T>& patches, const ConstMatrixRef<T>& d,
                           Eigen::Ref<Matrix<T>> g, T beta, GemmWorkspace<T>& workspace) {
  const Index depth = patches.Columns(), n = d.cols(), positions = patches.Rows();
  if (d.rows() != positions || g.rows() != depth || g.cols() != n) {
    throw ShapeError("PatchesTransposeTimes: P is " + std::to_string(positions) + " x " +
                     std::to_string(depth) + ", D " + std::to_string(d.rows()) + " x " +
                     std::to_string(n) + ", G " + std::to_string(g.rows()) + " x " +
                     std::to_string(g.cols()));
  }
  if (beta == T(0)) g.setZero();
  constexpr Index kLanes = internal::PatchesTile<T>::kLanes;
  const Index packets = positions / kLanes, first_tail_row = packets * kLanes;
  if (packets < internal::kTransposeDirectMinimumPackets) {
    const typename ImplicitPatches<T>::TransposedMapper lhs(
        typename ImplicitPatches<T>::Mapper(patches, 0, 0));
    internal::PackedProductAccumulate<T, Eigen::RowMajor, decltype(lhs),
                                      internal::ConstMapper<T, Eigen::ColMajor>, Eigen::ColMajor>(
        lhs, internal::ConstMapper<T, Eigen::ColMajor>(d.data(), d.outerStride()), depth, n,
        positions, g.data(), g.outerStride(), workspace);
    return;
  }
  internal::TransposeOperands<T> op{patches, d.data(), d.outerStride(), packets, nullptr,
                                    nullptr, g.data(),  g.outerStride()};
  if (first_tail_row < positions) {
    // The last rows of P (masked) and of D, zero-padded to one packet per column.
    const Index tail_patches = depth * kLanes, tail_size = (depth + n) * kLanes;
    if (workspace.packed_lhs.size() < tail_size) workspace.packed_lhs.resize(tail_size);
    T* tail = workspace.packed_lhs.data();
    std::fill_n(tail, tail_size, T(0));
    const typename ImplicitPatches<T>::Mapper patch(patches, 0, 0);
    for (Index k = 0; k < depth; ++k) {
      for (Index p = first_tail_row; p < positions; ++p) {
        tail[k * kLanes + p - first_tail_row] = patch(p, k);
      }
    }
    for (Index o = 0; o < n; ++o) {
      for (Index p = first_tail_row; p < positions; ++p) {
        tail[tail_patches + o * kLanes + p - first_tail_row] = d(p, o);
      }
    }
    op.tail_patches = tail;
    op.tail_gradient = tail + tail_patches;
  }
  constexpr int kColumns = internal::TransposeTile<T>::kGradientColumns;
  Index o0 = 0;
  for (; o0 + kColumns <= n; o0 += kColumns) {
    internal::PatchesTransposeColumns<T, kColumns>(op, o0, depth);
  }
  for (; o0 < n; ++o0) internal::PatchesTransposeColumns<T, 1>(op, o0, depth);
}

}  // namespace dlb
