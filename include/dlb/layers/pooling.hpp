#pragma once
/// \file
/// Pooling layers: MaxPool2D, AvgPool2D (torch.nn.MaxPool2d / AvgPool2d without padding) and
/// GlobalAvgPool (torch.nn.AdaptiveAvgPool2d(1) followed by a flatten).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "dlb/core/error.hpp"
#include "dlb/core/max_pool_2x2.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/layers/spatial_layer.hpp"

namespace dlb {

/// The arguments of MaxPool2D and AvgPool2D: a kernel and a stride (torch's default: the
/// kernel), no padding. `Kind` gives the type name (internal::MaxPoolKind, AvgPoolKind).
template <class Kind>
struct Pool2DOptions {
  Size2D kernel{0};  ///< required
  Size2D stride{0};  ///< required in a spec; the constructors default it to the kernel

  Pool2DOptions() = default;
  /// A kernel x kernel window moved by `kernel`: `MaxPool2DOptions(2)`.
  Pool2DOptions(Size2D kernel_) : kernel(kernel_), stride(kernel_) {}  // NOLINT(google-explicit-constructor)
  Pool2DOptions(Size2D kernel_, Size2D stride_) : kernel(kernel_), stride(stride_) {}
  Pool2DOptions& Stride(Size2D value) { stride = value; return *this; }

  Window2D Window() const { return {kernel, stride, 0}; }

  static constexpr const char* kType = Kind::kType;
  static constexpr auto Arguments() {
    return std::tuple{Required("kernel", &Pool2DOptions::kernel),
                      Required("stride", &Pool2DOptions::stride)};
  }
  /// Throws ArgumentError unless kernel >= 1 and stride >= 1 (see Window2D::Validate).
  void Validate() const { Window().Validate(kType); }
  StateShapes TensorShapes() const { return {}; }
};

namespace internal {
struct MaxPoolKind {
  static constexpr const char* kType = "MaxPool2D";
};
struct AvgPoolKind {
  static constexpr const char* kType = "AvgPool2D";
};
}  // namespace internal

using MaxPool2DOptions = Pool2DOptions<internal::MaxPoolKind>;
using AvgPool2DOptions = Pool2DOptions<internal::AvgPoolKind>;

/// GlobalAvgPool has no arguments.
using GlobalAvgPoolOptions = NoArgumentOptions<"GlobalAvgPool">;

namespace internal {

// The pooling layers' inner loops run over the windows of a row (GatherRow, AddRow and
// SpreadRow of dlb/core/window2d.hpp) or over all windows of a sample (MaxPass, contiguous).

/// Whether `value`, met after `best` in a window, replaces it as the window's maximum:
/// when it is greater or NaN (torch's rule: ties keep the earlier element).
template <Scalar T>
bool ReplacesMaximum(T value, T best) {
  return (value > best) | (value != value);
}

/// best[o] = candidates[o] and where[o] = element where candidates[o] replaces best[o]
/// (ReplacesMaximum), for o < n.
template <Scalar T>
void MaxPass(const T* __restrict candidates, T* __restrict best, std::int32_t* __restrict where,
             Index n, std::int32_t element) {
  for (Index o = 0; o < n; ++o) {
    const T value = candidates[o];
    const bool take = ReplacesMaximum(value, best[o]);
    best[o] = take ? value : best[o];
    where[o] = take ? element : where[o];
  }
}

/// Calls f(out_row, in_row) for every row of windows over the planes of a sample of shape
/// `in` (output `out`; no padding): out_row = (c*Ho + oy)*Wo is where output row oy of
/// channel c starts in the sample's column, in_row = (c*H + oy*sh)*W where the input row
/// under the windows' top starts; window ox covers in_row + ox*sw + ky*W + kx.
template <class F>
void ForEachWindowRow(const Window2D& window, const Shape& in, const Shape& out, F&& f) {
  for (Index c = 0; c < in.channels; ++c) {
    for (Index oy = 0; oy < out.height; ++oy) {
      f((c * out.height + oy) * out.width, (c * in.height + oy * window.stride.height) * in.width);
    }
  }
}

/// Calls f(offset, kStride) for every window element k = ky*kw + kx in order, with its
/// offset ky*W + kx from a window's top-left input (W = in.width) and the stride dispatched
/// by WithStride.
template <class F>
void ForEachWindowElement(const Window2D& window, const Shape& in, F&& f) {
  WithStride(window.stride.width, [&](auto kStride) {
    for (Index ky = 0; ky < window.kernel.height; ++ky) {
      for (Index kx = 0; kx < window.kernel.width; ++kx) f(ky * in.width + kx, kStride);
    }
  });
}

/// offsets(k) = ky*W + kx for every window element k = ky*kw + kx (see ForEachWindowElement).
inline void WindowElementOffsets(const Window2D& window, const Shape& in,
                                 Eigen::Matrix<Index, Eigen::Dynamic, 1>& offsets) {
  offsets.resize(window.kernel.height * window.kernel.width);
  Index element = 0;
  ForEachWindowElement(window, in, [&](Index offset, auto) { offsets(element++) = offset; });
}

/// The maxima of the windows of one sample (shape `in`, output `out`, no padding):
/// best[o] = the maximum of window o and where[o] = its element ky*kw + kx (MaxPass's rule:
/// the first maximum, NaN wins). Each window element's values for the whole sample are
/// gathered into `gathered` (out.Size() values), so that the comparisons run over long
/// contiguous arrays (vectorised) rather than short rows.
template <Scalar T>
void MaxOfWindows(const Window2D& window, const Shape& in, const Shape& out, const T* sample,
                  T* best, std::int32_t* where, T* gathered) {
  const Index outputs = out.Size(), stride = window.stride.width, out_width = out.width;
  std::int32_t element = 0;
  ForEachWindowElement(window, in, [&](Index offset, auto kStride) {
    // The first element starts the maxima; each later one is gathered and compared.
    T* target = element == 0 ? best : gathered;
    ForEachWindowRow(window, in, out, [&](Index out_row, Index in_row) {
      GatherRow<decltype(kStride)::value>(sample + in_row + offset, target + out_row, out_width,
                                          stride);
    });
    if (element == 0) {
      std::fill_n(where, outputs, 0);
    } else {
      MaxPass(gathered, best, where, outputs, element);
    }
    ++element;
  });
}

/// Calls f(o, position) for every output o of a sample (shapes `in` and `out`) with the
/// input position of its window's maximum: the window's top-left plus offsets[where[o]]
/// (offsets from WindowElementOffsets, where from MaxOfWindows).
template <class F>
void ForEachWindowMaximum(const Window2D& window, const Shape& in, const Shape& out,
                          const std::int32_t* where, const Index* offsets, F&& f) {
  const Index stride = window.stride.width;
  ForEachWindowRow(window, in, out, [&](Index out_row, Index in_row) {
    for (Index ox = 0; ox < out.width; ++ox) {
      f(out_row + ox, in_row + ox * stride + offsets[where[out_row + ox]]);
    }
  });
}

/// What MaxPool2D and AvgPool2D share: a kh x kw window moved by the stride over each plane
/// of a C x H x W sample, without padding. Output C x Ho x Wo with torch's floor rule
/// Ho = floor((H - kh) / sh) + 1 (likewise Wo): a 7 x 7 plane under a 2x2 window of stride 2
/// gives 3 x 3 and its last row and column are not read (they get a zero gradient). Rejected
/// (ShapeError): a plane smaller than the window. Kind::kType names the layer.
template <class Derived, class Kind>
class Pool2D : public SpatialLayer<Derived>, public DescribedBy<Pool2DOptions<Kind>> {
 public:
  /// A kernel x kernel window moved by `kernel` (`MaxPool2D<float>(2)`); a rectangular one as
  /// Size2D(2, 3). Throws ArgumentError unless kernel >= 1.
  explicit Pool2D(Size2D kernel) : Pool2D(Pool2DOptions<Kind>(kernel)) {}
  /// A window moved by `stride`. Throws ArgumentError unless kernel >= 1 and stride >= 1.
  Pool2D(Size2D kernel, Size2D stride) : Pool2D(Pool2DOptions<Kind>(kernel, stride)) {}
  explicit Pool2D(const Pool2DOptions<Kind>& options)
      : DescribedBy<Pool2DOptions<Kind>>(options), window_(options.Window()) {}

  /// "MaxPool2D(2x2)"; "MaxPool2D(3x3, stride 2)" when the stride is not the kernel.
  std::string Name() const {
    return std::string(Kind::kType) + "(" + window_.kernel.ToString() +
           window_.Describe(window_.kernel) + ")";
  }
  Shape OutputShape(const Shape& input) const {
    const Size2D out = window_.OutputSize(input);
    return {input.channels, out.height, out.width};
  }
  static LayerExample<Derived> Example() { return {Derived(Size2D(2, 3), Size2D(1, 2)), Shape(2, 5, 7)}; }
  const Window2D& Window() const { return window_; }

 protected:
  /// Calls f(out_row, in_row) for every row of windows of one sample
  /// (internal::ForEachWindowRow).
  template <class F>
  void ForEachWindowRow(F&& f) const {
    internal::ForEachWindowRow(window_, this->input_shape_, this->output_shape_, f);
  }
  /// Calls f(offset, kStride) for every window element (internal::ForEachWindowElement).
  template <class F>
  void ForEachWindowElement(F&& f) const {
    internal::ForEachWindowElement(window_, this->input_shape_, f);
  }

  Window2D window_;
};

}  // namespace internal

/// A layer that is a max-pooling (MaxPool2D): MaxPoolWindow() gives its window. A chain
/// offers it to the layer before it (MaxPoolFusingLayer), see Sequential.
template <class L>
concept MaxPoolingLayer = Layer<L> && requires(const L& layer) {
  { layer.MaxPoolWindow() } -> std::same_as<Window2D>;
};

/// A layer that can apply the max-pooling that follows it in a chain (after the activation
/// it fuses, if any) within its own passes (BatchNorm2D). FuseMaxPool(window) returns whether
/// it will (std::nullopt: apply none); from then on its Forward writes the pooled output and
/// its Backward receives the gradient with respect to it. See Sequential's class comment.
template <class L>
concept MaxPoolFusingLayer = Layer<L> && requires(L& layer, const L& view,
                                                  std::optional<Window2D> window) {
  { layer.FuseMaxPool(window) } -> std::same_as<bool>;
  { view.FusedMaxPool() } -> std::same_as<std::optional<Window2D>>;
};

/// Y(c, oy, ox) = the maximum of X over the window (see internal::Pool2D for the geometry);
/// a NaN in the window gives NaN, as in torch. Backward: dY goes to the window's first
/// maximal input (the one Forward picked), dX is 0 elsewhere; overlapping windows add up.
/// Forward gathers each window element's values for the whole sample into a scratch row, so
/// the comparisons run over long contiguous arrays (vectorised) rather than short rows; 2x2
/// windows of stride 2 on even planes take the vector kernels of dlb/core/max_pool_2x2.hpp
/// instead (one pass per plane, the same outputs).
template <Scalar T = float>
class MaxPool2D : public internal::Pool2D<MaxPool2D<T>, internal::MaxPoolKind> {
 public:
  using Scalar = T;
  using internal::Pool2D<MaxPool2D<T>, internal::MaxPoolKind>::Pool2D;

  /// The window (MaxPoolingLayer): a batch norm before it may apply this pooling itself.
  Window2D MaxPoolWindow() const { return this->window_; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    const Index outputs = this->output_shape_.Size();
    y.resize(outputs, x.cols());
    argmax_.resize(outputs, x.cols());
    candidates_.resize(outputs, std::min<Index>(internal::ParallelThreads(), kMaxParallelParts));
    const Shape& in = this->input_shape_;
    const bool two_by_two = internal::MaxPool2x2Fits(this->window_, in.height, in.width);
    const Index in_plane = in.height * in.width;
    const Index out_plane = this->output_shape_.height * this->output_shape_.width;
    ParallelRanges(x.cols(), x.rows(), [&](int part, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        if (!two_by_two) {
          internal::MaxOfWindows(this->window_, in, this->output_shape_, x.col(b).data(),
                                 y.col(b).data(), argmax_.col(b).data(),
                                 candidates_.col(part).data());
          continue;
        }
        for (Index c = 0; c < in.channels; ++c) {
          internal::MaxPool2x2Forward(x.col(b).data() + c * in_plane, in.height, in.width,
                                      internal::SameValue{}, y.col(b).data() + c * out_plane,
                                      argmax_.col(b).data() + c * out_plane,
                                      static_cast<T*>(nullptr));
        }
      }
    });
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    this->RequireRows(dy.rows(), this->output_shape_, "the output gradient");
    this->RequireLatestBatch(dy.cols(), argmax_.cols());
    internal::WindowElementOffsets(this->window_, this->input_shape_, element_offsets_);
    dx->resize(this->input_shape_.Size(), dy.cols());
    const Shape& in = this->input_shape_;
    const bool two_by_two = internal::MaxPool2x2Fits(this->window_, in.height, in.width);
    const Index in_plane = in.height * in.width;
    const Index out_plane = this->output_shape_.height * this->output_shape_.width;
    ParallelRanges(dy.cols(), dx->rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        T* grads = dx->col(b).data();
        const T* grad_out = dy.col(b).data();
        if (two_by_two) {
          for (Index c = 0; c < in.channels; ++c) {
            internal::MaxPool2x2Backward(static_cast<const T*>(nullptr), grad_out + c * out_plane,
                                         argmax_.col(b).data() + c * out_plane, in.height,
                                         in.width, internal::GradientAtMaximum{},
                                         grads + c * in_plane);
          }
          continue;
        }
        std::fill_n(grads, dx->rows(), T(0));
        internal::ForEachWindowMaximum(
            this->window_, this->input_shape_, this->output_shape_, argmax_.col(b).data(),
            element_offsets_.data(),
            [&](Index o, Index position) { grads[position] += grad_out[o]; });
      }
    });
  }

 private:
  // Per output and sample: the window element (ky*kw + kx) holding the maximum.
  Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic> argmax_;
  Matrix<T> candidates_;  // one column of gathered values per thread
  Eigen::Matrix<Index, Eigen::Dynamic, 1> element_offsets_;  // ky*W + kx of each element
};

/// Y(c, oy, ox) = the mean of X over the window (kh kw values; see internal::Pool2D for the
/// geometry). Backward: each input of a window receives dY / (kh kw); overlapping windows
/// add up.
template <Scalar T = float>
class AvgPool2D : public internal::Pool2D<AvgPool2D<T>, internal::AvgPoolKind> {
 public:
  using Scalar = T;
  using internal::Pool2D<AvgPool2D<T>, internal::AvgPoolKind>::Pool2D;

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    const Index stride = this->window_.stride.width, out_width = this->output_shape_.width;
    y.resize(this->output_shape_.Size(), x.cols());
    ParallelRanges(x.cols(), x.rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        const T* sample = x.col(b).data();
        T* mean = y.col(b).data();
        y.col(b).setZero();
        this->ForEachWindowElement([&](Index offset, auto kStride) {
          this->ForEachWindowRow([&](Index out_row, Index in_row) {
            internal::AddRow<decltype(kStride)::value>(sample + in_row + offset, mean + out_row,
                                                       out_width, stride);
          });
        });
        y.col(b) *= Scale();
      }
    });
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    this->RequireRows(dy.rows(), this->output_shape_, "the output gradient");
    const Index stride = this->window_.stride.width, out_width = this->output_shape_.width;
    dx->resize(this->input_shape_.Size(), dy.cols());
    ParallelRanges(dy.cols(), dx->rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        const T* grad_out = dy.col(b).data();
        T* grads = dx->col(b).data();
        dx->col(b).setZero();
        this->ForEachWindowElement([&](Index offset, auto kStride) {
          this->ForEachWindowRow([&](Index out_row, Index in_row) {
            internal::SpreadRow<decltype(kStride)::value>(grad_out + out_row,
                                                          grads + in_row + offset, out_width,
                                                          stride, Scale());
          });
        });
      }
    });
  }

 private:
  T Scale() const {
    return T(1) / static_cast<T>(this->window_.kernel.height * this->window_.kernel.width);
  }
};

/// Y(c) = the mean of X(c, ., .) over the H x W plane: a C x H x W sample becomes the flat
/// vector {C} (what a classifier head reads). Backward: dX(c, y, x) = dY(c) / (H W).
template <Scalar T = float>
class GlobalAvgPool : public SpatialLayer<GlobalAvgPool<T>>, public DescribedBy<GlobalAvgPoolOptions> {
 public:
  using Scalar = T;

  explicit GlobalAvgPool(const GlobalAvgPoolOptions& options = {})
      : DescribedBy<GlobalAvgPoolOptions>(options) {}

  std::string Name() const { return "GlobalAvgPool"; }
  static LayerExample<GlobalAvgPool> Example() { return {GlobalAvgPool(), Shape(3, 4, 5)}; }

  /// {C} for any C x H x W input.
  Shape OutputShape(const Shape& input) const { return Shape(input.channels); }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    const Index plane = this->input_shape_.height * this->input_shape_.width;
    const Index channels = this->input_shape_.channels;
    y.resize(channels, x.cols());
    ParallelRanges(x.cols(), x.rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        const Eigen::Map<const Matrix<T>> planes(x.col(b).data(), plane, channels);
        for (Index c = 0; c < channels; ++c) y(c, b) = planes.col(c).mean();
      }
    });
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    this->RequireRows(dy.rows(), this->output_shape_, "the output gradient");
    const Index plane = this->input_shape_.height * this->input_shape_.width;
    const Index channels = this->input_shape_.channels;
    dx->resize(this->input_shape_.Size(), dy.cols());
    const T scale = T(1) / static_cast<T>(plane);
    ParallelRanges(dy.cols(), dx->rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        Eigen::Map<Matrix<T>> planes(dx->col(b).data(), plane, channels);
        for (Index c = 0; c < channels; ++c) planes.col(c).setConstant(dy(c, b) * scale);
      }
    });
  }
};

}  // namespace dlb
