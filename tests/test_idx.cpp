// IDX reader/writer: round trips (raw and gzip) and every malformed input the reader must
// turn into a FileError that says what was wrong and where.

#include <zlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <new>
#include <string>
#include <vector>

#include "dlb/data/idx.hpp"
#include "support/address_limit.hpp"
#include "support/allocation_counter.hpp"
#include "support/helpers.hpp"
#include "support/temp_dir.hpp"

// Every operator new of this program is counted (support/allocation_counter.hpp), so a test
// can assert that a lying header did not make the reader allocate a buffer of the declared
// (giant) size.

namespace {

using dlb_test::MessageContains;

using Bytes = std::vector<std::uint8_t>;

/// This program's scratch directories: dlb_test_idx_<random digits>.
struct TempDir : dlb_test::TempDir {
  TempDir() : dlb_test::TempDir("dlb_test_idx_") {}
};

void WriteBytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

Bytes ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// One gzip member holding bytes.
Bytes Gzip(const Bytes& bytes) {
  z_stream stream{};
  REQUIRE(deflateInit2(&stream, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&stream, static_cast<uLong>(bytes.size())) + 64);
  stream.next_in = const_cast<Bytef*>(bytes.data());
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&stream, Z_FINISH) == Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

Bytes Be32(std::uint32_t value) {
  return {static_cast<std::uint8_t>(value >> 24), static_cast<std::uint8_t>(value >> 16),
          static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)};
}

Bytes ImagesHeader(std::uint32_t count, std::uint32_t rows, std::uint32_t cols) {
  return Concat({Be32(0x00000803), Be32(count), Be32(rows), Be32(cols)});
}

Bytes Pattern(std::size_t n) {
  Bytes bytes(n);
  for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
  return bytes;
}

dlb::IdxImages SampleImages(dlb::Index count, dlb::Index rows, dlb::Index cols) {
  dlb::IdxImages images;
  images.count = count;
  images.rows = rows;
  images.cols = cols;
  images.pixels = Pattern(static_cast<std::size_t>(count * rows * cols));
  return images;
}

/// The FileError that f throws (fails the test if it throws nothing or something else).
dlb::FileError CaughtFileError(const std::function<void()>& f) {
  try {
    f();
  } catch (const dlb::FileError& error) {
    return error;
  }
  FAIL("expected a dlb::FileError");
  throw std::logic_error("unreachable");
}

void RequireSameImages(const dlb::IdxImages& a, const dlb::IdxImages& b) {
  REQUIRE(a.count == b.count);
  REQUIRE(a.rows == b.rows);
  REQUIRE(a.cols == b.cols);
  REQUIRE(a.pixels == b.pixels);
}

}  // namespace

TEST_CASE("IDX images round trip through a raw file", "[idx]") {
  TempDir dir;
  const dlb::IdxImages images = SampleImages(3, 2, 4);
  dlb::WriteIdxImages(dir / "images-idx3-ubyte", images);
  const Bytes file = ReadBytes(dir / "images-idx3-ubyte");
  REQUIRE(file == Concat({ImagesHeader(3, 2, 4), images.pixels}));
  RequireSameImages(dlb::ReadIdxImages(dir / "images-idx3-ubyte"), images);
}

TEST_CASE("IDX images round trip through a gzip file", "[idx]") {
  TempDir dir;
  // Large enough for several decompression chunks.
  const dlb::IdxImages images = SampleImages(1000, 28, 28);
  dlb::WriteIdxImages(dir / "images.gz", images);
  const Bytes file = ReadBytes(dir / "images.gz");
  REQUIRE(file.size() > 2);
  REQUIRE(file[0] == 0x1F);
  REQUIRE(file[1] == 0x8B);
  RequireSameImages(dlb::ReadIdxImages(dir / "images.gz"), images);
}

TEST_CASE("IDX labels round trip through raw and gzip files", "[idx]") {
  TempDir dir;
  const Bytes labels = {0, 1, 2, 9, 255, 7};
  dlb::WriteIdxLabels(dir / "labels", labels);
  REQUIRE(ReadBytes(dir / "labels") == Concat({Be32(0x00000801), Be32(6), labels}));
  REQUIRE(dlb::ReadIdxLabels(dir / "labels") == labels);
  dlb::WriteIdxLabels(dir / "labels.gz", labels);
  REQUIRE(ReadBytes(dir / "labels.gz")[0] == 0x1F);
  REQUIRE(dlb::ReadIdxLabels(dir / "labels.gz") == labels);
}

TEST_CASE("IDX gzip is detected by content, not by file name", "[idx]") {
  TempDir dir;
  const dlb::IdxImages images = SampleImages(2, 3, 3);
  const Bytes raw = Concat({ImagesHeader(2, 3, 3), images.pixels});
  WriteBytes(dir / "raw-but-named.gz", raw);
  RequireSameImages(dlb::ReadIdxImages(dir / "raw-but-named.gz"), images);
  WriteBytes(dir / "gzip-without-suffix", Gzip(raw));
  RequireSameImages(dlb::ReadIdxImages(dir / "gzip-without-suffix"), images);
}

TEST_CASE("IDX reader accepts concatenated gzip members like gzip -d", "[idx]") {
  TempDir dir;
  const dlb::IdxImages images = SampleImages(2, 3, 3);
  WriteBytes(dir / "two-members", Concat({Gzip(ImagesHeader(2, 3, 3)), Gzip(images.pixels)}));
  RequireSameImages(dlb::ReadIdxImages(dir / "two-members"), images);
}

TEST_CASE("IDX writer replaces files atomically and leaves no temporary file", "[idx]") {
  TempDir dir;
  dlb::WriteIdxLabels(dir / "labels.gz", {1, 2, 3});
  dlb::WriteIdxLabels(dir / "labels.gz", {4, 5});
  REQUIRE(dlb::ReadIdxLabels(dir / "labels.gz") == Bytes{4, 5});
  // A failed write (shape error) must not touch the existing file.
  dlb::IdxImages bad = SampleImages(2, 2, 2);
  bad.pixels.pop_back();
  REQUIRE_THROWS_MATCHES(dlb::WriteIdxImages(dir / "labels.gz", bad), dlb::ShapeError,
                         MessageContains({"2 x 2 x 2", "need 8 bytes, found 7"}));
  REQUIRE(dlb::ReadIdxLabels(dir / "labels.gz") == Bytes{4, 5});
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path)) ++files;
  REQUIRE(files == 1);
}

TEST_CASE("IDX writer rejects what the reader could not read back", "[idx]") {
  TempDir dir;
  REQUIRE_THROWS_MATCHES(dlb::WriteIdxLabels(dir / "empty", {}), dlb::ArgumentError,
                         MessageContains({"labels is 0"}));
  REQUIRE_THROWS_MATCHES(dlb::WriteIdxImages(dir / "zero", SampleImages(0, 28, 28)),
                         dlb::ArgumentError, MessageContains({"images is 0"}));
  REQUIRE_THROWS_MATCHES(dlb::WriteIdxLabels(dir / "no-such-dir/labels", {1}), dlb::FileError,
                         MessageContains({"no-such-dir/labels", "no-such-dir does not exist"}));
}

TEST_CASE("IDX reader reports a missing path or a directory", "[idx]") {
  TempDir dir;
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "missing"), dlb::FileError,
                         MessageContains({dir / "missing", "no such file"}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels(dir.path.string()), dlb::FileError,
                         MessageContains({"found a directory"}));
}

TEST_CASE("IDX reader reports an empty file", "[idx]") {
  TempDir dir;
  WriteBytes(dir / "empty", {});
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "empty"), dlb::FileError,
                         MessageContains({dir / "empty", "empty file", "0x00000803"}));
  WriteBytes(dir / "empty.gz", Gzip({}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels(dir / "empty.gz"), dlb::FileError,
                         MessageContains({"empty gzip content", "0x00000801"}));
}

TEST_CASE("IDX reader reports a wrong magic number in hex", "[idx]") {
  TempDir dir;
  WriteBytes(dir / "bad", Concat({Be32(0xDEADBEEF), Be32(1), Be32(1), Be32(1), {0}}));
  const dlb::FileError error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "bad"); });
  CHECK_THAT(error.what(), Catch::Matchers::Contains("wrong magic number: expected 0x00000803") &&
                               Catch::Matchers::Contains("found 0xDEADBEEF"));
  CHECK(error.Path() == dir / "bad");
  CHECK(error.Offset() == std::optional<std::uint64_t>(0));
  WriteBytes(dir / "truncated-magic", {0, 0});
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "truncated-magic"), dlb::FileError,
                         MessageContains({"truncated header", "4-byte magic"}));
}

TEST_CASE("IDX reader rejects element types other than unsigned byte", "[idx]") {
  TempDir dir;
  WriteBytes(dir / "floats", Concat({Be32(0x00000D03), Be32(1), Be32(1), Be32(1), Be32(0)}));
  const dlb::FileError error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "floats"); });
  CHECK_THAT(error.what(), Catch::Matchers::Contains("unsupported element type 0x0D (float32)") &&
                               Catch::Matchers::Contains("expected element type 0x08"));
  CHECK(error.Offset() == std::optional<std::uint64_t>(2));
}

TEST_CASE("IDX reader rejects a wrong number of dimensions", "[idx]") {
  TempDir dir;
  // A label file handed to the image reader and vice versa.
  WriteBytes(dir / "labels", Concat({Be32(0x00000801), Be32(2), {1, 2}}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "labels"), dlb::FileError,
                         MessageContains({"wrong number of dimensions", "expected 3", "found 1"}));
  WriteBytes(dir / "images", Concat({ImagesHeader(1, 1, 1), {5}}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels(dir / "images"), dlb::FileError,
                         MessageContains({"wrong number of dimensions", "expected 1", "found 3"}));
}

TEST_CASE("IDX reader reports a header cut short", "[idx]") {
  TempDir dir;
  WriteBytes(dir / "short", Concat({Be32(0x00000803), Be32(5), {0, 0}}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "short"), dlb::FileError,
                         MessageContains({"truncated header", "16-byte header"}));
}

TEST_CASE("IDX reader rejects a zero dimension", "[idx]") {
  TempDir dir;
  WriteBytes(dir / "zero", ImagesHeader(4, 0, 28));
  const dlb::FileError error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "zero"); });
  CHECK_THAT(error.what(), Catch::Matchers::Contains("zero dimension") &&
                               Catch::Matchers::Contains("(rows) is 0"));
  CHECK(error.Offset() == std::optional<std::uint64_t>(8));
  WriteBytes(dir / "no-labels", Concat({Be32(0x00000801), Be32(0)}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels(dir / "no-labels"), dlb::FileError,
                         MessageContains({"zero dimension"}));
}

TEST_CASE("IDX reader rejects an overflowing dimension product", "[idx]") {
  TempDir dir;
  WriteBytes(dir / "overflow", ImagesHeader(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF));
  const dlb::FileError error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "overflow"); });
  CHECK_THAT(error.what(), Catch::Matchers::Contains("dimension product overflows: "
                                                     "4294967295 x 4294967295 elements"));
  // The product already exceeds the addressable limit at the second size.
  CHECK(error.Offset() == std::optional<std::uint64_t>(8));
}

TEST_CASE("IDX reader fails fast on a header claiming billions of images", "[idx]") {
  TempDir dir;
  const Bytes file = Concat({ImagesHeader(4000000000u, 28, 28), Pattern(100)});
  WriteBytes(dir / "huge", file);
  WriteBytes(dir / "huge.gz", Gzip(file));
  for (const std::string name : {"huge", "huge.gz"}) {
    INFO(name);
    dlb_test::ResetLargestAllocation();
    const auto start = std::chrono::steady_clock::now();
    const dlb::FileError error = CaughtFileError([&] { dlb::ReadIdxImages(dir / name); });
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK_THAT(error.what(), Catch::Matchers::Contains("truncated data") &&
                                 Catch::Matchers::Contains("4000000000 images of 28 x 28") &&
                                 Catch::Matchers::Contains("3136000000000 bytes"));
    CHECK(error.Offset() == std::optional<std::uint64_t>(116));
    CHECK(seconds < 2.0);
    // The reader's buffers stay bounded by what the file holds plus a 64 KiB chunk.
    CHECK(dlb_test::LargestAllocation() <= (std::size_t{1} << 17));
  }
}

TEST_CASE("IDX reader enforces the caller's limits before allocating", "[idx]") {
  TempDir dir;
  const dlb::IdxImages images = SampleImages(5, 4, 3);  // 60 data bytes
  dlb::WriteIdxImages(dir / "images", images);
  dlb::WriteIdxImages(dir / "images.gz", images);
  dlb::WriteIdxLabels(dir / "labels", Pattern(7));
  for (const std::string name : {"images", "images.gz"}) {
    INFO(name);
    // Exactly at the limits is fine.
    RequireSameImages(dlb::ReadIdxImages(dir / name, {.max_items = 5, .max_bytes = 60}), images);
    const dlb::FileError items =
        CaughtFileError([&] { dlb::ReadIdxImages(dir / name, {.max_items = 4}); });
    CHECK_THAT(items.what(), Catch::Matchers::Contains(
                                 "the header declares 5 images of 4 x 3, more than the limit of 4 "
                                 "images (IdxLimits::max_items)"));
    CHECK(items.Offset() == std::optional<std::uint64_t>(4));
    const dlb::FileError bytes =
        CaughtFileError([&] { dlb::ReadIdxImages(dir / name, {.max_bytes = 59}); });
    CHECK_THAT(bytes.what(), Catch::Matchers::Contains("(60 bytes, 60 bytes), more than the limit "
                                                       "of 59 bytes (IdxLimits::max_bytes)"));
    CHECK(bytes.Offset() == std::optional<std::uint64_t>(16));
  }
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels(dir / "labels", {.max_items = 6}), dlb::FileError,
                         MessageContains({"7 labels, more than the limit of 6 labels"}));
  CHECK(dlb::ReadIdxLabels(dir / "labels", {.max_items = 7}).size() == 7);
}

namespace {

/// A gzip "bomb" with an honest header: `count` 28 x 28 images of zeros, as one member for the
/// header and one per MB of pixels (the reader accepts concatenated members, like gzip -d),
/// so that about 1 kB of file inflates to each MB.
Bytes GzipBomb(std::uint32_t count) {
  const std::uint64_t total = std::uint64_t{count} * 28 * 28;
  constexpr std::uint64_t kMember = 1'000'000;
  Bytes file = Gzip(ImagesHeader(count, 28, 28));
  const Bytes full = Gzip(Bytes(kMember, 0));
  for (std::uint64_t done = 0; done < total; done += kMember) {
    const Bytes& part = total - done >= kMember ? full : Gzip(Bytes(total - done, 0));
    file.insert(file.end(), part.begin(), part.end());
  }
  return file;
}

}  // namespace

TEST_CASE("IDX reader stops a gzip bomb at the limit, before it fills the memory", "[idx]") {
  TempDir dir;
  // The case: about 1 MB of gzip whose honest header declares 1,000,000 images
  // (784 MB inflated, 3.1 GB as a float matrix).
  const Bytes bomb = GzipBomb(1'000'000);
  REQUIRE(bomb.size() < 2'000'000);
  WriteBytes(dir / "bomb.gz", bomb);
  dlb_test::ResetLargestAllocation();
  const auto start = std::chrono::steady_clock::now();
  const dlb::FileError error = CaughtFileError([&] {
    dlb::ReadIdxImages(dir / "bomb.gz", {.max_items = 300'000, .max_bytes = 300'000 * 784});
  });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK_THAT(error.what(), Catch::Matchers::Contains("1000000 images of 28 x 28, more than the "
                                                     "limit of 300000 images"));
  CHECK(seconds < 2.0);
  // Nothing was allocated for the data: only the reader's 64 KiB input buffer and zlib's state.
  CHECK(dlb_test::LargestAllocation() <= (std::size_t{1} << 17));
}

TEST_CASE("IDX reader without limits turns running out of memory into a FileError", "[idx]") {
  if (dlb_test::kAddressSanitizer) {
    SUCCEED("skipped under AddressSanitizer (see support/address_limit.hpp)");
    return;
  }
  TempDir dir;
  WriteBytes(dir / "bomb.gz", GzipBomb(1'000'000));  // 784 MB inflated
  // Read with no limits by a process allowed 64 MB more: the memory runs out, which must be a
  // clean FileError naming the size, not an abort.
  const int code = dlb_test::RunUnderAddressLimit(64u << 20, [&](std::uint64_t) {
    try {
      dlb::ReadIdxImages(dir / "bomb.gz");
      return 1;  // accepted: the limit did not bite
    } catch (const dlb::FileError& e) {
      const std::string message = e.what();
      return message.find("out of memory: the 1000000 images of 28 x 28 declared by the header "
                          "need 784 MB") != std::string::npos
                 ? 0
                 : 2;
    } catch (...) {
      return 3;
    }
  });
  CHECK(code == 0);
}

TEST_CASE("IDX reader reports data cut short", "[idx]") {
  TempDir dir;
  const Bytes file = Concat({ImagesHeader(3, 4, 4), Pattern(47)});
  WriteBytes(dir / "short", file);
  const dlb::FileError error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "short"); });
  CHECK_THAT(error.what(), Catch::Matchers::Contains("truncated data") &&
                               Catch::Matchers::Contains("the file holds only 47 data bytes"));
  CHECK(error.Offset() == std::optional<std::uint64_t>(16 + 47));
  WriteBytes(dir / "short.gz", Gzip(file));
  const dlb::FileError gz_error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "short.gz"); });
  CHECK_THAT(gz_error.what(),
             Catch::Matchers::Contains("truncated data") &&
                 Catch::Matchers::Contains("decompressed content holds only 47 data bytes"));
  CHECK(gz_error.Offset() == std::optional<std::uint64_t>(16 + 47));
  WriteBytes(dir / "labels", Concat({Be32(0x00000801), Be32(10), Pattern(9)}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels(dir / "labels"), dlb::FileError,
                         MessageContains({"truncated data", "10 labels"}));
}

TEST_CASE("IDX reader reports trailing garbage after the declared data", "[idx]") {
  TempDir dir;
  const Bytes file = Concat({ImagesHeader(2, 2, 2), Pattern(8), {0xAB, 0xCD, 0xEF}});
  WriteBytes(dir / "trailing", file);
  const dlb::FileError error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "trailing"); });
  CHECK_THAT(error.what(), Catch::Matchers::Contains("trailing data: 3 unexpected byte(s)"));
  CHECK(error.Offset() == std::optional<std::uint64_t>(24));
  WriteBytes(dir / "trailing.gz", Gzip(file));
  const dlb::FileError gz_error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "trailing.gz"); });
  CHECK_THAT(gz_error.what(), Catch::Matchers::Contains("trailing data"));
  CHECK(gz_error.Offset() == std::optional<std::uint64_t>(24));
}

TEST_CASE("IDX reader reports garbage after the end of the gzip stream", "[idx]") {
  TempDir dir;
  const Bytes labels = Concat({Be32(0x00000801), Be32(3), {1, 2, 3}});
  WriteBytes(dir / "garbage.gz", Concat({Gzip(labels), {'j', 'u', 'n', 'k'}}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels(dir / "garbage.gz"), dlb::FileError,
                         MessageContains({"after the end of the gzip stream"}));
  WriteBytes(dir / "one-byte.gz", Concat({Gzip(labels), {0}}));
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxLabels(dir / "one-byte.gz"), dlb::FileError,
                         MessageContains({"after the end of the gzip stream"}));
}

TEST_CASE("IDX reader reports a corrupt gzip stream", "[idx]") {
  TempDir dir;
  const dlb::IdxImages images = SampleImages(10, 8, 8);
  const Bytes good = Gzip(Concat({ImagesHeader(10, 8, 8), images.pixels}));

  Bytes bad_crc = good;
  bad_crc[bad_crc.size() - 6] ^= 0xFF;  // inside the CRC-32 of the trailer
  WriteBytes(dir / "bad-crc.gz", bad_crc);
  REQUIRE_THROWS_MATCHES(
      dlb::ReadIdxImages(dir / "bad-crc.gz"), dlb::FileError,
      MessageContains({"corrupt gzip stream", "at compressed byte", "incorrect data check"}));

  Bytes bad_method = good;
  bad_method[2] = 7;  // compression method other than deflate
  WriteBytes(dir / "bad-method.gz", bad_method);
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "bad-method.gz"), dlb::FileError,
                         MessageContains({"corrupt gzip stream", "unknown compression method"}));

  // Damage inside the deflate data may first surface as a bad header in what it decodes to;
  // either way it must be a FileError for this file.
  Bytes bad_body = good;
  for (std::size_t i = 12; i < 40; ++i) bad_body[i] = 0xFF;
  WriteBytes(dir / "bad-body.gz", bad_body);
  REQUIRE_THROWS_MATCHES(dlb::ReadIdxImages(dir / "bad-body.gz"), dlb::FileError,
                         MessageContains({dir / "bad-body.gz"}));
}

TEST_CASE("IDX reader reports a truncated gzip stream with the offset reached", "[idx]") {
  TempDir dir;
  const Bytes content = Concat({ImagesHeader(10, 8, 8), Pattern(640)});
  const Bytes good = Gzip(content);
  for (const std::size_t keep :
       {good.size() - 4, good.size() - 8, good.size() / 2, std::size_t{5}}) {
    INFO("kept " << keep << " of " << good.size() << " compressed bytes");
    WriteBytes(dir / "cut.gz", Bytes(good.begin(), good.begin() + static_cast<long>(keep)));
    const dlb::FileError error = CaughtFileError([&] { dlb::ReadIdxImages(dir / "cut.gz"); });
    CHECK_THAT(error.what(), Catch::Matchers::Contains("truncated gzip stream: the file ends at "
                                                       "compressed byte " +
                                                       std::to_string(keep)));
    CHECK(error.Offset().has_value());
  }
}
