#pragma once
/// \file
/// Type erasure that lets a ModelNN hold any mix of Layer types chosen at run time.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer.hpp"

namespace dlb::internal {

/// Virtual interface over the Layer contract, for one scalar type.
template <Scalar T>
class AnyLayer {
 public:
  virtual ~AnyLayer() = default;
  virtual std::string Name() const = 0;
  virtual Index InputSize() const = 0;
  virtual Index OutputSize(Index input_size) const = 0;
  virtual void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) = 0;
  virtual void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& y,
                        const ConstMatrixRef<T>& dy, Matrix<T>* dx) = 0;
  virtual std::vector<Parameter<T>> Parameters() = 0;
  virtual void Init(Generator& gen) = 0;
};

/// Adapts a concrete Layer L; optional members (Parameters, Init) default to "none".
template <Layer L>
class LayerAdapter final : public AnyLayer<typename L::Scalar> {
  using T = typename L::Scalar;

 public:
  explicit LayerAdapter(L layer) : layer_(std::move(layer)) {}

  std::string Name() const override { return layer_.Name(); }
  Index InputSize() const override { return layer_.InputSize(); }
  Index OutputSize(Index input_size) const override { return layer_.OutputSize(input_size); }
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
  void Init(Generator& gen) override {
    if constexpr (InitializableLayer<L>) layer_.Init(gen);
  }

  L& Get() { return layer_; }

 private:
  L layer_;
};

}  // namespace dlb::internal
