#pragma once
/// \file
/// Fully connected layer.

#include <cmath>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/gemm.hpp"
#include "dlb/core/memory.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/init.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"

namespace dlb {

/// The arguments of a Linear layer: `LinearOptions(784, 350)`, or
/// `LinearOptions(784, 350).WeightInit(dlb::Init::Xavier)`. Defaults: Kaiming-normal weights.
struct LinearOptions {
  Index in = 0;   ///< input features (required)
  Index out = 0;  ///< output features (required)
  dlb::Init init = dlb::Init::Kaiming;
  double init_std = 0.01;  ///< the deviation of Init::Const (checked always)

  LinearOptions() = default;
  LinearOptions(Index in_, Index out_) : in(in_), out(out_) {}
  /// How the weights are drawn (see dlb::Init); `std_dev` is Init::Const's deviation.
  LinearOptions& WeightInit(dlb::Init scheme, double std_dev = 0.01) {
    init = scheme;
    init_std = std_dev;
    return *this;
  }

  static constexpr const char* kType = "Linear";
  static constexpr auto Arguments() {
    return std::tuple{Required("in", &LinearOptions::in), Required("out", &LinearOptions::out),
                      Optional("init", &LinearOptions::init),
                      Optional("init_std", &LinearOptions::init_std)};
  }
  /// Throws ArgumentError unless in >= 1, out >= 1 and init_std is finite and >= 0.
  void Validate() const {
    if (in < 1 || out < 1) {
      throw ArgumentError("Linear(" + std::to_string(in) + " -> " + std::to_string(out) +
                          "): both sizes must be >= 1");
    }
    RequireInitStd("Linear", init_std);
  }
  /// "weight" {out, in} and "bias" {out}.
  StateShapes TensorShapes() const { return {{out, in}, {out}}; }
};

/// Affine map Z = W X + b.
///
/// Shapes: X is in x batch, W is out x in, b is out x 1, Z is out x batch.
/// Backward: dW = dZ X^T, db = sum over columns of dZ, dX = W^T dZ.
/// W is drawn by the options' Init scheme; b starts at 0. A freshly constructed layer is
/// initialised from a fixed seed; ModelNN re-initialises it from the model's generator.
template <Scalar T = float>
class Linear : public DescribedBy<LinearOptions> {
 public:
  using Scalar = T;

  /// Throws ArgumentError for invalid options (see LinearOptions::Validate), or an init_std
  /// that T cannot hold; MemoryError when the weights and gradients, 2 (out * in + out) *
  /// sizeof(T) bytes, exceed the memory this process may have or cannot be allocated (see
  /// RequireMemory).
  explicit Linear(const LinearOptions& options);
  /// `Linear<float>(784, 350)`: in -> out features, weights drawn by `init`.
  Linear(Index in, Index out, dlb::Init init = dlb::Init::Kaiming, T init_std = T(0.01))
      : Linear(LinearOptions(in, out).WeightInit(init, static_cast<double>(init_std))) {}

  /// "Linear(784 -> 350)".
  std::string Name() const { return Name(weight_.cols(), weight_.rows()); }
  static LayerExample<Linear> Example() { return {Linear(3, 4), Shape(3)}; }
  /// Any input shape of in values (a C x H x W sample is read flattened); output {out}.
  Shape OutputShape(const Shape& input) const {
    RequireInputSize(input, weight_.cols());
    return Shape(weight_.rows());
  }
  /// Z = W X + b (the bias broadcast over the columns).
  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& z, Mode /*mode*/) {
    // The bias is written first and the product accumulated onto it: one pass over Z fewer
    // than zeroing, multiplying and adding the bias.
    z.resize(weight_.rows(), x.cols());
    ForColumnBlocks(z.rows(), z.cols(),
                    [&](Index c, Index n) { z.middleCols(c, n).colwise() = bias_.col(0); });
    Gemm<T>(Op::None, weight_, Op::None, x, z, T(1));
  }

  /// dW = dZ X^T, db = dZ 1, and dX = W^T dZ when dx is not null.
  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& /*z*/,
                const ConstMatrixRef<T>& dz, Matrix<T>* dx) {
    Gemm<T>(Op::None, dz, Op::Transpose, x, grad_weight_);
    ParallelRanges(dz.rows(), dz.cols(), [&](int, Index r, Index n) {
      grad_bias_.middleRows(r, n).noalias() = dz.middleRows(r, n).rowwise().sum();
    });
    if (dx != nullptr) Gemm<T>(Op::Transpose, weight_, Op::None, dz, *dx);
  }

  std::vector<Parameter<T>> Parameters() {
    // The weight's shape is explicit: a {out, 1} weight (one input) is torch's [out, 1], not
    // the [out] a one-column matrix would otherwise be saved as.
    return {{"weight", &weight_, &grad_weight_, {weight_.rows(), weight_.cols()}},
            {"bias", &bias_, &grad_bias_}};
  }

  /// Redraws W from the layer's Init scheme and zeroes b.
  void Init(Generator& gen) {
    InitializeWeights(weight_, options_.init, init_std_, gen);
    bias_.setZero();
  }

  const Matrix<T>& Weight() const { return weight_; }
  const Matrix<T>& Bias() const { return bias_; }
  Matrix<T>& Weight() { return weight_; }
  Matrix<T>& Bias() { return bias_; }

 private:
  static constexpr std::uint64_t kDefaultSeed = 0x5eed;

  static std::string Name(Index in, Index out) {
    return "Linear(" + std::to_string(in) + " -> " + std::to_string(out) + ")";
  }

  T init_std_;
  Matrix<T> weight_, bias_, grad_weight_, grad_bias_;
};

// Defined outside the class so that it is not inline: a program that links dlb::compiled
// (which declares Linear<float> and Linear<double> extern) takes it from the library.
template <Scalar T>
Linear<T>::Linear(const LinearOptions& options)
    : DescribedBy<LinearOptions>(options),
      init_std_(RepresentableAs<T>("Linear", "init_std", options.init_std)) {
  const std::string name = Name(options.in, options.out);
  const double elements =
      static_cast<double>(options.out) * (static_cast<double>(options.in) + 1.0);
  AllocateOrThrow(2.0 * elements * sizeof(T), name + ": its weights and gradients", [&] {
    weight_.resize(options.out, options.in);
    bias_.setZero(options.out, 1);
    grad_weight_.setZero(options.out, options.in);
    grad_bias_.setZero(options.out, 1);
  });
  Generator gen(kDefaultSeed);
  Init(gen);
}

}  // namespace dlb
