#pragma once
/// \file
/// Builds the common multi-layer perceptron from a list of widths chosen at run time.

#include <cstdint>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/layers/init.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/model/model.hpp"

namespace dlb {

/// inputs -> hidden[0] -> ... -> hidden[k-1] -> classes: a Linear layer for each arrow, each
/// hidden one followed by `activation` (see dlb::Activation; None: none); the last Linear gives the logits (no activation).
/// Weights drawn by `init` from Generator(seed). Throws ArgumentError for a width < 1.
/// E.g. MakeMlp<float>(784, {350, 250, 150, 50}, 10) is the notebook's network.
template <Scalar T = float>
ModelNN<T> MakeMlp(Index inputs, const std::vector<Index>& hidden, Index classes,
                   Activation activation = Activation::ReLU, Init init = Init::Kaiming,
                   std::uint64_t seed = 0) {
  ModelNN<T> model(Shape(inputs), seed);
  Index width = inputs;
  for (std::size_t i = 0; i <= hidden.size(); ++i) {
    const Index next = i < hidden.size() ? hidden[i] : classes;
    if (next < 1 || width < 1) {
      throw ArgumentError("MakeMlp: layer widths must be >= 1, got " + std::to_string(width) +
                          " -> " + std::to_string(next) + " at layer " + std::to_string(i));
    }
    model.Add(Linear<T>(width, next, init));
    if (i < hidden.size()) {
      switch (activation) {
        case Activation::None: break;
        case Activation::ReLU: model.Add(ReLU<T>()); break;
        case Activation::LeakyReLU: model.Add(LeakyReLU<T>()); break;
        case Activation::Sigmoid: model.Add(Sigmoid<T>()); break;
        case Activation::Tanh: model.Add(Tanh<T>()); break;
      }
    }
    width = next;
  }
  return model;
}

}  // namespace dlb
