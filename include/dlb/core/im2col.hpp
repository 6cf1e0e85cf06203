#pragma once
/// \file
/// im2col and its adjoint col2im over a whole mini-batch: the rearrangements that turn a
/// convolution into one matrix product (see Conv2D).
///
/// Layout ("patch matrix"): for a batch X of B samples (C*H*W x B, each column a C x H x W
/// image, see Shape) and a window giving Ho x Wo output positions, the patch matrix P has
///   rows    r = b * (Ho*Wo) + oy * Wo + ox          (sample, output row, output column),
///   columns k = (c * kh + ky) * kw + kx              (torch's flattening of a weight's
///                                                     (in, kh, kw) dimensions),
///   P(r, k) = X((c * H + iy) * W + ix, b), iy = oy*sh - ph + ky, ix = ox*sw - pw + kx,
/// and 0 where (iy, ix) falls in the padding. Column k of P is, for each sample, the plane c
/// shifted by (ky, kx): im2col copies contiguous runs of a row, and a convolution with weights
/// W (out x C*kh*kw) is Z = P W^T (B*Ho*Wo x out). A layer may build P for a few samples at a
/// time (see PatchChunkSamples) so that it stays in the cache.

#include <algorithm>
#include <string>
#include <type_traits>

#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"

namespace dlb {

namespace internal {

/// The output positions o in [0, outputs) whose input position o * stride + offset lies in
/// [0, inputs): an interval [begin, end), empty when begin >= end.
struct ValidOutputs {
  Index begin = 0;
  Index end = 0;
  ValidOutputs(Index inputs, Index outputs, Index stride, Index offset) {
    begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    end = offset > inputs - 1 ? 0 : std::min(outputs, (inputs - 1 - offset) / stride + 1);
    begin = std::min(begin, end);
  }
};

/// data[0 .. n) = 0 for the few entries of a row's padding: stores for the usual one or two
/// (std::fill of a short range is a call to memset), memset beyond.
template <Scalar T>
inline void ZeroFew(T* data, Index n) {
  switch (n) {
    case 0: return;
    case 2: data[1] = T(0); [[fallthrough]];
    case 1: data[0] = T(0); return;
    default: std::fill_n(data, n, T(0));
  }
}

/// Zeroes the first `left` and the last `right` entries of rows [row_begin, row_end) of a
/// block of rows of `width` values at `block`: the padding columns of a patch block. A
/// function of its own so that the loop keeps its counters in registers (as a lambda
/// capturing the whole PatchLoop it kept them in memory: a third of im2col's time, perf).
template <Scalar T>
void ZeroPaddingColumns(T* block, Index width, Index row_begin, Index row_end, Index left,
                        Index right) {
  if (left == 0 && right == 0) return;
  T* row = block + row_begin * width;
  for (Index oy = row_begin; oy < row_end; ++oy, row += width) {
    ZeroFew(row, left);
    ZeroFew(row + width - right, right);
  }
}

/// The one loop behind Im2Col (kGather: P(r, k) = X(...), zeros in the padding) and Col2Im
/// (!kGather: dX(...) += P(r, k), dX zeroed first, entries of P in the padding zeroed), over
/// samples [first, first + count). `image` is X (read) or dX (written), column stride
/// `image_stride`; `patches` is P (written) or dP (read), column stride `patch_stride`.
///
/// Column k's block of sample b is the plane c shifted by (ky - ph, kx - pw). With stride 1
/// and Wo == W (a "same" convolution), output position p = oy*W + ox reads input
/// p + (ky - ph)*W + (kx - pw), so the block is one contiguous run of the plane, less the
/// columns of each row that fall in the padding: copied (or added) in one long loop, then
/// those columns fixed. Otherwise the block is worked row by row.
template <bool kGather, Scalar T>
void PatchLoop(const Shape& in, const Window2D& window, Size2D out, Index first, Index count,
               std::conditional_t<kGather, const T*, T*> image, Index image_stride, T* patches,
               Index patch_stride) {
  const Index kh = window.kernel.height, kw = window.kernel.width;
  const Index sh = window.stride.height, sw = window.stride.width;
  const Index plane = in.height * in.width, positions = out.height * out.width;
  const bool contiguous = sh == 1 && sw == 1 && out.width == in.width;
  WithStride(sw, [&](auto kStride) {
    constexpr Index kStep = decltype(kStride)::value;
    for (Index b = first; b < first + count; ++b) {
      auto* sample = image + b * image_stride;
      if constexpr (!kGather) std::fill_n(sample, in.Size(), T(0));
      for (Index c = 0; c < in.channels; ++c) {
        for (Index ky = 0; ky < kh; ++ky) {
          const Index y_offset = ky - window.padding.height;
          const ValidOutputs rows(in.height, out.height, sh, y_offset);
          for (Index kx = 0; kx < kw; ++kx) {
            const Index x_offset = kx - window.padding.width;
            const ValidOutputs cols(in.width, out.width, sw, x_offset);
            T* patch = patches + ((c * kh + ky) * kw + kx) * patch_stride + b * positions;
            if (rows.begin == rows.end || cols.begin == cols.end) {
              if constexpr (kGather) std::fill_n(patch, positions, T(0));
              continue;  // the whole block lies in the padding
            }
            // The input under output (oy, cols.begin) (inside the plane).
            const auto pixels = [&](Index oy) {
              return sample + c * plane + (oy * sh + y_offset) * in.width + cols.begin * sw +
                     x_offset;
            };
            // Entries of the block in the padding: rows above and below, then the columns
            // left and right of the valid ones in each row. Those are a few entries a row
            // (the padding's width): stored one by one, since std::fill became a call to
            // memset per row, 3% of a ResNet epoch (perf, bench_cnn_epoch --model resnet).
            const auto zero_padding_columns = [&] {
              ZeroPaddingColumns(patch, out.width, rows.begin, rows.end, cols.begin,
                                 out.width - cols.end);
            };
            if constexpr (kGather) {
              std::fill(patch, patch + rows.begin * out.width, T(0));
              std::fill(patch + rows.end * out.width, patch + positions, T(0));
            }
            if (contiguous) {
              const Index begin = rows.begin * out.width + cols.begin;
              const Index end = (rows.end - 1) * out.width + cols.end;
              if constexpr (kGather) {
                GatherRow<1>(pixels(rows.begin), patch + begin, end - begin, 1);
                zero_padding_columns();
              } else {
                zero_padding_columns();
                SpreadRow<1>(patch + begin, pixels(rows.begin), end - begin, 1, T(1));
              }
              continue;
            }
            if constexpr (kGather) zero_padding_columns();
            for (Index oy = rows.begin; oy < rows.end; ++oy) {
              T* run = patch + oy * out.width + cols.begin;
              if constexpr (kGather) {
                GatherRow<kStep>(pixels(oy), run, cols.end - cols.begin, sw);
              } else {
                SpreadRow<kStep>(run, pixels(oy), cols.end - cols.begin, sw, T(1));
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace internal

/// The patch matrix P of the batch `x` (in.Size() x B) for `window` (see the file comment).
/// Requires: out == window.OutputSize(in). Ensures: `patches` is B*Ho*Wo x C*kh*kw (resized;
/// no allocation when it already has that shape). Samples are split over the threads.
template <Scalar T>
void Im2Col(const ConstMatrixRef<T>& x, const Shape& in, const Window2D& window, Size2D out,
            Matrix<T>& patches) {
  const Index positions = out.height * out.width;
  const Index k = in.channels * window.kernel.height * window.kernel.width;
  patches.resize(x.cols() * positions, k);
  ParallelRanges(x.cols(), positions * k, [&](int, Index first, Index count) {
    internal::PatchLoop<true, T>(in, window, out, first, count, x.data(), x.outerStride(),
                                 patches.data(), patches.rows());
  });
}

/// The adjoint of Im2Col: dX = col2im(dP), every entry of dP added to the input position it
/// was copied from; the entries of dP in the padding belong to no input and are set to zero
/// (d_patches is scratch to the caller). Requires: d_patches is
/// B*Ho*Wo x C*kh*kw for out == window.OutputSize(in), and dx (a matrix or a block of
/// columns of one) is in.Size() x B; all of dx is written. Samples are split over the threads.
template <Scalar T>
void Col2Im(Matrix<T>& d_patches, const Shape& in, const Window2D& window, Size2D out,
            Eigen::Ref<Matrix<T>> dx) {
  const Index positions = out.height * out.width;
  const Index batch = dx.cols();
  if (dx.rows() != in.Size() || d_patches.rows() != batch * positions) {
    throw ShapeError("Col2Im: dP is " + std::to_string(d_patches.rows()) + " x " +
                     std::to_string(d_patches.cols()) + " and dX " + std::to_string(dx.rows()) +
                     " x " + std::to_string(batch) + ", but " + std::to_string(batch) +
                     " samples of " + in.ToString() + " need " +
                     std::to_string(batch * positions) + " rows and " +
                     std::to_string(in.Size()));
  }
  ParallelRanges(batch, positions * d_patches.cols(), [&](int, Index first, Index count) {
    internal::PatchLoop<false, T>(in, window, out, first, count, dx.data(), dx.outerStride(),
                                  d_patches.data(), d_patches.rows());
  });
}

/// How many samples a convolution works on at a time: as many as fit in kPatchChunkBytes
/// (at least one), counting each sample's `values_per_sample` of working memory (its patches,
/// positions x patch columns, and its products or their gradients). Small enough for a
/// core's L2 cache, where im2col, the three products, the rearrangements and col2im then find
/// their operands, and large enough (hundreds of rows) for an efficient product. Measured on
/// the 32 -> 64 channel 3x3 convolution of the Fashion-MNIST CNN (225 KiB of patches per
/// sample): the products ran 10-40% faster in chunks of 4-8 samples than over a whole batch
/// of 128.
inline constexpr Index kPatchChunkBytes = Index{1} << 20;
inline Index PatchChunkSamples(Index values_per_sample, Index scalar_bytes) {
  const Index bytes_per_sample = values_per_sample * scalar_bytes;
  return std::max<Index>(1, kPatchChunkBytes / std::max<Index>(1, bytes_per_sample));
}

/// Splits samples [0, batch) over the threads (ParallelRanges, `cost_per_sample` flops each)
/// and calls f(part, first, count) for each run of at most `chunk` consecutive samples of a
/// thread's range, in order (every run but the last of a range has `chunk` samples). Returns
/// the number of parts (threads) used, 0 .. parts-1.
template <class F>
int ForEachSampleChunk(Index batch, Index chunk, Index cost_per_sample, F&& f) {
  return ParallelRanges(batch, cost_per_sample, [&](int part, Index first, Index count) {
    for (Index start = first; start < first + count; start += chunk) {
      f(part, start, std::min(chunk, first + count - start));
    }
  });
}

}  // namespace dlb
