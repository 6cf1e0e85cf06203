// Fashion-MNIST loader on a tiny fake data set written with the IDX writer.

#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dlb/data/fashion_mnist.hpp"
#include "dlb/data/idx.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

namespace {

using dlb_test::MessageContains;

using Bytes = std::vector<std::uint8_t>;

/// This program's scratch directories: dlb_test_fmnist_<random digits>.
struct TempDir : dlb_test::TempDir {
  TempDir() : dlb_test::TempDir("dlb_test_fmnist_") {}
};

/// count 28 x 28 images whose pixels depend on (seed, image, pixel), so that any mix-up of
/// images, sets or pixel order shows.
dlb::IdxImages FakeImages(dlb::Index count, int seed, dlb::Index rows = 28, dlb::Index cols = 28) {
  dlb::IdxImages images;
  images.count = count;
  images.rows = rows;
  images.cols = cols;
  images.pixels.resize(static_cast<std::size_t>(count * rows * cols));
  for (std::size_t i = 0; i < images.pixels.size(); ++i) {
    images.pixels[i] =
        static_cast<std::uint8_t>((i * 31 + static_cast<std::size_t>(seed) * 7) % 256);
  }
  images.pixels[0] = 255;  // the top of the scale must map to exactly 1
  return images;
}

Bytes FakeLabels(std::size_t count, int shift) {
  Bytes labels(count);
  for (std::size_t i = 0; i < count; ++i) labels[i] = static_cast<std::uint8_t>((i + shift) % 10);
  return labels;
}

/// Writes the four standard files (each with suffix: "" or ".gz").
void WriteFakeSet(const TempDir& dir, const std::string& train_suffix,
                  const std::string& test_suffix) {
  dlb::WriteIdxImages(dir / ("train-images-idx3-ubyte" + train_suffix), FakeImages(20, 1));
  dlb::WriteIdxLabels(dir / ("train-labels-idx1-ubyte" + train_suffix), FakeLabels(20, 3));
  dlb::WriteIdxImages(dir / ("t10k-images-idx3-ubyte" + test_suffix), FakeImages(10, 2));
  dlb::WriteIdxLabels(dir / ("t10k-labels-idx1-ubyte" + test_suffix), FakeLabels(10, 5));
}

template <class T>
void RequireMatchesFake(const dlb::FashionMnist<T>& data) {
  const dlb::IdxImages train = FakeImages(20, 1);
  const dlb::IdxImages test = FakeImages(10, 2);
  REQUIRE(data.train_images.rows() == 784);
  REQUIRE(data.train_images.cols() == 20);
  REQUIRE(data.test_images.rows() == 784);
  REQUIRE(data.test_images.cols() == 10);
  REQUIRE(data.train_labels.size() == 20);
  REQUIRE(data.test_labels.size() == 10);
  for (dlb::Index j = 0; j < 20; ++j) {
    REQUIRE(data.train_labels(j) == static_cast<dlb::Label>((j + 3) % 10));
    for (dlb::Index p = 0; p < 784; ++p) {
      const auto byte = train.pixels[static_cast<std::size_t>(j * 784 + p)];
      REQUIRE(data.train_images(p, j) == Approx(byte / 255.0).epsilon(1e-6));
    }
  }
  for (dlb::Index j = 0; j < 10; ++j) {
    REQUIRE(data.test_labels(j) == static_cast<dlb::Label>((j + 5) % 10));
    // Pixel (row 3, column 5) of image j is row 3 * 28 + 5 of column j.
    const auto byte = test.pixels[static_cast<std::size_t>(j * 784 + 3 * 28 + 5)];
    REQUIRE(data.test_images(3 * 28 + 5, j) == Approx(byte / 255.0).epsilon(1e-6));
  }
  REQUIRE(data.train_images(0, 0) == T(1));
  REQUIRE(data.train_images.minCoeff() >= T(0));
  REQUIRE(data.train_images.maxCoeff() <= T(1));
}

}  // namespace

TEST_CASE("LoadFashionMnist reads raw IDX files", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, "", "");
  RequireMatchesFake(dlb::LoadFashionMnist<double>(dir.path.string()));
  RequireMatchesFake(dlb::LoadFashionMnist(dir.path.string()));  // float by default
}

TEST_CASE("LoadFashionMnist reads gzip IDX files, or a mix", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, ".gz", ".gz");
  RequireMatchesFake(dlb::LoadFashionMnist<double>(dir.path.string()));
  TempDir mixed;
  WriteFakeSet(mixed, "", ".gz");
  RequireMatchesFake(dlb::LoadFashionMnist<float>(mixed.path.string()));
}

TEST_CASE("LoadFashionMnist prefers the raw file when both exist", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, "", "");
  dlb::WriteIdxLabels(dir / "train-labels-idx1-ubyte.gz", FakeLabels(20, 0));
  RequireMatchesFake(dlb::LoadFashionMnist<double>(dir.path.string()));
}

TEST_CASE("LoadFashionMnist names both file names it tried for a missing file", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, "", "");
  std::filesystem::remove(dir / "t10k-labels-idx1-ubyte");
  REQUIRE_THROWS_MATCHES(dlb::LoadFashionMnist<float>(dir.path.string()), dlb::FileError,
                         MessageContains({"not found", dir / "t10k-labels-idx1-ubyte and ",
                                          dir / "t10k-labels-idx1-ubyte.gz"}));
  REQUIRE_THROWS_MATCHES(dlb::LoadFashionMnist<float>(dir / "no-such-dir"), dlb::FileError,
                         MessageContains({"train-images-idx3-ubyte.gz", "fetch_fashion_mnist.sh"}));
}

TEST_CASE("LoadFashionMnist rejects an image/label count mismatch", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, ".gz", "");
  dlb::WriteIdxLabels(dir / "train-labels-idx1-ubyte.gz", FakeLabels(19, 3));
  REQUIRE_THROWS_MATCHES(dlb::LoadFashionMnist<float>(dir.path.string()), dlb::FileError,
                         MessageContains({dir / "train-labels-idx1-ubyte.gz",
                                          "label count does not match: expected 20", "found 19"}));
}

TEST_CASE("LoadFashionMnist rejects a label outside 0..9 and names its index", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, "", "");
  Bytes labels = FakeLabels(10, 5);
  labels[7] = 10;
  dlb::WriteIdxLabels(dir / "t10k-labels-idx1-ubyte", labels);
  try {
    dlb::LoadFashionMnist<float>(dir.path.string());
    FAIL("expected a FileError");
  } catch (const dlb::FileError& error) {
    CHECK_THAT(error.what(), Catch::Matchers::Contains(dir / "t10k-labels-idx1-ubyte") &&
                                 Catch::Matchers::Contains("at index 7") &&
                                 Catch::Matchers::Contains("expected 0..9, found 10"));
    CHECK(error.Offset() == std::optional<std::uint64_t>(8 + 7));
  }
}

TEST_CASE("LoadFashionMnist rejects images that are not 28 x 28", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, "", "");
  dlb::WriteIdxImages(dir / "t10k-images-idx3-ubyte", FakeImages(10, 2, 28, 27));
  REQUIRE_THROWS_MATCHES(
      dlb::LoadFashionMnist<float>(dir.path.string()), dlb::FileError,
      MessageContains({"t10k-images-idx3-ubyte", "expected 28 x 28", "found 28 x 27"}));
}

TEST_CASE("LoadFashionMnist passes on IDX format errors", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, "", "");
  // A label file where an image file belongs.
  std::filesystem::copy_file(dir / "train-labels-idx1-ubyte", dir / "train-images-idx3-ubyte",
                             std::filesystem::copy_options::overwrite_existing);
  REQUIRE_THROWS_MATCHES(
      dlb::LoadFashionMnist<float>(dir.path.string()), dlb::FileError,
      MessageContains({"train-images-idx3-ubyte", "wrong number of dimensions"}));
}

TEST_CASE("LoadFashionMnist refuses files over its limits before reading them", "[fashion_mnist]") {
  TempDir dir;
  WriteFakeSet(dir, "", ".gz");
  REQUIRE_THROWS_MATCHES(dlb::LoadFashionMnist<float>(dir.path.string(), {.max_items = 19}),
                         dlb::FileError,
                         MessageContains({dir / "train-images-idx3-ubyte",
                                          "20 images of 28 x 28, more than the limit of 19 images"}));
  RequireMatchesFake(dlb::LoadFashionMnist<float>(dir.path.string(), {.max_items = 20}));

  // The default limits stop the gzip bomb: a gzip file whose header honestly declares
  // a million images is refused right after its 16-byte header (here nothing follows it).
  CHECK(dlb::kFashionMnistLimits.max_items == 300'000);
  CHECK(dlb::kFashionMnistLimits.max_bytes == 300'000 * 784);
  std::filesystem::remove(dir / "train-images-idx3-ubyte");
  const unsigned char header[16] = {0, 0, 8, 3, 0x00, 0x0F, 0x42, 0x40, 0, 0, 0, 28, 0, 0, 0, 28};
  gzFile gz = gzopen((dir / "train-images-idx3-ubyte.gz").c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, header, sizeof header) == static_cast<int>(sizeof header));
  REQUIRE(gzclose(gz) == Z_OK);
  REQUIRE_THROWS_MATCHES(dlb::LoadFashionMnist<float>(dir.path.string()), dlb::FileError,
                         MessageContains({"1000000 images of 28 x 28", "limit of 300000 images"}));
}

TEST_CASE("ImagesToMatrix puts one image per column and scales it", "[fashion_mnist]") {
  dlb::IdxImages images;
  images.count = 2;
  images.rows = 2;
  images.cols = 3;
  images.pixels = {1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60};
  const dlb::Matrix<double> m = dlb::ImagesToMatrix<double>(images, 0.5);
  REQUIRE(m.rows() == 6);
  REQUIRE(m.cols() == 2);
  CHECK(m(0, 0) == 0.5);
  CHECK(m(5, 0) == 3.0);
  CHECK(m(1 * 3 + 2, 1) == 30.0);  // row 1, column 2 of image 1
  images.pixels.pop_back();
  REQUIRE_THROWS_MATCHES(dlb::ImagesToMatrix<double>(images, 1.0), dlb::ShapeError,
                         MessageContains({"2 images of 2 x 3", "11 bytes"}));
}
