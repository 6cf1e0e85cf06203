#pragma once
/// \file
/// Inverted dropout.

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"

namespace dlb {

/// The options of Dropout: the probability of dropping an element.
struct DropoutOptions {
  double p = 0.5;

  DropoutOptions() = default;
  DropoutOptions(double p_) : p(p_) {}  // NOLINT(google-explicit-constructor)

  static constexpr const char* kType = "Dropout";
  static constexpr auto Arguments() { return std::tuple{Optional("p", &DropoutOptions::p)}; }
  /// Throws ArgumentError unless 0 <= p < 1 (so NaN and infinities are rejected).
  void Validate() const {
    if (!(p >= 0 && p < 1)) {
      throw ArgumentError("Dropout: p (probability of dropping) must be in [0, 1), got " +
                          std::to_string(p));
    }
  }
  StateShapes TensorShapes() const { return {}; }
};

/// Drops each element with probability p during training and scales the kept ones by
/// 1 / (1 - p), so E[Y] = X; in inference Y = X.
///
/// Train:     M_ij = (u_ij >= p) / (1 - p) with u_ij ~ U[0, 1),  Y = M .* X,  dX = M .* dY.
/// Inference: Y = X, dX = dY.
/// The mask is drawn from the layer's own generator, reseeded by Init(gen) (ModelNN does
/// that), so a run is reproducible from the model's seed.
template <Scalar T = float>
class Dropout : public ElementwiseLayer, public DescribedBy<DropoutOptions> {
 public:
  using Scalar = T;

  /// p is the probability of dropping; throws ArgumentError unless 0 <= p < 1. `seed` seeds
  /// the mask generator until Init reseeds it (ModelNN does, from the model's generator).
  explicit Dropout(const DropoutOptions& options = {}, std::uint64_t seed = 0)
      : DescribedBy<DropoutOptions>(options), p_(static_cast<T>(options.p)), gen_(seed) {}
  explicit Dropout(T p, std::uint64_t seed = 0) : Dropout(DropoutOptions(static_cast<double>(p)), seed) {}

  /// "Dropout(0.3)": p with up to 6 significant digits.
  std::string Name() const {
    std::ostringstream text;
    text << "Dropout(" << options_.p << ")";
    return text.str();
  }
  T DropProbability() const { return p_; }
  static LayerExample<Dropout> Example() { return {Dropout(DropoutOptions(0.3)), Shape(5)}; }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) {
    last_mode_ = mode;
    y.resize(x.rows(), x.cols());
    if (mode == Mode::Inference || p_ == T(0)) {
      y = x;
      return;
    }
    mask_.resize(x.rows(), x.cols());
    const T keep_scale = T(1) / (T(1) - p_);
    T* mask = mask_.data();
    for (Index i = 0, n = mask_.size(); i < n; ++i) {
      mask[i] = SampleUniform<T>(gen_) >= p_ ? keep_scale : T(0);
    }
    y.array() = x.array() * mask_.array();
  }

  void Backward(const ConstMatrixRef<T>& /*x*/, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    if (dx == nullptr) return;
    dx->resize(dy.rows(), dy.cols());
    if (last_mode_ == Mode::Inference || p_ == T(0)) {
      *dx = dy;
    } else {
      dx->array() = dy.array() * mask_.array();
    }
  }

  /// Reseeds the mask generator from `gen`.
  void Init(Generator& gen) { gen_.seed(gen()); }

  /// The mask generator, needed to resume training bit for bit.
  std::vector<StateRef<T>> State() { return {{"generator", &gen_, StateKind::Resume}}; }

 private:
  T p_;
  Generator gen_;
  Matrix<T> mask_;
  Mode last_mode_ = Mode::Train;
};

}  // namespace dlb
