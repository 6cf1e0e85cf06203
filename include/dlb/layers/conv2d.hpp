#pragma once
/// \file
/// Two-dimensional convolution (torch.nn.Conv2d).

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/gemm.hpp"
#include "dlb/core/im2col.hpp"
#include "dlb/core/implicit_im2col.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/window2d.hpp"
#include "dlb/layers/init.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/layers/spatial_layer.hpp"

namespace dlb {

/// The arguments of a Conv2D, written like libtorch's Conv2dOptions:
/// `dlb::Conv2DOptions(1, 32, 3).Padding(1)`, `dlb::Conv2DOptions(16, 16, {3, 5}).Stride(2)`.
/// Defaults: stride 1, padding 0, a bias, Kaiming-normal weights.
struct Conv2DOptions {
  Index in_channels = 0;   ///< C_in (required)
  Index out_channels = 0;  ///< C_out (required)
  Size2D kernel{0};        ///< kh x kw (required)
  Size2D stride{1};
  Size2D padding{0};
  bool bias = true;
  dlb::Init init = dlb::Init::Kaiming;
  double init_std = 0.01;  ///< the deviation of Init::Const

  Conv2DOptions() = default;
  Conv2DOptions(Index in_channels_, Index out_channels_, Size2D kernel_)
      : in_channels(in_channels_), out_channels(out_channels_), kernel(kernel_) {}

  Conv2DOptions& Stride(Size2D value) { stride = value; return *this; }
  Conv2DOptions& Padding(Size2D value) { padding = value; return *this; }
  Conv2DOptions& Bias(bool with_bias) { bias = with_bias; return *this; }
  /// How the weights are drawn (see dlb::Init); `std_dev` is Init::Const's deviation.
  Conv2DOptions& WeightInit(dlb::Init scheme, double std_dev = 0.01) {
    init = scheme;
    init_std = std_dev;
    return *this;
  }
  /// The kernel, stride and padding as one window.
  Window2D Window() const { return {kernel, stride, padding}; }

  static constexpr const char* kType = "Conv2D";
  static constexpr auto Arguments() {
    using O = Conv2DOptions;
    return std::tuple{Required("in_channels", &O::in_channels),
                      Required("out_channels", &O::out_channels), Required("kernel", &O::kernel),
                      Optional("stride", &O::stride), Optional("padding", &O::padding),
                      Optional("bias", &O::bias), Optional("init", &O::init),
                      Optional("init_std", &O::init_std)};
  }
  /// Throws ArgumentError for channels < 1, kernel < 1, stride < 1, padding < 0, an extent
  /// above Window2D::kMaxExtent, or an init_std that is not finite and >= 0.
  void Validate() const {
    if (in_channels < 1 || out_channels < 1) {
      throw ArgumentError("Conv2D(" + std::to_string(in_channels) + " -> " +
                          std::to_string(out_channels) + "): both channel counts must be >= 1");
    }
    Window().Validate("Conv2D");
    RequireInitStd("Conv2D", init_std);
  }
  /// "weight" {C_out, C_in, kh, kw} and, with a bias, "bias" {C_out}.
  StateShapes TensorShapes() const {
    StateShapes shapes = {{out_channels, in_channels, kernel.height, kernel.width}};
    if (bias) shapes.push_back({out_channels});
    return shapes;
  }
};

/// Cross-correlation of C_in-channel images with C_out kernels of kh x kw, torch.nn.Conv2d's
/// formula:
///   Y(o, oy, ox) = b(o) + sum over c, ky, kx of W(o, c, ky, kx) X(c, oy*sh - ph + ky, ox*sw - pw + kx)
/// with X zero outside the image (padding), and Ho x Wo output positions as Window2D gives
/// them (torch's floor rule).
///
/// Shapes: a sample is C_in x H x W in, C_out x Ho x Wo out (one column each, channel-major,
/// see Shape). The parameter "weight" is torch's {C_out, C_in, kh, kw} tensor, stored as a
/// C_out x (C_in kh kw) matrix whose column (c*kh + ky)*kw + kx holds W(., c, ky, kx) (the
/// row-major flattening of torch's tensor, so a saved weight is byte for byte torch's);
/// "bias" is {C_out}.
///
/// Computation: the batch's samples are split over the threads (ParallelRanges), and each
/// thread works through its samples a chunk of n at a time (n from PatchChunkSamples, so
/// that the chunk's patch matrix P = im2col(X) (n*Ho*Wo x C_in kh kw, see
/// dlb/core/im2col.hpp) stays in its cache) with three products through dlb::Gemm:
///   forward   Z  = P W^T                     (n*Ho*Wo x C_out), Y = Z rearranged + b
///   backward  dZ = dY rearranged, db = sum of dZ over rows,
///             dW += dZ^T P                   (C_out x C_in kh kw; P rebuilt from X)
///             dP = dZ W,  dX = col2im(dP)    (skipped when dX is not wanted)
/// and the threads' dW and db are added at the end. Large planes multiply sample by sample
/// in place, and windows whose patches are shifts of the planes or of their phases (a "same"
/// 3x3 convolution, a 3x3 or 1x1 of stride 2 over even planes) never build P at all: the
/// library's kernels read it from the image (Plan, ProductPlan). Each
/// thread has its own buffers, reused from batch to batch: nothing is allocated once a batch
/// of the same size has been seen.
/// Initialisation: W ~ N(0, 2 / (C_in kh kw)) (Kaiming, the default), b = 0.
template <Scalar T = float>
class Conv2D : public SpatialLayer<Conv2D<T>>, public DescribedBy<Conv2DOptions> {
 public:
  using Scalar = T;

  /// `Conv2D<float>(1, 32, 3, 1, 1)`: C_in -> C_out channels, kernel, stride, padding (each a
  /// number for a square or {height, width}). Throws ArgumentError like Conv2DOptions::Validate.
  Conv2D(Index in_channels, Index out_channels, Size2D kernel, Size2D stride = 1,
         Size2D padding = 0)
      : Conv2D(Conv2DOptions(in_channels, out_channels, kernel).Stride(stride).Padding(padding)) {}

  explicit Conv2D(const Conv2DOptions& options)
      : DescribedBy<Conv2DOptions>(options),
        window_(options.Window()),
        init_std_(RepresentableAs<T>("Conv2D", "init_std", options.init_std)) {
    const Index fan_in = options.in_channels * window_.kernel.height * window_.kernel.width;
    weight_.resize(options.out_channels, fan_in);
    grad_weight_.setZero(options.out_channels, fan_in);
    bias_.setZero(options.out_channels, 1);
    grad_bias_.setZero(options.out_channels, 1);
    Generator gen(kDefaultSeed);
    Init(gen);
  }

  /// "Conv2D(1 -> 32, 3x3, padding 1)"; the stride when it is not 1, "no bias" without one.
  std::string Name() const {
    return "Conv2D(" + std::to_string(InChannels()) + " -> " + std::to_string(OutChannels()) +
           ", " + window_.kernel.ToString() + window_.Describe(1) +
           (options_.bias ? "" : ", no bias") + ")";
  }

  static LayerExample<Conv2D> Example() {
    return {Conv2D(Conv2DOptions(2, 3, {3, 2}).Stride({2, 1}).Padding(1)), Shape(2, 5, 4)};
  }

  /// C_out x Ho x Wo for a C_in x H x W input; throws ShapeError when the channel count
  /// differs or the padded plane is smaller than the kernel.
  Shape OutputShape(const Shape& input) const {
    if (input.channels != InChannels()) {
      throw ShapeError(
          "needs " + std::to_string(InChannels()) + " input channel" +
          (InChannels() == 1 ? "" : "s") + ", got " + input.ToString() +
          (input.IsFlat() ? " (a flat vector: give the model the image shape, e.g. {1, 28, 28})"
                          : ""));
    }
    const Size2D out = window_.OutputSize(input);
    return {OutChannels(), out.height, out.width};
  }

  /// Y = conv(X) + b for a batch of B samples (C_in H W x B); Y is C_out Ho Wo x B.
  /// Throws ShapeError when the input shape is unknown or X has the wrong row count.
  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode /*mode*/) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    const Index positions = Positions();
    const Plan& plan = plan_;
    y.resize(this->output_shape_.Size(), x.cols());
    if (UsesImplicitPatches()) {
      ForEachChunk(x.cols(), [&](Workspace& work, ChunkBuffers& buffers, Index first,
                                 Index count) {
        work.patches.Configure(this->input_shape_, window_);
        for (Index b = 0; b < count; ++b) {
          // Y_b = P_b W^T + 1 b^T, P_b read from X_b's shifted planes (PatchesTimes).
          work.patches.Load(x.col(first + b).data());
          Eigen::Map<Matrix<T>> out(y.col(first + b).data(), positions, OutChannels());
          PatchesTimes<T>(work.patches, Op::Transpose, weight_, out, T(0), buffers.gemm,
                          options_.bias ? bias_.data() : nullptr);
        }
      });
      return;
    }
    ForEachChunk(x.cols(), [&](Workspace&, ChunkBuffers& buffers, Index first, Index count) {
      Im2Col<T>(x.middleCols(first, count), this->input_shape_, window_, OutputPlane(),
                buffers.patches);
      if (plan.per_sample) {
        for (Index b = 0; b < count; ++b) {
          // Y_b = P_b W^T + 1 b^T straight into the sample's column, read as the
          // Ho*Wo x C_out matrix it is (channel-major: column o is channel o's plane).
          Eigen::Map<Matrix<T>> out(y.col(first + b).data(), positions, OutChannels());
          if (options_.bias) out.rowwise() = bias_.col(0).transpose();
          GemmInto<T>(Op::None, buffers.patches.middleRows(b * positions, positions),
                      Op::Transpose, weight_, out, options_.bias ? T(1) : T(0), buffers.gemm);
        }
        return;
      }
      // Z = P W^T
      Gemm<T>(Op::None, buffers.patches, Op::Transpose, weight_, buffers.products, T(0),
              buffers.gemm);
      // Y(o*P + p, b) = Z(b*P + p, o) + b(o): runs of P contiguous values on both sides.
      for (Index o = 0; o < OutChannels(); ++o) {
        const T bias = options_.bias ? bias_(o, 0) : T(0);
        for (Index b = 0; b < count; ++b) {
          y.col(first + b).segment(o * positions, positions).array() =
              buffers.products.col(o).segment(b * positions, positions).array() + bias;
        }
      }
    });
  }

  /// dW = dZ^T P, db = the sum of dY over samples and positions, and dX = col2im(dZ W) when
  /// dx is not null. X must be the latest Forward's batch (its patches are rebuilt here,
  /// chunk by chunk, rather than kept).
  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    this->RequireRows(x.rows(), this->input_shape_, "the batch");
    this->RequireRows(dy.rows(), this->output_shape_, "the output gradient");
    if (dy.cols() != x.cols()) {
      throw ShapeError(Name() + ": the output gradient has " + std::to_string(dy.cols()) +
                       " samples but the batch " + std::to_string(x.cols()));
    }
    const Index positions = Positions();
    const Plan& plan = plan_;
    if (dx != nullptr) dx->resize(this->input_shape_.Size(), x.cols());
    const bool implicit = UsesImplicitPatches();
    if (dx != nullptr && implicit) {
      PhaseWeights();
    } else if (dx != nullptr && plan.transposed_input_gradient) {
      FlipWeight();
    }
    const int parts = ForEachChunk(x.cols(), [&](Workspace& work, ChunkBuffers& buffers,
                                                  Index first, Index count) {
      if (implicit) {
        BackwardImplicit(x, dy, dx, work, buffers, first, count);
        return;
      }
      if (plan.per_sample) {
        BackwardPerSample(x, dy, dx, plan.transposed_input_gradient, work, buffers, first,
                          count);
        return;
      }
      // dZ(b*P + p, o) = dY(o*P + p, b), and db(o) += its column sum.
      buffers.products.resize(count * positions, OutChannels());
      work.grad_bias.resize(OutChannels(), 1);
      for (Index o = 0; o < OutChannels(); ++o) {
        T sum = T(0);
        for (Index b = 0; b < count; ++b) {
          auto run = buffers.products.col(o).segment(b * positions, positions);
          run = dy.col(first + b).segment(o * positions, positions);
          if (options_.bias) sum += run.sum();
        }
        work.grad_bias(o, 0) = (work.chunks_done == 0 ? T(0) : work.grad_bias(o, 0)) + sum;
      }
      Im2Col<T>(x.middleCols(first, count), this->input_shape_, window_, OutputPlane(),
                buffers.patches);
      Gemm<T>(Op::Transpose, buffers.products, Op::None, buffers.patches, work.grad_weight,
              work.chunks_done == 0 ? T(0) : T(1), buffers.gemm);  // dW (+)= dZ^T P
      ++work.chunks_done;
      if (dx == nullptr) return;
      // dP = dZ W
      Gemm<T>(Op::None, buffers.products, Op::None, weight_, buffers.patches, T(0),
              buffers.gemm);
      Col2Im<T>(buffers.patches, this->input_shape_, window_, OutputPlane(),
                dx->middleCols(first, count));
    });
    // Each thread summed its own samples' gradients: add them up (dW^T on the implicit path).
    if (implicit) {
      grad_weight_ = workspaces_[0].grad_weight_transposed.transpose();
    } else {
      grad_weight_ = workspaces_[0].grad_weight;
    }
    if (options_.bias) grad_bias_ = workspaces_[0].grad_bias;
    for (int part = 1; part < parts; ++part) {
      if (implicit) {
        grad_weight_ += workspaces_[part].grad_weight_transposed.transpose();
      } else {
        grad_weight_ += workspaces_[part].grad_weight;
      }
      if (options_.bias) grad_bias_ += workspaces_[part].grad_bias;
    }
  }

  /// "weight" {C_out, C_in, kh, kw} and, with a bias, "bias" {C_out}.
  std::vector<Parameter<T>> Parameters() {
    std::vector<Parameter<T>> params{
        {"weight", &weight_, &grad_weight_,
         {OutChannels(), InChannels(), window_.kernel.height, window_.kernel.width}}};
    if (options_.bias) params.push_back({"bias", &bias_, &grad_bias_});
    return params;
  }

  /// Redraws W from the layer's Init scheme (fan_in = C_in kh kw) and zeroes b.
  void Init(Generator& gen) {
    InitializeWeights(weight_, options_.init, init_std_, gen);
    bias_.setZero();
  }

  Index InChannels() const {
    return weight_.cols() / (window_.kernel.height * window_.kernel.width);
  }
  Index OutChannels() const { return weight_.rows(); }
  const Window2D& Window() const { return window_; }
  bool HasBias() const { return options_.bias; }
  const Matrix<T>& Weight() const { return weight_; }
  const Matrix<T>& Bias() const { return bias_; }
  Matrix<T>& Weight() { return weight_; }
  Matrix<T>& Bias() { return bias_; }

  /// Remembers `input` and decides the Plan for it (SpatialLayer::SetInputShape); throws
  /// ShapeError, keeping the previous shape, when the layer does not accept `input` or a
  /// sample's working memory overflows Index.
  void SetInputShape(const Shape& input) {
    const Plan plan = PlanFor(input, OutputShape(input));
    SpatialLayer<Conv2D<T>>::SetInputShape(input);
    plan_ = plan;
  }

  /// How the products run for the input shape, decided once in SetInputShape for Forward,
  /// Backward and the working-memory budget (so a step builds no strings and checks no
  /// sizes: it allocates nothing).
  struct Plan {
    /// Each sample's products run on their own, reading and writing the sample's column of Y
    /// (and of dY) in place, rather than once over a chunk of samples with Z rearranged into Y
    /// (and dY into dZ): for output planes of kPerSamplePositions positions or more, where
    /// one sample's product has enough rows to run at full speed and the rearrangement is a
    /// pass over the largest activations of the network.
    bool per_sample = false;
    /// Backward computes dX as the convolution of dY with the flipped kernels (the transposed
    /// convolution), sample by sample straight into dX's columns:
    ///   dX_b = P'_b W'   (H*W x C_in), P'_b = im2col of dY_b (C_out x Ho x Wo) for the
    ///   window (kh x kw, stride 1, padding kh-1-ph x kw-1-pw), W'((o*kh + kh-1-ky)*kw +
    ///   kw-1-kx, c) = W(o, (c*kh + ky)*kw + kx),
    /// instead of dP = dY W (an inner size of only C_out) and col2im's scatter-add. For
    /// per_sample layers with stride 1 and padding below the kernel.
    bool transposed_input_gradient = false;
    /// The patches are shifts of the planes (PatchesAreShifts: strides of 1, or 2 over even
    /// extents, where the planes are the input's phases; an output row as wide as the planes';
    /// and the padding of the height below the kernel). With the Eigen engine every product
    /// then runs sample by sample on ImplicitPatches (see dlb/core/implicit_im2col.hpp),
    /// taking precedence over the paths above: Y_b = P_b W^T, dW^T += P_b^T dY_b and dX_b's
    /// phases P'_ab W_ab (with stride 1 the transposed convolution), with the patches read
    /// from X_b and dY_b by the products themselves; no patch matrix, no rearrangement and no
    /// col2im. With the BLAS engine the paths above run.
    bool implicit_patches = false;
    /// A chunk's second buffer per sample (rows x columns): Z or dZ (Ho*Wo x C_out), or with
    /// the transposed convolution dY's patches (H*W x C_out kh kw).
    Index second_rows = 0;
    Index second_columns = 0;
    /// Values of working memory per sample beyond the output: its patches (Ho*Wo x C_in kh
    /// kw) and its second buffer. What the explicit paths need, counted for implicit_patches
    /// layers too (the BLAS engine may run them explicitly); the implicit path needs less.
    Index scratch_values_per_sample = 0;
    /// Samples whose patches are built and multiplied at a time (PatchChunkSamples).
    Index samples_per_chunk = 1;
  };
  /// The Plan of the input shape (a default Plan before SetInputShape).
  const Plan& ProductPlan() const { return plan_; }
  static constexpr Index kPerSamplePositions = 512;

  /// Plan::scratch_values_per_sample (0 before SetInputShape).
  Index ScratchValuesPerSample() const { return plan_.scratch_values_per_sample; }
  /// Plan::samples_per_chunk.
  Index SamplesPerChunk() const { return plan_.samples_per_chunk; }

 private:
  static constexpr std::uint64_t kDefaultSeed = 0xc0a5;
  /// Phases of the input that implicit patches split a stride into: 2 x 2 at most
  /// (PatchesAreShifts).
  static constexpr std::size_t kMaxStridePhases = 4;

  /// The Plan for a layer of this window from `input` to `output` (see Plan); throws
  /// ShapeError when a sample's working memory overflows Index.
  Plan PlanFor(const Shape& input, const Shape& output) const {
    Plan plan;
    const Window2D& w = window_;
    const Index positions = CheckedMultiply(output.height, output.width,
                                            Name() + ": the output positions");
    plan.per_sample = positions >= kPerSamplePositions;
    plan.transposed_input_gradient = plan.per_sample && w.stride.height == 1 &&
                                     w.stride.width == 1 && w.padding.height < w.kernel.height &&
                                     w.padding.width < w.kernel.width;
    plan.implicit_patches = PatchesAreShifts(input, w) && w.padding.height < w.kernel.height;
    plan.second_rows = plan.transposed_input_gradient
                           ? CheckedMultiply(input.height, input.width, Name() + ": the input plane")
                           : positions;
    plan.second_columns = plan.transposed_input_gradient
                              ? CheckedMultiply(OutChannels(), w.kernel.height * w.kernel.width,
                                                Name() + ": the columns of dY's patches")
                              : OutChannels();
    const Index patches = CheckedMultiply(positions, weight_.cols(),
                                          Name() + ": the patches of one sample");
    const Index second = CheckedMultiply(plan.second_rows, plan.second_columns,
                                         Name() + ": the products of one sample");
    plan.scratch_values_per_sample =
        CheckedAdd(patches, second, Name() + ": the working memory of one sample");
    plan.samples_per_chunk =
        PatchChunkSamples(plan.scratch_values_per_sample, static_cast<Index>(sizeof(T)));
    return plan;
  }

  /// db (+)= dY_b^T 1 for one sample's Ho*Wo x C_out gradient (`started`: add to `sum`, else
  /// overwrite it); nothing without a bias (a pass over dY_b saved: 1.7% of a ResNet epoch,
  /// whose convolutions have none).
  void AddBiasGradient(const Eigen::Map<const Matrix<T>>& grad, bool started,
                       Matrix<T>& sum) const {
    if (!options_.bias) return;
    if (started) {
      sum += grad.colwise().sum().transpose();
    } else {
      sum = grad.colwise().sum().transpose();
    }
  }

  /// Whether this pass runs on implicit patches (Plan::implicit_patches, and the engine choice
  /// allows them: ImplicitPatchesEnabled).
  bool UsesImplicitPatches() const {
    return plan_.implicit_patches && ImplicitPatchesEnabled();
  }

  /// Backward of samples [first, first + count) on implicit patches: per sample b, with dY_b
  /// the Ho*Wo x C_out matrix of its column,
  ///   db += dY_b^T 1,   dW^T (+)= P_b^T dY_b   (C_in kh kw x C_out, this thread's sum),
  ///   dX_b's phase (a, b) = P'_ab W_ab   (H/sh * W/sw x C_in) for each phase of the stride,
  /// P'_ab the patches of dY_b for that phase (ImplicitPatches::ConfigureTransposed and
  /// SelectPhase, dY_b loaded once) and W_ab the kernels' taps that read it (PhaseWeights);
  /// with stride 1, one phase: the transposed convolution, straight into dX_b; else each
  /// phase scattered into every sh-th row and sw-th column of dX_b's planes. P_b and P'_ab
  /// are read from X_b and dY_b by the products (dlb/core/implicit_im2col.hpp).
  template <class Work, class Buffers>
  void BackwardImplicit(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& dy, Matrix<T>* dx,
                        Work& work, Buffers& buffers, Index first, Index count) {
    const Index positions = Positions();
    const Shape& in = this->input_shape_;
    const Index sh = window_.stride.height, sw = window_.stride.width;
    const Index phases = sh * sw;
    work.patches.Configure(in, window_);
    if (dx != nullptr) {
      work.gradient_patches.ConfigureTransposed(in, OutChannels(), window_);
      if (phases > 1) work.phase_gradient.resize((in.height / sh) * (in.width / sw), InChannels());
    }
    // A phase that no tap reads (a 1x1 kernel of stride 2 reads one of four) has a zero
    // gradient: a sample's column is then zeroed at once rather than phase by phase.
    const bool unread_phase =
        std::any_of(phase_weights_.begin(), phase_weights_.begin() + phases,
                    [](const Matrix<T>& weight) { return weight.cols() == 0; });
    work.grad_weight_transposed.resize(weight_.cols(), OutChannels());
    work.grad_bias.resize(OutChannels(), 1);
    for (Index b = 0; b < count; ++b) {
      const bool started = work.chunks_done > 0 || b > 0;
      const Eigen::Map<const Matrix<T>> grad(dy.col(first + b).data(), positions, OutChannels());
      AddBiasGradient(grad, started, work.grad_bias);
      work.patches.Load(x.col(first + b).data());
      PatchesTransposeTimes<T>(work.patches, grad, work.grad_weight_transposed,
                               started ? T(1) : T(0), buffers.gemm);
      if (dx == nullptr) continue;
      T* grad_in = dx->col(first + b).data();
      ImplicitPatches<T>& patches = work.gradient_patches;
      patches.Load(dy.col(first + b).data());
      if (phases == 1) {
        Eigen::Map<Matrix<T>> out(grad_in, in.height * in.width, InChannels());
        PatchesTimes<T>(patches, Op::Transpose, phase_weights_[0], out, T(0), buffers.gemm);
        continue;
      }
      if (unread_phase) dx->col(first + b).setZero();
      for (Index phase = 0; phase < phases; ++phase) {
        const Matrix<T>& weight = phase_weights_[static_cast<std::size_t>(phase)];
        if (weight.cols() == 0) continue;
        const Size2D of{phase / sw, phase % sw};
        patches.SelectPhase(of);
        PatchesTimes<T>(patches, Op::Transpose, weight, work.phase_gradient, T(0), buffers.gemm);
        ScatterPhase(work.phase_gradient, of, grad_in);
      }
    }
    ++work.chunks_done;
  }

  /// dX_b(c, sh y + a, sw x + b) = values(y * W/sw + x, c): one phase's input gradient (a
  /// column per input channel) into the sample's column `grad_in`.
  void ScatterPhase(const Matrix<T>& values, Size2D phase, T* grad_in) const {
    const Shape& in = this->input_shape_;
    for (Index c = 0; c < InChannels(); ++c) {
      const T* from = values.col(c).data();
      T* to = grad_in + c * in.height * in.width;
      ForEachPhaseValue(in.height, in.width, window_.stride, phase,
                        [&](Index i, Index p) { to[p] = from[i]; });
    }
  }

  /// Backward of samples [first, first + count) when Plan::per_sample: per sample b, with
  /// dY_b the Ho*Wo x C_out matrix of its column and P_b its rows of the chunk's patches,
  ///   db += dY_b^T 1,   dW (+)= dY_b^T P_b,
  /// and dX either by the transposed convolution (`transposed`, Plan::
  /// transposed_input_gradient: the chunk's dY patches in `products`, dX_b = P'_b W' into
  /// dX's column) or as dP_b = dY_b W (over P_b, used up) and dX = col2im(dP) for the chunk.
  template <class Work, class Buffers>
  void BackwardPerSample(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& dy, Matrix<T>* dx,
                         bool transposed, Work& work, Buffers& buffers, Index first,
                         Index count) {
    const Index positions = Positions();
    Im2Col<T>(x.middleCols(first, count), this->input_shape_, window_, OutputPlane(),
              buffers.patches);
    work.grad_weight.resize(OutChannels(), weight_.cols());
    work.grad_bias.resize(OutChannels(), 1);
    for (Index b = 0; b < count; ++b) {
      const bool started = work.chunks_done > 0 || b > 0;
      const Eigen::Map<const Matrix<T>> grad(dy.col(first + b).data(), positions, OutChannels());
      AddBiasGradient(grad, started, work.grad_bias);
      auto patch_rows = buffers.patches.middleRows(b * positions, positions);
      GemmInto<T>(Op::Transpose, grad, Op::None, patch_rows, work.grad_weight,
                  started ? T(1) : T(0), buffers.gemm);
      if (dx != nullptr && !transposed) {
        GemmInto<T>(Op::None, grad, Op::None, weight_, patch_rows, T(0), buffers.gemm);
      }
    }
    ++work.chunks_done;
    if (dx == nullptr) return;
    const Size2D in_plane{this->input_shape_.height, this->input_shape_.width};
    if (transposed) {
      const Index in_positions = in_plane.height * in_plane.width;
      Im2Col<T>(dy.middleCols(first, count), this->output_shape_, TransposedWindow(), in_plane,
                buffers.products);
      for (Index b = 0; b < count; ++b) {
        Eigen::Map<Matrix<T>> grad_in(dx->col(first + b).data(), in_positions, InChannels());
        GemmInto<T>(Op::None, buffers.products.middleRows(b * in_positions, in_positions),
                    Op::Transpose, flipped_weight_, grad_in, T(0), buffers.gemm);
      }
      return;
    }
    Col2Im<T>(buffers.patches, this->input_shape_, window_, OutputPlane(),
              dx->middleCols(first, count));
  }

  /// The window of the transposed convolution (see Plan::transposed_input_gradient).
  Window2D TransposedWindow() const {
    return {window_.kernel, Size2D{1},
            Size2D{window_.kernel.height - 1 - window_.padding.height,
                   window_.kernel.width - 1 - window_.padding.width}};
  }

  /// flipped_weight_ = W'^T (C_in x C_out kh kw), see Plan::transposed_input_gradient: stored
  /// transposed so that its rows are W''s columns, as PatchesTimes reads a weight in place.
  void FlipWeight() {
    const Index kh = window_.kernel.height, kw = window_.kernel.width;
    flipped_weight_.resize(InChannels(), OutChannels() * kh * kw);
    for (Index o = 0; o < OutChannels(); ++o) {
      for (Index c = 0; c < InChannels(); ++c) {
        for (Index ky = 0; ky < kh; ++ky) {
          for (Index kx = 0; kx < kw; ++kx) {
            flipped_weight_(c, (o * kh + kh - 1 - ky) * kw + kw - 1 - kx) =
                weight_(o, (c * kh + ky) * kw + kx);
          }
        }
      }
    }
  }

  /// phase_weights_[a * sw + b] = W_ab^T (C_in x C_out taps), the kernels' taps that read phase
  /// (a, b) of the input (ForEachPhaseTap, in its order): W_ab^T(c, o * taps + t) = W(o, (c kh
  /// + ky_t) kw + kx_t), stored transposed as PatchesTimes reads a weight in place. With
  /// stride 1, one phase of every tap: the transposed convolution's W'^T with its taps in
  /// ConfigureTransposed's order.
  void PhaseWeights() {
    const Index sw = window_.stride.width, phases = window_.stride.height * sw;
    const Index kh = window_.kernel.height, kw = window_.kernel.width;
    for (Index phase = 0; phase < phases; ++phase) {
      const Size2D of{phase / sw, phase % sw};
      Index taps = 0;
      ForEachPhaseTap(window_, of, [&](Index, Index) { ++taps; });
      Matrix<T>& weight = phase_weights_[static_cast<std::size_t>(phase)];
      weight.resize(InChannels(), OutChannels() * taps);
      Index t = 0;
      ForEachPhaseTap(window_, of, [&](Index ky, Index kx) {
        for (Index o = 0; o < OutChannels(); ++o) {
          for (Index c = 0; c < InChannels(); ++c) {
            weight(c, o * taps + t) = weight_(o, (c * kh + ky) * kw + kx);
          }
        }
        ++t;
      });
    }
  }

  /// A chunk's buffers.
  struct ChunkBuffers {
    Matrix<T> patches;   // P, then dP in Backward
    Matrix<T> products;  // Z in Forward, dZ in Backward (n*Ho*Wo x C_out), or dY's patches
                         // (n*H*W x C_out kh kw) for the transposed convolution
    GemmWorkspace<T> gemm;  // the products' packing buffers (Eigen engine)
  };
  /// One thread's buffers, reused from batch to batch: full-size chunks and the last,
  /// shorter one of its range each keep their own, so no buffer changes size (which would
  /// reallocate it) while the batch size stays the same.
  struct Workspace {
    ChunkBuffers full, last;
    Matrix<T> grad_weight, grad_bias;  // this thread's sums in Backward
    Matrix<T> grad_weight_transposed;  // dW^T, this thread's sum on implicit patches
    ImplicitPatches<T> patches;  // X_b's (Plan::implicit_patches)
    // dY_b's for the phases of the input gradient (one with stride 1: the transposed
    // convolution), and a phase's values before they are scattered into dX_b (stride 2).
    ImplicitPatches<T> gradient_patches;
    Matrix<T> phase_gradient;
    Index chunks_done = 0;
  };

  /// Splits the batch's samples over the threads (ParallelRanges) and calls
  /// f(workspace, buffers, first, count) for each chunk of at most SamplesPerChunk() samples
  /// of a thread's range, with that thread's workspace (chunks_done counts its earlier
  /// chunks) and the chunk's buffers.
  /// Returns the number of threads used (workspaces 0 .. parts-1).
  template <class F>
  int ForEachChunk(Index batch, F&& f) {
    const Index chunk = SamplesPerChunk();
    const Index flops_per_sample = 2 * Positions() * weight_.cols() * OutChannels();
    for (Workspace& work : workspaces_) work.chunks_done = 0;
    return ForEachSampleChunk(batch, chunk, flops_per_sample,
                              [&](int part, Index first, Index count) {
                                Workspace& work = workspaces_[static_cast<std::size_t>(part)];
                                f(work, count == chunk ? work.full : work.last, first, count);
                              });
  }

  Size2D OutputPlane() const { return {this->output_shape_.height, this->output_shape_.width}; }
  Index Positions() const { return this->output_shape_.height * this->output_shape_.width; }

  Window2D window_;
  T init_std_;
  Matrix<T> weight_, bias_, grad_weight_, grad_bias_;
  Matrix<T> flipped_weight_;  // W'^T of the latest Backward (Plan::transposed_input_gradient)
  // W_ab^T of the latest Backward on implicit patches (PhaseWeights).
  std::array<Matrix<T>, kMaxStridePhases> phase_weights_;
  Plan plan_;                 // for the input shape (SetInputShape)
  std::vector<Workspace> workspaces_ = std::vector<Workspace>(kMaxParallelParts);
};

}  // namespace dlb
