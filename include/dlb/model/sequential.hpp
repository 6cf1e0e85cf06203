#pragma once
/// \file
/// Sequential: a chain of named layers that is itself a layer, so that blocks nest (a
/// ResNet's stage is a Sequential of residual blocks, a residual block's shortcut a
/// Sequential of a convolution and a batch norm).

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/layers/layer_spec.hpp"
#ifndef DLB_PUBLIC_HEADER
#define DLB_PUBLIC_HEADER
#endif
#include "dlb/model/internal/any_layer.hpp"
#include "dlb/model/internal/named_layers.hpp"

namespace dlb {

template <Scalar T>
class ModelNN;

/// Sequential has no arguments of its own; its spec lists its children.
using SequentialOptions = NoArgumentOptions<"Sequential">;

/// Layers applied in order: y = f_{n-1}( ... f_1(f_0(x)) ... ); with no layers, y = x.
///
/// Represents: named layers (any types satisfying dlb::Layer, chosen at run time; a layer
/// added without a name is named by its index, as in torch.nn.Sequential), the activations of
/// the latest Forward between them and the gradients of the latest Backward, in buffers
/// reused from batch to batch.
/// State: each layer's state under "<name>.<its name>" ("0.weight", "conv1.weight",
/// "layer1.0.conv1.weight" for blocks within blocks): torch's nested module names.
/// Shapes: a Sequential built on its own does not know its input shape, so Add checks nothing;
/// the shapes are checked, layer by layer, when the Sequential is given its input shape
/// (when it is added to a model or to a block of a model), and a layer that does not fit is
/// named by its path (LayerShapeError "layer1.0.conv2 (Conv2D(...)) needs ..."). Once it has
/// an input shape the Sequential is part of a model and takes no more layers.
/// Ensures: Forward and Backward reuse their buffers: nothing is allocated once a batch of
/// the same size has been seen.
/// Fusion: where a layer that can apply an activation within its own passes
/// (ActivationFusingLayer: a batch norm) is followed by that activation (a ReLU), the chain
/// fuses the pair once it knows its layers (when given its input shape; a model, as each
/// layer is added): the batch norm writes max(y, 0) straight into the ReLU's output
/// and takes the ReLU's gradient in its backward passes, and the ReLU's own passes are
/// skipped (two passes over the activations each way instead of three). Likewise a
/// max-pooling that follows (MaxPoolFusingLayer: a BatchNorm2D, windows that do not
/// overlap), after the activation or straight after the layer: the batch norm writes the
/// pooled output and takes the pooling's gradient, and the pooling's passes are skipped too.
/// The fused layers stay layers of the chain (their names, indices and places in Summary(),
/// which marks them "fused"); the outputs and gradients are those of the layers run one
/// after the other.
template <Scalar T = float>
class Sequential : public DescribedBy<SequentialOptions> {
 public:
  using Scalar = T;

  Sequential() : DescribedBy<SequentialOptions>(SequentialOptions{}) {}

  /// Appends `layer`, named by its index (or `name`), and returns the Sequential, so that
  /// `Sequential<float>().Add("conv1", Conv2D<float>(...)).Add("bn1", BatchNorm2D<float>(16))`
  /// builds a block in one expression. Throws ArgumentError for an invalid or repeated name,
  /// Error once the Sequential has an input shape (it is part of a model).
  template <class L>
  Sequential& Add(L layer) & {
    return Add(layers_.NextIndexName(), std::move(layer));
  }
  template <class L>
  Sequential&& Add(L layer) && {
    return std::move(Add(layers_.NextIndexName(), std::move(layer)));
  }
  template <class L>
  Sequential& Add(std::string name, L layer) & {
    static_assert(Layer<L>,
                  "dlb::Sequential::Add: this type does not satisfy the dlb::Layer concept. A "
                  "layer needs `using Scalar = T;`, Name(), OutputShape(const Shape&), "
                  "Forward(X, Y, Mode) and Backward(X, Y, dY, dX*) (see dlb/layers/layer.hpp).");
    if constexpr (Layer<L>) {
      static_assert(std::is_same_v<typename L::Scalar, T>,
                    "dlb::Sequential::Add: the layer's Scalar type differs from the block's.");
      AddPointer(std::move(name), internal::MakeLayerPointer(std::move(layer)));
    }
    return *this;
  }
  template <class L>
  Sequential&& Add(std::string name, L layer) && {
    return std::move(Add(std::move(name), std::move(layer)));
  }
  /// Appends a layer built at run time (by a LayerRegistry).
  Sequential& AddPointer(std::string name, internal::LayerPointer<T> layer) {
    if (input_shape_) {
      throw Error("Sequential::Add: this block already has an input shape (it is part of a "
                  "model); add its layers before adding the block");
    }
    layers_.RequireNewName("Sequential", name);
    layers_.Append(std::move(name), std::move(layer));
    outputs_.emplace_back();
    grads_.emplace_back();
    return *this;
  }

  static LayerExample<Sequential> Example();

  /// "Sequential(3 layers)".
  std::string Name() const {
    return "Sequential(" + std::to_string(layers_.Size()) + " layer" +
           (layers_.Size() == 1 ? "" : "s") + ")";
  }

  /// The shape the chain produces from `input`; throws LayerShapeError naming the first
  /// layer that does not accept what the one before it produces.
  Shape OutputShape(const Shape& input) const {
    Shape shape = input;
    for (const auto& node : layers_.Nodes()) {
      shape = internal::ForChild(node.name, *node.layer, [&] {
        const Shape produced = node.layer->OutputShape(shape);
        RequireValidOutput(produced, shape);
        return produced;
      });
    }
    return shape;
  }

  /// Tells every layer its input shape, in order. Throws LayerShapeError like OutputShape.
  void SetInputShape(const Shape& input) {
    Shape shape = input;
    for (auto& node : layers_.Nodes()) {
      internal::ForChild(node.name, *node.layer, [&] {
        RequireValidOutput(node.layer->OutputShape(shape), shape);
        node.layer->SetInputShape(shape);
      });
      shape = node.layer->CurrentOutputShape();
    }
    input_shape_ = input;
    PlanFusion();
  }

  /// Y = the chain applied to X (a copy of X when there are no layers).
  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) {
    const std::size_t n = layers_.Size();
    if (n == 0) {
      y = x;
      return;
    }
    if (fused_.size() != n) PlanFusion();  // a chain never given its input shape
    for (std::size_t i = 0; i < n; ++i) {
      if (AppliedByEarlier(i)) continue;  // a layer that an earlier one applied
      // A fusing layer writes the output of the last layer it applies.
      const std::size_t last = i + static_cast<std::size_t>(fused_[i]);
      Matrix<T>& out = last + 1 == n ? y : outputs_[last];
      if (i == 0) {
        layers_[0].layer->Forward(x, out, mode);
      } else {
        layers_[i].layer->Forward(outputs_[i - 1], out, mode);
      }
    }
  }

  /// Back-propagates dY through every layer (dX = dY when there are none); the first layer
  /// skips its input gradient when dx is null.
  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    const std::size_t n = layers_.Size();
    if (n == 0) {
      if (dx != nullptr) *dx = dy;
      return;
    }
    if (fused_.size() != n) PlanFusion();
    for (std::size_t i = n; i-- > 0;) {
      if (AppliedByEarlier(i)) continue;  // its gradient is taken by an earlier layer
      // A fusing layer receives the output of the last layer it applies and the gradient
      // with respect to it.
      const std::size_t last = i + static_cast<std::size_t>(fused_[i]);
      const ConstMatrixRef<T> out = last + 1 == n ? y : ConstMatrixRef<T>(outputs_[last]);
      const ConstMatrixRef<T> grad_out = last + 1 == n ? dy : ConstMatrixRef<T>(grads_[last + 1]);
      Matrix<T>* grad_in = i == 0 ? dx : &grads_[i];
      if (i == 0) {
        layers_[0].layer->Backward(x, out, grad_out, grad_in);
      } else {
        layers_[i].layer->Backward(outputs_[i - 1], out, grad_out, grad_in);
      }
    }
  }

  std::vector<Parameter<T>> Parameters() { return layers_.Parameters(); }
  std::vector<StateRef<T>> State() { return layers_.State(); }
  /// (Re)draws every layer's parameters from `gen`, in order.
  void Init(Generator& gen) { layers_.Init(gen); }
  std::vector<internal::Child<T>> Children() { return layers_.Children(); }

  /// "Sequential" with the children's specs; throws ArgumentError for a child without Spec().
  LayerSpec Spec() const {
    LayerSpec spec = DescribedBy<SequentialOptions>::Spec();
    spec.children = layers_.Specs();
    return spec;
  }

  /// The children's memory per sample, and the buffers between them (activations and their
  /// gradients).
  Index ValuesPerSample() const {
    Index values = layers_.ValuesPerSample("Sequential");
    for (std::size_t i = 0; i + 1 < layers_.Size(); ++i) {
      values = CheckedAdd(values, layers_[i].layer->CurrentOutputShape().Size(),
                          "Sequential: the memory per sample");
    }
    return values;
  }

  /// The block a spec describes, each child built by `build` (a LayerRegistry's factory).
  static Sequential FromSpec(const LayerArgs& args, const internal::BuildChild<T>& build) {
    Sequential block;
    for (const auto& [name, spec] : args.Spec().children) block.AddPointer(name, build(name, spec));
    return block;
  }

  /// Number of layers.
  Index NumLayers() const { return static_cast<Index>(layers_.Size()); }
  bool Empty() const { return layers_.Empty(); }

 private:
  friend class ModelNN<T>;

  /// fused_[i] = how many of the layers after layer i it applies (see the class comment):
  /// 0, 1 (an activation or a max-pooling) or 2 (an activation, then a max-pooling); every
  /// other layer is told to apply none: a layer fused in another chain (a copy taken from a
  /// model) must not apply a layer this chain does not have after it. Plans layers `from` on
  /// and keeps the plan of those before (ModelNN::Add re-plans only the last three layers:
  /// re-planning the whole chain on every Add made building a model of n layers take n^2
  /// steps, 12 s for a 100,000-layer file under the fuzzer).
  void PlanFusion(std::size_t from = 0) {
    const std::size_t n = layers_.Size();
    from = std::min(from, fused_.size());
    fused_.resize(n, 0);
    for (std::size_t i = from; i < n; ++i) {
      auto& layer = *layers_[i].layer;
      // A layer that an earlier one applies applies none itself.
      const bool applied_before = AppliedByEarlier(i);
      const Activation activation = i + 1 < n && !applied_before
                                        ? layers_[i + 1].layer->ActivationKind()
                                        : Activation::None;
      const bool fuses_activation =
          activation != Activation::None && layer.FuseActivation(activation);
      if (!fuses_activation) layer.FuseActivation(Activation::None);
      const std::size_t next = i + 1 + (fuses_activation ? 1 : 0);
      const std::optional<Window2D> pool =
          next < n && !applied_before ? layers_[next].layer->MaxPoolWindow() : std::nullopt;
      const bool fuses_pool = pool && layer.FuseMaxPool(pool);
      if (!fuses_pool) layer.FuseMaxPool(std::nullopt);
      fused_[i] = static_cast<char>((fuses_activation ? 1 : 0) + (fuses_pool ? 1 : 0));
    }
  }
  /// Whether an earlier layer applies layer i (fused_ of the layers before it).
  bool AppliedByEarlier(std::size_t i) const {
    return (i >= 1 && fused_[i - 1] >= 1) || (i >= 2 && fused_[i - 2] >= 2);
  }

  static void RequireValidOutput(const Shape& produced, const Shape& input) {
    if (!produced.IsValid()) {
      throw ShapeError("produces an empty or oversized output (" + std::to_string(produced.channels) +
                       " x " + std::to_string(produced.height) + " x " +
                       std::to_string(produced.width) + ") from " + input.ToString());
    }
  }

  internal::NamedLayers<T> layers_;
  std::optional<Shape> input_shape_;
  std::vector<Matrix<T>> outputs_;  // outputs_[i]: output of layer i (the last one writes y)
  std::vector<Matrix<T>> grads_;    // grads_[i]: dL/d(input of layer i), i >= 1
  std::vector<char> fused_;         // see PlanFusion; planned for every layer, or to plan
};

}  // namespace dlb
