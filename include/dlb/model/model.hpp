#pragma once
/// \file
/// ModelNN: a model, i.e. its input shape and its layers (a Sequential whose layers may be
/// blocks of layers), with the buffers of a training step and the generator of its weights.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
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
#include "dlb/model/layer_times.hpp"
#include "dlb/model/sequential.hpp"

namespace dlb {

/// A model: logits = layers(X), the layers a chain in which any layer may be a block of layers
/// (Sequential, Residual, Concat).
///
/// Represents: the model's input shape (stated once, at construction), its layers (any types
/// satisfying dlb::Layer, chosen at run time) with the sample shape each produces, the
/// activations of the latest forward pass and the gradients of the latest backward pass, kept
/// in buffers that are reused from batch to batch, and the generator that draws the initial
/// parameters (seeded by the constructor or Init).
/// Requires: each added layer accepts the shape the previous one produces (checked by Add,
/// which names the layer, by its path inside a block, and both shapes otherwise).
/// Ensures: Forward/Backward reuse their buffers, so the model allocates nothing once a batch
/// of the same size has been seen. A moved-from model is an empty model: it may be assigned,
/// destroyed or reused.
/// State: State() lists every parameter and buffer by dotted name: "0.weight" and
/// "1.running_mean" for layers added without a name (torch.nn.Sequential's state_dict), and
/// the module path for named layers and blocks ("conv1.weight", "layer1.0.conv1.weight",
/// "layer2.0.downsample.1.running_mean": a torchvision-style module's state_dict).
/// SaveState/LoadState copy it to and from a StateDict.
template <Scalar T = float>
class ModelNN {
 public:
  /// An empty model whose samples have shape `input_shape` ({1, 28, 28} for an image, or
  /// 784 for a flat vector) and whose layers are initialised from Generator(seed) as they
  /// are added. Throws ArgumentError unless every extent of the shape is >= 1 (and the shape
  /// holds at most kMaxValues values).
  explicit ModelNN(Shape input_shape, std::uint64_t seed = 0);

  ModelNN(const ModelNN&) = delete;
  ModelNN& operator=(const ModelNN&) = delete;
  /// The moved-to model takes the layers and the structure counter (so an Optimizer built
  /// from the model follows it); the moved-from one is empty, with a counter of its own.
  ModelNN(ModelNN&& other) noexcept {
    layers_.input_shape_ = input_shape_;
    Swap(other);
  }
  ModelNN& operator=(ModelNN&& other) noexcept {
    if (this != &other) {
      ModelNN empty(Shape(1));
      Swap(empty);  // releases this model's layers
      Swap(other);
    }
    return *this;
  }

  /// An independent copy: the same input shape, layers, parameters, buffers, generator and
  /// mode (the activations of the latest pass are not copied). Throws Error when a layer's
  /// type cannot be copied.
  ModelNN Clone() const {
    ModelNN copy(input_shape_);
    copy.gen_ = gen_;
    copy.mode_ = mode_;
    copy.layers_ = layers_;
    return copy;
  }

  /// Appends `layer`, named by its index ("3") or `name` ("conv1"); tells it (and, for a
  /// block, every layer inside it) its input shape and initialises it from the model's
  /// generator; returns *this for chaining. Throws ShapeError, naming the layer (by its path
  /// inside a block) and the shape it was given, when the layer does not accept the previous
  /// layer's output shape; ArgumentError for an invalid or repeated name. The model is then
  /// unchanged.
  template <class L>
  ModelNN& Add(L layer) {
    return Add(std::to_string(layers_.NumLayers()), std::move(layer));
  }
  template <class L>
  ModelNN& Add(std::string name, L layer) {
    static_assert(Layer<L>,
                  "dlb::ModelNN::Add: this type does not satisfy the dlb::Layer concept. A layer "
                  "needs `using Scalar = T;`, Name(), OutputShape(const Shape&), "
                  "Forward(X, Y, Mode) and Backward(X, Y, dY, dX*) (see dlb/layers/layer.hpp).");
    if constexpr (Layer<L>) {
      static_assert(std::is_same_v<typename L::Scalar, T>,
                    "dlb::ModelNN::Add: the layer's Scalar type differs from the model's.");
      AddPointer(std::move(name), internal::MakeLayerPointer(std::move(layer)));
    }
    return *this;
  }
  /// Appends a layer built at run time (by a LayerRegistry); see Add.
  ModelNN& AddPointer(std::string name, internal::LayerPointer<T> layer);

  /// Number of layers (a block counts as one).
  Index NumLayers() const { return layers_.NumLayers(); }
  /// The shape of one input sample, as given to the constructor.
  const Shape& InputShape() const { return input_shape_; }
  /// The sample shape the last layer produces (the input shape for an empty model).
  Shape OutputShape() const {
    return layers_.Empty() ? input_shape_
                           : layers_.layers_[layers_.layers_.Size() - 1].layer->CurrentOutputShape();
  }
  /// The sample shape layer `index` produces.
  const Shape& OutputShapeAt(Index index) const {
    return layers_.layers_[CheckedIndex(index)].layer->CurrentOutputShape();
  }
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
    layers_.Init(gen_);
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
    layers_.Forward(Input(), logits_, mode_);
    forward_done_ = true;
    return logits_;
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
    layers_.Backward(Input(), logits_, dlogits, dinput);
  }

  /// Every trainable parameter with its gradient, named by its path ("0.weight",
  /// "layer1.0.conv1.weight"), in layer order.
  std::vector<Parameter<T>> Parameters() { return layers_.Parameters(); }

  /// Every piece of state of every layer, in layer order: each layer's parameters
  /// (StateKind::Parameter) and then its own State() (buffers, generators), named by path.
  /// The order and names of the equivalent PyTorch module's state_dict().
  std::vector<StateRef<T>> State() { return layers_.State(); }

  /// A copy of the model's state: parameters and buffers (StateScope::Weights, PyTorch's
  /// state_dict) or also what resuming needs (StateScope::Checkpoint).
  dlb::StateDict SaveState(StateScope scope = StateScope::Weights) const {
    dlb::StateDict state;
    CollectState(Mutable().State(), scope, state);
    return state;
  }

  /// Copies `state` into the model, then has every layer check what it received (e.g. that
  /// a batch norm's running variances are >= 0). Throws StateError, listing every missing and
  /// unexpected name, naming a tensor whose dtype or shape differs, or naming the tensor a
  /// layer refuses ("layer1.0.bn1.running_var holds -1 at element 0; ..."); the model is then
  /// unchanged.
  void LoadState(const dlb::StateDict& state, StateScope scope = StateScope::Weights) {
    const std::vector<StateRef<T>> refs = State();
    dlb::StateDict before;
    CollectState(refs, scope, before);
    RestoreState(refs, scope, state, "ModelNN::LoadState");
    try {
      ValidateState();
    } catch (...) {
      RestoreState(refs, scope, before, "ModelNN::LoadState");
      throw;
    }
  }

  /// Throws StateError naming the first tensor a layer refuses (see Layer's ValidateState).
  void ValidateState() const {
    VisitLayers([](const std::string& path, const internal::AnyLayer<T>& layer, int) {
      try {
        layer.ValidateState();
      } catch (const StateError& error) {
        throw StateError("ModelNN::LoadState: " + path + "." + error.what());
      }
    });
  }

  /// Total number of trainable scalars.
  Index NumParameters() const {
    Index count = 0;
    for (const auto& p : Mutable().Parameters()) count += p.value->size();
    return count;
  }

  /// A counter that Add increments. An Optimizer built from the model keeps it and refuses to
  /// step once layers were added after it (their parameters would never be trained).
  std::shared_ptr<const std::int64_t> StructureVersion() const { return structure_version_; }

  /// The layer at `index` (or at the dotted `path` of a layer inside blocks, "layer1.0.conv1")
  /// as its concrete type; throws Error if the index, path or type is wrong.
  template <Layer L>
  L& LayerAt(Index index) {
    return Cast<L>(*layers_.layers_[CheckedIndex(index)].layer, std::to_string(index));
  }
  template <Layer L>
  L& LayerAt(const std::string& path) {
    return Cast<L>(Find(path), path);
  }
  template <Layer L>
  const L& LayerAt(Index index) const {
    return Mutable().template LayerAt<L>(index);
  }
  template <Layer L>
  const L& LayerAt(const std::string& path) const {
    return Mutable().template LayerAt<L>(path);
  }

  /// Name of the layer at `index` ("Linear(784 -> 350)").
  std::string LayerName(Index index) const {
    return layers_.layers_[CheckedIndex(index)].layer->Name();
  }
  /// The name layer `index` has in the model ("3", "conv1"): the prefix of its state.
  const std::string& LayerKey(Index index) const { return layers_.layers_[CheckedIndex(index)].name; }

  /// Type and arguments of the layer at `index`; empty for a user layer that provides no
  /// Spec(). Throws ArgumentError for a block holding a layer without Spec().
  std::optional<LayerSpec> LayerSpecAt(Index index) const {
    return layers_.layers_[CheckedIndex(index)].layer->Spec();
  }

  /// Calls f(path, layer, depth) for every layer, blocks and the layers inside them, in
  /// order (a block before its children; depth 0 for the model's own layers).
  template <class F>
  void VisitLayers(F&& f) const {
    // Children() is not const; the const overload hands f const layers only.
    auto visit = [&f](const std::string& path, internal::AnyLayer<T>& layer, int depth) {
      f(path, static_cast<const internal::AnyLayer<T>&>(layer), depth);
    };
    for (auto& node : Mutable().layers_.layers_.Nodes()) Visit(node.name, *node.layer, 0, visit);
  }
  template <class F>
  void VisitLayers(F&& f) {
    for (auto& node : layers_.layers_.Nodes()) Visit(node.name, *node.layer, 0, f);
  }

  /// Values per sample of the buffers a pass allocates (activations, gradients, working
  /// memory), for a memory bound before any batch is run.
  Index ValuesPerSample() const {
    return CheckedAdd(layers_.ValuesPerSample(), CheckedMultiply(2, InputSize(), "the input"),
                      "the model's memory per sample");
  }

  /// Starts timing every layer's Forward and Backward, blocks and the layers inside them, from
  /// zero (on), or stops (off; the times stay readable). Costs two clock reads per layer and
  /// pass and allocates nothing; layers added later start untimed. Timing a model that several
  /// threads run at once is not supported (the const inference path, Predictor, is not timed).
  void SetLayerTiming(bool on) {
    VisitLayers([on](const std::string&, internal::AnyLayer<T>& layer, int) { layer.SetTiming(on); });
  }

  /// Each layer's time while timing was on (SetLayerTiming), in Summary()'s order: a block
  /// before its children (depth one more), whose time includes theirs; an activation applied
  /// by the layer before it (fused) has no calls of its own. FormatLayerTimes prints them.
  std::vector<LayerTime> LayerTimes() const {
    std::vector<LayerTime> rows;
    FusionTracker fusion;
    VisitLayers([&](const std::string& path, const internal::AnyLayer<T>& layer, int depth) {
      rows.push_back({path, layer.Name(), depth, layer.PassTimes(), fusion.FusedInto(path, layer)});
    });
    return rows;
  }

  /// The model summary: one line per layer, the layers inside blocks indented under them,
  /// with the name (path), the layer, its output shape and its parameter count; then the
  /// total. An activation or a max-pooling that a layer before it applies in its own passes
  /// (fused when it was added, see Sequential) is marked "ReLU (fused into bn1)".
  std::string Summary() const;

 private:
  template <class F>
  static void Visit(const std::string& path, internal::AnyLayer<T>& layer, int depth, F& f) {
    f(path, layer, depth);
    for (auto& child : layer.Children()) Visit(path + "." + child.name, *child.layer, depth + 1, f);
  }

  /// Follows the layers in visiting order and tells which ones an earlier layer applies in
  /// its own passes (fused, see Sequential): a layer that fuses has no children, so the
  /// activation it applies is the next layer visited and the max-pooling the next one after
  /// that (or the next, without an activation).
  class FusionTracker {
   public:
    /// The path of the layer that applies `layer`, or "" when it runs its own passes.
    std::string FusedInto(const std::string& path, const internal::AnyLayer<T>& layer) {
      if (activation_left_ != Activation::None &&
          layer.ActivationKind() == activation_left_) {
        activation_left_ = Activation::None;
        return fuser_path_;
      }
      if (pool_left_ && layer.MaxPoolWindow() == pool_left_) {
        activation_left_ = Activation::None;
        pool_left_.reset();
        return fuser_path_;
      }
      fuser_path_ = path;
      activation_left_ = layer.FusedActivation();
      pool_left_ = layer.FusedMaxPool();
      return {};
    }

   private:
    std::string fuser_path_;                // the latest layer that runs its own passes
    Activation activation_left_ = Activation::None;  // what it applies and was not visited
    std::optional<Window2D> pool_left_;
  };

  /// "layer 3" for a layer named by its index, the path otherwise ("layer1.0.conv2").
  static std::string DescribePath(const std::string& path) {
    const bool index = !path.empty() && path.find_first_not_of("0123456789") == std::string::npos;
    return index ? "layer " + path : path;
  }

  internal::AnyLayer<T>& Find(const std::string& path) {
    internal::AnyLayer<T>* found = nullptr;
    VisitLayers([&](const std::string& visited, internal::AnyLayer<T>& layer, int) {
      if (visited == path && found == nullptr) found = &layer;
    });
    if (found == nullptr) throw Error("ModelNN::LayerAt: no layer named '" + path + "'");
    return *found;
  }

  template <Layer L>
  static L& Cast(internal::AnyLayer<T>& layer, const std::string& where) {
    if (layer.Type() != typeid(L)) {
      throw Error("ModelNN::LayerAt: layer " + where + " is " + layer.Name() +
                  ", not the requested type");
    }
    return *static_cast<L*>(layer.Concrete());
  }

  ModelNN& Mutable() const { return const_cast<ModelNN&>(*this); }

  void Swap(ModelNN& other) noexcept {
    std::swap(gen_, other.gen_);
    std::swap(input_shape_, other.input_shape_);
    std::swap(mode_, other.mode_);
    std::swap(layers_, other.layers_);
    std::swap(logits_, other.logits_);
    std::swap(input_copy_, other.input_copy_);
    std::swap(input_data_, other.input_data_);
    std::swap(input_cols_, other.input_cols_);
    std::swap(input_stride_, other.input_stride_);
    std::swap(forward_done_, other.forward_done_);
    std::swap(structure_version_, other.structure_version_);
  }

  std::size_t CheckedIndex(Index index) const {
    if (index < 0 || index >= NumLayers()) {
      throw Error("ModelNN: layer index " + std::to_string(index) + " outside 0.." +
                  std::to_string(NumLayers() - 1));
    }
    return static_cast<std::size_t>(index);
  }

  void RequireLayers(const char* who) const {
    if (layers_.Empty()) {
      throw ShapeError(std::string("ModelNN::") + who + ": the model has no layers");
    }
  }

  /// True when `data` points into a buffer of the model that the forward pass is about to
  /// overwrite: its logits or its copy of the input.
  bool InOwnBuffers(const T* data) const {
    auto inside = [data](const Matrix<T>& m) {
      return m.size() > 0 && data >= m.data() && data < m.data() + m.size();
    };
    return inside(logits_) || inside(input_copy_);
  }

  /// The latest Forward's batch, read in place or from input_copy_.
  Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>> Input() const {
    return {input_data_, InputSize(), input_cols_, Eigen::OuterStride<>(input_stride_)};
  }

  Generator gen_;
  Shape input_shape_{1};
  Mode mode_ = Mode::Train;
  Sequential<T> layers_;          // the model's layers; its input shape is the model's
  Matrix<T> logits_;              // the last layer's output
  Matrix<T> input_copy_;          // the batch, when it cannot be read in place
  const T* input_data_ = nullptr;  // the latest Forward's batch (see Input())
  Index input_cols_ = 0;
  Index input_stride_ = 0;
  bool forward_done_ = false;
  std::shared_ptr<std::int64_t> structure_version_ = std::make_shared<std::int64_t>(0);
};

// The members below are defined outside the class so that they are not inline: a program
// that links dlb::compiled (whose <dlb/compiled.hpp> declares ModelNN<float> and
// ModelNN<double> extern) then takes them from the library. Compilers instantiate a member
// defined in the class (inline) wherever it is called, extern declaration or not.

template <Scalar T>
ModelNN<T>::ModelNN(Shape input_shape, std::uint64_t seed)
    : gen_(seed), input_shape_(input_shape) {
  if (!input_shape.IsValid()) {
    throw ArgumentError("ModelNN: the input shape must have every extent >= 1, got " +
                        std::to_string(input_shape.channels) + " x " +
                        std::to_string(input_shape.height) + " x " +
                        std::to_string(input_shape.width));
  }
  layers_.input_shape_ = input_shape;
}

template <Scalar T>
ModelNN<T>& ModelNN<T>::AddPointer(std::string name, internal::LayerPointer<T> layer) {
  layers_.layers_.RequireNewName("ModelNN::Add", name);
  const Shape input = OutputShape();
  try {
    internal::ForChild(name, *layer, [&] {
      const Shape produced = layer->OutputShape(input);
      Sequential<T>::RequireValidOutput(produced, input);
      layer->SetInputShape(input);
    });
  } catch (const LayerShapeError& error) {
    throw ShapeError("ModelNN::Add: " + DescribePath(error.Path()) + " (" + error.LayerName() +
                     ") " + error.Problem());
  }
  layer->Init(gen_);
  layers_.layers_.Append(std::move(name), std::move(layer));
  layers_.outputs_.emplace_back();
  layers_.grads_.emplace_back();
  // Only the plans of the two layers before can change (so that Summary() shows them
  // before the first Forward): a layer applies at most the two after it.
  layers_.PlanFusion(layers_.layers_.Size() >= 3 ? layers_.layers_.Size() - 3 : 0);
  forward_done_ = false;  // the new layer has no activations until the next Forward
  ++*structure_version_;
  return *this;
}

template <Scalar T>
std::string ModelNN<T>::Summary() const {
  struct Row {
    std::string name, layer, shape, count;
  };
  std::vector<Row> rows = {{"name", "layer", "output shape", "parameters"},
                           {"(input)", "", input_shape_.ToString(), ""}};
  FusionTracker fusion;
  VisitLayers([&](const std::string& path, const internal::AnyLayer<T>& layer, int depth) {
    Index count = 0;
    for (const auto& p : const_cast<internal::AnyLayer<T>&>(layer).Parameters()) {
      count += p.value->size();
    }
    std::string name = layer.Name();
    if (const std::string fuser = fusion.FusedInto(path, layer); !fuser.empty()) {
      name += " (fused into " + fuser + ")";
    }
    rows.push_back({std::string(2 * static_cast<std::size_t>(depth), ' ') + path, name,
                    layer.CurrentOutputShape().ToString(), std::to_string(count)});
  });
  std::size_t widths[3] = {0, 0, 0};
  for (const Row& row : rows) {
    widths[0] = std::max(widths[0], row.name.size());
    widths[1] = std::max(widths[1], row.layer.size());
    widths[2] = std::max(widths[2], row.shape.size());
  }
  std::string text;
  for (const Row& row : rows) {
    const auto pad = [](const std::string& s, std::size_t width) {
      return s + std::string(width - s.size(), ' ');
    };
    text += pad(row.name, widths[0]) + "  " + pad(row.layer, widths[1]) + "  " +
            pad(row.shape, widths[2]) + "  " +
            std::string(std::max<std::size_t>(10, row.count.size()) - row.count.size(), ' ') +
            row.count + "\n";
  }
  text += "Total parameters: " + std::to_string(NumParameters()) + "\n";
  return text;
}

}  // namespace dlb
