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
#include "dlb/layers/layer_spec.hpp"

namespace dlb {

/// Affine map Z = W X + b.
///
/// Shapes: X is in x batch, W is out x in, b is out x 1, Z is out x batch.
/// Backward: dW = dZ X^T, db = sum over columns of dZ, dX = W^T dZ.
/// W is drawn by `init` (see Init); b starts at 0. A freshly constructed layer is
/// initialised from a fixed seed; ModelNN re-initialises it from the model's generator.
template <Scalar T = float>
class Linear {
 public:
  using Scalar = T;

  /// Throws ArgumentError unless in >= 1, out >= 1 and init_std is finite and >= 0 (it is
  /// used by Init::Const only, but checked always); MemoryError when the weights and
  /// gradients, 2 (out * in + out) * sizeof(T) bytes, exceed the memory this process may have
  /// or cannot be allocated (see RequireMemory).
  Linear(Index in, Index out, dlb::Init init = dlb::Init::Kaiming, T init_std = T(0.01))
      : init_(init), init_std_(init_std) {
    const std::string name = "Linear(" + std::to_string(in) + " -> " + std::to_string(out) + ")";
    if (in < 1 || out < 1) throw ArgumentError(name + ": both sizes must be >= 1");
    if (!(init_std >= T(0)) || !std::isfinite(init_std)) {
      throw ArgumentError("Linear: init_std must be finite and >= 0, got " +
                          std::to_string(init_std));
    }
    const double elements = static_cast<double>(out) * (static_cast<double>(in) + 1.0);
    AllocateOrThrow(2.0 * elements * sizeof(T), name + ": its weights and gradients", [&] {
      weight_.resize(out, in);
      bias_.setZero(out, 1);
      grad_weight_.setZero(out, in);
      grad_bias_.setZero(out, 1);
    });
    Generator gen(kDefaultSeed);
    Init(gen);
  }

  std::string Name() const {
    return "Linear(" + std::to_string(weight_.cols()) + " -> " + std::to_string(weight_.rows()) +
           ")";
  }
  /// Any input shape of in values (a C x H x W sample is read flattened); output {out}.
  Shape OutputShape(const Shape& input) const {
    RequireInputSize(input, weight_.cols());
    return Shape(weight_.rows());
  }
  LayerSpec Spec() const {
    return {"Linear",
            {{"in", std::int64_t{weight_.cols()}},
             {"out", std::int64_t{weight_.rows()}},
             {"init", std::string(InitName(init_))},
             {"init_std", static_cast<double>(init_std_)}}};
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
    return {{"weight", &weight_, &grad_weight_}, {"bias", &bias_, &grad_bias_}};
  }

  /// Redraws W from the layer's Init scheme and zeroes b.
  void Init(Generator& gen) {
    InitializeWeights(weight_, init_, init_std_, gen);
    bias_.setZero();
  }

  const Matrix<T>& Weight() const { return weight_; }
  const Matrix<T>& Bias() const { return bias_; }
  Matrix<T>& Weight() { return weight_; }
  Matrix<T>& Bias() { return bias_; }

 private:
  static constexpr std::uint64_t kDefaultSeed = 0x5eed;

  dlb::Init init_;
  T init_std_;
  Matrix<T> weight_, bias_, grad_weight_, grad_bias_;
};

}  // namespace dlb
