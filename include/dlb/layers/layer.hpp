#pragma once
/// \file
/// The Layer contract: what a type must provide to be placed in a ModelNN.
///
/// A layer maps a batch X (input_size x batch, one column per sample) to Y
/// (output_size x batch) and back-propagates dL/dY to dL/dX. A convolution layer reads each
/// column as a flattened C x H x W image; the contract only speaks of column sizes.
///
/// Required members (L::Scalar is the scalar type T):
/// ```
///   std::string Name() const;                    // "Linear(784 -> 350)", used in messages
///   Index InputSize() const;                     // rows X must have; 0 = any (element-wise)
///   Index OutputSize(Index input_size) const;    // rows of Y for X with input_size rows
///   void Forward(const ConstMatrixRef<T>& X, Matrix<T>& Y, Mode mode);
///   void Backward(const ConstMatrixRef<T>& X, const ConstMatrixRef<T>& Y,
///                 const ConstMatrixRef<T>& dY, Matrix<T>* dX);
/// ```
/// - Forward resizes Y (a no-op when the batch size is unchanged, so nothing is allocated
///   after the first batch) and writes Y = f(X).
/// - Backward receives the X and Y of the latest Forward and dY = dL/dY; it writes
///   dX = dL/dX into *dX unless dX is null (the first layer's input gradient is not needed),
///   and *overwrites* its parameter gradients with dL/dparam summed over the batch (the
///   loss carries the 1/N of a mean).
///
/// Optional members, used when present:
/// ```
///   std::vector<Parameter<T>> Parameters();      // each trainable block, by name
///   void Init(Generator& gen);                    // (re)draw parameters / reseed
/// ```

#include <concepts>
#include <string>
#include <vector>

#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Satisfied by every type that fulfils the Layer contract described above.
template <class L>
concept Layer = requires { typename L::Scalar; } && Scalar<typename L::Scalar> &&
    requires(L& layer, const L& const_layer, const ConstMatrixRef<typename L::Scalar>& x,
             Matrix<typename L::Scalar>& y, Matrix<typename L::Scalar>* dx, Mode mode,
             Index size) {
      { const_layer.Name() } -> std::convertible_to<std::string>;
      { const_layer.InputSize() } -> std::convertible_to<Index>;
      { const_layer.OutputSize(size) } -> std::convertible_to<Index>;
      layer.Forward(x, y, mode);
      layer.Backward(x, x, x, dx);
    };

/// A layer with trainable parameters.
template <class L>
concept LayerWithParameters = Layer<L> && requires(L& layer) {
  { layer.Parameters() } -> std::same_as<std::vector<Parameter<typename L::Scalar>>>;
};

/// A layer whose parameters or random state are drawn from a generator.
template <class L>
concept InitializableLayer = Layer<L> && requires(L& layer, Generator& gen) { layer.Init(gen); };

}  // namespace dlb
