#pragma once
/// \file
/// Max-pooling over 2x2 windows of stride 2 (the pooling of most convnets, that of
/// `train_fashion_mnist --model cnn`) on SIMD vectors: a plane's row pair at a time, the four
/// window elements split out of the two rows by shuffles, compared in registers. MaxPool2D
/// and BatchNorm2D's fused pooling run their passes through it where it applies
/// (MaxPool2x2Fits).
///
/// Why: the general kernels of dlb/layers/pooling.hpp (MaxOfWindows, ForEachWindowMaximum)
/// gather each window element of a plane into an array, compare the arrays, then find the
/// maxima's inputs one window at a time; for 2 x 2 windows of stride 2 their rows are 14 or 7
/// values long and the gathers strided, and batch norm's fused pooling spent about a tenth of
/// the CNN's training step there (perf). These kernels do the same work in one pass over the
/// plane, 8 (or, on planes of fewer than 16 columns, 4) windows at a time. Measured with
/// `dlb_bench_cnn_epoch --model cnn --synthetic --threads 1 --batches 60 --layer-times`
/// (2026-12-05, 2 vCPUs of an AMD EPYC Zen 5 with AVX-512, interleaved with the commit
/// before): the forward of the first batch norm (ReLU and pooling fused) 2.72 -> 1.73 ms a
/// batch of 128, of the second 1.91 -> 1.25 ms, now about the time of their memory traffic;
/// their backward, bound by its traffic on one thread, stays at 2.4-2.6 and 1.6 ms.
///
/// The vectors are GCC's and Clang's vector extensions (`vector_size`), which compile to the
/// target's registers (AVX-512, AVX2, SSE, NEON) or to scalar code; other compilers take the
/// general kernels (MaxPool2x2Fits is false there).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"

namespace dlb::internal {

#if defined(__GNUC__) || defined(__clang__)
#define DLB_MAX_POOL_2X2_VECTORS_ 1
#else
#define DLB_MAX_POOL_2X2_VECTORS_ 0
#endif

/// Whether MaxPool2x2Forward and MaxPool2x2Backward apply to `window` over planes of
/// `height` x `width`: a 2 x 2 kernel of stride 2 without padding, even extents (so that
/// every input is in exactly one window) and at least 8 columns (4 windows a row).
inline bool MaxPool2x2Fits(const Window2D& window, Index height, Index width) {
  return DLB_MAX_POOL_2X2_VECTORS_ && window.kernel == Size2D(2) && window.stride == Size2D(2) &&
         window.padding == Size2D(0) && height % 2 == 0 && width % 2 == 0 && width >= 8;
}

#if DLB_MAX_POOL_2X2_VECTORS_

// Every helper takes and gives vectors by reference: a vector passed or returned by value
// would be passed differently with and without AVX (or AVX-512) enabled, which GCC and Clang
// warn about (-Wpsabi) in a program built without them. Bits are reinterpreted by casting the
// vector values (a conversion between vector types of one size), not through references.

/// N values of T (and the same-size signed integers, which comparisons give: all bits set
/// where true, 0 where false) as one vector.
template <Scalar T, int N>
struct Lanes {
  using Int = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  typedef T Values __attribute__((vector_size(N * sizeof(T))));
  typedef Int Mask __attribute__((vector_size(N * sizeof(T))));
  typedef std::int32_t Indices __attribute__((vector_size(N * sizeof(std::int32_t))));
};

/// chosen = `when_true` where `mask` is set, chosen elsewhere (kept), by bits: no rounding,
/// NaN kept.
template <class Values, class Mask>
void SelectLanes(const Mask& mask, const Values& when_true, Values& chosen) {
  chosen = reinterpret_cast<Values>((reinterpret_cast<Mask>(when_true) & mask) |
                                    (reinterpret_cast<Mask>(chosen) & ~mask));
}

/// v = max(v, 0) lane by lane as Eigen's packet max computes `array.max(T(0))`: NaN stays NaN
/// and -0 stays -0 (only lanes below 0 become +0).
template <class Values>
void MaxWithZeroLanes(Values& v) {
  using Mask = decltype(v < v);
  v = reinterpret_cast<Values>(reinterpret_cast<Mask>(v) & ~(v < 0));
}

/// grads = grads where values > 0, else +0 (KeepWherePositive of dlb/core/sign_select.hpp,
/// lane by lane).
template <class Values>
void KeepWherePositiveLanes(Values& grads, const Values& values) {
  using Mask = decltype(values > 0);
  grads = reinterpret_cast<Values>(reinterpret_cast<Mask>(grads) & (values > 0));
}

/// even, odd = the lanes of v (2N values) at even and at odd positions: a row's window
/// elements of kx = 0 and kx = 1.
template <int N, class Wide, class Narrow>
void SplitLanes(const Wide& v, Narrow& even, Narrow& odd) {
  if constexpr (N == 8) {
    even = __builtin_shufflevector(v, v, 0, 2, 4, 6, 8, 10, 12, 14);
    odd = __builtin_shufflevector(v, v, 1, 3, 5, 7, 9, 11, 13, 15);
  } else {
    static_assert(N == 4);
    even = __builtin_shufflevector(v, v, 0, 2, 4, 6);
    odd = __builtin_shufflevector(v, v, 1, 3, 5, 7);
  }
}
/// twice = each lane of v (N values) twice in a row: a window's value over its two columns.
template <int N, class Narrow, class Wide>
void RepeatLanes(const Narrow& v, Wide& twice) {
  if constexpr (N == 8) {
    twice = __builtin_shufflevector(v, v, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  } else {
    twice = __builtin_shufflevector(v, v, 0, 0, 1, 1, 2, 2, 3, 3);
  }
}

template <class Vector, class T>
void LoadLanes(const T* from, Vector& v) {
  std::memcpy(&v, from, sizeof(Vector));
}
template <class Vector, class T>
void StoreLanes(const Vector& v, T* to) {
  std::memcpy(to, &v, sizeof(Vector));
}

/// Calls f(oy, ox) for the first window column ox of each group of N windows of each output
/// row oy; the last group of a row starts at Wo - N, overlapping the one before when N does
/// not divide Wo (its windows are computed twice, to the same values).
template <int N, class F>
void ForEachWindowGroup(Index out_height, Index out_width, F&& f) {
  for (Index oy = 0; oy < out_height; ++oy) {
    for (Index first = 0; first < out_width; first += N) f(oy, std::min(first, out_width - N));
  }
}

/// MaxPool2x2Forward (below) N windows at a time: their 2N inputs of the top and of the
/// bottom row loaded as two vectors and split into the four window elements.
template <int N, Scalar T, class Transform>
void MaxPool2x2ForwardLanes(const T* __restrict plane, Index height, Index width,
                            const Transform& transform, T* __restrict best,
                            std::int32_t* __restrict where, T* __restrict at_maximum) {
  using Narrow = Lanes<T, N>;
  using Wide = Lanes<T, 2 * N>;
  const Index out_width = width / 2;
  ForEachWindowGroup<N>(height / 2, out_width, [&](Index oy, Index ox) {
    const T* top = plane + 2 * oy * width + 2 * ox;
    typename Wide::Values top_row, bottom_row;
    LoadLanes(top, top_row);
    LoadLanes(top + width, bottom_row);
    // The window elements k = ky*2 + kx in torch's order; the first starts the maxima.
    typename Narrow::Values inputs[4];
    SplitLanes<N>(top_row, inputs[0], inputs[1]);
    SplitLanes<N>(bottom_row, inputs[2], inputs[3]);
    typename Narrow::Values maxima, input_at_maximum = inputs[0];
    transform(inputs[0], maxima);
    typename Narrow::Mask element{};
    for (int k = 1; k < 4; ++k) {
      // ReplacesMaximum of dlb/layers/pooling.hpp: greater, or NaN.
      typename Narrow::Values value;
      transform(inputs[k], value);
      const typename Narrow::Mask take = (value > maxima) | (value != value);
      SelectLanes(take, value, maxima);
      SelectLanes(take, inputs[k], input_at_maximum);
      element = (take & k) | (element & ~take);
    }
    const Index o = oy * out_width + ox;
    StoreLanes(maxima, best + o);
    if (at_maximum != nullptr) StoreLanes(input_at_maximum, at_maximum + o);
    StoreLanes(__builtin_convertvector(element, typename Narrow::Indices), where + o);
  });
}

/// MaxPool2x2Backward (below) N windows at a time: each window's gradient and element
/// repeated over its two columns, then the top and the bottom row's 2N inputs.
template <int N, Scalar T, class Spread>
void MaxPool2x2BackwardLanes(const T* __restrict plane, const T* __restrict grads,
                             const std::int32_t* __restrict where, Index height, Index width,
                             const Spread& spread, T* __restrict plane_grads) {
  using Narrow = Lanes<T, N>;
  using Wide = Lanes<T, 2 * N>;
  typename Wide::Mask column{};  // kx of each input of a row: 0, 1, 0, 1, ...
  for (int i = 0; i < 2 * N; ++i) column[i] = i % 2;
  const Index out_width = width / 2;
  ForEachWindowGroup<N>(height / 2, out_width, [&](Index oy, Index ox) {
    const Index o = oy * out_width + ox;
    typename Narrow::Values group_grads;
    typename Narrow::Indices group_elements;
    LoadLanes(grads + o, group_grads);
    LoadLanes(where + o, group_elements);
    typename Wide::Values window_grads;
    typename Wide::Mask window_element;
    RepeatLanes<N>(group_grads, window_grads);
    RepeatLanes<N>(__builtin_convertvector(group_elements, typename Narrow::Mask), window_element);
    for (int ky = 0; ky < 2; ++ky) {
      const Index row = (2 * oy + ky) * width + 2 * ox;
      typename Wide::Values inputs{}, input_grads;
      if constexpr (Spread::kReadsInputs) LoadLanes(plane + row, inputs);
      const typename Wide::Mask is_maximum = window_element == (column + 2 * ky);
      spread(is_maximum, window_grads, inputs, input_grads);
      StoreLanes(input_grads, plane_grads + row);
    }
  });
}

#endif  // DLB_MAX_POOL_2X2_VECTORS_

/// The inputs themselves (MaxPool2D's `transform`).
struct SameValue {
#if DLB_MAX_POOL_2X2_VECTORS_
  template <class Values>
  void operator()(const Values& inputs, Values& value) const {
    value = inputs;
  }
#endif
};

/// A window's gradient at its maximum, 0 at its other inputs (MaxPool2D's `spread`).
struct GradientAtMaximum {
  static constexpr bool kReadsInputs = false;
#if DLB_MAX_POOL_2X2_VECTORS_
  template <class Mask, class Values>
  void operator()(const Mask& is_maximum, const Values& window_grads, const Values& /*inputs*/,
                  Values& input_grads) const {
    input_grads = Values{};
    SelectLanes(is_maximum, window_grads, input_grads);
  }
#endif
};

#if DLB_MAX_POOL_2X2_VECTORS_
/// Calls f(std::integral_constant<int, N>{}) with the windows per vector for planes of
/// `width` columns: 8, or 4 on planes narrower than 16 columns.
template <class F>
void WithWindowsPerVector(Index width, F&& f) {
  if (width / 2 >= 8) {
    f(std::integral_constant<int, 8>{});
  } else {
    f(std::integral_constant<int, 4>{});
  }
}
#endif

/// The forward pass over one plane (`height` x `width`, MaxPool2x2Fits): for each window o
/// (row-major over the height/2 x width/2 output), best[o] = the maximum of transform(x) over
/// its four inputs x, where[o] = that input's element ky*2 + kx and at_maximum[o] = the input
/// itself (unless at_maximum is null), with torch's rule as MaxOfWindows applies it (the
/// first maximum; a NaN wins, the last NaN of a window). transform(inputs, values) writes
/// the values compared for a vector of inputs, with lane-wise arithmetic (SameValue here;
/// batch norm's normalisation and ReLU, written as on Eigen's packets so that it rounds alike,
/// in dlb/layers/batch_norm.hpp).
template <Scalar T, class Transform>
void MaxPool2x2Forward(const T* plane, Index height, Index width, Transform transform, T* best,
                       std::int32_t* where, T* at_maximum) {
#if DLB_MAX_POOL_2X2_VECTORS_
  WithWindowsPerVector(width, [&](auto n) {
    MaxPool2x2ForwardLanes<decltype(n)::value>(plane, height, width, transform, best, where,
                                                at_maximum);
  });
#endif
}

/// The backward pass over one plane (MaxPool2x2Fits): every input's gradient from its
/// window's gradient `grads[o]` and element `where[o]` (MaxPool2x2Forward's), as
/// spread(is_maximum, window_grads, inputs, input_grads) on vectors of a row's inputs: the
/// mask of the inputs at their window's maximum, each window's gradient over its two columns,
/// and the inputs themselves, read from `plane` when Spread::kReadsInputs (else zeros, and
/// `plane` may be null).
template <Scalar T, class Spread>
void MaxPool2x2Backward(const T* plane, const T* grads, const std::int32_t* where, Index height,
                        Index width, Spread spread, T* plane_grads) {
#if DLB_MAX_POOL_2X2_VECTORS_
  WithWindowsPerVector(width, [&](auto n) {
    MaxPool2x2BackwardLanes<decltype(n)::value>(plane, grads, where, height, width, spread,
                                                 plane_grads);
  });
#endif
}

}  // namespace dlb::internal
