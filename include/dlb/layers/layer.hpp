#pragma once
/// \file
/// The Layer contract: what a type must provide to be placed in a ModelNN.
///
/// A layer maps a batch X (input_shape.Size() x batch, one column per sample) to Y
/// (output_shape.Size() x batch) and back-propagates dL/dY to dL/dX. Each column is one sample
/// flattened channel-major, then rows, then columns (see Shape), so a convolution reads the
/// column as a C x H x W image and a Linear layer after it reads the same column as a vector.
///
/// Required members (L::Scalar is the scalar type T):
/// ```
///   std::string Name() const;                     // "Linear(784 -> 350)", used in messages
///   Shape OutputShape(const Shape& input) const;  // Y's sample shape for X's; throws
///                                                 //   ShapeError saying what it needs
///   void Forward(const ConstMatrixRef<T>& X, Matrix<T>& Y, Mode mode);
///   void Backward(const ConstMatrixRef<T>& X, const ConstMatrixRef<T>& Y,
///                 const ConstMatrixRef<T>& dY, Matrix<T>* dX);
/// ```
/// - OutputShape is called once by ModelNN::Add with the shape the previous layer produces
///   (or the model's input shape); a layer that needs to know its input shape (pooling,
///   batch norm over channels) may also provide `void SetInputShape(const Shape&)`.
/// - Forward resizes Y (a no-op when the batch size is unchanged, so nothing is allocated
///   after the first batch) and writes Y = f(X). `mode` is Train or Inference (dropout and
///   batch norm behave differently).
/// - Backward receives the X and Y of the latest Forward and dY = dL/dY; it writes
///   dX = dL/dX into *dX unless dX is null (the first layer's input gradient is not needed),
///   and *overwrites* its parameter gradients with dL/dparam summed over the batch (the
///   loss carries the 1/N of a mean).
///
#include <concepts>
#include <functional>
#include <string>
#include <vector>

#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer_spec.hpp"

namespace dlb {

/// A small instance of a layer type and an input shape it accepts. Every built-in layer type
/// gives one (`static LayerExample<L> Example()`): the layer check of every built-in layer
/// (dlb::testing::CheckLayer in tests/test_builtin_layers.cpp) runs on it.
template <class L>
struct LayerExample {
  L layer;
  Shape input;
};

/// Satisfied by every type that fulfils the Layer contract described above.
template <class L>
concept Layer = requires { typename L::Scalar; } && Scalar<typename L::Scalar> &&
    requires(L& layer, const L& const_layer, const ConstMatrixRef<typename L::Scalar>& x,
             Matrix<typename L::Scalar>& y, Matrix<typename L::Scalar>* dx, Mode mode,
             const Shape& shape) {
      { const_layer.Name() } -> std::convertible_to<std::string>;
      { const_layer.OutputShape(shape) } -> std::convertible_to<Shape>;
      layer.Forward(x, y, mode);
      layer.Backward(x, x, x, dx);
    };

/// A layer with trainable parameters.
template <class L>
concept LayerWithParameters = Layer<L> && requires(L& layer) {
  { layer.Parameters() } -> std::same_as<std::vector<Parameter<typename L::Scalar>>>;
};

/// A layer with non-trainable state (buffers, generators).
template <class L>
concept LayerWithState = Layer<L> && requires(L& layer) {
  { layer.State() } -> std::same_as<std::vector<StateRef<typename L::Scalar>>>;
};

/// A layer whose parameters or random state are drawn from a generator.
template <class L>
concept InitializableLayer = Layer<L> && requires(L& layer, Generator& gen) { layer.Init(gen); };

/// A layer that can describe itself for a saved architecture.
template <class L>
concept DescribedLayer = Layer<L> && requires(const L& layer) {
  { layer.Spec() } -> std::convertible_to<LayerSpec>;
};

/// Sums a buffer of doubles across the processes of a data-parallel job, in place (e.g.
/// MPI_Allreduce(MPI_IN_PLACE, sums, count, MPI_DOUBLE, MPI_SUM, comm)). See BatchNorm.
using StatisticsReducer = std::function<void(double* sums, Index count)>;

/// A layer that computes statistics over the batch which data-parallel training must sum
/// across processes (batch norm; see dlb::SyncBatchNorm).
template <class L>
concept BatchStatisticsLayer = Layer<L> && requires(L& layer, StatisticsReducer reducer) {
  layer.SetStatisticsReducer(reducer);
};

/// A layer that checks its state after loading.
template <class L>
concept StateValidatingLayer = Layer<L> && requires(const L& layer) { layer.ValidateState(); };

/// A layer that needs working memory beyond its output.
template <class L>
concept ScratchLayer = Layer<L> && requires(const L& layer) {
  { layer.ScratchValuesPerSample() } -> std::convertible_to<Index>;
};

/// A layer that wants to be told its input shape.
template <class L>
concept ShapeAwareLayer = Layer<L> && requires(L& layer, const Shape& shape) {
  layer.SetInputShape(shape);
};

}  // namespace dlb
