#pragma once
/// \file
/// Type erasure that lets a ModelNN hold any mix of Layer types chosen at run time.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer.hpp"

namespace dlb::internal {

/// Virtual interface over the Layer contract, for one scalar type.
template <Scalar T>
class AnyLayer {
 public:
  virtual ~AnyLayer() = default;
  virtual std::string Name() const = 0;
  virtual Shape OutputShape(const Shape& input) const = 0;
  virtual void SetInputShape(const Shape& input) = 0;
  virtual void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) = 0;
  virtual void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& y,
                        const ConstMatrixRef<T>& dy, Matrix<T>* dx) = 0;
  virtual std::vector<Parameter<T>> Parameters() = 0;
  virtual std::vector<StateRef<T>> State() = 0;
  virtual void Init(Generator& gen) = 0;
  /// The layer's Spec(), or none for a layer that does not describe itself.
  virtual std::optional<LayerSpec> Spec() const = 0;
};

/// Adapts a concrete Layer L; optional members (Parameters, State, Init, SetInputShape)
/// default to "none".
template <Layer L>
class LayerAdapter final : public AnyLayer<typename L::Scalar> {
  using T = typename L::Scalar;

 public:
  explicit LayerAdapter(L layer) : layer_(std::move(layer)) {}

  std::string Name() const override { return layer_.Name(); }
  Shape OutputShape(const Shape& input) const override { return layer_.OutputShape(input); }
  void SetInputShape(const Shape& input) override {
    if constexpr (ShapeAwareLayer<L>) layer_.SetInputShape(input);
  }
  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) override {
    layer_.Forward(x, y, mode);
  }
  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) override {
    layer_.Backward(x, y, dy, dx);
  }
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

  L& Get() { return layer_; }

 private:
  L layer_;
};

}  // namespace dlb::internal
