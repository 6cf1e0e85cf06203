#pragma once
/// \file
/// Batch normalisation over features (BatchNorm1D, torch.nn.BatchNorm1d) and over channels
/// (BatchNorm2D, torch.nn.BatchNorm2d), with a hook that lets data-parallel training sum the
/// batch statistics across processes.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/double_sums.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/max_pool_2x2.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/sign_select.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/layers/spatial_layer.hpp"

namespace dlb {

/// What a batch-norm layer normalises: each feature of a flat sample (BatchNorm1D) or each
/// channel of a C x H x W sample, over its H x W positions too (BatchNorm2D).
enum class NormalizeOver { Features, Channels };

/// The arguments of BatchNorm1D (`features`) and BatchNorm2D (`channels`): the number of
/// groups, eps and the running statistics' momentum (torch's defaults 1e-5 and 0.1).
template <NormalizeOver kOver>
struct BatchNormOptions {
  Index size = 0;  ///< features or channels (required)
  double eps = 1e-5;
  double momentum = 0.1;

  BatchNormOptions() = default;
  BatchNormOptions(Index size_) : size(size_) {}  // NOLINT(google-explicit-constructor)
  BatchNormOptions& Eps(double value) { eps = value; return *this; }
  BatchNormOptions& Momentum(double value) { momentum = value; return *this; }

  static constexpr const char* kType =
      kOver == NormalizeOver::Features ? "BatchNorm1D" : "BatchNorm2D";
  static constexpr const char* kGroup = kOver == NormalizeOver::Features ? "feature" : "channel";
  static constexpr auto Arguments() {
    return std::tuple{
        Required(kOver == NormalizeOver::Features ? "features" : "channels", &BatchNormOptions::size),
        Optional("eps", &BatchNormOptions::eps), Optional("momentum", &BatchNormOptions::momentum)};
  }
  /// Throws ArgumentError unless size >= 1, 0 < eps <= 1 (an eps of 1e300 turns every output
  /// into 0, or into NaN in float) and 0 <= momentum <= 1.
  void Validate() const {
    if (size < 1) {
      throw ArgumentError(std::string(kType) + ": the number of " + kGroup +
                          "s must be >= 1, got " + std::to_string(size));
    }
    if (!(eps > 0 && eps <= 1)) {
      throw ArgumentError(std::string(kType) + ": eps must be in (0, 1], got " + std::to_string(eps));
    }
    if (!(momentum >= 0 && momentum <= 1)) {
      throw ArgumentError(std::string(kType) + ": momentum must be in [0, 1], got " +
                          std::to_string(momentum));
    }
  }
  /// weight, bias, running_mean, running_var {C} and num_batches_tracked [].
  StateShapes TensorShapes() const { return {{size}, {size}, {size}, {size}, {}}; }
};

namespace internal {

/// Batch norm's value before the activation, (x - mean) scale + shift: the one expression for
/// the passes that compute it on scalars and on array expressions, so that they all round
/// alike (the tests compare them bit for bit). The pooling kernels' functors below write it
/// out on Eigen's packets, since a function returning a vector type by value changes the ABI
/// with the target's flags (GCC's -Wpsabi).
template <class Values, class Mean, class Scale, class Shift>
auto NormalizedValues(const Values& x, const Mean& mean, const Scale& scale, const Shift& shift) {
  return (x - mean) * scale + shift;
}

/// Batch norm's value with a fused ReLU or not (kRelu), as BatchNorm computes it on Eigen's
/// packets: value = (x - mean) scale + shift, then max(., 0): MaxPool2x2Forward's `transform`.
template <Scalar T, bool kRelu>
struct NormalizedValue {
  T mean, scale, shift;
#if DLB_MAX_POOL_2X2_VECTORS_
  template <class Values>
  void operator()(const Values& inputs, Values& value) const {
    value = (inputs - mean) * scale + shift;  // NormalizedValues, on packets
    if constexpr (kRelu) MaxWithZeroLanes(value);
  }
#endif
};

/// Batch norm's input gradient under a fused max-pooling (and ReLU, kRelu), as BatchNorm
/// computes it: a g + slope (x - mean) + d at a window's maximum, g its window's gradient
/// (0 where the ReLU cut the normalised value), slope (x - mean) + d elsewhere:
/// MaxPool2x2Backward's `spread`.
template <Scalar T, bool kRelu>
struct NormalizedPoolGradient {
  static constexpr bool kReadsInputs = true;
  T a, slope, d, mean, scale, shift;
#if DLB_MAX_POOL_2X2_VECTORS_
  template <class Mask, class Values>
  void operator()(const Mask& is_maximum, const Values& window_grads, const Values& inputs,
                  Values& input_grads) const {
    Values grad = window_grads;
    if constexpr (kRelu) KeepWherePositiveLanes(grad, (inputs - mean) * scale + shift);
    input_grads = slope * (inputs - mean) + d;
    SelectLanes(is_maximum, a * grad + slope * (inputs - mean) + d, input_grads);
  }
#endif
};

}  // namespace internal

/// Batch normalisation of C groups (features or channels), torch's formulas:
///
///   training:   mu_c = mean of x over the n = B*H*W values of group c in the batch,
///               var_c = their biased variance (divided by n),
///               y = gamma_c (x - mu_c) / sqrt(var_c + eps) + beta_c,
///               running_mean <- (1 - momentum) running_mean + momentum mu_c,
///               running_var  <- (1 - momentum) running_var + momentum var_c n / (n - 1)
///                               (the unbiased variance), num_batches_tracked += 1;
///   inference:  the same y with running_mean and running_var in place of mu and var.
///   backward (training), with xhat = (x - mu) / sqrt(var + eps), sums over the group:
///     dgamma = sum dy xhat,  dbeta = sum dy,
///     dx = gamma / sqrt(var + eps) (dy - sum(dy) / n - xhat sum(dy xhat) / n);
///   backward (inference): dx = gamma dy / sqrt(running_var + eps).
///
/// Shapes: BatchNorm1D(F) takes flat samples {F} (one group per feature, H = W = 1);
/// BatchNorm2D(C) takes C x H x W samples (one group per channel). Parameters "weight"
/// (gamma, starts at 1) and "bias" (beta, starts at 0), both {C}; State() lists the buffers
/// "running_mean" {C} (starts at 0), "running_var" {C} (starts at 1) and
/// "num_batches_tracked" (an int64 scalar): torch's names, order and shapes.
/// Defaults: eps = 1e-5, momentum = 0.1. Training needs n > 1 (ShapeError otherwise, like
/// torch). Passes: forward reads X twice (statistics, then Y), backward reads dY and X twice;
/// each pass is split over the samples and the threads.
///
/// Fusion (see Sequential): a chain asks the layer to apply the ReLU after it
/// (FuseActivation) and a BatchNorm2D the max-pooling after that (FuseMaxPool, windows that
/// do not overlap: stride = kernel). Fused, Forward writes the pooled output straight from
/// its second pass over X (keeping, per window, where the maximum was and the X behind it),
/// and Backward sums over the pooled gradient and writes dX in one pass over X: the
/// full-size activations are read or written twice each way, where the layers apart do so
/// four times forward and six backward. 2x2 windows of stride 2 on even planes (most
/// convnets' pooling) take the vector kernels of dlb/core/max_pool_2x2.hpp for those passes,
/// other windows the general ones of dlb/layers/pooling.hpp: the same outputs, and the same
/// gradients up to the order in which a maximum's terms are added.
///
/// Accuracy: the sums of x and x^2 are accumulated in double (a float's square is exact in a
/// double), so var = E[x^2] - E[x]^2 keeps ~15 digits even when the mean is large next to
/// the spread (an offset of 10^4 on a unit spread loses ~8 of them, where float sums lost
/// every one); Y and dX are computed from x - mu (exact in T for x near mu) with mu's rounding
/// to T corrected in the shift, so the outputs are as accurate as T allows. The sums remain
/// plain sums, so processes can add theirs (SyncBatchNorm).
///
/// Data-parallel training: SetStatisticsReducer(reducer) makes the layer compute its batch
/// statistics over the batches of all processes (torch's SyncBatchNorm). In Mode::Train,
/// Forward fills a buffer of 2C + 1 doubles with this process's [sum x (C values), sum x^2
/// (C), n] and calls reducer(buffer, 2C + 1), which must replace every entry by its sum over
/// the processes; the mean, variance and running statistics then come from the global sums
/// (so every process keeps the same running statistics). Backward likewise reduces
/// [sum dy (C), sum dy xhat (C), n], so that dx is the gradient of the globally normalised
/// batch; dgamma and dbeta stay this process's own sums (the parameter-gradient averaging
/// combines them like every other gradient). The reducer is collective: every process must
/// run the same number of training Forward and Backward calls. Without a reducer (the
/// default) the layer is plain batch norm.
template <Scalar T, NormalizeOver kOver>
class BatchNorm : public SpatialLayer<BatchNorm<T, kOver>>,
                  public DescribedBy<BatchNormOptions<kOver>> {
 public:
  using Scalar = T;
  using Options = BatchNormOptions<kOver>;

  /// `size` groups (features or channels). Throws ArgumentError unless size >= 1,
  /// 0 < eps <= 1 and 0 <= momentum <= 1.
  explicit BatchNorm(Index size, double eps = 1e-5, double momentum = 0.1)
      : BatchNorm(Options(size).Eps(eps).Momentum(momentum)) {}

  explicit BatchNorm(const Options& options)
      : DescribedBy<Options>(options), eps_(options.eps), momentum_(options.momentum) {
    const Index size = options.size;
    gamma_.resize(size, 1);
    beta_.resize(size, 1);
    grad_gamma_.setZero(size, 1);
    grad_beta_.setZero(size, 1);
    running_mean_.resize(size, 1);
    running_var_.resize(size, 1);
    partial_sums_.setZero(2 * size + 1, kMaxParallelParts);
    sums_.setZero(2 * size + 1);
    mean_.setZero(size);
    mean_low_.setZero(size);
    inv_std_.setZero(size);
    scale_.setZero(size);
    shift_.setZero(size);
    a_.setZero(size);
    b_.setZero(size);
    d_.setZero(size);
    ResetParameters();
  }

  static LayerExample<BatchNorm> Example() {
    return {BatchNorm(3), kOver == NormalizeOver::Features ? Shape(3) : Shape(3, 4, 4)};
  }

  /// "BatchNorm2D(32)".
  std::string Name() const { return std::string(TypeName()) + "(" + std::to_string(Size()) + ")"; }

  /// The input shape; throws ShapeError unless it has Size() channels (BatchNorm2D) or is a
  /// flat vector of Size() features (BatchNorm1D).
  Shape OutputShape(const Shape& input) const {
    if constexpr (kOver == NormalizeOver::Features) {
      if (!input.IsFlat() || input.channels != Size()) {
        throw ShapeError("needs a flat input of " + std::to_string(Size()) + " features, got " +
                         input.ToString() +
                         (input.IsFlat() ? ""
                                         : " (BatchNorm2D(" + std::to_string(input.channels) +
                                               ") normalises channels)"));
      }
    } else if (input.channels != Size()) {
      throw ShapeError("needs " + std::to_string(Size()) + " channels, got " + input.ToString());
    }
    return input;
  }

  /// Y = gamma (X - mu) / sqrt(var + eps) + beta with the batch's statistics (Mode::Train,
  /// which also updates the running statistics) or the running ones (Mode::Inference).
  /// Throws ShapeError for a batch of the wrong row count and, in training, for a batch with
  /// a single value per group.
  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    last_mode_ = mode;
    const Index groups = Size();
    if (mode == Mode::Train) {
      // sums_ = [sum x, sum x^2, n] over this batch, then over every process.
      AccumulateSums(x.cols(), [&](Index b, double* sums) {
        ForEachGroupRun([&](Index group, Index offset, Index length) {
          // In double: a float's square is exact there, and the sums keep their digits.
          const auto values = Run(x.col(b).data() + offset, length).template cast<double>();
          if (length == 1) {  // flat samples: every group at once
            Vec(sums, groups) += values;
            Vec(sums + groups, groups) += values.array().square().matrix();
          } else {
            const T* run = x.col(b).data() + offset;
            const auto [sum, squares] = internal::TwoSumsInDouble(
                length, [run](Index i) { return run[i]; },
                [run](Index i) {
                  const auto value = static_cast<double>(run[i]);
                  return value * value;
                });
            sums[group] += sum;
            sums[groups + group] += squares;
          }
        });
      });
      const double n = sums_(2 * groups);
      if (!(n > 1)) {
        throw ShapeError(Name() + ": training needs more than one value per " + GroupWord() +
                         ", got " + std::to_string(static_cast<std::int64_t>(n)) +
                         " (use a larger batch, DataSetOptions::drop_last against a last batch "
                         "of one sample, or Mode::Inference)");
      }
      for (Index c = 0; c < groups; ++c) {
        const double mean = sums_(c) / n;
        const double var = std::max(0.0, sums_(groups + c) / n - mean * mean);
        const double inv_std = 1.0 / std::sqrt(var + eps_);
        running_mean_(c, 0) = static_cast<T>((1 - momentum_) * running_mean_(c, 0) + momentum_ * mean);
        running_var_(c, 0) = static_cast<T>((1 - momentum_) * running_var_(c, 0) +
                                            momentum_ * var * n / (n - 1));
        SetAffine(c, mean, inv_std);
      }
      ++num_batches_tracked_;
    } else {
      for (Index c = 0; c < groups; ++c) {
        SetAffine(c, static_cast<double>(running_mean_(c, 0)),
                  1.0 / std::sqrt(static_cast<double>(running_var_(c, 0)) + eps_));
      }
    }
    // y = (x - mu) * scale + shift, group by group (mu as T; shift corrects its rounding),
    // then max(y, 0) when a ReLU is fused.
    if (fused_pool_) {
      WithFusedRelu([&](auto relu) { NormaliseAndPool(relu, x, y); });
      return;
    }
    y.resize(x.rows(), x.cols());
    WithFusedRelu([&](auto relu) {
      ParallelRanges(x.cols(), x.rows(), [&](int, Index first, Index count) {
        for (Index b = first; b < first + count; ++b) {
          ForEachGroupRun([&](Index group, Index offset, Index length) {
            auto out = Run(y.col(b).data() + offset, length).array();
            const auto in = Run(x.col(b).data() + offset, length).array();
            if (length == 1) {
              out = ActivatedIf(relu, Normalised(in));
            } else {
              out = ActivatedIf(relu, Normalised(in, group));
            }
          });
        }
      });
    });
  }

  /// dgamma = sum dy xhat and dbeta = sum dy (this process's sums), and dx (see the class
  /// comment) unless dx is null. X must be the latest Forward's batch; Y is not read. With a
  /// fused ReLU, dY is the gradient with respect to the ReLU's output: the ReLU's gradient (dY
  /// where the normalised value is > 0, else 0) is taken on the fly in both passes, the
  /// normalised value recomputed from X as Forward computed it (so the mask is Forward's, bit
  /// for bit, and the passes read two matrices instead of three).
  /// With a fused max-pooling, dY is the gradient with respect to the pooled output.
  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    this->RequireRows(dy.rows(), fused_pool_ ? pooled_shape_ : this->input_shape_,
                      "the output gradient");
    if (fused_pool_) this->RequireLatestBatch(dy.cols(), argmax_.cols());
    WithFusedRelu([&](auto relu) { BackwardPasses(relu, x, dy, dx); });
  }

  /// Applies `activation` after the normalisation, in this layer's own passes: Forward then
  /// writes max(y, 0) and Backward takes Y = that output and dY with respect to it. Returns
  /// whether it will: ReLU and None (no activation) are supported, any other is refused and
  /// changes nothing. A chain (Sequential, and so ModelNN and every block) calls it for a batch
  /// norm followed by a ReLU and then skips the ReLU's own passes over the activations.
  bool FuseActivation(Activation activation) {
    if (activation != Activation::None && activation != Activation::ReLU) return false;
    fused_ = activation;
    return true;
  }
  /// The activation FuseActivation set (None unless a chain fused one).
  Activation FusedActivation() const { return fused_; }

  /// Applies the max-pooling over `window` after the normalisation (and the fused
  /// activation), in this layer's own passes (MaxPoolFusingLayer): Forward then writes the
  /// pooled output and Backward takes dY with respect to it. Returns whether it will: a
  /// BatchNorm2D that knows its input shape accepts windows that do not overlap (stride =
  /// kernel, no padding) on planes of more than one value; std::nullopt (no pooling) is
  /// always accepted; a refused window changes nothing.
  bool FuseMaxPool(std::optional<Window2D> window) {
    if (!window) {
      fused_pool_.reset();
      return true;
    }
    const Shape& in = this->input_shape_;
    if (kOver != NormalizeOver::Channels || in.height * in.width <= 1 ||
        !(window->stride == window->kernel) || !(window->padding == Size2D(0)) ||
        in.height < window->kernel.height || in.width < window->kernel.width) {
      return false;
    }
    const Size2D out = window->OutputSize(in);
    fused_pool_ = window;
    pooled_shape_ = Shape(in.channels, out.height, out.width);
    internal::WindowElementOffsets(*window, PlaneShape(in.height, in.width), element_offsets_);
    return true;
  }
  /// The max-pooling FuseMaxPool set (none unless a chain fused one).
  std::optional<Window2D> FusedMaxPool() const { return fused_pool_; }

  /// The working memory of a fused max-pooling per sample: where each window's maximum is
  /// and the X behind it (0 without one).
  Index ScratchValuesPerSample() const {
    if (!fused_pool_) return 0;
    return CheckedMultiply(2, pooled_shape_.Size(), Name() + ": its memory per sample");
  }

  /// "weight" (gamma) and "bias" (beta), both {C}.
  std::vector<Parameter<T>> Parameters() {
    return {{"weight", &gamma_, &grad_gamma_}, {"bias", &beta_, &grad_beta_}};
  }

  /// The buffers, in torch's order: "running_mean", "running_var", "num_batches_tracked".
  std::vector<StateRef<T>> State() {
    return {{"running_mean", &running_mean_, StateKind::Buffer},
            {"running_var", &running_var_, StateKind::Buffer},
            {"num_batches_tracked", &num_batches_tracked_, StateKind::Buffer}};
  }

  /// Throws StateError, naming the buffer, when loaded state cannot be a batch norm's: a
  /// negative running variance (which makes NaN outputs) or a negative batch count.
  void ValidateState() const {
    for (Index c = 0; c < Size(); ++c) {
      if (!(running_var_(c, 0) >= T(0))) {
        throw StateError("running_var holds " + std::to_string(running_var_(c, 0)) +
                         " at element " + std::to_string(c) + "; a variance cannot be negative");
      }
    }
    if (num_batches_tracked_ < 0) {
      throw StateError("num_batches_tracked is " + std::to_string(num_batches_tracked_) +
                       "; a count cannot be negative");
    }
  }

  /// Resets gamma to 1, beta to 0 and the running statistics to mean 0, variance 1, 0
  /// batches (nothing is random).
  void Init(Generator& /*gen*/) { ResetParameters(); }

  /// Installs (or, with an empty function, removes) the reducer that sums the batch
  /// statistics across processes; see the class comment.
  void SetStatisticsReducer(StatisticsReducer reducer) { reducer_ = std::move(reducer); }

  Index Size() const { return gamma_.rows(); }
  double Eps() const { return eps_; }
  double Momentum() const { return momentum_; }
  const Matrix<T>& Weight() const { return gamma_; }
  const Matrix<T>& Bias() const { return beta_; }
  Matrix<T>& Weight() { return gamma_; }
  Matrix<T>& Bias() { return beta_; }
  const Matrix<T>& RunningMean() const { return running_mean_; }
  const Matrix<T>& RunningVar() const { return running_var_; }
  std::int64_t NumBatchesTracked() const { return num_batches_tracked_; }

 private:
  /// Calls f(std::true_type{}) with a fused ReLU, f(std::false_type{}) without, so that the
  /// passes are compiled once each way and test nothing per element.
  template <class F>
  void WithFusedRelu(F&& f) const {
    if (fused_ == Activation::ReLU) {
      f(std::true_type{});
    } else {
      f(std::false_type{});
    }
  }
  /// Forward's value before the activation, internal::NormalizedValues with mu_T, scale and
  /// shift in T, of a run of group `group` or (flat samples, see ForEachGroupRun) of every
  /// group at once (array expressions).
  template <class Values>
  auto Normalised(const Values& values, Index group) const {
    return internal::NormalizedValues(values, mean_(group), scale_(group), shift_(group));
  }
  template <class Values>
  auto Normalised(const Values& values) const {
    return internal::NormalizedValues(values, mean_.array(), scale_.array(), shift_.array());
  }
  /// max(values, 0) with a fused ReLU, the values themselves without (array expressions).
  template <class Relu, class Values>
  static auto ActivatedIf(Relu /*relu*/, const Values& values) {
    if constexpr (Relu::value) {
      return values.max(T(0));
    } else {
      return values;
    }
  }
  /// The ReLU's gradient (grads where normalised > 0, else 0) with a fused ReLU, grads
  /// without (array expressions; `normalised` is Forward's value before the activation).
  template <class Relu, class Grads, class Normalised>
  static auto MaskedIf(Relu /*relu*/, const Grads& grads, const Normalised& normalised) {
    if constexpr (Relu::value) {
      return internal::KeepWherePositive(grads, normalised);
    } else {
      return grads;
    }
  }
  /// The passes of Backward; `relu` (std::true_type or std::false_type) says whether dY is
  /// masked by the normalised value > 0 (a fused ReLU). Every normalised value is computed as
  /// Forward computes it, (x - mu_T) scale + shift in T, so that it rounds the same way (the
  /// compiler contracts both into the same fused multiply-add where it has one).
  template <class Relu>
  void BackwardPasses(Relu relu, const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& dy,
                      Matrix<T>* dx) {
    const Index groups = Size();
    // sums_ = [sum dy, sum dy (x - mu), n]; xhat = (x - mu) * inv_std. The second sum runs
    // over x - mu_T (mu rounded to T) and is corrected by mu_low sum dy below.
    // With a fused max-pooling, dY's entries are the windows' maxima: each belongs to the X
    // at the window's maximum (pooled_x_), and every other X has a zero gradient.
    const ConstMatrixRef<T> inputs = fused_pool_ ? ConstMatrixRef<T>(pooled_x_) : x;
    const Index run_plane = fused_pool_ ? pooled_shape_.height * pooled_shape_.width : InputPlane();
    AccumulateSums(dy.cols(), [&](Index b, double* sums) {
      ForEachGroupRun(run_plane, [&](Index group, Index offset, Index length) {
        const auto values = Run(inputs.col(b).data() + offset, length).array();
        if (length == 1) {
          const auto grads =
              MaskedIf(relu, Run(dy.col(b).data() + offset, length).array(), Normalised(values));
          Vec(sums, groups) += grads.template cast<double>().matrix();
          Vec(sums + groups, groups) +=
              (grads * (values - mean_.array())).template cast<double>().matrix();
        } else {
          const T* grad = dy.col(b).data() + offset;
          const T* value = inputs.col(b).data() + offset;
          const T mean = mean_(group), scale = scale_(group), shift = shift_(group);
          // Normalised(value, group) one value at a time; [=]: scale and shift are used with
          // a fused ReLU only.
          const auto masked = [=](Index i) {
            if constexpr (Relu::value) {
              return internal::KeepWherePositive(
                  grad[i], internal::NormalizedValues(value[i], mean, scale, shift));
            } else {
              return grad[i];
            }
          };
          const auto [sum, products] = internal::TwoSumsInDouble(
              length, masked, [masked, value, mean](Index i) { return masked(i) * (value[i] - mean); });
          sums[group] += sum;
          sums[groups + group] += products;
        }
      });
    }, /*reduce=*/false);
    for (Index c = 0; c < groups; ++c) {
      const double inv_std = InvStd(c);
      sums_(groups + c) -= static_cast<double>(mean_low_(c)) * sums_(c);
      sums_(groups + c) *= inv_std;  // sum dy xhat
      grad_beta_(c, 0) = static_cast<T>(sums_(c));
      grad_gamma_(c, 0) = static_cast<T>(sums_(groups + c));
    }
    if (dx == nullptr) return;
    if (last_mode_ == Mode::Train) {
      if (reducer_) reducer_(sums_.data(), sums_.size());
      const double n = sums_(2 * groups);
      // dx = a dy + b (x - mu_T) + d with a = gamma inv_std, b = -a inv_std mean(dy xhat),
      // d = -a mean(dy) - b mu_low (mu = mu_T + mu_low).
      for (Index c = 0; c < groups; ++c) {
        const double a = static_cast<double>(scale_(c));
        const double b = -a * InvStd(c) * sums_(groups + c) / n;
        a_(c) = static_cast<T>(a);
        b_(c) = static_cast<T>(b);
        d_(c) = static_cast<T>(-a * sums_(c) / n - b * static_cast<double>(mean_low_(c)));
      }
    } else {
      a_ = scale_;
      b_.setZero();
      d_.setZero();
    }
    if (fused_pool_) {
      SpreadPooledGradient(relu, x, dy, *dx);
      return;
    }
    dx->resize(dy.rows(), dy.cols());
    ParallelRanges(dy.cols(), dy.rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        ForEachGroupRun([&](Index group, Index offset, Index length) {
          auto out = Run(dx->col(b).data() + offset, length).array();
          const auto dys = Run(dy.col(b).data() + offset, length).array();
          const auto values = Run(x.col(b).data() + offset, length).array();
          if (length == 1) {
            const auto grads = MaskedIf(relu, dys, Normalised(values));
            out = a_.array() * grads + b_.array() * (values - mean_.array()) + d_.array();
          } else {
            const auto grads = MaskedIf(relu, dys, Normalised(values, group));
            out = a_(group) * grads + b_(group) * (values - mean_(group)) + d_(group);
          }
        });
      }
    });
  }

  /// Forward's second pass with a fused max-pooling: per sample and channel, the normalised
  /// (and activated) plane into a scratch plane, its windows' maxima into Y (where they are
  /// into argmax_, the X behind them into pooled_x_), exactly as the layers apart compute them.
  template <class Relu>
  void NormaliseAndPool(Relu relu, const ConstMatrixRef<T>& x, Matrix<T>& y) {
    const Shape in = PlaneShape(this->input_shape_.height, this->input_shape_.width);
    const Shape out = PlaneShape(pooled_shape_.height, pooled_shape_.width);
    const Index in_plane = in.Size(), out_plane = out.Size();
    y.resize(pooled_shape_.Size(), x.cols());
    argmax_.resize(pooled_shape_.Size(), x.cols());
    pooled_x_.resize(pooled_shape_.Size(), x.cols());
    pool_scratch_.resize(in_plane + out_plane,
                         std::min<Index>(internal::ParallelThreads(), kMaxParallelParts));
    const bool two_by_two = internal::MaxPool2x2Fits(*fused_pool_, in.height, in.width);
    ParallelRanges(x.cols(), x.rows(), [&](int part, Index first, Index count) {
      T* normalised = pool_scratch_.col(part).data();
      T* gathered = normalised + in_plane;
      for (Index b = first; b < first + count; ++b) {
        for (Index c = 0; c < Size(); ++c) {
          const T* values = x.col(b).data() + c * in_plane;
          std::int32_t* where = argmax_.col(b).data() + c * out_plane;
          T* at_maximum = pooled_x_.col(b).data() + c * out_plane;
          if (two_by_two) {
            // One pass, normalising on vectors as Normalised() does on Eigen's packets.
            internal::MaxPool2x2Forward(
                values, in.height, in.width,
                internal::NormalizedValue<T, Relu::value>{mean_(c), scale_(c), shift_(c)},
                y.col(b).data() + c * out_plane, where, at_maximum);
            continue;
          }
          Run(normalised, in_plane).array() =
              ActivatedIf(relu, Normalised(Run(values, in_plane).array(), c));
          internal::MaxOfWindows(*fused_pool_, in, out, normalised, y.col(b).data() + c * out_plane,
                                 where, gathered);
          internal::ForEachWindowMaximum(
              *fused_pool_, in, out, where, element_offsets_.data(),
              [&](Index o, Index position) { at_maximum[o] = values[position]; });
        }
      }
    });
  }

  /// Backward's dX pass with a fused max-pooling: dx = a dy + b (x - mu_T) + d as without
  /// pooling, where dy is the window's gradient at its maximum (masked by a fused ReLU) and
  /// 0 at every other X: b (x - mu_T) + d over each plane, then the maxima rewritten.
  template <class Relu>
  void SpreadPooledGradient(Relu /*relu*/, const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& dy,
                            Matrix<T>& dx) {
    const Shape in = PlaneShape(this->input_shape_.height, this->input_shape_.width);
    const Shape out = PlaneShape(pooled_shape_.height, pooled_shape_.width);
    const Index in_plane = in.Size(), out_plane = out.Size();
    dx.resize(x.rows(), x.cols());
    const bool two_by_two = internal::MaxPool2x2Fits(*fused_pool_, in.height, in.width);
    ParallelRanges(dy.cols(), dx.rows(), [&](int, Index first, Index count) {
      for (Index b = first; b < first + count; ++b) {
        for (Index c = 0; c < Size(); ++c) {
          const T* values = x.col(b).data() + c * in_plane;
          T* grads = dx.col(b).data() + c * in_plane;
          const T* grad_out = dy.col(b).data() + c * out_plane;
          const T a = a_(c), slope = b_(c), d = d_(c), mean = mean_(c), scale = scale_(c),
                  shift = shift_(c);
          if (two_by_two) {
            // The same formulas on a row's inputs at a time, each window's maximum chosen
            // by mask instead of rewritten.
            internal::MaxPool2x2Backward(
                values, grad_out, argmax_.col(b).data() + c * out_plane, in.height, in.width,
                internal::NormalizedPoolGradient<T, Relu::value>{a, slope, d, mean, scale, shift},
                grads);
            continue;
          }
          Run(grads, in_plane).array() = slope * (Run(values, in_plane).array() - mean) + d;
          internal::ForEachWindowMaximum(
              *fused_pool_, in, out, argmax_.col(b).data() + c * out_plane, element_offsets_.data(),
              [&](Index o, Index position) {
                T grad = grad_out[o];
                if constexpr (Relu::value) {
                  grad = internal::KeepWherePositive(
                      grad, internal::NormalizedValues(values[position], mean, scale, shift));
                }
                grads[position] = a * grad + slope * (values[position] - mean) + d;
              });
        }
      }
    });
  }

  Index InputPlane() const { return this->input_shape_.height * this->input_shape_.width; }
  static Shape PlaneShape(Index height, Index width) { return Shape(1, height, width); }

  static constexpr const char* TypeName() { return Options::kType; }
  static constexpr const char* GroupWord() { return Options::kGroup; }

  void ResetParameters() {
    gamma_.setOnes();
    beta_.setZero();
    running_mean_.setZero();
    running_var_.setOnes();
    num_batches_tracked_ = 0;
  }

  /// Calls f(group, offset, length) for the runs of one sample's values the passes work on:
  /// for C x H x W samples (H W > 1), each group's plane (offset c H W, length H W); for flat
  /// samples, one call covering every group at once (group 0, offset 0, length 1), which the
  /// callers handle as a vector over the groups. Either way the inner loops are vectorised.
  template <class F>
  void ForEachGroupRun(F&& f) const {
    ForEachGroupRun(InputPlane(), f);
  }
  /// The same for samples of `plane` values per group (a fused max-pooling's output).
  template <class F>
  void ForEachGroupRun(Index plane, F&& f) const {
    if (plane == 1) {
      f(Index{0}, Index{0}, Index{1});
      return;
    }
    for (Index c = 0; c < Size(); ++c) f(c, c * plane, plane);
  }
  /// `length` values from `data` (Size() of them when length is 1, see ForEachGroupRun).
  auto Run(const T* data, Index length) const {
    return Eigen::Map<const Vector<T>>(data, length == 1 ? Size() : length);
  }
  auto Run(T* data, Index length) const {
    return Eigen::Map<Vector<T>>(data, length == 1 ? Size() : length);
  }
  static Eigen::Map<Vector<double>> Vec(double* data, Index length) {
    return Eigen::Map<Vector<double>>(data, length);
  }

  /// The forward's mu_c as mu_T (rounded to T) + mu_low, 1 / sqrt(var_c + eps), scale =
  /// gamma inv_std and shift = beta - mu_low scale, so that Y = (X - mu_T) scale + shift.
  void SetAffine(Index c, double mean, double inv_std) {
    mean_(c) = static_cast<T>(mean);
    mean_low_(c) = mean - static_cast<double>(mean_(c));
    scale_(c) = static_cast<T>(static_cast<double>(gamma_(c, 0)) * inv_std);
    shift_(c) = static_cast<T>(static_cast<double>(beta_(c, 0)) -
                               mean_low_(c) * static_cast<double>(scale_(c)));
    inv_std_(c) = inv_std;
  }
  double InvStd(Index c) const { return inv_std_(c); }

  /// sums_ = [first sums (C), second sums (C), n = B H W] over the batch, accumulated in
  /// double: `add_sample(b, sums)` adds sample b's sums to sums[0 .. 2C) (one column of
  /// partial_sums_ per thread). Then, when `reduce` and a reducer is set, sums across
  /// processes.
  template <class AddSample>
  void AccumulateSums(Index batch, AddSample&& add_sample, bool reduce = true) {
    const Index groups = Size();
    const Index plane = this->input_shape_.height * this->input_shape_.width;
    const int parts = ParallelRanges(batch, this->input_shape_.Size(), [&](int part, Index first, Index count) {
      auto column = partial_sums_.col(part);
      column.setZero();
      for (Index b = first; b < first + count; ++b) add_sample(b, column.data());
      column(2 * groups) = static_cast<double>(count * plane);
    });
    sums_ = partial_sums_.leftCols(parts).rowwise().sum();
    if (reduce && reducer_) reducer_(sums_.data(), sums_.size());
  }

  double eps_;
  double momentum_;
  Matrix<T> gamma_, beta_, grad_gamma_, grad_beta_;
  Matrix<T> running_mean_, running_var_;
  std::int64_t num_batches_tracked_ = 0;
  StatisticsReducer reducer_;
  Mode last_mode_ = Mode::Train;
  Activation fused_ = Activation::None;  // applied after the normalisation (FuseActivation)
  std::optional<Window2D> fused_pool_;   // applied after that (FuseMaxPool)
  Shape pooled_shape_{0, 0, 0};          // C x Ho x Wo of a fused max-pooling
  // The window element (ky*kw + kx) of each maximum, pooled shape x batch.
  Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic> argmax_;
  Matrix<T> pooled_x_;      // the X at each window's maximum (pooled shape x batch)
  Matrix<T> pool_scratch_;  // per thread: a normalised plane and a gathered pooled plane
  Eigen::Matrix<Index, Eigen::Dynamic, 1> element_offsets_;  // ky*W + kx of each window element
  Matrix<double> partial_sums_;  // (2C + 1) x kMaxParallelParts: one column per thread
  Vector<double> sums_;          // [first sums (C), second sums (C), n]
  Vector<double> inv_std_;          // of the latest Forward
  Vector<double> mean_low_;         // mu - mu_T of the latest Forward
  Vector<T> mean_, scale_, shift_;  // of the latest Forward
  Vector<T> a_, b_, d_;             // dx = a dy + b x + d, per group
};

/// Batch normalisation of each feature of flat samples (torch.nn.BatchNorm1d); see BatchNorm.
template <Scalar T = float>
using BatchNorm1D = BatchNorm<T, NormalizeOver::Features>;

/// Batch normalisation of each channel of C x H x W samples (torch.nn.BatchNorm2d); see
/// BatchNorm.
template <Scalar T = float>
using BatchNorm2D = BatchNorm<T, NormalizeOver::Channels>;

}  // namespace dlb
