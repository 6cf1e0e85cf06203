#pragma once
/// \file
/// CheckLayer: the checks every layer must pass, as a public function, so that a layer of
/// yours is tested exactly as the built-in ones are (dlib's test_layer is the model).
///
/// ```
///   #include <dlb/testing/check_layer.hpp>
///   dlb::testing::CheckLayer(Scale<double>(2.0), dlb::Shape(3, 4, 4));   // throws on failure
/// ```
/// The layer must be instantiated for double (the gradients are checked numerically). Each
/// check that fails throws LayerCheckError naming the layer, the check and the numbers.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/model/layer_registry.hpp"
#include "dlb/testing/numeric_gradient.hpp"
#ifndef DLB_PUBLIC_HEADER
#define DLB_PUBLIC_HEADER
#endif
#include "dlb/model/internal/any_layer.hpp"

namespace dlb::testing {

/// A check of CheckLayer failed; what() names the layer, the check and the numbers.
class LayerCheckError : public Error {
 public:
  using Error::Error;
};

/// How CheckLayer runs.
struct CheckLayerOptions {
  Index batch = 3;             ///< samples per batch
  std::uint64_t seed = 1;      ///< of the input, the output weights of the objective, the init
  /// The largest relative error of a gradient entry; entries below the difference quotient's
  /// rounding noise, eps sum|R .* Y| / step, are held to that noise in absolute terms.
  double tolerance = 1e-6;
  double step = 1e-4;          ///< the finite-difference step h
  Mode mode = Mode::Train;     ///< the mode of the passes
  /// The input batch (input.Size() x batch); by default distinct values of magnitude 0.1 to
  /// 1.1 spaced 4h or more apart, so that no kink of max, ReLU or max pooling lies between
  /// two of the points a difference quotient uses.
  std::optional<Matrix<double>> input;
  /// Counts the heap allocations of the program so far (e.g. a replaced global operator new);
  /// when given, a second batch of the same size must allocate nothing.
  std::function<long()> allocation_count;
  /// Rebuilds layers from their Spec() for the round trip; DefaultLayerRegistry<double>() by
  /// default (a layer type it does not know skips that check).
  const LayerRegistry<double>* registry = nullptr;
};

/// What CheckLayer did.
struct CheckLayerReport {
  std::vector<std::string> checks;  ///< the checks that ran and passed
  double worst_gradient_error = 0;  ///< the largest relative error seen
};

namespace internal {

/// A gradient entry in a message: 6 significant digits ("3.70074e-13", not "0.000000").
inline std::string GradientText(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

inline Matrix<double> CheckInput(Index rows, Index cols, std::uint64_t seed, double step) {
  // rows * cols distinct magnitudes 0.1, 0.1 + d, ... (d >= 4 h), shuffled, random signs.
  const Index n = rows * cols;
  const double spacing = std::max(4 * step, 1.0 / static_cast<double>(std::max<Index>(n, 1)));
  std::vector<double> values(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = 0.1 + spacing * static_cast<double>(i);
  Generator gen(seed);
  for (std::size_t i = values.size(); i > 1; --i) std::swap(values[i - 1], values[SampleIndex(gen, i)]);
  Matrix<double> x(rows, cols);
  for (Index i = 0; i < n; ++i) {
    x.data()[i] = (SampleUniform<double>(gen) < 0.5 ? -1 : 1) * values[static_cast<std::size_t>(i)];
  }
  return x;
}

}  // namespace internal

/// Checks `layer` (a dlb::Layer with Scalar double) on batches of `input_shape` samples:
/// 1. shapes: OutputShape accepts `input_shape` and Forward writes output-size x batch;
/// 2. gradients: Backward's dX and every parameter gradient equal the numeric derivatives of
///    sum(R .* Forward(X)) (fourth-order central differences, fixed random R) to
///    options.tolerance; random state (a dropout mask) is restored before each pass so the
///    function is deterministic;
/// 3. state: SaveState/LoadState-style round trip of every tensor (parameters, buffers,
///    generators) restores the outputs bit for bit, and the tensors' shapes are those the
///    options announce (Options::TensorShapes, what the registry's memory bound relies on);
/// 4. spec: a layer with Spec() rebuilt through the registry has the same spec and, given
///    the same state, the same outputs bit for bit;
/// 5. copies: a copy computes the same outputs;
/// 6. allocations: with options.allocation_count, a second Forward and Backward of the same
///    batch size allocate nothing.
/// Throws LayerCheckError at the first failure; returns what ran.
template <Layer L>
CheckLayerReport CheckLayer(L layer, const Shape& input_shape, const CheckLayerOptions& options = {}) {
  static_assert(std::is_same_v<typename L::Scalar, double>,
                "dlb::testing::CheckLayer checks gradients numerically: instantiate the layer for double");
  CheckLayerReport report;
  const std::string who = layer.Name();
  const auto fail = [&](const std::string& check, const std::string& problem) {
    throw LayerCheckError("CheckLayer(" + who + "), " + check + ": " + problem);
  };
  auto adapter = dlb::internal::MakeLayerPointer(std::move(layer));
  dlb::internal::AnyLayer<double>& any = *adapter;
  Generator init(options.seed);
  any.Init(init);

  // 1. Shapes.
  Shape output;
  try {
    output = any.OutputShape(input_shape);
    any.SetInputShape(input_shape);
  } catch (const Error& error) {
    fail("shapes", std::string("the input shape ") + input_shape.ToString() + " is refused: " + error.what());
  }
  if (!output.IsValid()) fail("shapes", "OutputShape gives an invalid shape");
  Matrix<double> x = options.input ? *options.input
                                   : internal::CheckInput(input_shape.Size(), options.batch,
                                                          options.seed, options.step);
  if (x.rows() != input_shape.Size()) fail("shapes", "options.input has the wrong number of rows");
  Matrix<double> y;
  // Random state (generators: StateKind::Resume) restored before each pass makes the pass a
  // function of the input and the parameters.
  const auto random_refs = [&] {
    std::vector<StateRef<double>> refs;
    for (auto& ref : any.AllState()) {
      if (ref.kind == StateKind::Resume) refs.push_back(std::move(ref));
    }
    return refs;
  };
  StateDict random_state;
  CollectState(random_refs(), StateScope::Checkpoint, random_state);
  const auto restore_random = [&] {
    RestoreState(random_refs(), StateScope::Checkpoint, random_state, "CheckLayer");
  };
  restore_random();
  any.Forward(x, y, options.mode);
  if (y.rows() != output.Size() || y.cols() != x.cols()) {
    fail("shapes", "Forward wrote " + std::to_string(y.rows()) + " x " + std::to_string(y.cols()) +
                       ", expected " + std::to_string(output.Size()) + " x " + std::to_string(x.cols()));
  }
  report.checks.push_back("shapes");

  // 2. Gradients of f = sum(R .* Y).
  Generator gen(options.seed + 1);
  Matrix<double> r(y.rows(), y.cols());
  for (Index i = 0; i < r.size(); ++i) r.data()[i] = 2 * SampleUniform<double>(gen) - 1;
  const auto objective = [&] {
    restore_random();
    any.Forward(x, y, options.mode);
    return (r.array() * y.array()).sum();
  };
  const auto numeric = [&](Matrix<double>& values) {
    return NumericGradient(objective, values, options.step);
  };
  const Matrix<double> numeric_dx = numeric(x);
  std::vector<Matrix<double>> numeric_params;
  for (auto& p : any.Parameters()) numeric_params.push_back(numeric(*p.value));
  objective();  // back at the unperturbed point, where Backward runs
  // Entries within the difference quotients' rounding noise pass (see ErrorFloor).
  const double error_floor =
      ErrorFloor((r.array() * y.array()).abs().sum(), options.step, options.tolerance);
  const auto compare = [&](const std::string& what, const Matrix<double>& analytic,
                           const Matrix<double>& expected) {
    if (analytic.rows() != expected.rows() || analytic.cols() != expected.cols()) {
      fail("gradients", what + " has the wrong shape");
    }
    for (Index i = 0; i < analytic.size(); ++i) {
      const double error =
          RelativeError(analytic.data()[i], expected.data()[i], error_floor);
      report.worst_gradient_error = std::max(report.worst_gradient_error, error);
      if (!(error <= options.tolerance)) {
        fail("gradients", what + " entry " + std::to_string(i) + ": Backward gives " +
                              internal::GradientText(analytic.data()[i]) +
                              ", the difference quotient " +
                              internal::GradientText(expected.data()[i]) + " (relative error " +
                              internal::GradientText(error) + ")");
      }
    }
  };
  Matrix<double> dx;
  any.Backward(x, y, r, &dx);
  compare("dX", dx, numeric_dx);
  std::size_t k = 0;
  for (auto& p : any.Parameters()) compare("the gradient of " + p.name, *p.grad, numeric_params[k++]);
  report.checks.push_back("gradients");

  // 3. State: tensor shapes as announced, and a round trip that restores the outputs.
  if constexpr (requires { typename L::Options; }) {
    const auto* concrete = static_cast<const L*>(any.Concrete());
    if constexpr (requires { concrete->GetOptions().TensorShapes(); }) {
      StateShapes announced = concrete->GetOptions().TensorShapes();
      StateShapes actual;
      for (const auto& ref : any.AllState()) {
        if (std::holds_alternative<Matrix<double>*>(ref.value) ||
            std::holds_alternative<std::int64_t*>(ref.value)) {
          actual.push_back(StateShape(ref));
        }
      }
      // Blocks announce nothing of their own: their children's state is checked through them.
      if (!announced.empty() || actual.empty() || any.Children().empty()) {
        if (announced != actual) {
          fail("state", "the tensors' shapes differ from Options::TensorShapes(), which the "
                        "registry's memory bound uses");
        }
      }
    }
  }
  // Every piece of state (parameters, buffers, generators) as it is now: the reference.
  restore_random();
  StateDict saved;
  CollectState(any.AllState(), StateScope::Checkpoint, saved);
  const auto restore_saved = [&](dlb::internal::AnyLayer<double>& target) {
    RestoreState(target.AllState(), StateScope::Checkpoint, saved, "CheckLayer");
  };
  any.Forward(x, y, options.mode);
  const Matrix<double> reference = y;
  const auto same_as_reference = [&](dlb::internal::AnyLayer<double>& other) {
    restore_saved(other);
    Matrix<double> other_y;
    other.Forward(x, other_y, options.mode);
    return other_y.rows() == reference.rows() && other_y.cols() == reference.cols() &&
           (other_y.array() == reference.array()).all();
  };
  {
    for (auto& p : any.Parameters()) p.value->setConstant(0.5);  // scramble, then restore
    if (!same_as_reference(any)) fail("state", "restoring the saved state does not restore the outputs");
  }
  report.checks.push_back("state");

  // 4. Spec round trip.
  if (std::optional<LayerSpec> spec = any.Spec()) {
    const LayerRegistry<double>& registry =
        options.registry != nullptr ? *options.registry : DefaultLayerRegistry<double>();
    if (registry.Contains(spec->type)) {
      BuildBudget budget;
      dlb::internal::LayerPointer<double> rebuilt = registry.Build(*spec, budget);
      if (rebuilt->Spec() != spec) fail("spec", "the layer rebuilt from its spec has another spec");
      rebuilt->SetInputShape(input_shape);
      if (!same_as_reference(*rebuilt)) {
        fail("spec", "the layer rebuilt from its spec, with the same state, computes other outputs");
      }
      report.checks.push_back("spec");
    }
  }

  // 5. Copies.
  dlb::internal::LayerPointer<double> copy = any.Clone();
  if (!same_as_reference(*copy)) fail("copies", "a copy computes other outputs");
  report.checks.push_back("copies");

  // 6. Allocations after the first batch: Eigen's (refused while forbidden, when the program
  // defines EIGEN_RUNTIME_NO_MALLOC) and those through operator new (options.allocation_count).
  constexpr bool kEigenCheck =
#ifdef EIGEN_RUNTIME_NO_MALLOC
      true;
#else
      false;
#endif
  if (options.allocation_count || kEigenCheck) {
    any.Forward(x, y, options.mode);
    any.Backward(x, y, r, &dx);
    const long before = options.allocation_count ? options.allocation_count() : 0;
    try {
#ifdef EIGEN_RUNTIME_NO_MALLOC
      Eigen::internal::set_is_malloc_allowed(false);
#endif
      any.Forward(x, y, options.mode);
      any.Backward(x, y, r, &dx);
#ifdef EIGEN_RUNTIME_NO_MALLOC
      Eigen::internal::set_is_malloc_allowed(true);
#endif
    } catch (...) {
#ifdef EIGEN_RUNTIME_NO_MALLOC
      Eigen::internal::set_is_malloc_allowed(true);
#endif
      fail("allocations", "Eigen allocated in a Forward and Backward of a batch size seen before");
    }
    const long made = options.allocation_count ? options.allocation_count() - before : 0;
    if (made != 0) {
      fail("allocations", std::to_string(made) + " heap allocation(s) in a Forward and Backward of "
                          "a batch size seen before");
    }
    report.checks.push_back("allocations");
  }
  return report;
}

}  // namespace dlb::testing
