#pragma once
/// \file
/// Residual: a block whose output is activation(body(x) + shortcut(x)), the building block of
/// residual networks (torchvision's BasicBlock).

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/layers/layer_spec.hpp"
#include "dlb/model/sequential.hpp"

namespace dlb {

/// The arguments of a Residual block: the activation after the addition (ReLU, as in
/// ResNet's BasicBlock; None for a plain sum) and the name of the shortcut's state
/// ("downsample.0.weight", torchvision's name).
struct ResidualOptions {
  dlb::Activation activation = dlb::Activation::ReLU;
  std::string shortcut = "downsample";

  ResidualOptions& Activation(dlb::Activation value) { activation = value; return *this; }
  ResidualOptions& ShortcutName(std::string value) { shortcut = std::move(value); return *this; }

  static constexpr const char* kType = "Residual";
  static constexpr auto Arguments() {
    return std::tuple{Optional("activation", &ResidualOptions::activation),
                      Optional("shortcut", &ResidualOptions::shortcut)};
  }
  /// Throws ArgumentError for a shortcut name that cannot name a layer.
  void Validate() const { internal::RequireChildName("Residual", shortcut); }
  StateShapes TensorShapes() const { return {}; }
};

namespace internal {
/// The identity as an activation function (Residual with Activation::None).
struct IdentityFunction {
  template <class X>
  const X& Value(const X& x) const {
    return x;
  }
  template <class X, class Y, class D>
  const D& Gradient(const X& /*x*/, const Y& /*y*/, const D& dy) const {
    return dy;
  }
};
}  // namespace internal

/// y = f(body(x) + shortcut(x)) with f the options' activation and shortcut(x) = x when the
/// shortcut is empty (the identity).
///
/// Represents: the body (a Sequential: in ResNet's BasicBlock conv1, bn1, relu, conv2, bn2),
/// the shortcut (an empty Sequential, or e.g. a strided 1x1 convolution and a batch norm),
/// the activation, and the buffers of the latest pass.
/// State: the body's layers under their own names and the shortcut's under the options'
/// shortcut name, so a block inside `layer1` of a model saves `layer1.0.conv1.weight`,
/// `layer1.0.bn1.running_mean`, `layer1.0.downsample.0.weight`: torchvision's BasicBlock.
/// Shapes: body and shortcut must produce the same shape from the input (LayerShapeError
/// otherwise, naming both shapes).
/// Computation: Forward writes body(x) and shortcut(x) to buffers and then y = f(sum) in one
/// pass; Backward computes dsum = f'(.) dY from Y in one pass (every activation's derivative
/// is a function of its output), runs the body's backward into dX and adds the shortcut's
/// (or dsum itself for the identity). Nothing is allocated once a batch size has been seen.
template <Scalar T = float>
class Residual : public DescribedBy<ResidualOptions> {
 public:
  using Scalar = T;

  /// A block with the identity as its shortcut.
  explicit Residual(Sequential<T> body, const ResidualOptions& options = {})
      : Residual(std::move(body), Sequential<T>(), options) {}
  /// A block with its own shortcut (an empty one is the identity). Throws ArgumentError when a
  /// layer of the body has the shortcut's name.
  Residual(Sequential<T> body, Sequential<T> shortcut, const ResidualOptions& options = {})
      : DescribedBy<ResidualOptions>(options),
        body_(std::move(body)),
        shortcut_(internal::MakeLayerPointer(std::move(shortcut))) {
    for (const auto& child : body_.Children()) {
      if (child.name == options_.shortcut) {
        throw ArgumentError("Residual: a layer of the body is named '" + child.name +
                            "', the shortcut's name; rename one of them");
      }
    }
  }

  /// A BasicBlock with a strided 1x1 convolution and batch norm as its shortcut.
  static LayerExample<Residual> Example();

  /// "Residual(identity, relu)" or "Residual(downsample, relu)".
  std::string Name() const {
    return std::string("Residual(") + (HasShortcut() ? options_.shortcut : "identity") + ", " +
           ActivationName(options_.activation) + ")";
  }
  /// Whether the shortcut has layers (otherwise it is the identity). A moved-from block is
  /// an identity block with an empty body.
  bool HasShortcut() const { return shortcut_ != nullptr && !Shortcut().Empty(); }
  const Sequential<T>& Body() const { return body_; }
  const Sequential<T>& Shortcut() const {
    static const Sequential<T> kIdentity;
    if (shortcut_ == nullptr) return kIdentity;
    return static_cast<internal::LayerAdapter<Sequential<T>>&>(*shortcut_).Get();
  }

  /// The shape both branches produce; throws LayerShapeError (naming the body's layer that
  /// does not fit) or ShapeError when body and shortcut produce different shapes.
  Shape OutputShape(const Shape& input) const {
    const Shape body = body_.OutputShape(input);
    const Shape shortcut = ShortcutOutput(input);
    if (!(body == shortcut)) {
      throw ShapeError("adds a body output of " + body.ToString() + " to a shortcut output of " +
                       shortcut.ToString() +
                       (HasShortcut() ? "" : " (the identity: the input)") +
                       "; they must have the same shape");
    }
    return body;
  }

  void SetInputShape(const Shape& input) {
    const Shape output = OutputShape(input);
    body_.SetInputShape(input);
    if (HasShortcut()) {
      internal::ForChild(options_.shortcut, *shortcut_, [&] { shortcut_->SetInputShape(input); });
    }
    output_size_ = output.Size();
  }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) {
    body_.Forward(x, body_out_, mode);
    if (HasShortcut()) shortcut_->Forward(x, shortcut_out_, mode);
    const ConstMatrixRef<T> shortcut = HasShortcut() ? ConstMatrixRef<T>(shortcut_out_) : x;
    y.resize(body_out_.rows(), body_out_.cols());
    WithActivation([&](const auto& f) {
      ForColumnBlocks(y.rows(), y.cols(), [&](Index c, Index n) {
        y.middleCols(c, n).array() =
            f.Value((body_out_.middleCols(c, n) + shortcut.middleCols(c, n)).array());
      });
    });
  }

  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    // dsum = f'(.) dY (for the identity, dY itself).
    if (options_.activation != Activation::None) {
      dsum_.resize(dy.rows(), dy.cols());
      WithActivation([&](const auto& f) {
        ForColumnBlocks(dy.rows(), dy.cols(), [&](Index c, Index n) {
          dsum_.middleCols(c, n).array() =
              f.Gradient(y.middleCols(c, n).array(), y.middleCols(c, n).array(),
                         dy.middleCols(c, n).array());
        });
      });
    }
    const ConstMatrixRef<T> dsum =
        options_.activation == Activation::None ? dy : ConstMatrixRef<T>(dsum_);
    body_.Backward(x, body_out_, dsum, dx);
    if (HasShortcut()) {
      shortcut_->Backward(x, shortcut_out_, dsum, dx != nullptr ? &dx_shortcut_ : nullptr);
    }
    if (dx == nullptr) return;
    const ConstMatrixRef<T> extra = HasShortcut() ? ConstMatrixRef<T>(dx_shortcut_) : dsum;
    ForColumnBlocks(dx->rows(), dx->cols(),
                    [&](Index c, Index n) { dx->middleCols(c, n) += extra.middleCols(c, n); });
  }

  std::vector<Parameter<T>> Parameters() {
    std::vector<Parameter<T>> all = body_.Parameters();
    if (!HasShortcut()) return all;
    for (auto& p : shortcut_->Parameters()) {
      p.name = options_.shortcut + "." + p.name;
      all.push_back(std::move(p));
    }
    return all;
  }
  std::vector<StateRef<T>> State() {
    std::vector<StateRef<T>> all = body_.State();
    if (!HasShortcut()) return all;
    for (auto& ref : shortcut_->AllState()) {
      ref.name = options_.shortcut + "." + ref.name;
      all.push_back(std::move(ref));
    }
    return all;
  }
  void Init(Generator& gen) {
    body_.Init(gen);
    if (HasShortcut()) shortcut_->Init(gen);
  }
  /// The body's layers, then (when it has layers) the shortcut as one block.
  std::vector<internal::Child<T>> Children() {
    std::vector<internal::Child<T>> children = body_.Children();
    if (HasShortcut()) children.push_back({options_.shortcut, shortcut_.get()});
    return children;
  }

  /// "Residual" with its arguments; its children are the body's layers and, when it has
  /// layers, the shortcut (a Sequential) under the shortcut's name.
  LayerSpec Spec() const {
    LayerSpec spec = DescribedBy<ResidualOptions>::Spec();
    spec.children = body_.Spec().children;
    if (HasShortcut()) spec.children.emplace_back(options_.shortcut, Shortcut().Spec());
    return spec;
  }

  /// The block a spec describes: its options, the children named like the shortcut (a
  /// Sequential) as the shortcut, the others as the body, each built by `build`.
  static Residual FromSpec(const LayerArgs& args, const internal::BuildChild<T>& build) {
    const ResidualOptions options = OptionsFromArgs<ResidualOptions>(args);
    options.Validate();
    Sequential<T> body, shortcut;
    bool has_shortcut = false;
    for (const auto& [name, spec] : args.Spec().children) {
      if (name != options.shortcut) {
        body.AddPointer(name, build(name, spec));
        continue;
      }
      if (has_shortcut || spec.type != SequentialOptions::kType) {
        throw ArgumentError("Residual: the shortcut '" + name + "' must be one Sequential, got " +
                            (has_shortcut ? std::string("two") : "a " + spec.type));
      }
      internal::LayerPointer<T> layer = build(name, spec);
      shortcut = std::move(*static_cast<Sequential<T>*>(layer->Concrete()));
      has_shortcut = true;
    }
    return Residual(std::move(body), std::move(shortcut), options);
  }

  Index ValuesPerSample() const {
    // The body's and the shortcut's memory, their two outputs, dsum and the shortcut's dX.
    Index values = body_.ValuesPerSample();
    if (HasShortcut()) values = CheckedAdd(values, shortcut_->ValuesPerSample(), "Residual");
    return CheckedAdd(values, CheckedMultiply(4, output_size_, "Residual"), "Residual");
  }

  Residual(const Residual& other)
      : DescribedBy<ResidualOptions>(other),
        body_(other.body_),
        shortcut_(other.shortcut_ ? other.shortcut_->Clone() : nullptr),
        output_size_(other.output_size_) {}
  Residual& operator=(const Residual& other) {
    if (this != &other) *this = Residual(other);
    return *this;
  }
  Residual(Residual&&) noexcept = default;
  Residual& operator=(Residual&&) noexcept = default;

 private:
  Shape ShortcutOutput(const Shape& input) const {
    if (!HasShortcut()) return input;
    return internal::ForChild(options_.shortcut, *shortcut_, [&] { return shortcut_->OutputShape(input); });
  }

  /// Calls f with the activation's function object.
  template <class F>
  void WithActivation(F&& f) const {
    switch (options_.activation) {
      case Activation::None: f(internal::IdentityFunction{}); break;
      case Activation::ReLU: f(internal::ReluFunction<T>({})); break;
      case Activation::LeakyReLU: f(internal::LeakyReluFunction<T>(LeakyReLUOptions{})); break;
      case Activation::Sigmoid: f(internal::SigmoidFunction<T>({})); break;
      case Activation::Tanh: f(internal::TanhFunction<T>({})); break;
    }
  }

  Sequential<T> body_;
  internal::LayerPointer<T> shortcut_;  // a Sequential: a child of the block, like the body's
  Index output_size_ = 0;
  Matrix<T> body_out_, shortcut_out_, dsum_, dx_shortcut_;
};

}  // namespace dlb
