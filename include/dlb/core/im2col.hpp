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
/// W (out x C*kh*kw) is Z = P W^T (B*Ho*Wo x out).

#include <algorithm>
#include <type_traits>

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

/// The one loop behind Im2Col (kGather: P(r, k) = X(...), zeros in the padding) and Col2Im
/// (!kGather: dX(...) += P(r, k), dX zeroed first), over samples [first, first + count).
/// `image` is X (read) or dX (written), column stride `image_stride`; `patches` is P (written)
/// or dP (read), column stride `patch_stride`.
template <bool kGather, Scalar T>
void PatchLoop(const Shape& in, const Window2D& window, Size2D out, Index first, Index count,
               std::conditional_t<kGather, const T*, T*> image, Index image_stride,
               std::conditional_t<kGather, T*, const T*> patches, Index patch_stride) {
  const Index kh = window.kernel.height, kw = window.kernel.width;
  const Index sh = window.stride.height, sw = window.stride.width;
  const Index plane = in.height * in.width, positions = out.height * out.width;
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
          auto* patch = patches + ((c * kh + ky) * kw + kx) * patch_stride + b * positions;
          if constexpr (kGather) {
            std::fill(patch, patch + rows.begin * out.width, T(0));
            std::fill(patch + rows.end * out.width, patch + positions, T(0));
          }
          for (Index oy = rows.begin; oy < rows.end; ++oy) {
            auto* run = patch + oy * out.width;  // this output row's entries of column k
            auto* pixels = sample + c * plane + (oy * sh + y_offset) * in.width + x_offset;
            if constexpr (kGather) {
              std::fill(run, run + cols.begin, T(0));
              std::fill(run + cols.end, run + out.width, T(0));
              if (sw == 1) {
                std::copy(pixels + cols.begin, pixels + cols.end, run + cols.begin);
              } else {
                for (Index ox = cols.begin; ox < cols.end; ++ox) run[ox] = pixels[ox * sw];
              }
            } else if (sw == 1) {
              for (Index ox = cols.begin; ox < cols.end; ++ox) pixels[ox] += run[ox];
            } else {
              for (Index ox = cols.begin; ox < cols.end; ++ox) pixels[ox * sw] += run[ox];
            }
          }
        }
      }
    }
  }
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
/// was copied from (entries from the padding are dropped). Requires: d_patches is
/// B*Ho*Wo x C*kh*kw for out == window.OutputSize(in). Ensures: dx is in.Size() x B
/// (resized; no allocation when it already has that shape).
template <Scalar T>
void Col2Im(const Matrix<T>& d_patches, const Shape& in, const Window2D& window, Size2D out,
            Matrix<T>& dx) {
  const Index positions = out.height * out.width;
  const Index batch = d_patches.rows() / positions;
  dx.resize(in.Size(), batch);
  ParallelRanges(batch, positions * d_patches.cols(), [&](int, Index first, Index count) {
    internal::PatchLoop<false, T>(in, window, out, first, count, dx.data(), dx.rows(),
                                  d_patches.data(), d_patches.rows());
  });
}

}  // namespace dlb
