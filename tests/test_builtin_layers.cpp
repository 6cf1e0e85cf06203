// Every built-in layer type, as BuiltinLayers lists them, passes the public layer check
// (dlb::testing::CheckLayer: shapes, numeric gradients in double, state and spec round trips,
// copies, no allocation after the first batch) on its own example. A layer added to the list
// is checked here with no other change; one without Example() does not compile.
#include "support/eigen_no_malloc.hpp"  // first: Eigen's allocations are refused while forbidden

#include <catch2/catch.hpp>

#include <string>
#include <typeinfo>

#include "dlb/model/builtin_layers.hpp"
#include "dlb/model/layer_registry.hpp"
#include "dlb/testing/check_layer.hpp"
#include "support/allocation_counter.hpp"
#include "support/helpers.hpp"

namespace {

template <class L>
void Check() {
  static_assert(requires { L::Example(); },
                "a layer of BuiltinLayers needs `static LayerExample<L> Example()`");
  dlb::LayerExample<L> example = L::Example();
  INFO(example.layer.Name());
  dlb::testing::CheckLayerOptions options;
  options.allocation_count = [] { return dlb_test::Allocations(); };
  const dlb::testing::CheckLayerReport report =
      dlb::testing::CheckLayer(std::move(example.layer), example.input, options);
  CHECK(report.checks.size() == 6);  // shapes, gradients, state, spec, copies, allocations
  CHECK(report.worst_gradient_error < 1e-6);
}

template <class... Layers>
void CheckAll(dlb::LayerList<Layers...>) {
  (Check<Layers>(), ...);
}

template <class... Layers>
std::size_t Count(dlb::LayerList<Layers...>) {
  return sizeof...(Layers);
}

}  // namespace

TEST_CASE("every built-in layer passes dlb::testing::CheckLayer", "[layers]") {
  CheckAll(dlb::BuiltinLayers<double>{});
}

TEST_CASE("the default registry builds every listed layer type, and only those", "[layers]") {
  const auto types = dlb::DefaultLayerRegistry<float>().Types();
  CHECK(types.size() == Count(dlb::BuiltinLayers<float>{}));
  for (const char* type : {"Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout", "Conv2D",
                           "MaxPool2D", "AvgPool2D", "GlobalAvgPool", "BatchNorm1D", "BatchNorm2D",
                           "Sequential", "Residual", "Concat"}) {
    CHECK(dlb::DefaultLayerRegistry<float>().Contains(type));
  }
}

namespace {
/// A layer with a wrong gradient: CheckLayer must refuse it (the check can fail).
template <dlb::Scalar T>
struct WrongGradient : dlb::ElementwiseLayer {
  using Scalar = T;
  std::string Name() const { return "WrongGradient"; }
  void Forward(const dlb::ConstMatrixRef<T>& x, dlb::Matrix<T>& y, dlb::Mode) {
    y = x.array().square().matrix();
  }
  void Backward(const dlb::ConstMatrixRef<T>& x, const dlb::ConstMatrixRef<T>&,
                const dlb::ConstMatrixRef<T>& dy, dlb::Matrix<T>* dx) {
    *dx = (dy.array() * x.array()).matrix();  // should be 2 x dy
  }
};

/// Y = X^2 whose dX is off by `offset`, relative to the gradient: CheckLayer must refuse even a
/// small error on small entries.
template <dlb::Scalar T>
struct SlightlyWrongGradient : dlb::ElementwiseLayer {
  using Scalar = T;
  T offset = 0;
  std::string Name() const { return "SlightlyWrongGradient"; }
  void Forward(const dlb::ConstMatrixRef<T>& x, dlb::Matrix<T>& y, dlb::Mode) {
    y = (T(1e-3) * x.array().square()).matrix();
  }
  void Backward(const dlb::ConstMatrixRef<T>& x, const dlb::ConstMatrixRef<T>&,
                const dlb::ConstMatrixRef<T>& dy, dlb::Matrix<T>* dx) {
    *dx = (T(2e-3) * (T(1) + offset) * dy.array() * x.array()).matrix();
  }
};

/// Y = 1 whatever X: dX is zero, and this Backward gives rounding noise (1e-13 dY) instead,
/// as a real layer does where a gradient vanishes in exact arithmetic only (a bias before a
/// batch norm).
template <dlb::Scalar T>
struct VanishingGradient : dlb::ElementwiseLayer {
  using Scalar = T;
  std::string Name() const { return "VanishingGradient"; }
  void Forward(const dlb::ConstMatrixRef<T>& x, dlb::Matrix<T>& y, dlb::Mode) {
    y = dlb::Matrix<T>::Ones(x.rows(), x.cols());
  }
  void Backward(const dlb::ConstMatrixRef<T>&, const dlb::ConstMatrixRef<T>&,
                const dlb::ConstMatrixRef<T>& dy, dlb::Matrix<T>* dx) {
    *dx = T(1e-13) * dy;
  }
};

/// A layer that allocates a fresh buffer in every Forward.
template <dlb::Scalar T>
struct AllocatingLayer : dlb::ElementwiseLayer {
  using Scalar = T;
  std::string Name() const { return "AllocatingLayer"; }
  void Forward(const dlb::ConstMatrixRef<T>& x, dlb::Matrix<T>& y, dlb::Mode) {
    dlb::Matrix<T> scratch = x;  // allocates every time
    y = scratch;
  }
  void Backward(const dlb::ConstMatrixRef<T>&, const dlb::ConstMatrixRef<T>&,
                const dlb::ConstMatrixRef<T>& dy, dlb::Matrix<T>* dx) {
    *dx = dy;
  }
};
}  // namespace

TEST_CASE("CheckLayer refuses a wrong gradient and an allocating layer", "[layers]") {
  REQUIRE_THROWS_MATCHES(dlb::testing::CheckLayer(WrongGradient<double>(), dlb::Shape(4)),
                         dlb::testing::LayerCheckError,
                         dlb_test::MessageContains({"CheckLayer(WrongGradient), gradients: dX"}));
  REQUIRE_THROWS_MATCHES(dlb::testing::CheckLayer(AllocatingLayer<double>(), dlb::Shape(4)),
                         dlb::testing::LayerCheckError,
                         dlb_test::MessageContains({"CheckLayer(AllocatingLayer), allocations: Eigen allocated"}));
}

TEST_CASE("CheckLayer holds small gradients to the difference quotient's rounding noise",
          "[layers]") {
  // Gradients of 2e-4 to 2e-3 off by 1e-5 of their value (|a - n| / (|a| + |n|) = 5e-6) are
  // refused, with the numbers in the message in full; off by 1e-9, they pass.
  SlightlyWrongGradient<double> wrong;
  wrong.offset = 1e-5;
  REQUIRE_THROWS_MATCHES(
      dlb::testing::CheckLayer(wrong, dlb::Shape(4)), dlb::testing::LayerCheckError,
      dlb_test::MessageContains({"CheckLayer(SlightlyWrongGradient), gradients: dX entry ",
                                 "(relative error 4.99", "e-06)"}));
  wrong.offset = 1e-9;
  CHECK(dlb::testing::CheckLayer(wrong, dlb::Shape(4)).worst_gradient_error < 1e-8);
  // A gradient that vanishes in exact arithmetic: noise of 1e-13 against a quotient of 0 is
  // no error (with a fixed floor of 1e-8 it was a relative error of 1e-5, and the check
  // failed for a convolution's bias before a batch norm at -O3 -march=native).
  CHECK(dlb::testing::CheckLayer(VanishingGradient<double>(), dlb::Shape(4)).worst_gradient_error <
        1e-6);
}
