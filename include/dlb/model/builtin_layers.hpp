#pragma once
/// \file
/// The built-in layer types, listed once: DefaultLayerRegistry() registers each of them, and
/// the test of every built-in layer (tests/test_builtin_layers.cpp) runs the public layer
/// check (dlb::testing::CheckLayer) on each. A new built-in layer is its header and one line
/// here.

#include "dlb/layers/activations.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/concat.hpp"
#include "dlb/model/residual.hpp"
#include "dlb/model/sequential.hpp"

namespace dlb {

/// A list of layer types.
template <class... Layers>
struct LayerList {};

/// The layers of DLBlocks, for scalar type T.
template <Scalar T>
using BuiltinLayers =
    LayerList<Linear<T>, ReLU<T>, LeakyReLU<T>, Sigmoid<T>, Tanh<T>, Dropout<T>, Conv2D<T>,
              MaxPool2D<T>, AvgPool2D<T>, GlobalAvgPool<T>, BatchNorm1D<T>, BatchNorm2D<T>,
              Sequential<T>, Residual<T>, Concat<T>>;

// The blocks' examples, here where every layer type is known.

/// Linear(3 -> 4), Tanh, Linear(4 -> 2) on flat samples of 3.
template <Scalar T>
LayerExample<Sequential<T>> Sequential<T>::Example() {
  return {Sequential<T>().Add(Linear<T>(3, 4)).Add(Tanh<T>()).Add(Linear<T>(4, 2)), Shape(3)};
}

/// conv1-bn1-relu-conv2-bn2 from 2 to 3 channels with stride 2, and a downsample shortcut.
template <Scalar T>
LayerExample<Residual<T>> Residual<T>::Example() {
  return {Residual<T>(Sequential<T>()
                          .Add("conv1", Conv2D<T>(Conv2DOptions(2, 3, 3).Stride(2).Padding(1).Bias(false)))
                          .Add("bn1", BatchNorm2D<T>(3))
                          .Add("relu", ReLU<T>())
                          .Add("conv2", Conv2D<T>(Conv2DOptions(3, 3, 3).Padding(1).Bias(false)))
                          .Add("bn2", BatchNorm2D<T>(3)),
                      Sequential<T>()
                          .Add(Conv2D<T>(Conv2DOptions(2, 3, 1).Stride(2).Bias(false)))
                          .Add(BatchNorm2D<T>(3))),
          Shape(2, 5, 5)};
}

/// A 1x1 convolution beside a 3x3 convolution with ReLU.
template <Scalar T>
LayerExample<Concat<T>> Concat<T>::Example() {
  return {Concat<T>()
              .Add("a", Conv2D<T>(2, 2, 1))
              .Add("b", Sequential<T>().Add(Conv2D<T>(2, 3, 3, 1, 1)).Add(ReLU<T>())),
          Shape(2, 4, 4)};
}

}  // namespace dlb
