// Update rules and the Optimizer: each rule over three steps against values computed
// independently (plain Python floats, from the formulas in the comments), weight decay,
// the step counter, learning-rate changes, argument validation and convergence.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/adamw.hpp"
#include "dlb/optimizers/momentum.hpp"
#include "dlb/optimizers/nesterov.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/optimizers/sgd.hpp"
#include "dlb/optimizers/make_optimizer.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/model/model.hpp"
#include <type_traits>
#include "support/helpers.hpp"

using Catch::Matchers::Contains;
using dlb::Index;
using dlb::Matrix;
using dlb_test::What;

namespace {

// Every hand-computed sequence starts from p0 = (1, -2) and is fed the gradients
// g1 = (0.5, -1), g2 = (-0.3, 0.8), g3 = (0.2, 0.1) -- given, not computed from p.
constexpr double kP0[2] = {1.0, -2.0};
constexpr double kGrads[3][2] = {{0.5, -1.0}, {-0.3, 0.8}, {0.2, 0.1}};

using Trajectory = std::vector<std::vector<double>>;  // [step][coordinate]

/// Parameter values after each of the three Optimizer::Step() calls with `rule`.
/// `before_step(optimizer, t)` runs before step t (1-based), e.g. to change the learning rate.
template <class Rule, class BeforeStep>
Trajectory Run(Rule rule, BeforeStep before_step) {
  using T = typename Rule::Scalar;
  Matrix<T> p(2, 1), g(2, 1);
  p << static_cast<T>(kP0[0]), static_cast<T>(kP0[1]);
  g.setZero();
  dlb::Optimizer<T> optimizer(std::vector<dlb::Parameter<T>>{{"p", &p, &g}}, rule);
  Trajectory out;
  for (int t = 1; t <= 3; ++t) {
    g << static_cast<T>(kGrads[t - 1][0]), static_cast<T>(kGrads[t - 1][1]);
    before_step(optimizer, t);
    optimizer.Step();
    out.push_back({static_cast<double>(p(0)), static_cast<double>(p(1))});
  }
  CHECK(optimizer.StepCount() == 3);
  return out;
}

template <class Rule>
Trajectory Run(Rule rule) {
  return Run(rule, [](auto&, int) {});
}

template <class T>
constexpr double Tolerance() {
  return std::is_same_v<T, float> ? 2e-6 : 1e-13;
}

void CheckTrajectory(const Trajectory& actual, const Trajectory& expected, double tol) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t t = 0; t < expected.size(); ++t) {
    for (std::size_t i = 0; i < 2; ++i) {
      INFO("step " << t + 1 << ", coordinate " << i);
      CHECK(actual[t][i] == Approx(expected[t][i]).epsilon(tol));
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Hand-computed trajectories

TEMPLATE_TEST_CASE("SGD: p = p - lr (g + wd p)", "", float, double) {
  using T = TestType;
  // wd = 0: p_t = p_{t-1} - 0.1 g_t.
  CheckTrajectory(Run(dlb::SGD<T>(T(0.1))),
                  {{0.95, -1.9}, {0.98, -1.98}, {0.96, -1.99}}, Tolerance<T>());
  // wd = 0.05: p_t = p_{t-1} - 0.1 (g_t + 0.05 p_{t-1}).
  CheckTrajectory(Run(dlb::SGD<T>(T(0.1), T(0.05))),
                  {{0.945, -1.89}, {0.970275, -1.96055}, {0.945423625, -1.96074725}},
                  Tolerance<T>());
}

TEMPLATE_TEST_CASE("Momentum: b = beta b + (g + wd p), p = p - lr b", "", float, double) {
  using T = TestType;
  // lr 0.1, beta 0.9, wd 0.
  CheckTrajectory(Run(dlb::Momentum<T>(T(0.1), T(0.9))),
                  {{0.95, -1.9}, {0.935, -1.89}, {0.9015, -1.891}}, Tolerance<T>());
  // lr 0.1, beta 0.9, wd 0.05 (folded into g before the velocity).
  CheckTrajectory(Run(dlb::Momentum<T>(T(0.1), T(0.9), T(0.05))),
                  {{0.945, -1.89},
                   {0.920775, -1.86155},
                   {0.874368625, -1.83663725}},
                  Tolerance<T>());
}

TEMPLATE_TEST_CASE("Nesterov: b = beta b + (g + wd p), p = p - lr ((g + wd p) + beta b)", "",
                   float, double) {
  using T = TestType;
  // lr 0.1, beta 0.9, wd 0.
  CheckTrajectory(Run(dlb::Nesterov<T>(T(0.1), T(0.9))),
                  {{0.905, -1.81}, {0.9215, -1.881}, {0.87135, -1.8919}}, Tolerance<T>());
  // lr 0.1, beta 0.9, wd 0.05.
  CheckTrajectory(Run(dlb::Nesterov<T>(T(0.1), T(0.9), T(0.05))),
                  {{0.8955, -1.791},
                   {0.89944275, -1.8368855},
                   {0.833476268875, -1.81579153775}},
                  Tolerance<T>());
}

TEMPLATE_TEST_CASE("Adam: bias-corrected moments, L2 weight decay in the gradient", "", float,
                   double) {
  using T = TestType;
  // g' = g + wd p;  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;
  // p = p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
  // lr 0.1, b1 0.9, b2 0.999, eps 1e-8. At t = 1 the corrections make the step
  // lr g / (|g| + eps), i.e. 0.1 per coordinate: without them it would be ~0.32.
  CheckTrajectory(Run(dlb::Adam<T>(T(0.1), T(0.9), T(0.999), T(1e-8))),
                  {{0.900000002, -1.900000001},
                   {0.8808501989417752, -1.8941874963340561},
                   {0.846107430790882, -1.8946852102195573}},
                  Tolerance<T>());
  // Same with wd = 0.05.
  CheckTrajectory(Run(dlb::Adam<T>(T(0.1), T(0.9), T(0.999), T(1e-8), T(0.05))),
                  {{0.9000000018181818, -1.900000000909091},
                   {0.8705286954991474, -1.883762032693679},
                   {0.8255612626628323, -1.8714945668857144}},
                  Tolerance<T>());
  // b1 0.5, b2 0.9: other betas, so a swapped beta1/beta2 would show.
  CheckTrajectory(Run(dlb::Adam<T>(T(0.1), T(0.5), T(0.9), T(1e-8))),
                  {{0.900000002, -1.900000001},
                   {0.9081865395501975, -1.9222150067966062},
                   {0.8792432765892306, -1.9421191684519539}},
                  Tolerance<T>());
}

TEMPLATE_TEST_CASE("AdamW: decoupled weight decay p = p (1 - lr wd) before the Adam step", "",
                   float, double) {
  using T = TestType;
  // lr 0.1, b1 0.9, b2 0.999, eps 1e-8, wd 0.05: the moments see the raw gradient.
  CheckTrajectory(Run(dlb::AdamW<T>(T(0.1), T(0.9), T(0.999), T(1e-8), T(0.05))),
                  {{0.895000002, -1.890000001},
                   {0.8713751989317752, -1.8747374963290562},
                   {0.8322755547862232, -1.865861522732912}},
                  Tolerance<T>());
  // wd = 0: identical to Adam.
  CheckTrajectory(Run(dlb::AdamW<T>(T(0.1), T(0.9), T(0.999), T(1e-8), T(0))),
                  {{0.900000002, -1.900000001},
                   {0.8808501989417752, -1.8941874963340561},
                   {0.846107430790882, -1.8946852102195573}},
                  Tolerance<T>());
}

TEST_CASE("AdamW and Adam differ in where the decay goes: zero gradients") {
  // With g = 0 AdamW's moments stay 0 and only the decay acts: p_t = p0 (1 - lr wd)^t,
  // here (1, -2) * 0.95^3 = (0.857375, -1.71475).
  Matrix<double> p(2, 1), g = Matrix<double>::Zero(2, 1);
  p << 1, -2;
  dlb::Optimizer<double> adamw(std::vector<dlb::Parameter<double>>{{"p", &p, &g}},
                               dlb::AdamW<double>(0.1, 0.9, 0.999, 1e-8, 0.5));
  for (int t = 0; t < 3; ++t) adamw.Step();
  CHECK(p(0) == Approx(0.857375).epsilon(1e-14));
  CHECK(p(1) == Approx(-1.71475).epsilon(1e-14));

  // Adam with the same decay feeds wd p = (0.5, -1) = g1 into the moments: its first step is
  // the first Adam step above.
  p << 1, -2;
  dlb::Optimizer<double> adam(std::vector<dlb::Parameter<double>>{{"p", &p, &g}},
                              dlb::Adam<double>(0.1, 0.9, 0.999, 1e-8, 0.5));
  adam.Step();
  CHECK(p(0) == Approx(0.900000002).epsilon(1e-14));
  CHECK(p(1) == Approx(-1.900000001).epsilon(1e-14));
}

// ---------------------------------------------------------------------------------------
// Optimizer mechanics

TEST_CASE("Optimizer: the step counter advances once per Step, shared by all blocks") {
  // Two blocks of different shapes fed the same values: each must follow the single-block
  // Adam trajectory, i.e. see t = 1, 2, 3 (not t = 1, 2 for the two blocks of step 1).
  Matrix<double> a(2, 1), ga(2, 1), b(1, 2), gb(1, 2);
  a << 1, -2;
  b << 1, -2;
  dlb::Optimizer<double> optimizer(
      std::vector<dlb::Parameter<double>>{{"a", &a, &ga}, {"b", &b, &gb}},
      dlb::Adam<double>(0.1, 0.9, 0.999, 1e-8));
  CHECK(optimizer.StepCount() == 0);
  const Trajectory expected = {{0.900000002, -1.900000001},
                               {0.8808501989417752, -1.8941874963340561},
                               {0.846107430790882, -1.8946852102195573}};
  for (int t = 0; t < 3; ++t) {
    ga << kGrads[t][0], kGrads[t][1];
    gb << kGrads[t][0], kGrads[t][1];
    optimizer.Step();
    CHECK(optimizer.StepCount() == t + 1);
    for (Index i = 0; i < 2; ++i) {
      INFO("step " << t + 1 << ", coordinate " << i);
      CHECK(a(i) == Approx(expected[t][i]).epsilon(1e-13));
      CHECK(b(i) == Approx(expected[t][i]).epsilon(1e-13));
    }
  }
}

TEST_CASE("Optimizer: SetLearningRate takes effect on the next step") {
  auto lr_schedule = [](auto& optimizer, int t) {
    if (t == 2) {
      CHECK(optimizer.LearningRate() == 0.1);
      optimizer.SetLearningRate(0.05);
      CHECK(optimizer.LearningRate() == 0.05);
    }
  };
  // SGD with lr 0.1 for step 1, 0.05 afterwards.
  CheckTrajectory(Run(dlb::SGD<double>(0.1), lr_schedule),
                  {{0.95, -1.9}, {0.965, -1.94}, {0.955, -1.945}}, 1e-14);

  // Adam with lr 0.1 for step 1, 0.01 afterwards (moments and t carry on).
  auto adam_schedule = [](auto& optimizer, int t) {
    if (t == 2) optimizer.SetLearningRate(0.01);
  };
  CheckTrajectory(Run(dlb::Adam<double>(0.1, 0.9, 0.999, 1e-8), adam_schedule),
                  {{0.900000002, -1.900000001},
                   {0.8980850216941775, -1.8994187505334057},
                   {0.8946107448790882, -1.8994685219219558}},
                  1e-13);
}

TEST_CASE("Optimizer: names, and parameter blocks checked at construction") {
  Matrix<float> p = Matrix<float>::Zero(2, 3), g = Matrix<float>::Zero(2, 3);
  Matrix<float> wrong = Matrix<float>::Zero(3, 2);
  using Params = std::vector<dlb::Parameter<float>>;
  CHECK(dlb::Optimizer<float>(Params{{"p", &p, &g}}, dlb::SGD<float>(0.1f)).Name() == "SGD");
  CHECK(dlb::Optimizer<float>(Params{{"p", &p, &g}}, dlb::Momentum<float>(0.1f)).Name() ==
        "Momentum");
  CHECK(dlb::Optimizer<float>(Params{{"p", &p, &g}}, dlb::Nesterov<float>(0.1f)).Name() ==
        "Nesterov");
  CHECK(dlb::Optimizer<float>(Params{{"p", &p, &g}}, dlb::Adam<float>()).Name() == "Adam");
  CHECK(dlb::Optimizer<float>(Params{{"p", &p, &g}}, dlb::AdamW<float>()).Name() == "AdamW");
  CHECK(dlb::Optimizer(Params{{"p", &p, &g}}, dlb::Adam<float>()).Parameters().size() == 1);

  REQUIRE_THROWS_MATCHES(dlb::Optimizer<float>(Params{{"w", &p, &wrong}}, dlb::Adam<float>()),
                         dlb::ShapeError,
                         What(Contains("'w'") && Contains("2 x 3") && Contains("3 x 2")));
  REQUIRE_THROWS_MATCHES(dlb::Optimizer<float>(Params{{"w", &p, nullptr}}, dlb::SGD<float>(1)),
                         dlb::ArgumentError, What(Contains("'w'")));
}

TEST_CASE("Update rules reject invalid hyperparameters with ArgumentError") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float lr : {0.0f, -0.1f, nan, inf}) {
    INFO("lr = " << lr);
    REQUIRE_THROWS_MATCHES(dlb::SGD<float>(lr), dlb::ArgumentError,
                           What(Contains("SGD") && Contains("learning rate")));
    REQUIRE_THROWS_AS(dlb::Momentum<float>(lr), dlb::ArgumentError);
    REQUIRE_THROWS_AS(dlb::Nesterov<float>(lr), dlb::ArgumentError);
    REQUIRE_THROWS_MATCHES(dlb::Adam<float>(lr), dlb::ArgumentError,
                           What(Contains("Adam") && Contains("learning rate")));
    REQUIRE_THROWS_MATCHES(dlb::AdamW<float>(lr), dlb::ArgumentError,
                           What(Contains("AdamW") && Contains("learning rate")));
  }
  for (float beta : {1.0f, 1.5f, -0.1f, nan}) {
    INFO("beta = " << beta);
    REQUIRE_THROWS_MATCHES(dlb::Momentum<float>(0.1f, beta), dlb::ArgumentError,
                           What(Contains("Momentum") && Contains("beta")));
    REQUIRE_THROWS_AS(dlb::Nesterov<float>(0.1f, beta), dlb::ArgumentError);
    REQUIRE_THROWS_MATCHES(dlb::Adam<float>(0.1f, beta), dlb::ArgumentError,
                           What(Contains("beta1")));
    REQUIRE_THROWS_MATCHES(dlb::Adam<float>(0.1f, 0.9f, beta), dlb::ArgumentError,
                           What(Contains("beta2")));
    REQUIRE_THROWS_AS(dlb::AdamW<float>(0.1f, beta), dlb::ArgumentError);
    REQUIRE_THROWS_AS(dlb::AdamW<float>(0.1f, 0.9f, beta), dlb::ArgumentError);
  }
  for (float eps : {0.0f, -1e-8f, nan, inf}) {
    INFO("eps = " << eps);
    REQUIRE_THROWS_MATCHES(dlb::Adam<float>(0.1f, 0.9f, 0.999f, eps), dlb::ArgumentError,
                           What(Contains("eps")));
    REQUIRE_THROWS_AS(dlb::AdamW<float>(0.1f, 0.9f, 0.999f, eps), dlb::ArgumentError);
  }
  for (float wd : {-0.01f, nan, inf}) {
    INFO("weight_decay = " << wd);
    REQUIRE_THROWS_MATCHES(dlb::SGD<float>(0.1f, wd), dlb::ArgumentError,
                           What(Contains("weight_decay")));
    REQUIRE_THROWS_AS(dlb::Momentum<float>(0.1f, 0.9f, wd), dlb::ArgumentError);
    REQUIRE_THROWS_AS(dlb::Nesterov<float>(0.1f, 0.9f, wd), dlb::ArgumentError);
    REQUIRE_THROWS_AS(dlb::Adam<float>(0.1f, 0.9f, 0.999f, 1e-8f, wd), dlb::ArgumentError);
    REQUIRE_THROWS_AS(dlb::AdamW<float>(0.1f, 0.9f, 0.999f, 1e-8f, wd), dlb::ArgumentError);
  }
  // Boundary values that are valid.
  CHECK_NOTHROW(dlb::Momentum<float>(0.1f, 0.0f));
  CHECK_NOTHROW(dlb::Adam<float>(0.1f, 0.0f, 0.0f));
  CHECK_NOTHROW(dlb::SGD<float>(0.1f, 0.0f));

  // SetLearningRate validates too and leaves the old rate on failure.
  Matrix<float> p = Matrix<float>::Zero(1, 1), g = Matrix<float>::Zero(1, 1);
  dlb::Optimizer<float> optimizer(std::vector<dlb::Parameter<float>>{{"p", &p, &g}},
                                  dlb::Adam<float>(0.01f));
  for (float lr : {0.0f, -1.0f, nan, inf}) {
    REQUIRE_THROWS_AS(optimizer.SetLearningRate(lr), dlb::ArgumentError);
  }
  CHECK(optimizer.LearningRate() == 0.01f);
}

// ---------------------------------------------------------------------------------------
// Convergence

namespace {

/// Minimises f(p) = 1/2 sum_i a_i (p_i - c_i)^2 (optimum p = c, condition number 6) from
/// p = 0 for `steps` steps, halving the learning rate every `halve_every` steps (0 = never);
/// returns max_i |p_i - c_i|.
template <class Rule>
double MinimiseQuadratic(Rule rule, int steps, int halve_every) {
  using T = typename Rule::Scalar;
  Matrix<T> a(4, 1), c(4, 1);
  a << 1, 3, 0.5, 2;
  c << 3, -1, 0.5, -2;
  Matrix<T> p = Matrix<T>::Zero(4, 1), g(4, 1);
  dlb::Optimizer<T> optimizer(std::vector<dlb::Parameter<T>>{{"p", &p, &g}}, rule);
  for (int k = 1; k <= steps; ++k) {
    g = a.cwiseProduct(p - c);
    optimizer.Step();
    if (halve_every > 0 && k % halve_every == 0) {
      optimizer.SetLearningRate(optimizer.LearningRate() / 2);
    }
  }
  return static_cast<double>((p - c).cwiseAbs().maxCoeff());
}

}  // namespace

TEMPLATE_TEST_CASE("Every update rule converges on a convex quadratic", "", float, double) {
  using T = TestType;
  // The gradient-based rules converge linearly to rounding level; Adam's normalised step
  // needs a decaying learning rate to settle, and then gets within a few ulps too.
  const double tight = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  const double adam_tol = std::is_same_v<T, float> ? 1e-5 : 1e-10;
  CHECK(MinimiseQuadratic(dlb::SGD<T>(T(0.3)), 400, 0) < tight);
  CHECK(MinimiseQuadratic(dlb::Momentum<T>(T(0.1), T(0.8)), 400, 0) < tight);
  CHECK(MinimiseQuadratic(dlb::Nesterov<T>(T(0.1), T(0.8)), 400, 0) < tight);
  CHECK(MinimiseQuadratic(dlb::Adam<T>(T(0.1)), 3000, 300) < adam_tol);
  CHECK(MinimiseQuadratic(dlb::AdamW<T>(T(0.1), T(0.9), T(0.999), T(1e-8), T(0)), 3000, 300) <
        adam_tol);
  // Without enough steps the error is still large: the test measures progress.
  CHECK(MinimiseQuadratic(dlb::SGD<T>(T(0.3)), 3, 0) > 0.1);
}

// ---------------------------------------------------------------------------------------
// Misuse and state

// AdamW is a rule of its own: it cannot be used (and sliced) as an Adam.
static_assert(!std::is_base_of_v<dlb::Adam<float>, dlb::AdamW<float>>);
static_assert(!std::is_convertible_v<dlb::AdamW<float>&, dlb::Adam<float>&>);

TEST_CASE("AdamW and Adam with the same weight decay take different steps") {
  // Adam folds the decay into the gradient, AdamW shrinks the weight: with g = 0 Adam's
  // first step is lr * sign(wd p), AdamW's p (1 - lr wd) exactly.
  Matrix<double> p_adam = Matrix<double>::Constant(1, 1, 2.0), p_adamw = p_adam;
  Matrix<double> g = Matrix<double>::Zero(1, 1), g2 = g;
  dlb::Optimizer<double> adam({{"p", &p_adam, &g}}, dlb::Adam<double>(0.1, 0.9, 0.999, 1e-8, 0.5));
  dlb::Optimizer<double> adamw({{"p", &p_adamw, &g2}}, dlb::AdamW<double>(0.1, 0.9, 0.999, 1e-8, 0.5));
  adam.Step();
  adamw.Step();
  CHECK(p_adam(0) == Approx(2.0 - 0.1).epsilon(1e-6));
  CHECK(p_adamw(0) == Approx(2.0 * (1 - 0.1 * 0.5)).epsilon(1e-12));
  CHECK(adamw.Name() == "AdamW");
}

TEST_CASE("Optimizer::Step throws ShapeError when a parameter was resized after construction") {
  Matrix<float> w = Matrix<float>::Ones(4, 4), gw = Matrix<float>::Zero(4, 4);
  dlb::Optimizer<float> optimizer({{"0.weight", &w, &gw}}, dlb::Adam<float>(1e-3f));
  optimizer.Step();
  w = Matrix<float>::Ones(40, 40);
  REQUIRE_THROWS_MATCHES(optimizer.Step(), dlb::ShapeError,
                         What(Contains("'0.weight' was 4 x 4") && Contains("now 40 x 40")));
  CHECK(optimizer.StepCount() == 1);
  gw = Matrix<float>::Zero(40, 40);
  REQUIRE_THROWS_AS(optimizer.Step(), dlb::ShapeError);
  w = Matrix<float>::Ones(4, 4);
  REQUIRE_THROWS_AS(optimizer.Step(), dlb::ShapeError);  // the gradient is still 40 x 40
}

TEST_CASE("Optimizer::Step refuses to run after layers were added to its model") {
  dlb::ModelNN<float> model(3, 1);
  model.Add(dlb::Linear<float>(3, 4));
  dlb::Optimizer optimizer(model, dlb::SGD<float>(0.1f));
  model.Forward(Matrix<float>::Ones(3, 2));
  model.Backward(Matrix<float>::Ones(4, 2));
  CHECK_NOTHROW(optimizer.Step());
  model.Add(dlb::ReLU<float>()).Add(dlb::Linear<float>(4, 2));
  REQUIRE_THROWS_MATCHES(optimizer.Step(), dlb::Error,
                         What(Contains("layers were added to the model after this optimizer") &&
                              Contains("2 parameter blocks")));
}

TEST_CASE("Optimizer::SaveState/LoadState carry moments, step and learning rate") {
  Matrix<double> w = Matrix<double>::Constant(2, 3, 1.0), gw = Matrix<double>::Constant(2, 3, 0.5);
  dlb::Optimizer<double> optimizer({{"0.weight", &w, &gw}}, dlb::Adam<double>(0.01));
  optimizer.Step();
  optimizer.Step();
  optimizer.SetLearningRate(0.005);
  const dlb::StateDict state = optimizer.SaveState();
  std::vector<std::string> names;
  for (const auto& entry : state.Entries()) names.push_back(entry.first);
  CHECK(names == std::vector<std::string>{"0.weight.exp_avg", "0.weight.exp_avg_sq", "step", "lr"});
  CHECK(state.At("0.weight.exp_avg").shape == std::vector<std::int64_t>{2, 3});

  Matrix<double> w2 = w, gw2 = gw;
  dlb::Optimizer<double> restored({{"0.weight", &w2, &gw2}}, dlb::Adam<double>(0.3));
  restored.LoadState(state);
  CHECK(restored.StepCount() == 2);
  CHECK(restored.LearningRate() == 0.005);
  optimizer.Step();
  restored.Step();
  CHECK(w2 == w);  // the same third step: moments and bias corrections came along

  dlb::StateDict wrong = state;
  *wrong.Find("lr") = dlb::Tensor::FromValues(dlb::DType::F64, {}, std::vector<double>{-1.0});
  REQUIRE_THROWS_AS(restored.LoadState(wrong), dlb::ArgumentError);
  CHECK(restored.StepCount() == 3);
  dlb::Optimizer<double> momentum({{"0.weight", &w2, &gw2}}, dlb::Momentum<double>(0.1));
  REQUIRE_THROWS_MATCHES(momentum.LoadState(state), dlb::StateError,
                         What(Contains("missing 0.weight.momentum_buffer") &&
                              Contains("unexpected 0.weight.exp_avg, 0.weight.exp_avg_sq")));
}

TEST_CASE("Optimizer::LoadState rejects impossible state, naming the tensor, and changes nothing") {
  // A corrupt checkpoint must be refused as such, not resumed and then blamed on the
  // learning rate when the first step diverges.
  Matrix<double> w = Matrix<double>::Constant(2, 3, 1.0), gw = Matrix<double>::Constant(2, 3, 0.5);
  dlb::Optimizer<double> adam({{"0.weight", &w, &gw}}, dlb::Adam<double>(0.01));
  adam.Step();
  const dlb::StateDict good = adam.SaveState();
  const auto with = [&](const dlb::StateDict& state, const std::string& name, auto change) {
    dlb::StateDict changed = state;
    dlb::Tensor& tensor = *changed.Find(name);
    if (tensor.dtype == dlb::DType::I64) {
      auto values = tensor.Values<std::int64_t>();
      change(values);
      tensor = dlb::Tensor::FromValues(tensor.dtype, tensor.shape, values);
    } else {
      auto values = tensor.Values<double>();
      change(values);
      tensor = dlb::Tensor::FromValues(tensor.dtype, tensor.shape, values);
    }
    return changed;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    dlb::StateDict state;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {with(good, "step", [](auto& v) { v[0] = -1; }), {"'step'", "-1", ">= 0"}},
      {with(good, "0.weight.exp_avg_sq", [](auto& v) { v[4] = -0.5; }),
       {"'0.weight.exp_avg_sq'", "-0.5", "element 4", ">= 0"}},
      {with(good, "0.weight.exp_avg_sq", [&](auto& v) { v[0] = nan; }),
       {"'0.weight.exp_avg_sq'", "nan", "element 0"}},
      {with(good, "0.weight.exp_avg", [&](auto& v) { v[1] = inf; }),
       {"'0.weight.exp_avg'", "inf", "element 1", "finite"}},
  };
  for (const Case& c : cases) {
    Matrix<double> w2 = w, gw2 = gw;
    dlb::Optimizer<double> restored({{"0.weight", &w2, &gw2}}, dlb::Adam<double>(0.02));
    const dlb::StateDict before = restored.SaveState();
    REQUIRE_THROWS_MATCHES(restored.LoadState(c.state), dlb::StateError,
                           dlb_test::MessageContains(c.words));
    const dlb::StateDict after = restored.SaveState();
    for (const auto& [name, tensor] : before.Entries()) CHECK(after.At(name).data == tensor.data);
  }

  Matrix<float> v = Matrix<float>::Constant(2, 1, 1.0f), gv = Matrix<float>::Constant(2, 1, 0.5f);
  dlb::Optimizer<float> momentum({{"1.bias", &v, &gv}}, dlb::Nesterov<float>(0.1f));
  momentum.Step();
  dlb::StateDict state = momentum.SaveState();
  *state.Find("1.bias.momentum_buffer") =
      dlb::Tensor::FromValues(dlb::DType::F32, {2}, std::vector<float>{0.5f, -INFINITY});
  REQUIRE_THROWS_MATCHES(momentum.LoadState(state), dlb::StateError,
                         dlb_test::MessageContains({"'1.bias.momentum_buffer'", "-inf", "element 1", "finite"}));
  CHECK(momentum.StepCount() == 1);
}

TEST_CASE("MakeOptimizer: rules by name with their default learning rates") {
  dlb::ModelNN<float> model(3, 1);
  model.Add(dlb::Linear<float>(3, 2));
  const std::pair<const char*, const char*> names[] = {
      {"sgd", "SGD"}, {"momentum", "Momentum"}, {"nesterov", "Nesterov"}, {"adam", "Adam"},
      {"adamw", "AdamW"}};
  for (const auto& [name, rule] : names) {
    auto optimizer = dlb::MakeOptimizer<float>(name, model);
    CHECK(optimizer.Name() == rule);
    CHECK(optimizer.LearningRate() == static_cast<float>(dlb::DefaultLearningRate(name)));
    CHECK(optimizer.Parameters().size() == 2);
  }
  CHECK(dlb::MakeOptimizer<float>("adam", model.Parameters(), 0.5f).LearningRate() == 0.5f);
  REQUIRE_THROWS_MATCHES(dlb::MakeOptimizer<float>("rmsprop", model), dlb::ArgumentError,
                         What(Contains("unknown optimizer 'rmsprop'")));
  // Built from the model, it knows when layers were added afterwards.
  auto optimizer = dlb::MakeOptimizer<float>("sgd", model);
  model.Add(dlb::ReLU<float>());
  REQUIRE_THROWS_AS(optimizer.Step(), dlb::Error);
}
