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
