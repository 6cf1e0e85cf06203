#pragma once
/// \file
/// The element-wise activation layers, ReLU, LeakyReLU, Sigmoid and Tanh: one layer template,
/// ElementwiseActivation, and for each function a few lines giving its formula and gradient.
///
/// A new activation is a struct like ReluFunction below (its options, its name, Value and
/// Gradient on Eigen arrays) and one alias; the buffers, shapes, threads and the layer
/// contract exist once, in the template.

#include <cmath>
#include <concepts>
#include <sstream>
#include <string>
#include <tuple>

#include "dlb/core/error.hpp"
#include "dlb/core/sign_select.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"

namespace dlb {

/// An activation chosen at run time: MakeMlp's hidden non-linearity, a Residual block's
/// activation after the addition. None is the identity.
enum class Activation { None, ReLU, LeakyReLU, Sigmoid, Tanh };

/// A layer that can apply the activation that follows it in a chain within its own passes
/// over the data (BatchNorm: ReLU). FuseActivation(a) returns whether it will; from then on
/// its Forward writes a(y) and its Backward receives Y = a(y) and dY with respect to a(y).
/// Sequential (and so ModelNN and the blocks) asks it, see Sequential's class comment.
template <class L>
concept ActivationFusingLayer = Layer<L> && requires(L& layer, const L& view, Activation a) {
  { layer.FuseActivation(a) } -> std::same_as<bool>;
  { view.FusedActivation() } -> std::same_as<Activation>;
};

/// A layer that is an activation function (ReLU, ...): ActivationKind() says which.
template <class L>
concept ActivationLayer = Layer<L> && requires(const L& layer) {
  { layer.ActivationKind() } -> std::same_as<Activation>;
};

/// Y = f(X) element-wise and dX = dY f'(X) for the activation `Function`. Any shape.
///
/// Function provides `using Options` (its LayerOptions), `kActivation` (its Activation), a
/// constructor from the options, `Name()`,
/// `Value(x)` (the array expression of Y from an array of X) and `Gradient(x, y, dy)` (dX
/// from arrays of X, Y and dY; each function reads whichever of X and Y its derivative
/// needs). Forward and Backward split the columns over the threads (ForColumnBlocks) and
/// allocate nothing once Y and dX have their size.
template <Scalar T, class Function>
class ElementwiseActivation : public ElementwiseLayer,
                              public DescribedBy<typename Function::Options> {
 public:
  using Scalar = T;
  using Options = typename Function::Options;

  explicit ElementwiseActivation(const Options& options = {})
      : DescribedBy<Options>(options), function_(this->options_) {}

  std::string Name() const { return function_.Name(); }
  /// Which activation this layer is (Function::kActivation).
  Activation ActivationKind() const { return Function::kActivation; }
  static LayerExample<ElementwiseActivation> Example() { return {ElementwiseActivation(), Shape(2, 3, 3)}; }
  const Function& Formula() const { return function_; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    y.resize(x.rows(), x.cols());
    ForColumnBlocks(x.rows(), x.cols(), [&](Index c, Index n) {
      y.middleCols(c, n).array() = function_.Value(x.middleCols(c, n).array());
    });
  }

  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& y,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    dx->resize(dy.rows(), dy.cols());
    ForColumnBlocks(dy.rows(), dy.cols(), [&](Index c, Index n) {
      dx->middleCols(c, n).array() = function_.Gradient(
          x.middleCols(c, n).array(), y.middleCols(c, n).array(), dy.middleCols(c, n).array());
    });
  }

 private:
  Function function_;
};

/// The options of LeakyReLU: the slope for negative inputs.
struct LeakyReLUOptions {
  double alpha = 0.01;

  LeakyReLUOptions() = default;
  LeakyReLUOptions(double alpha_) : alpha(alpha_) {}  // NOLINT(google-explicit-constructor)

  static constexpr const char* kType = "LeakyReLU";
  static constexpr auto Arguments() { return std::tuple{Optional("alpha", &LeakyReLUOptions::alpha)}; }
  /// Throws ArgumentError unless alpha is finite and >= 0.
  void Validate() const {
    if (!(alpha >= 0) || !std::isfinite(alpha)) {
      throw ArgumentError("LeakyReLU: alpha must be finite and >= 0, got " + std::to_string(alpha));
    }
  }
  StateShapes TensorShapes() const { return {}; }
};

namespace internal {

/// Y = max(X, 0); dX = dY where Y > 0, else 0.
template <Scalar T>
struct ReluFunction {
  static constexpr Activation kActivation = Activation::ReLU;
  using Options = NoArgumentOptions<"ReLU">;
  explicit ReluFunction(const Options& /*options*/) {}
  std::string Name() const { return "ReLU"; }
  template <class X>
  auto Value(const X& x) const {
    return x.max(T(0));
  }
  template <class X, class Y, class D>
  auto Gradient(const X& /*x*/, const Y& y, const D& dy) const {
    return KeepWherePositive(dy, y);
  }
};

/// Y = X where X > 0, alpha X elsewhere; dX = dY where X > 0, alpha dY elsewhere.
template <Scalar T>
struct LeakyReluFunction {
  static constexpr Activation kActivation = Activation::LeakyReLU;
  using Options = LeakyReLUOptions;
  explicit LeakyReluFunction(const Options& options)
      : alpha(RepresentableAs<T>("LeakyReLU", "alpha", options.alpha)) {}
  /// "LeakyReLU(0.01)".
  std::string Name() const {
    std::ostringstream text;
    text << "LeakyReLU(" << static_cast<double>(alpha) << ")";
    return text.str();
  }
  template <class X>
  auto Value(const X& x) const {
    return ScaleWhereNotPositive(x, x, alpha);
  }
  template <class X, class Y, class D>
  auto Gradient(const X& x, const Y& /*y*/, const D& dy) const {
    return ScaleWhereNotPositive(dy, x, alpha);
  }
  T alpha;
};

/// Y = 1 / (1 + exp(-X)); dX = dY Y (1 - Y). exp(-X) overflowing to +inf for X << 0 gives
/// Y = 0 exactly, never NaN.
template <Scalar T>
struct SigmoidFunction {
  static constexpr Activation kActivation = Activation::Sigmoid;
  using Options = NoArgumentOptions<"Sigmoid">;
  explicit SigmoidFunction(const Options& /*options*/) {}
  std::string Name() const { return "Sigmoid"; }
  template <class X>
  auto Value(const X& x) const {
    return T(1) / (T(1) + (-x).exp());
  }
  template <class X, class Y, class D>
  auto Gradient(const X& /*x*/, const Y& y, const D& dy) const {
    return dy * y * (T(1) - y);
  }
};

/// Y = tanh(X); dX = dY (1 - Y^2).
template <Scalar T>
struct TanhFunction {
  static constexpr Activation kActivation = Activation::Tanh;
  using Options = NoArgumentOptions<"Tanh">;
  explicit TanhFunction(const Options& /*options*/) {}
  std::string Name() const { return "Tanh"; }
  template <class X>
  auto Value(const X& x) const {
    return x.tanh();
  }
  template <class X, class Y, class D>
  auto Gradient(const X& /*x*/, const Y& y, const D& dy) const {
    return dy * (T(1) - y.square());
  }
};

}  // namespace internal

/// Rectified linear unit: `dlb::ReLU<float>()`.
template <Scalar T = float>
using ReLU = ElementwiseActivation<T, internal::ReluFunction<T>>;
/// Leaky ReLU with slope alpha for negative inputs: `dlb::LeakyReLU<float>(0.1)`.
template <Scalar T = float>
using LeakyReLU = ElementwiseActivation<T, internal::LeakyReluFunction<T>>;
/// Logistic sigmoid: `dlb::Sigmoid<float>()`.
template <Scalar T = float>
using Sigmoid = ElementwiseActivation<T, internal::SigmoidFunction<T>>;
/// Hyperbolic tangent: `dlb::Tanh<float>()`.
template <Scalar T = float>
using Tanh = ElementwiseActivation<T, internal::TanhFunction<T>>;

/// "none", "relu", "leaky_relu", "sigmoid", "tanh": the names saved architectures use.
inline const char* ActivationName(Activation activation) {
  switch (activation) {
    case Activation::None: return "none";
    case Activation::ReLU: return "relu";
    case Activation::LeakyReLU: return "leaky_relu";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Tanh: return "tanh";
  }
  return "?";
}

/// The Activation called `name` (see ActivationName); throws ArgumentError for another name.
inline Activation ParseActivation(const std::string& name) {
  for (Activation activation : {Activation::None, Activation::ReLU, Activation::LeakyReLU,
                                Activation::Sigmoid, Activation::Tanh}) {
    if (name == ActivationName(activation)) return activation;
  }
  throw ArgumentError("unknown activation '" + name +
                      "'; expected none, relu, leaky_relu, sigmoid or tanh");
}

/// An Activation argument of a layer's options is saved as its name ("relu").
inline void AppendSpecArgument(LayerSpec& spec, const std::string& name, Activation value) {
  spec.args.emplace_back(name, std::string(ActivationName(value)));
}
inline void ReadSpecArgument(const LayerArgs& args, const std::string& name, bool required,
                             Activation& value) {
  if (required || args.Has(name)) value = ParseActivation(args.Text(name));
}

}  // namespace dlb
