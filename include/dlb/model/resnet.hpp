#pragma once
/// \file
/// MakeResNet: the small residual networks of He et al. (2016) for small images (the
/// CIFAR-style ResNet-6n+2), with torchvision's module names.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/model.hpp"
#include "dlb/model/residual.hpp"
#include "dlb/model/sequential.hpp"

namespace dlb {

/// The shape of a ResNet built by MakeResNet.
struct ResNetOptions {
  Shape input{1, 28, 28};                ///< channels x height x width of an image
  Index classes = 10;                    ///< outputs of the final Linear layer
  std::vector<Index> widths = {16, 32, 64};  ///< channels of each stage
  Index blocks_per_stage = 2;            ///< BasicBlocks per stage
};

/// A BasicBlock from `in` to `out` channels: conv1 (3x3, `stride`, no bias), bn1, relu,
/// conv2 (3x3, no bias), bn2, plus the shortcut (a 1x1 convolution with `stride`, no bias,
/// and a batch norm, named "downsample", when the stride or the channels change; the
/// identity otherwise), then ReLU: torchvision's BasicBlock.
template <Scalar T = float>
Residual<T> MakeBasicBlock(Index in, Index out, Index stride) {
  Sequential<T> body;
  body.Add("conv1", Conv2D<T>(Conv2DOptions(in, out, 3).Stride(stride).Padding(1).Bias(false)))
      .Add("bn1", BatchNorm2D<T>(out))
      .Add("relu", ReLU<T>())
      .Add("conv2", Conv2D<T>(Conv2DOptions(out, out, 3).Padding(1).Bias(false)))
      .Add("bn2", BatchNorm2D<T>(out));
  Sequential<T> shortcut;
  if (stride != 1 || in != out) {
    shortcut.Add(Conv2D<T>(Conv2DOptions(in, out, 1).Stride(stride).Bias(false)))
        .Add(BatchNorm2D<T>(out));
  }
  return Residual<T>(std::move(body), std::move(shortcut));
}

/// The residual network: a stem conv1 (3x3 from the image's channels to widths[0], padding 1,
/// no bias), bn1, relu; one stage "layer<k>" per width, each a Sequential of
/// blocks_per_stage BasicBlocks, the first block of every stage but the first with stride 2;
/// "avgpool" (global average pooling) and "fc" (Linear to the classes). Its state has
/// torchvision's names (conv1.weight, layer1.0.conv1.weight, layer2.0.downsample.0.weight,
/// layer2.0.downsample.1.running_mean, fc.bias). Weights drawn from Generator(seed).
/// The defaults are the network of `train_fashion_mnist --model resnet`: 16, 32 and 64
/// channels, 2 blocks each, 174,970 parameters for 28 x 28 grey images and 10 classes.
/// Throws ArgumentError for no stages, a width, block count or class count < 1.
template <Scalar T = float>
ModelNN<T> MakeResNet(const ResNetOptions& options = {}, std::uint64_t seed = 0) {
  if (options.widths.empty() || options.blocks_per_stage < 1 || options.classes < 1) {
    throw ArgumentError("MakeResNet: needs at least one stage, one block per stage and one class");
  }
  ModelNN<T> model(options.input, seed);
  const Index first = options.widths.front();
  model.Add("conv1", Conv2D<T>(Conv2DOptions(options.input.channels, first, 3).Padding(1).Bias(false)))
      .Add("bn1", BatchNorm2D<T>(first))
      .Add("relu", ReLU<T>());
  Index channels = first;
  for (std::size_t stage = 0; stage < options.widths.size(); ++stage) {
    const Index width = options.widths[stage];
    Sequential<T> blocks;
    for (Index block = 0; block < options.blocks_per_stage; ++block) {
      const Index stride = stage > 0 && block == 0 ? 2 : 1;
      blocks.Add(MakeBasicBlock<T>(channels, width, stride));
      channels = width;
    }
    model.Add("layer" + std::to_string(stage + 1), std::move(blocks));
  }
  model.Add("avgpool", GlobalAvgPool<T>()).Add("fc", Linear<T>(channels, options.classes));
  return model;
}

}  // namespace dlb
