#pragma once
/// \file
/// ModelNN: the sequential container of layers.

#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/model/any_layer.hpp"

namespace dlb {

/// A chain of layers applied in order: logits = f_{L-1}( ... f_1(f_0(X)) ... ).
///
/// Represents: the layers (any types satisfying dlb::Layer, chosen at run time), the
/// activations of the latest forward pass and the gradients of the latest backward pass,
/// kept in buffers that are reused from batch to batch, and the generator that draws the
/// initial parameters (seeded by the constructor or Init).
/// Requires: consecutive layers fit (checked by Add: a layer with a fixed input size must
/// receive exactly the previous output size); the first layer has a fixed input size.
/// Ensures: Forward/Backward reuse their activation and gradient buffers, so the model
/// allocates nothing once a batch of the same size has been seen. Eigen's own matrix product
/// (the build without EIGEN_USE_BLAS) may still allocate packing buffers inside a product:
/// always when it runs on several threads, and on one thread when a packed block exceeds
/// EIGEN_STACK_ALLOCATION_LIMIT (e.g. a 350 x 784 weight times a 784 x 32 batch).
template <Scalar T = float>
class ModelNN {
 public:
  /// An empty model whose layers are initialised from Generator(seed) as they are added.
  explicit ModelNN(std::uint64_t seed = 0) : gen_(seed) {}

  ModelNN(const ModelNN&) = delete;
  ModelNN& operator=(const ModelNN&) = delete;
  ModelNN(ModelNN&&) noexcept = default;
  ModelNN& operator=(ModelNN&&) noexcept = default;

  /// Appends `layer`, initialising it from the model's generator; returns *this for chaining.
  /// Throws ShapeError when its input size does not match the previous layer's output, or
  /// when the first layer accepts any size (the model's input size would be unknown).
  template <class L>
  ModelNN& Add(L layer) {
    static_assert(Layer<L>,
                  "dlb::ModelNN::Add: this type does not satisfy the dlb::Layer concept. A layer "
                  "needs `using Scalar = T;`, Name(), InputSize(), OutputSize(Index), "
                  "Forward(X, Y, Mode) and Backward(X, Y, dY, dX*) (see dlb/layers/layer.hpp).");
    if constexpr (Layer<L>) {
      static_assert(std::is_same_v<typename L::Scalar, T>,
                    "dlb::ModelNN::Add: the layer's Scalar type differs from the model's.");
      const Index needed = layer.InputSize();
      const Index index = NumLayers();
      if (layers_.empty()) {
        if (needed < 1) {
          throw ShapeError("ModelNN::Add: the first layer, " + layer.Name() +
                           ", accepts any input size, so the model's input size is unknown; "
                           "start the model with a layer of fixed input size (e.g. Linear)");
        }
        input_size_ = needed;
      } else if (needed != 0 && needed != OutputSize()) {
        throw ShapeError("ModelNN::Add: layer " + std::to_string(index) + " (" + layer.Name() +
                         ") expects " + std::to_string(needed) + " inputs, but layer " +
                         std::to_string(index - 1) + " (" + layers_.back()->Name() +
                         ") produces " + std::to_string(OutputSize()));
      }
      const Index produced = layer.OutputSize(layers_.empty() ? input_size_ : OutputSize());
      if (produced < 1) {
        throw ShapeError("ModelNN::Add: layer " + std::to_string(index) + " (" + layer.Name() +
                         ") produces " + std::to_string(produced) + " outputs; need >= 1");
      }
      auto adapter = std::make_unique<internal::LayerAdapter<L>>(std::move(layer));
      adapter->Init(gen_);
      layers_.push_back(std::move(adapter));
      output_sizes_.push_back(produced);
      outputs_.emplace_back();
      input_grads_.emplace_back();
      forward_done_ = false;  // the new layer has no activations until the next Forward
    }
    return *this;
  }

  /// Number of layers.
  Index NumLayers() const { return static_cast<Index>(layers_.size()); }
  /// Rows the input batch must have (0 for an empty model).
  Index InputSize() const { return input_size_; }
  /// Rows of the logits (0 for an empty model).
  Index OutputSize() const { return output_sizes_.empty() ? 0 : output_sizes_.back(); }

  /// Sets the mode used by Forward (dropout is active only in Mode::Train).
  void SetMode(Mode mode) { mode_ = mode; }
  Mode GetMode() const { return mode_; }

  /// Re-seeds the generator and redraws every layer's parameters (and random state) in
  /// layer order, so equal seeds give equal models.
  void Init(std::uint64_t seed) {
    gen_.seed(seed);
    for (auto& layer : layers_) layer->Init(gen_);
  }

  /// Logits for the batch `x` (InputSize() x N): runs every layer in order.
  /// `x` must stay alive and unchanged until the following Backward (it is not copied).
  /// Throws ShapeError for an empty model, an empty batch or a wrong row count.
  const Matrix<T>& Forward(const ConstMatrixRef<T>& x) {
    RequireLayers("Forward");
    if (x.rows() != input_size_ || x.cols() == 0) {
      throw ShapeError("ModelNN::Forward: the batch is " + std::to_string(x.rows()) + " x " +
                       std::to_string(x.cols()) + " but layer 0 (" + layers_[0]->Name() +
                       ") expects " + std::to_string(input_size_) +
                       " rows (features) and at least one column (sample)");
    }
    input_data_ = x.data();
    input_cols_ = x.cols();
    input_stride_ = x.outerStride();
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      if (i == 0) {
        layers_[0]->Forward(x, outputs_[0], mode_);
      } else {
        layers_[i]->Forward(outputs_[i - 1], outputs_[i], mode_);
      }
    }
    forward_done_ = true;
    return outputs_.back();
  }

  /// Back-propagates dL/dlogits (OutputSize() x N, from the latest Forward's batch) through
  /// every layer, leaving each parameter's gradient in its Parameter::grad. When `dinput` is
  /// given it receives dL/dX; otherwise the first layer skips that product.
  /// Throws Error when no Forward has run since the model was built or a layer was added.
  void Backward(const ConstMatrixRef<T>& dlogits, Matrix<T>* dinput = nullptr) {
    RequireLayers("Backward");
    if (!forward_done_) {
      throw Error("ModelNN::Backward: called before Forward; there are no activations to use");
    }
    if (dlogits.rows() != OutputSize() || dlogits.cols() != input_cols_) {
      throw ShapeError("ModelNN::Backward: the gradient is " + std::to_string(dlogits.rows()) +
                       " x " + std::to_string(dlogits.cols()) + " but the logits of the last "
                       "Forward are " + std::to_string(OutputSize()) + " x " +
                       std::to_string(input_cols_));
    }
    const Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>> input(
        input_data_, input_size_, input_cols_, Eigen::OuterStride<>(input_stride_));
    for (std::size_t i = layers_.size(); i-- > 0;) {
      const ConstMatrixRef<T> dy =
          i + 1 == layers_.size() ? dlogits : ConstMatrixRef<T>(input_grads_[i + 1]);
      Matrix<T>* dx = i == 0 ? dinput : &input_grads_[i];
      if (i == 0) {
        layers_[0]->Backward(input, outputs_[0], dy, dx);
      } else {
        layers_[i]->Backward(outputs_[i - 1], outputs_[i], dy, dx);
      }
    }
  }

  /// Every trainable parameter with its gradient, named "<layer index>.<name>"
  /// (e.g. "0.weight", "0.bias"), in layer order.
  std::vector<Parameter<T>> Parameters() {
    std::vector<Parameter<T>> all;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      for (auto& p : layers_[i]->Parameters()) {
        p.name = std::to_string(i) + "." + p.name;
        all.push_back(std::move(p));
      }
    }
    return all;
  }

  /// Total number of trainable scalars.
  Index NumParameters() {
    Index count = 0;
    for (const auto& p : Parameters()) count += p.value->size();
    return count;
  }

  /// The layer at `index` as its concrete type; throws Error if the index or type is wrong.
  template <Layer L>
  L& LayerAt(Index index) {
    if (index < 0 || index >= NumLayers()) {
      throw Error("ModelNN::LayerAt: index " + std::to_string(index) + " outside 0.." +
                  std::to_string(NumLayers() - 1));
    }
    auto* adapter = dynamic_cast<internal::LayerAdapter<L>*>(layers_[index].get());
    if (adapter == nullptr) {
      throw Error("ModelNN::LayerAt: layer " + std::to_string(index) + " is " +
                  layers_[index]->Name() + ", not the requested type");
    }
    return adapter->Get();
  }

  /// Name of the layer at `index` ("Linear(784 -> 350)").
  std::string LayerName(Index index) const { return layers_.at(index)->Name(); }

  /// One line per layer: index, name, output size; then the parameter count.
  std::string Summary() {
    std::ostringstream out;
    out << "input " << input_size_ << "\n";
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      out << "  " << i << ": " << layers_[i]->Name() << " -> " << output_sizes_[i] << "\n";
    }
    out << "parameters " << NumParameters() << "\n";
    return out.str();
  }

 private:
  void RequireLayers(const char* who) const {
    if (layers_.empty()) {
      throw ShapeError(std::string("ModelNN::") + who + ": the model has no layers");
    }
  }

  Generator gen_;
  Mode mode_ = Mode::Train;
  std::vector<std::unique_ptr<internal::AnyLayer<T>>> layers_;
  std::vector<Index> output_sizes_;
  Index input_size_ = 0;
  std::vector<Matrix<T>> outputs_;      // outputs_[i]: output of layer i
  std::vector<Matrix<T>> input_grads_;  // input_grads_[i]: dL/d(input of layer i), i >= 1
  const T* input_data_ = nullptr;
  Index input_cols_ = 0;
  Index input_stride_ = 0;
  bool forward_done_ = false;
};

}  // namespace dlb
