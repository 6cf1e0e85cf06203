#pragma once
/// \file
/// ModelNN: the sequential container of layers.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/model/any_layer.hpp"

namespace dlb {

/// A chain of layers applied in order: logits = f_{L-1}( ... f_1(f_0(X)) ... ).
///
/// Represents: the model's input shape (stated once, at construction), the layers (any
/// types satisfying dlb::Layer, chosen at run time) with the sample shape each produces, the
/// activations of the latest forward pass and the gradients of the latest backward pass,
/// kept in buffers that are reused from batch to batch, and the generator that draws the
/// initial parameters (seeded by the constructor or Init).
/// Requires: each added layer accepts the shape the previous one produces (checked by Add,
/// which names the layer and both shapes otherwise).
/// Ensures: Forward/Backward reuse their activation and gradient buffers, so the model
/// allocates nothing once a batch of the same size has been seen.
/// State: State() lists every parameter and buffer by dotted name ("0.weight",
/// "1.running_mean"), the names and layouts of the equivalent torch.nn.Sequential's
/// state_dict; SaveState/LoadState copy it to and from a StateDict.
template <Scalar T = float>
class ModelNN {
 public:
  /// An empty model whose samples have shape `input_shape` ({1, 28, 28} for an image, or
  /// 784 for a flat vector) and whose layers are initialised from Generator(seed) as they
  /// are added. Throws ArgumentError unless every extent of the shape is >= 1.
  explicit ModelNN(Shape input_shape, std::uint64_t seed = 0)
      : gen_(seed), input_shape_(input_shape) {
    if (!input_shape.IsValid()) {
      throw ArgumentError("ModelNN: the input shape must have every extent >= 1, got " +
                          std::to_string(input_shape.channels) + " x " +
                          std::to_string(input_shape.height) + " x " +
                          std::to_string(input_shape.width));
    }
  }

  ModelNN(const ModelNN&) = delete;
  ModelNN& operator=(const ModelNN&) = delete;
  ModelNN(ModelNN&&) noexcept = default;
  ModelNN& operator=(ModelNN&&) noexcept = default;

  /// Appends `layer`, tells it its input shape and initialises it from the model's
  /// generator; returns *this for chaining. Throws ShapeError, naming the layer and the shape
  /// it was given, when the layer does not accept the previous layer's output shape.
  template <class L>
  ModelNN& Add(L layer) {
    static_assert(Layer<L>,
                  "dlb::ModelNN::Add: this type does not satisfy the dlb::Layer concept. A layer "
                  "needs `using Scalar = T;`, Name(), OutputShape(const Shape&), "
                  "Forward(X, Y, Mode) and Backward(X, Y, dY, dX*) (see dlb/layers/layer.hpp).");
    if constexpr (Layer<L>) {
      static_assert(std::is_same_v<typename L::Scalar, T>,
                    "dlb::ModelNN::Add: the layer's Scalar type differs from the model's.");
      const Shape input = OutputShape();
      const std::string where =
          "ModelNN::Add: layer " + std::to_string(NumLayers()) + " (" + layer.Name() + ") ";
      Shape produced;
      try {
        produced = layer.OutputShape(input);
      } catch (const ShapeError& e) {
        throw ShapeError(where + e.what());
      }
      if (!produced.IsValid()) {
        throw ShapeError(where + "produces an empty output from " + input.ToString());
      }
      auto adapter = std::make_unique<internal::LayerAdapter<L>>(std::move(layer));
      adapter->SetInputShape(input);
      adapter->Init(gen_);
      layers_.push_back(std::move(adapter));
      output_shapes_.push_back(produced);
      outputs_.emplace_back();
      input_grads_.emplace_back();
      forward_done_ = false;  // the new layer has no activations until the next Forward
      ++*structure_version_;
    }
    return *this;
  }

  /// Number of layers.
  Index NumLayers() const { return static_cast<Index>(layers_.size()); }
  /// The shape of one input sample, as given to the constructor.
  const Shape& InputShape() const { return input_shape_; }
  /// The sample shape the last layer produces (the input shape for an empty model).
  Shape OutputShape() const { return output_shapes_.empty() ? input_shape_ : output_shapes_.back(); }
  /// The sample shape layer `index` produces.
  const Shape& OutputShapeAt(Index index) const { return output_shapes_.at(CheckedIndex(index)); }
  /// Rows of an input batch: InputShape().Size().
  Index InputSize() const { return input_shape_.Size(); }
  /// Rows of the logits: OutputShape().Size().
  Index OutputSize() const { return OutputShape().Size(); }

  /// Sets the mode used by Forward (dropout and batch norm train only in Mode::Train).
  void SetMode(Mode mode) { mode_ = mode; }
  Mode GetMode() const { return mode_; }

  /// Re-seeds the generator and redraws every layer's parameters (and random state) in
  /// layer order, so equal seeds give equal models.
  void Init(std::uint64_t seed) {
    gen_.seed(seed);
    for (auto& layer : layers_) layer->Init(gen_);
  }

  /// Logits for the batch `x` (InputSize() x N, one sample per column): runs every layer.
  ///
  /// A column-major matrix, Map, block or Ref of T with contiguous columns is read in place
  /// and must stay alive and unchanged until the following Backward. Anything else (an
  /// expression such as x.cast<float>(), a transpose, a row-major or strided matrix) and a
  /// batch that lives in the model's own buffers (Forward(Forward(x))) is first copied into
  /// a buffer of the model, allocated once per batch size, so Backward never reads freed or
  /// overwritten memory. Throws ShapeError for an empty model, an empty batch or a wrong
  /// row count.
  template <class Derived>
  const Matrix<T>& Forward(const Eigen::MatrixBase<Derived>& x) {
    RequireLayers("Forward");
    if (x.rows() != InputSize() || x.cols() == 0) {
      throw ShapeError("ModelNN::Forward: the batch is " + std::to_string(x.rows()) + " x " +
                       std::to_string(x.cols()) + " but the model's input shape " +
                       input_shape_.ToString() + " needs " + std::to_string(InputSize()) +
                       " rows (values per sample) and at least one column (sample)");
    }
    constexpr bool kDirect = std::is_same_v<typename Derived::Scalar, T> &&
                             bool(Derived::Flags & Eigen::DirectAccessBit) &&
                             !bool(Derived::Flags & Eigen::RowMajorBit);
    bool in_place = false;
    if constexpr (kDirect) {
      in_place = x.innerStride() == 1 && !InOwnBuffers(x.derived().data());
      if (in_place) {
        input_data_ = x.derived().data();
        input_stride_ = std::max<Index>(x.outerStride(), x.rows());
      }
    }
    if (!in_place) {
      input_copy_.resize(x.rows(), x.cols());
      input_copy_ = x.template cast<T>();
      input_data_ = input_copy_.data();
      input_stride_ = x.rows();
    }
    input_cols_ = x.cols();
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      if (i == 0) {
        layers_[0]->Forward(Input(), outputs_[0], mode_);
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
    for (std::size_t i = layers_.size(); i-- > 0;) {
      const ConstMatrixRef<T> dy =
          i + 1 == layers_.size() ? dlogits : ConstMatrixRef<T>(input_grads_[i + 1]);
      Matrix<T>* dx = i == 0 ? dinput : &input_grads_[i];
      if (i == 0) {
        layers_[0]->Backward(Input(), outputs_[0], dy, dx);
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

  /// Every piece of state of every layer, in layer order: each layer's parameters
  /// (StateKind::Parameter) and then its own State() (buffers, generators), named
  /// "<layer index>.<name>". The order and names of PyTorch's Sequential.state_dict().
  std::vector<StateRef<T>> State() {
    std::vector<StateRef<T>> all;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const std::string prefix = std::to_string(i) + ".";
      for (auto& p : layers_[i]->Parameters()) {
        all.push_back({prefix + p.name, p.value, StateKind::Parameter, p.shape});
      }
      for (auto& ref : layers_[i]->State()) {
        ref.name = prefix + ref.name;
        all.push_back(std::move(ref));
      }
    }
    return all;
  }

  /// A copy of the model's state: parameters and buffers (StateScope::Weights, PyTorch's
  /// state_dict) or also what resuming needs (StateScope::Checkpoint).
  dlb::StateDict SaveState(StateScope scope = StateScope::Weights) {
    dlb::StateDict state;
    CollectState(State(), scope, state);
    return state;
  }

  /// Copies `state` into the model. Throws StateError, listing every missing and unexpected
  /// name, or naming a tensor whose dtype or shape differs; the model is then unchanged.
  void LoadState(const dlb::StateDict& state, StateScope scope = StateScope::Weights) {
    RestoreState(State(), scope, state, "ModelNN::LoadState");
  }

  /// Total number of trainable scalars.
  Index NumParameters() {
    Index count = 0;
    for (const auto& p : Parameters()) count += p.value->size();
    return count;
  }

  /// A counter that Add increments. An Optimizer built from the model keeps it and refuses to
  /// step once layers were added after it (their parameters would never be trained).
  std::shared_ptr<const std::int64_t> StructureVersion() const { return structure_version_; }

  /// The layer at `index` as its concrete type; throws Error if the index or type is wrong.
  template <Layer L>
  L& LayerAt(Index index) {
    auto* adapter = dynamic_cast<internal::LayerAdapter<L>*>(layers_[CheckedIndex(index)].get());
    if (adapter == nullptr) {
      throw Error("ModelNN::LayerAt: layer " + std::to_string(index) + " is " +
                  layers_[index]->Name() + ", not the requested type");
    }
    return adapter->Get();
  }

  /// Name of the layer at `index` ("Linear(784 -> 350)").
  std::string LayerName(Index index) const { return layers_[CheckedIndex(index)]->Name(); }

  /// Type and constructor arguments of the layer at `index`; empty for a user layer that
  /// provides no Spec().
  std::optional<LayerSpec> LayerSpecAt(Index index) const {
    return layers_[CheckedIndex(index)]->Spec();
  }

  /// The model summary: one line per layer with its output shape and parameter count, then
  /// the totals.
  std::string Summary() {
    std::string text = Row("#", "layer", "output shape", "parameters");
    text += Row("", "input", input_shape_.ToString(), "");
    Index total = 0;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      Index count = 0;
      for (const auto& p : layers_[i]->Parameters()) count += p.value->size();
      total += count;
      text += Row(std::to_string(i), layers_[i]->Name(), output_shapes_[i].ToString(),
                  std::to_string(count));
    }
    text += "Total parameters: " + std::to_string(total) + "\n";
    return text;
  }

 private:
  static std::string Row(const std::string& index, const std::string& name,
                         const std::string& shape, const std::string& count) {
    char line[256];
    std::snprintf(line, sizeof line, "%3s  %-38s %-16s %12s\n", index.c_str(), name.c_str(),
                  shape.c_str(), count.c_str());
    return line;
  }

  std::size_t CheckedIndex(Index index) const {
    if (index < 0 || index >= NumLayers()) {
      throw Error("ModelNN: layer index " + std::to_string(index) + " outside 0.." +
                  std::to_string(NumLayers() - 1));
    }
    return static_cast<std::size_t>(index);
  }

  void RequireLayers(const char* who) const {
    if (layers_.empty()) {
      throw ShapeError(std::string("ModelNN::") + who + ": the model has no layers");
    }
  }

  /// True when `data` points into an activation or gradient buffer of the model, which the
  /// forward pass is about to overwrite.
  bool InOwnBuffers(const T* data) const {
    auto inside = [data](const Matrix<T>& m) {
      return m.size() > 0 && data >= m.data() && data < m.data() + m.size();
    };
    for (const auto& m : outputs_) if (inside(m)) return true;
    for (const auto& m : input_grads_) if (inside(m)) return true;
    return inside(input_copy_);
  }

  /// The latest Forward's batch, read in place or from input_copy_.
  Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>> Input() const {
    return {input_data_, InputSize(), input_cols_, Eigen::OuterStride<>(input_stride_)};
  }

  Generator gen_;
  Shape input_shape_;
  Mode mode_ = Mode::Train;
  std::vector<std::unique_ptr<internal::AnyLayer<T>>> layers_;
  std::vector<Shape> output_shapes_;
  std::vector<Matrix<T>> outputs_;      // outputs_[i]: output of layer i
  std::vector<Matrix<T>> input_grads_;  // input_grads_[i]: dL/d(input of layer i), i >= 1
  Matrix<T> input_copy_;                // the batch, when it cannot be read in place
  const T* input_data_ = nullptr;       // the latest Forward's batch (see Input())
  Index input_cols_ = 0;
  Index input_stride_ = 0;
  bool forward_done_ = false;
  std::shared_ptr<std::int64_t> structure_version_ = std::make_shared<std::int64_t>(0);
};

}  // namespace dlb
