#pragma once
/// \file
/// Pooling layers: MaxPool2D, AvgPool2D (torch.nn.MaxPool2d / AvgPool2d without padding) and
/// GlobalAvgPool (torch.nn.AdaptiveAvgPool2d(1) followed by a flatten).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "dlb/core/error.hpp"
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

/// best[o] = candidates[o] and where[o] = element when candidates[o] > best[o] or is NaN
/// (torch's rule: ties keep the earlier element), for o < n.
template <Scalar T>
void MaxPass(const T* __restrict candidates, T* __restrict best, std::int32_t* __restrict where,
             Index n, std::int32_t element) {
  for (Index o = 0; o < n; ++o) {
    const T value = candidates[o];
    const bool take = (value > best[o]) | (value != value);
    best[o] = take ? value : best[o];
    where[o] = take ? element : where[o];
  }
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
  /// Calls f(out_row, in_row) for every row of windows of one sample: out_row = (c*Ho + oy)*Wo
  /// is where output row oy of channel c starts in the sample's column, in_row =
  /// (c*H + oy*sh)*W where the input row under the windows' top starts; window ox covers
  /// in_row + ox*sw + ky*W + kx.
  template <class F>
  void ForEachWindowRow(F&& f) const {
    const Shape& in = this->input_shape_;
    const Shape& out = this->output_shape_;
    for (Index c = 0; c < in.channels; ++c) {
      for (Index oy = 0; oy < out.height; ++oy) {
        f((c * out.height + oy) * out.width, (c * in.height + oy * window_.stride.height) * in.width);
      }
    }
  }

  /// Calls f(offset, kStride) for every window element k = ky*kw + kx in order, with its
  /// offset ky*W + kx from a window's top-left input and the stride dispatched by WithStride.
  template <class F>
  void ForEachWindowElement(F&& f) const {
    WithStride(window_.stride.width, [&](auto kStride) {
      for (Index ky = 0; ky < window_.kernel.height; ++ky) {
        for (Index kx = 0; kx < window_.kernel.width; ++kx) {
          f(ky * this->input_shape_.width + kx, kStride);
        }
      }
    });
  }

  Window2D window_;
};

}  // namespace internal

/// Y(c, oy, ox) = the maximum of X over the window (see internal::Pool2D for the geometry);
/// a NaN in the window gives NaN, as in torch. Backward: dY goes to the window's first
/// maximal input (the one Forward picked), dX is 0 elsewhere; overlapping windows add up.
/// Forward gathers each window element's values for the whole sample into a scratch row, so
/// the comparisons run over long contiguous arrays (vectorised) rather than short rows.
template <Scalar T = float>
class MaxPool2D : public internal::Pool2D<MaxPool2D<T>, internal::MaxPoolKind> {
 public:
  using Scalar = T;
  using internal::Pool2D<MaxPool2D<T>, internal::MaxPoolKind>::Pool2D;

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    const Index outputs = this->output_shape_.Size();
    const Index stride = this->window_.stride.width, out_width = this->output_shape_.width;
    y.resize(outputs, x.cols());
    argmax_.resize(outputs, x.cols());
    candidates_.resize(outputs, std::min<Index>(internal::ParallelThreads(), kMaxParallelParts));
    ParallelRanges(x.cols(), x.rows(), [&](int part, Index first, Index count) {
      T* gathered = candidates_.col(part).data();
      for (Index b = first; b < first + count; ++b) {
        const T* sample = x.col(b).data();
        T* best = y.col(b).data();
        std::int32_t* where = argmax_.col(b).data();
        std::int32_t element = 0;
        this->ForEachWindowElement([&](Index offset, auto kStride) {
          // The first element starts the maxima; each later one is gathered and compared.
          T* target = element == 0 ? best : gathered;
          this->ForEachWindowRow([&](Index out_row, Index in_row) {
            internal::GatherRow<decltype(kStride)::value>(sample + in_row + offset,
                                                          target + out_row, out_width, stride);
          });
          if (element == 0) {
            std::fill_n(where, outputs, 0);
          } else {
            internal::MaxPass(gathered, best, where, outputs, element);
          }
          ++element;
        });
      }
    });
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    this->RequireRows(dy.rows(), this->output_shape_, "the output gradient");
    if (dy.cols() != argmax_.cols()) {
      throw ShapeError(this->Name() + ": the output gradient has " + std::to_string(dy.cols()) +
                       " samples, the latest Forward had " + std::to_string(argmax_.cols()));
    }
    const Index stride = this->window_.stride.width, out_width = this->output_shape_.width;
    element_offsets_.resize(this->window_.kernel.height * this->window_.kernel.width);
    Index element = 0;
    this->ForEachWindowElement([&](Index offset, auto) { element_offsets_(element++) = offset; });
    dx->resize(this->input_shape_.Size(), dy.cols());
    ParallelRanges(dy.cols(), dx->rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        T* grads = dx->col(b).data();
        const T* grad_out = dy.col(b).data();
        const std::int32_t* where = argmax_.col(b).data();
        std::fill_n(grads, dx->rows(), T(0));
        this->ForEachWindowRow([&](Index out_row, Index in_row) {
          for (Index ox = 0; ox < out_width; ++ox) {
            grads[in_row + ox * stride + element_offsets_(where[out_row + ox])] +=
                grad_out[out_row + ox];
          }
        });
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
