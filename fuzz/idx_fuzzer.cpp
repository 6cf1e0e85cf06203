// libFuzzer target for the IDX reader (dlb/data/idx.hpp).
//
// Each input is written to a file and read as images and as labels. Rejection by a
// dlb::Error is the expected outcome for most inputs; a finding is anything else: a crash or
// sanitizer report, a leak, another exception (std::bad_alloc included), an allocation over
// the -malloc_limit_mb given by fuzz/run.sh, or one of the checks below failing.
//
// Checks beyond "no crash":
//  * an accepted file has positive sizes and exactly count * rows * cols pixels;
//  * differential: the same bytes gzip-compressed must be accepted or rejected alike, with the
//    same result or the same error offset (offsets are positions in the decompressed content);
//  * limits: read again under small IdxLimits, a file is accepted exactly when it is accepted
//    without limits and fits them, with the same result; when it does not fit, the error
//    names the limit;
//  * Fashion-MNIST: read as predict_fashion_mnist --images and LoadFashionMnist read it (under
//    dlb::kFashionMnistLimits), a file is accepted exactly when it is accepted without limits
//    and fits those limits, and accepted images become the matrix the programs use.

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/data/fashion_mnist.hpp"
#include "dlb/data/idx.hpp"
#include "scratch_files.hpp"

namespace {

using fuzz::Finding;
using fuzz::WriteFile;

std::vector<std::uint8_t> Gzip(const std::uint8_t* data, std::size_t size) {
  z_stream stream{};
  if (deflateInit2(&stream, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    Finding("deflateInit2 failed");
  }
  std::vector<std::uint8_t> out(deflateBound(&stream, static_cast<uLong>(size)) + 64);
  stream.next_in = const_cast<Bytef*>(data);
  stream.avail_in = static_cast<uInt>(size);
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  if (deflate(&stream, Z_FINISH) != Z_STREAM_END) Finding("deflate failed");
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// What reading a file gave: the data on success, the error offset on rejection.
struct Outcome {
  bool accepted = false;
  std::vector<std::uint8_t> data;
  std::vector<dlb::Index> dims;
  std::optional<std::uint64_t> error_offset;
  std::string message;
};

Outcome ReadImages(const std::string& path, const dlb::IdxLimits& limits = {}) {
  Outcome outcome;
  try {
    dlb::IdxImages images = dlb::ReadIdxImages(path, limits);
    if (images.count <= 0 || images.rows <= 0 || images.cols <= 0 ||
        images.pixels.size() != static_cast<std::size_t>(images.count) *
                                    static_cast<std::size_t>(images.rows) *
                                    static_cast<std::size_t>(images.cols)) {
      Finding("accepted images with inconsistent sizes");
    }
    outcome.accepted = true;
    outcome.dims = {images.count, images.rows, images.cols};
    outcome.data = std::move(images.pixels);
  } catch (const dlb::FileError& error) {
    if (error.Path() != path) Finding("FileError names the wrong path: " + error.Path());
    outcome.error_offset = error.Offset();
    outcome.message = error.what();
  }
  return outcome;
}

Outcome ReadLabels(const std::string& path, const dlb::IdxLimits& limits = {}) {
  Outcome outcome;
  try {
    outcome.data = dlb::ReadIdxLabels(path, limits);
    if (outcome.data.empty()) Finding("accepted an empty label file");
    outcome.accepted = true;
  } catch (const dlb::FileError& error) {
    if (error.Path() != path) Finding("FileError names the wrong path: " + error.Path());
    outcome.error_offset = error.Offset();
    outcome.message = error.what();
  }
  return outcome;
}

void RequireSame(const Outcome& raw, const Outcome& gz, const char* what) {
  if (raw.accepted != gz.accepted || raw.data != gz.data || raw.dims != gz.dims ||
      raw.error_offset != gz.error_offset) {
    Finding(std::string(what) + ": raw and gzip readings differ:\n  raw:  " +
            (raw.accepted ? "accepted" : raw.message) +
            "\n  gzip: " + (gz.accepted ? "accepted" : gz.message));
  }
}

// Small enough that the fuzzer's inputs cross them: 3 items, 64 data bytes.
constexpr dlb::IdxLimits kSmallLimits{.max_items = 3, .max_bytes = 64};

void RequireLimitsHonoured(const Outcome& unlimited, const Outcome& limited, const char* what,
                           const dlb::IdxLimits& limits = kSmallLimits) {
  const bool fits = unlimited.accepted && !unlimited.data.empty() &&
                    (unlimited.dims.empty() ? unlimited.data.size()
                                            : static_cast<std::size_t>(unlimited.dims[0])) <=
                        limits.max_items &&
                    unlimited.data.size() <= limits.max_bytes;
  if (limited.accepted != fits) {
    Finding(std::string(what) + ": under IdxLimits{" + std::to_string(limits.max_items) + ", " +
            std::to_string(limits.max_bytes) + "} " +
            (limited.accepted ? "accepted" : "rejected (" + limited.message + ")") +
            " a file that, read without limits, " +
            (unlimited.accepted ? "holds " + std::to_string(unlimited.data.size()) + " bytes"
                                : "is rejected (" + unlimited.message + ")"));
  }
  if (limited.accepted && (limited.data != unlimited.data || limited.dims != unlimited.dims)) {
    Finding(std::string(what) + ": the limits changed the data read");
  }
  if (unlimited.accepted && !fits && limited.message.find("IdxLimits::max_") == std::string::npos) {
    Finding(std::string(what) + ": over the limits, but the error does not name them: " +
            limited.message);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::FuzzerName() = "idx_fuzzer";
  static const std::string path = fuzz::ScratchPath("input");
  WriteFile(path, data, size);
  const Outcome images = ReadImages(path);
  const Outcome labels = ReadLabels(path);
  RequireLimitsHonoured(images, ReadImages(path, kSmallLimits), "images");
  RequireLimitsHonoured(labels, ReadLabels(path, kSmallLimits), "labels");
  // Fashion-MNIST's limits (a million-image header in a few bytes of gzip is refused after
  // the header), then the matrix predict_fashion_mnist --images makes of 28 x 28 images.
  const Outcome fashion = ReadImages(path, dlb::kFashionMnistLimits);
  RequireLimitsHonoured(images, fashion, "images (Fashion-MNIST limits)", dlb::kFashionMnistLimits);
  RequireLimitsHonoured(labels, ReadLabels(path, dlb::kFashionMnistLimits),
                        "labels (Fashion-MNIST limits)", dlb::kFashionMnistLimits);
  if (fashion.accepted && fashion.dims[1] == 28 && fashion.dims[2] == 28) {
    const dlb::IdxImages idx{fashion.dims[0], 28, 28, fashion.data};
    const dlb::Matrix<float> pixels = dlb::ImagesToMatrix<float>(idx, 1.0f / 255.0f);
    if (pixels.rows() != 784 || pixels.cols() != idx.count || pixels.minCoeff() < 0.0f ||
        pixels.maxCoeff() > 1.0f) {
      Finding("ImagesToMatrix made a matrix of the wrong size or range");
    }
  }

  const bool is_gzip = size >= 2 && data[0] == 0x1F && data[1] == 0x8B;
  if (!is_gzip) {
    const std::vector<std::uint8_t> compressed = Gzip(data, size);
    static const std::string gz_path = fuzz::ScratchPath("input.gz");
    WriteFile(gz_path, compressed.data(), compressed.size());
    RequireSame(images, ReadImages(gz_path), "images");
    RequireSame(labels, ReadLabels(gz_path), "labels");
  }
  return 0;
}
