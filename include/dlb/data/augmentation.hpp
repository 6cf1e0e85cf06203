#pragma once
/// \file
/// Image augmentation on the fly: random crop from a zero-padded image, horizontal flip and
/// random erasing, composed in a given order and applied in place to the columns of a batch.
///
/// Why per-sample streams: the random numbers for sample s in epoch e come from a generator
/// seeded by (seed, e, s) alone, so the augmented batch does not depend on the thread count,
/// on which other samples share the batch, or on the shard; and the only state a checkpoint
/// needs is the epoch number (DataSet saves it). Nothing is materialised: each batch is
/// augmented after it is gathered, and no augmented copy of the data set exists.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/linkage.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

/// Shifts the image by (dy, dx), each drawn uniformly from -pad .. pad, filling the uncovered
/// pixels with 0: the same as padding every side with `pad` zeros and cropping H x W at a
/// uniformly random offset (torchvision's RandomCrop(size, padding=pad)). All channels move
/// together. Data standardised per channel (Standardizer::FitPerChannel) has mean 0, so the
/// fill is the channel's mean pixel. Standardise per channel, not per pixel, before shifting
/// or flipping: per-pixel statistics differ from pixel to pixel, so a moved value would be
/// read with another pixel's scale.
struct RandomCrop {
  Index pad = 2;
};

/// Mirrors the image left-right (column x -> W-1-x in every row and channel) with probability p.
struct HorizontalFlip {
  double p = 0.5;
};

/// With probability p, sets a rectangle of every channel to `value` (torchvision's
/// RandomErasing, value 0): its area is scale_min..scale_max of H*W (uniform) and its aspect
/// ratio h/w log-uniform in ratio_min..ratio_max; h = round(sqrt(area*ratio)), w =
/// round(sqrt(area/ratio)); up to 10 draws until h < H and w < W, then a uniform position;
/// nothing is erased when no draw fits.
struct RandomErasing {
  double p = 0.5;
  double scale_min = 0.02, scale_max = 0.33;
  double ratio_min = 0.3, ratio_max = 3.3;
  double value = 0;
};

/// One step of an Augmentation.
using ImageTransform = std::variant<RandomCrop, HorizontalFlip, RandomErasing>;

namespace internal {

/// SplitMix64's finaliser: a bijection of 64-bit words whose outputs look independent.
constexpr std::uint64_t Mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A small generator (SplitMix64) for one sample's augmentation in one epoch. Constructing
/// it costs three multiplications, where a Mersenne Twister would cost 312 words of seeding
/// per sample.
class SampleStream {
 public:
  SampleStream(std::uint64_t seed, std::uint64_t epoch, std::uint64_t sample)
      : state_(Mix64(Mix64(Mix64(seed) ^ epoch) ^ sample)) {}
  std::uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return Mix64(state_);
  }
  /// Uniform in [0, 1) with 53 bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  /// Uniform integer in 0 .. n-1 (1 <= n, n small); the modulo's bias (at most n / 2^64) is
  /// far below anything an augmentation could show.
  Index Below(Index n) { return static_cast<Index>(Next() % static_cast<std::uint64_t>(n)); }

 private:
  std::uint64_t state_;
};

/// Shifts one H x W plane by (dy, dx) in place: out(y, x) = in(y + dy, x + dx), 0 outside.
/// Rows are visited in the order that reads each source row before it is overwritten.
template <Scalar T>
void ShiftPlane(T* plane, Index height, Index width, Index dy, Index dx) {
  auto shift_row = [&](Index y) {
    T* row = plane + y * width;
    const Index source_y = y + dy;
    if (source_y < 0 || source_y >= height) {
      std::fill(row, row + width, T(0));
      return;
    }
    const T* source = plane + source_y * width;
    // out[x] = source[x + dx] for 0 <= x + dx < width.
    if (dx >= 0) {
      const Index kept = std::max<Index>(0, width - dx);
      if (kept > 0) std::copy(source + dx, source + dx + kept, row);  // forward: row <= source
      std::fill(row + kept, row + width, T(0));
    } else {
      const Index kept = std::max<Index>(0, width + dx);
      if (kept > 0) std::copy_backward(source, source + kept, row + width);
      std::fill(row, row + width - kept, T(0));
    }
  };
  if (dy >= 0) {
    for (Index y = 0; y < height; ++y) shift_row(y);
  } else {
    for (Index y = height - 1; y >= 0; --y) shift_row(y);
  }
}

}  // namespace internal

/// "crop:2,flip,erase:0.25" -> {RandomCrop{2}, HorizontalFlip{0.5}, RandomErasing{0.25}}.
/// Items: crop[:PAD] (pad 0..64, default 2), flip[:P] (default 0.5), erase[:P] (default 0.5),
/// P in [0, 1]; "none" or "" -> no transform. Throws ArgumentError naming the bad item.
DLB_INLINE std::vector<ImageTransform> ParseAugmentation(const std::string& text);

/// The canonical text of `transforms` (ParseAugmentation's format), "none" when empty.
DLB_INLINE std::string DescribeAugmentation(const std::vector<ImageTransform>& transforms);

/// A sequence of image transforms applied to each sample, in order, with per-sample random
/// streams.
///
/// Represents: the image shape C x H x W (a sample is C*H*W values, channel-major), the
/// transforms, and the seed. Stateless otherwise: the epoch is passed in by the caller.
/// Ensures: Apply's result for a sample depends only on (seed, epoch, sample index, the
/// sample's values), never on threads or batch composition; Apply allocates nothing.
template <Scalar T>
class Augmentation {
 public:
  /// Throws ArgumentError when the shape is invalid or a transform's parameters are out of
  /// range (crop pad < 0 or >= H or W; probabilities outside [0, 1]; erasing scales or ratios
  /// not 0 < min <= max, scale_max <= 1).
  Augmentation(Shape image, std::vector<ImageTransform> transforms, std::uint64_t seed = 0)
      : image_(image), transforms_(std::move(transforms)), seed_(seed) {
    if (!image.IsValid()) {
      throw ArgumentError("Augmentation: invalid image shape " + std::to_string(image.channels) +
                          " x " + std::to_string(image.height) + " x " + std::to_string(image.width));
    }
    auto probability = [](double p, const char* what) {
      if (!(p >= 0 && p <= 1)) {
        throw ArgumentError(std::string("Augmentation: ") + what + " probability must be in [0, 1], got " +
                            std::to_string(p));
      }
    };
    for (const ImageTransform& transform : transforms_) {
      if (const auto* crop = std::get_if<RandomCrop>(&transform)) {
        if (crop->pad < 0 || crop->pad >= image.height || crop->pad >= image.width) {
          throw ArgumentError("Augmentation: crop padding must be in 0.." +
                              std::to_string(std::min(image.height, image.width) - 1) +
                              " for " + std::to_string(image.height) + " x " +
                              std::to_string(image.width) + " images, got " + std::to_string(crop->pad));
        }
      } else if (const auto* flip = std::get_if<HorizontalFlip>(&transform)) {
        probability(flip->p, "flip");
      } else {
        const RandomErasing& erase = std::get<RandomErasing>(transform);
        probability(erase.p, "erasing");
        if (!(erase.scale_min > 0 && erase.scale_min <= erase.scale_max && erase.scale_max <= 1 &&
              erase.ratio_min > 0 && erase.ratio_min <= erase.ratio_max && std::isfinite(erase.ratio_max))) {
          throw ArgumentError("Augmentation: erasing needs 0 < scale_min <= scale_max <= 1 and "
                              "0 < ratio_min <= ratio_max");
        }
      }
    }
  }

  const Shape& ImageShape() const { return image_; }
  const std::vector<ImageTransform>& Transforms() const { return transforms_; }
  std::uint64_t Seed() const { return seed_; }
  bool Empty() const { return transforms_.empty(); }
  /// "crop:2,flip:0.5" (DescribeAugmentation).
  std::string Describe() const { return DescribeAugmentation(transforms_); }

  /// Augments one sample (C*H*W values at `image`) in place with the stream (Seed(), epoch, sample).
  void ApplyToSample(T* image, std::uint64_t epoch, std::uint64_t sample) const {
    ApplyToSample(image, seed_, epoch, sample);
  }
  /// The same with the stream (seed, epoch, sample): for a holder that keeps the seed as
  /// checkpointed state (DataSet).
  void ApplyToSample(T* image, std::uint64_t seed, std::uint64_t epoch, std::uint64_t sample) const {
    internal::SampleStream stream(seed, epoch, sample);
    const Index c = image_.channels, h = image_.height, w = image_.width;
    for (const ImageTransform& transform : transforms_) {
      if (const auto* crop = std::get_if<RandomCrop>(&transform)) {
        const Index dy = stream.Below(2 * crop->pad + 1) - crop->pad;
        const Index dx = stream.Below(2 * crop->pad + 1) - crop->pad;
        if (dy == 0 && dx == 0) continue;
        for (Index k = 0; k < c; ++k) internal::ShiftPlane(image + k * h * w, h, w, dy, dx);
      } else if (const auto* flip = std::get_if<HorizontalFlip>(&transform)) {
        if (!(stream.Uniform() < flip->p)) continue;
        for (Index row = 0; row < c * h; ++row) std::reverse(image + row * w, image + (row + 1) * w);
      } else {
        const RandomErasing& erase = std::get<RandomErasing>(transform);
        if (!(stream.Uniform() < erase.p)) continue;
        const double area = static_cast<double>(h * w);
        const double log_low = std::log(erase.ratio_min), log_high = std::log(erase.ratio_max);
        for (int attempt = 0; attempt < 10; ++attempt) {
          const double target = area * (erase.scale_min + (erase.scale_max - erase.scale_min) * stream.Uniform());
          const double ratio = std::exp(log_low + (log_high - log_low) * stream.Uniform());
          const auto eh = static_cast<Index>(std::lround(std::sqrt(target * ratio)));
          const auto ew = static_cast<Index>(std::lround(std::sqrt(target / ratio)));
          if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
          const Index top = stream.Below(h - eh + 1), left = stream.Below(w - ew + 1);
          const T value = static_cast<T>(erase.value);
          for (Index k = 0; k < c; ++k) {
            for (Index y = top; y < top + eh; ++y) {
              T* row = image + (k * h + y) * w;
              std::fill(row + left, row + left + ew, value);
            }
          }
          break;
        }
      }
    }
  }

  /// Augments every column j of `batch` (C*H*W rows) in place as sample `samples[j]` of
  /// `epoch`, in parallel over columns. Throws ShapeError when the rows are not C*H*W.
  void Apply(Eigen::Ref<Matrix<T>> batch, std::uint64_t epoch, const Index* samples) const {
    CheckRows(batch.rows());
    if (transforms_.empty()) return;
    ParallelRanges(batch.cols(), batch.rows(), [&](int, Index begin, Index length) {
      for (Index j = begin; j < begin + length; ++j) {
        ApplyToSample(batch.col(j).data(), epoch, static_cast<std::uint64_t>(samples[j]));
      }
    });
  }

  /// Throws ShapeError unless `rows` (values per sample) is C*H*W.
  void CheckRows(Index rows) const {
    if (rows != image_.Size()) {
      throw ShapeError("Augmentation: samples have " + std::to_string(rows) + " values but the images are " +
                       std::to_string(image_.channels) + " x " + std::to_string(image_.height) + " x " +
                       std::to_string(image_.width) + " = " + std::to_string(image_.Size()));
    }
  }

 private:
  Shape image_;
  std::vector<ImageTransform> transforms_;
  std::uint64_t seed_;
};

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/data/impl/augmentation.ipp"
#endif
