#pragma once
/// \file
/// Pooling layers: MaxPool2D, AvgPool2D (torch.nn.MaxPool2d / AvgPool2d without padding) and
/// GlobalAvgPool (torch.nn.AdaptiveAvgPool2d(1) followed by a flatten).

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"
#include "dlb/layers/layer_spec.hpp"
#include "dlb/layers/spatial_layer.hpp"

namespace dlb {

namespace internal {

/// What MaxPool2D and AvgPool2D share: a kh x kw window moved by the stride over each plane
/// of a C x H x W sample, without padding. Output C x Ho x Wo with torch's floor rule
/// Ho = floor((H - kh) / sh) + 1 (likewise Wo): a 7 x 7 plane under a 2x2 window of stride 2
/// gives 3 x 3 and its last row and column are not read (they get a zero gradient). Rejected
/// (ShapeError): a plane smaller than the window.
template <class Derived>
class Pool2D : public SpatialLayer<Derived> {
 public:
  /// Throws ArgumentError unless kernel >= 1 and stride >= 1 in each direction.
  Pool2D(const char* type, Size2D kernel, Size2D stride) : type_(type), window_{kernel, stride, 0} {
    window_.Validate(type);
  }

  /// "MaxPool2D(2x2)"; "MaxPool2D(3x3, stride 2)" when the stride is not the kernel.
  std::string Name() const {
    return std::string(type_) + "(" + window_.kernel.ToString() + window_.Describe(window_.kernel) + ")";
  }
  Shape OutputShape(const Shape& input) const {
    const Size2D out = window_.OutputSize(input);
    return {input.channels, out.height, out.width};
  }
  LayerSpec Spec() const {
    return {type_,
            {{"kernel_height", std::int64_t{window_.kernel.height}},
             {"kernel_width", std::int64_t{window_.kernel.width}},
             {"stride_height", std::int64_t{window_.stride.height}},
             {"stride_width", std::int64_t{window_.stride.width}}}};
  }
  const Window2D& Window() const { return window_; }

 protected:
  /// Calls f(b, out_index, in_index) for every window of the samples [first, first + count):
  /// out_index = (c*Ho + oy)*Wo + ox is the window's output row, in_index its top-left input
  /// row (c*H + oy*sh)*W + ox*sw; the window covers in_index + ky*W + kx.
  template <class F>
  void ForEachWindow(Index first, Index count, F&& f) const {
    const Shape& in = this->input_shape_;
    const Shape& out = this->output_shape_;
    for (Index b = first; b < first + count; ++b) {
      Index out_index = 0;
      for (Index c = 0; c < in.channels; ++c) {
        for (Index oy = 0; oy < out.height; ++oy) {
          const Index row = (c * in.height + oy * window_.stride.height) * in.width;
          for (Index ox = 0; ox < out.width; ++ox, ++out_index) {
            f(b, out_index, row + ox * window_.stride.width);
          }
        }
      }
    }
  }

  const char* type_;
  Window2D window_;
};

}  // namespace internal

/// Y(c, oy, ox) = the maximum of X over the window (see internal::Pool2D for the geometry);
/// a NaN in the window gives NaN, as in torch. Backward: dY goes to the window's first
/// maximal input (the one Forward picked), dX is 0 elsewhere; overlapping windows add up.
template <Scalar T = float>
class MaxPool2D : public internal::Pool2D<MaxPool2D<T>> {
 public:
  using Scalar = T;

  /// `MaxPool2D<float>(2)`: a 2x2 window moved by 2. Throws ArgumentError for kernel or
  /// stride < 1.
  explicit MaxPool2D(Size2D kernel) : MaxPool2D(kernel, kernel) {}
  explicit MaxPool2D(Size2D kernel, Size2D stride) : internal::Pool2D<MaxPool2D<T>>("MaxPool2D", kernel, stride) {}

  /// C x Ho x Wo (see internal::Pool2D); also rejects samples of 2^31 values or more (the
  /// positions of the maxima are kept as 32-bit integers).
  Shape OutputShape(const Shape& input) const {
    if (input.Size() > std::numeric_limits<std::int32_t>::max()) {
      throw ShapeError("needs fewer than 2^31 values per sample, got " + input.ToString());
    }
    return internal::Pool2D<MaxPool2D<T>>::OutputShape(input);
  }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    const Index kh = this->window_.kernel.height, kw = this->window_.kernel.width;
    const Index width = this->input_shape_.width;
    y.resize(this->output_shape_.Size(), x.cols());
    argmax_.resize(y.rows(), y.cols());
    ParallelRanges(x.cols(), x.rows(), [&](int, Index first, Index count) {
      this->ForEachWindow(first, count, [&](Index b, Index out_index, Index in_index) {
        const T* sample = x.col(b).data();
        Index best_index = in_index;
        T best = sample[in_index];
        for (Index ky = 0; ky < kh; ++ky) {
          for (Index kx = 0; kx < kw; ++kx) {
            const Index i = in_index + ky * width + kx;
            if (sample[i] > best || std::isnan(sample[i])) {  // torch's rule
              best = sample[i];
              best_index = i;
            }
          }
        }
        y(out_index, b) = best;
        argmax_(out_index, b) = static_cast<std::int32_t>(best_index);
      });
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
    dx->resize(this->input_shape_.Size(), dy.cols());
    ParallelRanges(dy.cols(), dx->rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        T* grad = dx->col(b).data();
        std::fill_n(grad, dx->rows(), T(0));
        for (Index o = 0; o < dy.rows(); ++o) grad[argmax_(o, b)] += dy(o, b);
      }
    });
  }

 private:
  Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic> argmax_;  // input row per output
};

/// Y(c, oy, ox) = the mean of X over the window (kh kw values; see internal::Pool2D for the
/// geometry). Backward: each input of a window receives dY / (kh kw); overlapping windows
/// add up.
template <Scalar T = float>
class AvgPool2D : public internal::Pool2D<AvgPool2D<T>> {
 public:
  using Scalar = T;

  /// `AvgPool2D<float>(2)`: a 2x2 window moved by 2. Throws ArgumentError for kernel or
  /// stride < 1.
  explicit AvgPool2D(Size2D kernel) : AvgPool2D(kernel, kernel) {}
  explicit AvgPool2D(Size2D kernel, Size2D stride) : internal::Pool2D<AvgPool2D<T>>("AvgPool2D", kernel, stride) {}

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    const Index kh = this->window_.kernel.height, kw = this->window_.kernel.width;
    const Index width = this->input_shape_.width;
    const T scale = T(1) / static_cast<T>(kh * kw);
    y.resize(this->output_shape_.Size(), x.cols());
    ParallelRanges(x.cols(), x.rows(), [&](int, Index first, Index count) {
      this->ForEachWindow(first, count, [&](Index b, Index out_index, Index in_index) {
        const T* window = x.col(b).data() + in_index;
        T sum = T(0);
        for (Index ky = 0; ky < kh; ++ky) {
          for (Index kx = 0; kx < kw; ++kx) sum += window[ky * width + kx];
        }
        y(out_index, b) = sum * scale;
      });
    });
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    this->RequireRows(dy.rows(), this->output_shape_, "the output gradient");
    const Index kh = this->window_.kernel.height, kw = this->window_.kernel.width;
    const Index width = this->input_shape_.width;
    const T scale = T(1) / static_cast<T>(kh * kw);
    dx->resize(this->input_shape_.Size(), dy.cols());
    ParallelRanges(dy.cols(), dx->rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) dx->col(b).setZero();
      this->ForEachWindow(first, count, [&](Index b, Index out_index, Index in_index) {
        T* window = dx->col(b).data() + in_index;
        const T share = dy(out_index, b) * scale;
        for (Index ky = 0; ky < kh; ++ky) {
          for (Index kx = 0; kx < kw; ++kx) window[ky * width + kx] += share;
        }
      });
    });
  }
};

/// Y(c) = the mean of X(c, ., .) over the H x W plane: a C x H x W sample becomes the flat
/// vector {C} (what a classifier head reads). Backward: dX(c, y, x) = dY(c) / (H W).
template <Scalar T = float>
class GlobalAvgPool : public SpatialLayer<GlobalAvgPool<T>> {
 public:
  using Scalar = T;

  std::string Name() const { return "GlobalAvgPool"; }
  /// {C} for any C x H x W input.
  Shape OutputShape(const Shape& input) const { return Shape(input.channels); }
  LayerSpec Spec() const { return {"GlobalAvgPool", {}}; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    const Index plane = this->input_shape_.height * this->input_shape_.width;
    const Index channels = this->input_shape_.channels;
    y.resize(channels, x.cols());
    ParallelRanges(x.cols(), x.rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        const Eigen::Map<const Matrix<T>> planes(x.col(b).data(), plane, channels);
        y.col(b) = planes.colwise().mean().transpose();
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
        planes.rowwise() = dy.col(b).transpose() * scale;
      }
    });
  }
};

}  // namespace dlb
