// Image augmentation (dlb/data/augmentation.hpp) and its use by DataSet: each transform's
// effect on a known small image, composition, parsing, determinism by seed (and not by thread
// count), resuming bit for bit from the DataSet's state, and no allocation per batch.
#include "support/allocation_counter.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "dlb/core/threads.hpp"
#include "dlb/data/augmentation.hpp"
#include "dlb/data/dataset.hpp"

using dlb::Index;
using dlb::Matrix;

namespace {

/// A C x H x W image with pixel (c, y, x) = 1 + c*100 + y*10 + x (all distinct, none 0).
std::vector<float> Image(Index c, Index h, Index w) {
  std::vector<float> image(static_cast<std::size_t>(c * h * w));
  for (Index k = 0; k < c; ++k)
    for (Index y = 0; y < h; ++y)
      for (Index x = 0; x < w; ++x) image[static_cast<std::size_t>((k * h + y) * w + x)] = static_cast<float>(1 + k * 100 + y * 10 + x);
  return image;
}

/// The reference shift: out(c, y, x) = in(c, y + dy, x + dx), 0 outside (a padded crop).
std::vector<float> Shifted(const std::vector<float>& in, Index c, Index h, Index w, Index dy, Index dx) {
  std::vector<float> out(in.size(), 0.0f);
  for (Index k = 0; k < c; ++k)
    for (Index y = 0; y < h; ++y)
      for (Index x = 0; x < w; ++x) {
        const Index sy = y + dy, sx = x + dx;
        if (sy >= 0 && sy < h && sx >= 0 && sx < w) {
          out[static_cast<std::size_t>((k * h + y) * w + x)] = in[static_cast<std::size_t>((k * h + sy) * w + sx)];
        }
      }
  return out;
}

/// Which shift (dy, dx) within +-pad turns `in` into `out`; (99, 99) for none.
std::pair<Index, Index> FindShift(const std::vector<float>& in, const std::vector<float>& out, Index c,
                                  Index h, Index w, Index pad) {
  for (Index dy = -pad; dy <= pad; ++dy)
    for (Index dx = -pad; dx <= pad; ++dx)
      if (Shifted(in, c, h, w, dy, dx) == out) return {dy, dx};
  return {99, 99};
}

/// N images of 2 x 5 x 6 with distinct values per sample, and labels 0..N-1.
struct Images {
  static constexpr Index kC = 2, kH = 5, kW = 6;
  Matrix<float> x;
  dlb::Labels y;
  explicit Images(Index n) : x(kC * kH * kW, n), y(n) {
    for (Index j = 0; j < n; ++j) {
      const std::vector<float> image = Image(kC, kH, kW);
      for (Index i = 0; i < x.rows(); ++i) x(i, j) = image[static_cast<std::size_t>(i)] + 1000.0f * static_cast<float>(j);
      y(j) = j;
    }
  }
};

dlb::Augmentation<float> AllThree(std::uint64_t seed) {
  return dlb::Augmentation<float>({Images::kC, Images::kH, Images::kW},
                                  dlb::ParseAugmentation("crop:2,flip,erase:0.5"), seed);
}

/// Every batch of `epochs` epochs, concatenated.
std::vector<Matrix<float>> Epochs(dlb::DataSet<float>& data, int epochs) {
  std::vector<Matrix<float>> batches;
  for (int e = 0; e < epochs; ++e)
    for (const auto& batch : data) batches.emplace_back(batch.x);
  return batches;
}

}  // namespace

TEST_CASE("augmentation: the shift of a plane matches a padded crop for every offset", "[augmentation]") {
  const Index h = 4, w = 5;
  const std::vector<float> image = Image(1, h, w);
  for (Index dy = -3; dy <= 3; ++dy) {
    for (Index dx = -4; dx <= 4; ++dx) {
      INFO("dy " << dy << " dx " << dx);
      std::vector<float> shifted = image;
      dlb::internal::ShiftPlane(shifted.data(), h, w, dy, dx);
      CHECK(shifted == Shifted(image, 1, h, w, dy, dx));
    }
  }
  // A known case written out: 3 x 3 shifted by (1, -1): out(y, x) = in(y + 1, x - 1).
  std::vector<float> small = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  dlb::internal::ShiftPlane(small.data(), 3, 3, 1, -1);
  CHECK(small == std::vector<float>{0, 4, 5, 0, 7, 8, 0, 0, 0});
}

TEST_CASE("augmentation: random crop moves all channels by one shift within the padding, and "
          "every shift occurs", "[augmentation]") {
  const Index c = 2, h = 5, w = 6, pad = 2;
  const dlb::Augmentation<float> crop({c, h, w}, {dlb::RandomCrop{pad}}, 7);
  const std::vector<float> image = Image(c, h, w);
  std::set<std::pair<Index, Index>> seen;
  for (std::uint64_t sample = 0; sample < 400; ++sample) {
    std::vector<float> out = image;
    crop.ApplyToSample(out.data(), 1, sample);
    const auto shift = FindShift(image, out, c, h, w, pad);
    REQUIRE(shift.first != 99);  // the channels moved together, by at most pad
    seen.insert(shift);
  }
  CHECK(seen.size() == 25);  // (2 pad + 1)^2 offsets
}

TEST_CASE("augmentation: flip mirrors each row with probability p", "[augmentation]") {
  const Index c = 2, h = 3, w = 4;
  const std::vector<float> image = Image(c, h, w);
  std::vector<float> mirrored = image;
  for (Index row = 0; row < c * h; ++row) std::reverse(mirrored.begin() + row * w, mirrored.begin() + (row + 1) * w);
  std::vector<float> out = image;
  dlb::Augmentation<float>({c, h, w}, {dlb::HorizontalFlip{1.0}}).ApplyToSample(out.data(), 0, 0);
  CHECK(out == mirrored);
  CHECK(out[0] == 4.0f);  // pixel (0, 0, 0) came from (0, 0, 3) = 1 + 3
  out = image;
  dlb::Augmentation<float>({c, h, w}, {dlb::HorizontalFlip{0.0}}).ApplyToSample(out.data(), 0, 0);
  CHECK(out == image);
  // p = 0.5: about half of 1000 samples flipped.
  const dlb::Augmentation<float> half({c, h, w}, {dlb::HorizontalFlip{0.5}}, 3);
  int flipped = 0;
  for (std::uint64_t s = 0; s < 1000; ++s) {
    out = image;
    half.ApplyToSample(out.data(), 2, s);
    REQUIRE((out == image || out == mirrored));
    flipped += out == mirrored;
  }
  CHECK(flipped > 430);
  CHECK(flipped < 570);
}

TEST_CASE("augmentation: erasing sets one rectangle of the given area range in every channel",
          "[augmentation]") {
  const Index c = 3, h = 10, w = 12;
  const std::vector<float> image = Image(c, h, w);
  dlb::RandomErasing erase;
  erase.p = 1.0;
  erase.scale_min = 0.1;
  erase.scale_max = 0.2;
  erase.value = -5;
  const dlb::Augmentation<float> augmentation({c, h, w}, {erase}, 11);
  int erased_samples = 0;
  for (std::uint64_t s = 0; s < 200; ++s) {
    std::vector<float> out = image;
    augmentation.ApplyToSample(out.data(), 1, s);
    // The erased pixels of channel 0 form a full rectangle; the other channels match it.
    Index top = h, bottom = -1, left = w, right = -1, count = 0;
    for (Index y = 0; y < h; ++y)
      for (Index x = 0; x < w; ++x) {
        const std::size_t i = static_cast<std::size_t>(y * w + x);
        if (out[i] == -5.0f) {
          top = std::min(top, y), bottom = std::max(bottom, y);
          left = std::min(left, x), right = std::max(right, x);
          ++count;
        } else {
          REQUIRE(out[i] == image[i]);
        }
      }
    if (count == 0) continue;  // no draw fitted (possible, rare)
    ++erased_samples;
    REQUIRE(count == (bottom - top + 1) * (right - left + 1));
    // Area within the scale range, up to rounding of each side.
    CHECK(count >= 6);
    CHECK(count <= 40);
    for (Index k = 1; k < c; ++k)
      for (Index i = 0; i < h * w; ++i)
        REQUIRE((out[static_cast<std::size_t>(k * h * w + i)] == -5.0f) == (out[static_cast<std::size_t>(i)] == -5.0f));
  }
  CHECK(erased_samples > 190);
  std::vector<float> out = image;
  erase.p = 0;
  dlb::Augmentation<float>({c, h, w}, {erase}).ApplyToSample(out.data(), 1, 0);
  CHECK(out == image);
}

TEST_CASE("augmentation: transforms compose in order", "[augmentation]") {
  const Index c = 1, h = 4, w = 4;
  const std::vector<float> image = Image(c, h, w);
  // crop then flip(p=1) is the mirror image of the crop alone with the same stream (the
  // flip at p = 1 draws one number after the crop's two).
  const dlb::Augmentation<float> crop({c, h, w}, {dlb::RandomCrop{1}}, 5);
  const dlb::Augmentation<float> crop_flip({c, h, w}, {dlb::RandomCrop{1}, dlb::HorizontalFlip{1.0}}, 5);
  for (std::uint64_t s = 0; s < 20; ++s) {
    std::vector<float> a = image, b = image;
    crop.ApplyToSample(a.data(), 3, s);
    crop_flip.ApplyToSample(b.data(), 3, s);
    for (Index row = 0; row < h; ++row) std::reverse(a.begin() + row * w, a.begin() + (row + 1) * w);
    REQUIRE(a == b);
  }
}

TEST_CASE("augmentation: flag text parses, prints canonically and rejects nonsense", "[augmentation]") {
  const auto transforms = dlb::ParseAugmentation("crop:2,flip,erase:0.25");
  REQUIRE(transforms.size() == 3);
  CHECK(std::get<dlb::RandomCrop>(transforms[0]).pad == 2);
  CHECK(std::get<dlb::HorizontalFlip>(transforms[1]).p == 0.5);
  CHECK(std::get<dlb::RandomErasing>(transforms[2]).p == 0.25);
  CHECK(dlb::DescribeAugmentation(transforms) == "crop:2,flip:0.5,erase:0.25");
  CHECK(dlb::ParseAugmentation("none").empty());
  CHECK(dlb::DescribeAugmentation({}) == "none");
  for (const char* bad : {"crop:-1", "crop:1.5", "flip:2", "rotate", "crop,", "erase:x", ",flip"}) {
    INFO(bad);
    CHECK_THROWS_AS(dlb::ParseAugmentation(bad), dlb::ArgumentError);
  }
  CHECK_THROWS_AS(dlb::Augmentation<float>({1, 4, 4}, {dlb::RandomCrop{4}}), dlb::ArgumentError);
}

TEST_CASE("augmentation: a DataSet's augmented batches follow from the seed alone", "[augmentation]") {
  const Images d(40);
  auto make = [&](std::uint64_t seed) {
    dlb::DataSet<float> data(d.x, d.y, {.batch_size = 8, .drop_last = true, .seed = seed});
    data.SetAugmentation(AllThree(seed));
    return data;
  };
  dlb::DataSet<float> a = make(4), b = make(4), other = make(5);
  const auto batches_a = Epochs(a, 3);
  CHECK(batches_a == Epochs(b, 3));
  CHECK(batches_a != Epochs(other, 3));  // negative control
  // The epochs differ from one another, and the images were changed.
  dlb::DataSet<float> plain(d.x, d.y, {.batch_size = 8, .drop_last = true, .seed = 4});
  const auto batches_plain = Epochs(plain, 3);
  CHECK(batches_a != batches_plain);
  // Same shuffle, so each augmented column comes from the plain column's sample.
  CHECK(batches_a[0].cols() == batches_plain[0].cols());
  // Re-reading a batch gives the same values (the stream depends on the epoch, not on reads).
  dlb::DataSet<float> c = make(4);
  c.StartEpoch();
  const Matrix<float> first = c.GetBatch(1).x;
  CHECK(Matrix<float>(c.GetBatch(1).x) == first);
  CHECK(first == batches_a[1]);
}

TEST_CASE("augmentation: the batches do not depend on the thread count", "[augmentation]") {
  // 256 samples of 60 values per batch: enough work for ParallelRanges to split the gather.
  const Images d(512);
  auto run = [&](int threads) {
    const int saved = dlb::NumThreads();
    dlb::SetNumThreads(threads);
    dlb::DataSet<float> data(d.x, d.y, {.batch_size = 256, .drop_last = true, .seed = 9});
    data.SetAugmentation(AllThree(9));
    auto batches = Epochs(data, 2);
    dlb::SetNumThreads(saved);
    return batches;
  };
  CHECK(run(1) == run(3));
}

TEST_CASE("augmentation: a DataSet resumes bit for bit from its saved state", "[augmentation]") {
  const Images d(40);
  dlb::DataSet<float> uninterrupted(d.x, d.y, {.batch_size = 8, .drop_last = true, .seed = 2});
  uninterrupted.SetAugmentation(AllThree(2));
  const auto all = Epochs(uninterrupted, 3);

  dlb::DataSet<float> first(d.x, d.y, {.batch_size = 8, .drop_last = true, .seed = 2});
  first.SetAugmentation(AllThree(2));
  Epochs(first, 1);
  const dlb::StateDict saved = first.SaveState();
  CHECK(saved.Contains("augmentation_epoch"));
  CHECK(saved.Contains("augmentation_seed"));

  // Another seed for both the shuffle and the augmentation: the state replaces them.
  dlb::DataSet<float> resumed(d.x, d.y, {.batch_size = 8, .drop_last = true, .seed = 99});
  resumed.SetAugmentation(AllThree(99));
  resumed.LoadState(saved);
  CHECK(resumed.EpochsStarted() == 1);
  const auto rest = Epochs(resumed, 2);
  CHECK(std::vector<Matrix<float>>(all.begin() + 5, all.end()) == rest);

  // Negative control: without the augmentation state the resumed batches differ.
  dlb::DataSet<float> unaugmented(d.x, d.y, {.batch_size = 8, .drop_last = true, .seed = 2});
  CHECK_THROWS_AS(unaugmented.LoadState(saved), dlb::StateError);  // unexpected entries
  dlb::DataSet<float> fresh(d.x, d.y, {.batch_size = 8, .drop_last = true, .seed = 99});
  fresh.SetAugmentation(AllThree(99));
  CHECK(Epochs(fresh, 2) != rest);
}

TEST_CASE("augmentation: reading augmented batches allocates nothing after SetAugmentation",
          "[augmentation]") {
  const Images d(1024);
  for (const int threads : {1, 2}) {
    INFO(threads << " thread(s)");
    const int saved = dlb::NumThreads();
    dlb::SetNumThreads(threads);
    // Split over threads, see above.
    dlb::DataSet<float> data(d.x, d.y, {.batch_size = 256, .drop_last = true, .seed = 1});
    data.SetAugmentation(AllThree(1));
    data.StartEpoch();
    float sink = data.GetBatch(0).x(0, 0);  // first batch: the pool may start its threads
    const long before = dlb_test::Allocations();
    for (int epoch = 0; epoch < 2; ++epoch) {
      data.StartEpoch();
      for (Index b = 0; b < data.NumBatches(); ++b) sink += data.GetBatch(b).x(1, 1);
    }
    CHECK(dlb_test::Allocations() == before);
    CHECK(sink != 0.5f);
    dlb::SetNumThreads(saved);
  }
}

TEST_CASE("augmentation: a DataSet refuses images of another size", "[augmentation]") {
  const Images d(4);
  dlb::DataSet<float> data(d.x, d.y, {.batch_size = 2, .drop_last = true});
  CHECK_THROWS_AS(data.SetAugmentation(dlb::Augmentation<float>({1, 28, 28}, {dlb::HorizontalFlip{}})),
                  dlb::ShapeError);
  CHECK(data.GetAugmentation() == nullptr);
}
