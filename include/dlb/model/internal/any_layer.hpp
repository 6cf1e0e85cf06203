#include "dlb/core/internal/header_check.hpp"
#pragma once
/// \file
/// Type erasure that lets a model or a block hold any mix of layer types chosen at run time,
/// and the capabilities the library finds through it: a block's children, batch statistics,
/// state checks, working memory, copies.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_spec.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/model/layer_times.hpp"

namespace dlb::internal {

template <Scalar T>
class AnyLayer;

/// An owned, type-erased layer.
template <Scalar T>
using LayerPointer = std::unique_ptr<AnyLayer<T>>;

/// Builds a block's child from its name and spec (a LayerRegistry's recursion).
template <Scalar T>
using BuildChild = std::function<LayerPointer<T>(const std::string& name, const LayerSpec& spec)>;

/// A child of a block, under the name that prefixes its state ("conv1", "0").
template <Scalar T>
struct Child {
  std::string name;
  AnyLayer<T>* layer;
};

/// Virtual interface over the Layer contract, for one scalar type.
template <Scalar T>
class AnyLayer {
 public:
  virtual ~AnyLayer() = default;
  virtual std::string Name() const = 0;
  virtual Shape OutputShape(const Shape& input) const = 0;
  virtual void SetInputShape(const Shape& input) = 0;
  /// The output shape for the input shape given to SetInputShape.
  virtual const Shape& CurrentOutputShape() const = 0;
  virtual void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) = 0;
  virtual void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& y,
                        const ConstMatrixRef<T>& dy, Matrix<T>* dx) = 0;
  /// Starts timing this layer's Forward and Backward from zero (on) or stops (off; the times
  /// stay as they are): see ModelNN::SetLayerTiming. A copy (Clone) starts untimed.
  virtual void SetTiming(bool on) = 0;
  /// The time of the passes while timing was on, the layer's children's included.
  virtual const LayerPassTimes& PassTimes() const = 0;
  virtual std::vector<Parameter<T>> Parameters() = 0;
  virtual std::vector<StateRef<T>> State() = 0;
  /// Everything State() and Parameters() list, in PyTorch's state_dict order: a leaf's
  /// parameters (StateKind::Parameter) then its State(); a block's State(), which already
  /// lists every parameter and buffer of the layers inside it.
  virtual std::vector<StateRef<T>> AllState() = 0;
  virtual void Init(Generator& gen) = 0;
  /// The layer's Spec(), or none for a layer that does not describe itself.
  virtual std::optional<LayerSpec> Spec() const = 0;
  /// A copy of the layer (with its parameters, state and buffers); throws Error for a layer
  /// type that cannot be copied.
  virtual LayerPointer<T> Clone() const = 0;
  /// A block's children, in order (none for a leaf layer).
  virtual std::vector<Child<T>> Children() = 0;
  /// Installs `reducer` when the layer computes batch statistics (BatchStatisticsLayer);
  /// returns whether it did.
  virtual bool SetStatisticsReducer(const StatisticsReducer& reducer) = 0;
  /// Throws StateError when the layer's loaded state is impossible (StateValidatingLayer).
  virtual void ValidateState() const = 0;
  /// Asks the layer to apply `activation` in its own passes (ActivationFusingLayer); returns
  /// whether it will. FusedActivation: the one it applies (None for other layers).
  virtual bool FuseActivation(Activation activation) = 0;
  virtual Activation FusedActivation() const = 0;
  /// Which activation the layer is (ActivationLayer), None for any other layer.
  virtual Activation ActivationKind() const = 0;
  /// Asks the layer to apply a max-pooling over `window` in its own passes, after its fused
  /// activation (MaxPoolFusingLayer); returns whether it will (std::nullopt: none, which every
  /// layer accepts). FusedMaxPool: the window it applies (none for other layers).
  virtual bool FuseMaxPool(std::optional<Window2D> window) = 0;
  virtual std::optional<Window2D> FusedMaxPool() const = 0;
  /// The window of a max-pooling layer (MaxPoolingLayer), none for any other layer.
  virtual std::optional<Window2D> MaxPoolWindow() const = 0;
  /// Values of the layer's own memory per sample beyond its parameters: its output and its
  /// working memory (ScratchLayer). A block counts its children's too.
  virtual Index ValuesPerSample() const = 0;
  /// The concrete layer, for typed access (ModelNN::LayerAt).
  virtual const std::type_info& Type() const = 0;
  virtual void* Concrete() = 0;
};

/// Adapts a concrete Layer L; optional members default to "none".
template <Layer L>
class LayerAdapter final : public AnyLayer<typename L::Scalar> {
  using T = typename L::Scalar;
  /// A block: a layer that holds layers (Sequential, Residual, Concat).
  static constexpr bool kIsBlock = requires(L& layer) { layer.Children(); };

 public:
  explicit LayerAdapter(L layer) : layer_(std::move(layer)) {}

  std::string Name() const override { return layer_.Name(); }
  Shape OutputShape(const Shape& input) const override { return layer_.OutputShape(input); }
  void SetInputShape(const Shape& input) override {
    output_shape_ = layer_.OutputShape(input);
    if constexpr (ShapeAwareLayer<L>) layer_.SetInputShape(input);
  }
  const Shape& CurrentOutputShape() const override { return output_shape_; }
  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) override {
    TimedPass(timing_, times_.forward_seconds, times_.forward_calls,
              [&] { layer_.Forward(x, y, mode); });
  }
  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) override {
    TimedPass(timing_, times_.backward_seconds, times_.backward_calls,
              [&] { layer_.Backward(x, y, dy, dx); });
  }
  void SetTiming(bool on) override {
    if (on) times_ = {};
    timing_ = on;
  }
  const LayerPassTimes& PassTimes() const override { return times_; }
  std::vector<Parameter<T>> Parameters() override {
    if constexpr (LayerWithParameters<L>) {
      return layer_.Parameters();
    } else {
      return {};
    }
  }
  std::vector<StateRef<T>> State() override {
    if constexpr (LayerWithState<L>) {
      return layer_.State();
    } else {
      return {};
    }
  }
  std::vector<StateRef<T>> AllState() override {
    if constexpr (kIsBlock) {
      return layer_.State();
    } else {
      std::vector<StateRef<T>> all;
      for (auto& p : Parameters()) all.push_back({p.name, p.value, StateKind::Parameter, p.shape});
      for (auto& ref : State()) all.push_back(std::move(ref));
      return all;
    }
  }
  void Init(Generator& gen) override {
    if constexpr (InitializableLayer<L>) layer_.Init(gen);
  }
  std::optional<LayerSpec> Spec() const override {
    if constexpr (DescribedLayer<L>) {
      return layer_.Spec();
    } else {
      return std::nullopt;
    }
  }
  LayerPointer<T> Clone() const override {
    if constexpr (std::is_copy_constructible_v<L>) {
      auto copy = std::make_unique<LayerAdapter<L>>(layer_);
      copy->output_shape_ = output_shape_;
      return copy;
    } else {
      throw Error(layer_.Name() + " cannot be copied: its type has no copy constructor");
    }
  }
  std::vector<Child<T>> Children() override {
    if constexpr (kIsBlock) {
      return layer_.Children();
    } else {
      return {};
    }
  }
  bool SetStatisticsReducer(const StatisticsReducer& reducer) override {
    if constexpr (BatchStatisticsLayer<L>) {
      layer_.SetStatisticsReducer(reducer);
      return true;
    } else {
      return false;
    }
  }
  void ValidateState() const override {
    if constexpr (StateValidatingLayer<L>) layer_.ValidateState();
  }
  bool FuseActivation(Activation activation) override {
    if constexpr (ActivationFusingLayer<L>) {
      return layer_.FuseActivation(activation);
    } else {
      return activation == Activation::None;
    }
  }
  Activation FusedActivation() const override {
    if constexpr (ActivationFusingLayer<L>) {
      return layer_.FusedActivation();
    } else {
      return Activation::None;
    }
  }
  Activation ActivationKind() const override {
    if constexpr (ActivationLayer<L>) {
      return layer_.ActivationKind();
    } else {
      return Activation::None;
    }
  }
  bool FuseMaxPool(std::optional<Window2D> window) override {
    if constexpr (MaxPoolFusingLayer<L>) {
      return layer_.FuseMaxPool(window);
    } else {
      return !window;
    }
  }
  std::optional<Window2D> FusedMaxPool() const override {
    if constexpr (MaxPoolFusingLayer<L>) {
      return layer_.FusedMaxPool();
    } else {
      return std::nullopt;
    }
  }
  std::optional<Window2D> MaxPoolWindow() const override {
    if constexpr (MaxPoolingLayer<L>) {
      return layer_.MaxPoolWindow();
    } else {
      return std::nullopt;
    }
  }
  Index ValuesPerSample() const override {
    if constexpr (requires(const L& layer) { { layer.ValuesPerSample() } -> std::convertible_to<Index>; }) {
      return layer_.ValuesPerSample();  // a block: its children's memory and its own
    } else {
      Index values = output_shape_.Size();
      if constexpr (ScratchLayer<L>) {
        values = CheckedAdd(values, layer_.ScratchValuesPerSample(), Name() + ": its memory per sample");
      }
      return values;
    }
  }
  const std::type_info& Type() const override { return typeid(L); }
  void* Concrete() override { return &layer_; }

  L& Get() { return layer_; }

 private:
  L layer_;
  Shape output_shape_{0, 0, 0};
  bool timing_ = false;  // SetTiming: whether Forward and Backward add to times_
  LayerPassTimes times_;
};

/// `layer` as a LayerPointer.
template <Layer L>
LayerPointer<typename L::Scalar> MakeLayerPointer(L layer) {
  return std::make_unique<LayerAdapter<L>>(std::move(layer));
}

}  // namespace dlb::internal
