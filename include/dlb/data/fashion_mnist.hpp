#pragma once
/// \file
/// Loader for the Fashion-MNIST data set (Zalando): 60,000 training and 10,000 test images
/// of 28 x 28 gray pixels in 10 classes, stored as four IDX files (raw or gzip).
/// data/fetch_fashion_mnist.sh produces them.

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/linkage.hpp"
#include "dlb/core/memory.hpp"
#include "dlb/core/types.hpp"
#include "dlb/data/idx.hpp"

namespace dlb {

/// LoadFashionMnist's default limits on each of its four files: 300,000 images or labels
/// (five times the official training set) and 300,000 images' worth of bytes (235.2 MB).
/// The float matrix of 300,000 images takes 941 MB, so a file that declares more, such as a
/// 1 MB gzip "bomb" whose header honestly declares a million images, is refused before it
/// fills the memory.
inline constexpr IdxLimits kFashionMnistLimits{.max_items = 300'000,
                                               .max_bytes = 300'000 * 28 * 28};

/// Fashion-MNIST in the library's batch layout: each image is one column of 784 pixels
/// (row-major within the image) scaled to [0, 1]; labels are 0..9.
template <Scalar T = float>
struct FashionMnist {
  Matrix<T> train_images;  ///< 784 x 60000
  Labels train_labels;     ///< 60000
  Matrix<T> test_images;   ///< 784 x 10000
  Labels test_labels;      ///< 10000
};

/// Converts images to a (rows * cols) x count matrix, one column per image (its pixels in
/// row-major order), each pixel byte x becoming T(x) * scale (scale 1 / 255 maps to [0, 1]).
/// Throws ShapeError if pixels.size() != count * rows * cols or a size is negative.
template <Scalar T>
Matrix<T> ImagesToMatrix(const IdxImages& images, T scale) {
  const Index max = std::numeric_limits<Index>::max();
  const bool valid = images.count >= 0 && images.rows >= 0 && images.cols >= 0 &&
                     (images.rows == 0 || images.cols <= max / images.rows) &&
                     (images.count == 0 || images.rows * images.cols <= max / images.count);
  if (!valid || static_cast<std::uint64_t>(images.count * images.rows * images.cols) !=
                    images.pixels.size()) {
    throw ShapeError("ImagesToMatrix: " + std::to_string(images.count) + " images of " +
                     std::to_string(images.rows) + " x " + std::to_string(images.cols) +
                     " pixels do not match the " + std::to_string(images.pixels.size()) +
                     " bytes of pixel data");
  }
  const Index pixels = images.rows * images.cols;
  Matrix<T> out(pixels, images.count);
  // Column-major storage makes each image's column contiguous, in file order.
  const std::uint8_t* in = images.pixels.data();
  T* dst = out.data();
  const std::size_t total = images.pixels.size();
  for (std::size_t i = 0; i < total; ++i) dst[i] = static_cast<T>(in[i]) * scale;
  return out;
}

namespace internal {

/// Whether `path` names something (following symbolic links): false when it does not exist;
/// throws FileError when it cannot be told, e.g. a loop of symbolic links or a directory that
/// may not be searched ("Too many levels of symbolic links"), which is not "not found".
/// Whether `path` exists; throws FileError when it cannot be looked up (other than "no such
/// file").
DLB_INLINE bool PathExists(const std::string& path);

/// Path of the Fashion-MNIST file `name` in dir: the raw file if present, else name + ".gz".
/// Throws FileError listing both names tried when neither exists, or naming the one that
/// cannot be looked up (see PathExists).
DLB_INLINE std::string FindFashionMnistFile(const std::string& dir, const std::string& name);

template <Scalar T>
void LoadFashionMnistPart(const std::string& dir, const std::string& prefix,
                          const IdxLimits& limits, Matrix<T>& images, Labels& labels) {
  const std::string images_path = FindFashionMnistFile(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = FindFashionMnistFile(dir, prefix + "-labels-idx1-ubyte");
  const IdxImages idx = ReadIdxImages(images_path, limits);
  if (idx.rows != 28 || idx.cols != 28) {
    throw FileError(images_path, 8,
                    "wrong image size: expected 28 x 28 pixels (Fashion-MNIST), found " +
                        std::to_string(idx.rows) + " x " + std::to_string(idx.cols));
  }
  const std::vector<std::uint8_t> raw_labels = ReadIdxLabels(labels_path, limits);
  if (static_cast<Index>(raw_labels.size()) != idx.count) {
    throw FileError(labels_path, 4,
                    "label count does not match: expected " + std::to_string(idx.count) +
                        " labels (one per image in " + images_path + "), found " +
                        std::to_string(raw_labels.size()));
  }
  labels.resize(static_cast<Index>(raw_labels.size()));
  for (std::size_t i = 0; i < raw_labels.size(); ++i) {
    if (raw_labels[i] > 9) {
      throw FileError(labels_path, 8 + i,
                      "label out of range at index " + std::to_string(i) +
                          ": expected 0..9, found " + std::to_string(raw_labels[i]));
    }
    labels(static_cast<Index>(i)) = raw_labels[i];
  }
  const double bytes = static_cast<double>(idx.pixels.size()) * sizeof(T);
  AllocateOrThrow(bytes,
                  "LoadFashionMnist: the " + std::to_string(idx.count) + " images of " +
                      images_path + " as a matrix",
                  [&] { images = ImagesToMatrix<T>(idx, T(1) / T(255)); });
}

}  // namespace internal

/// Loads Fashion-MNIST from dir, which holds train-images-idx3-ubyte,
/// train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each raw or
/// with ".gz" appended (the raw file wins when both exist). Images become 784 x N matrices
/// with pixels x / 255 in [0, 1]. Each file may hold at most what `limits` allow
/// (kFashionMnistLimits by default: 300,000 images).
/// Throws FileError when a file is missing (naming both names tried), not a regular file,
/// malformed or over the limits (see ReadIdxImages), not 28 x 28, when the label count
/// differs from the image count, or a label is outside 0..9 (naming its index); MemoryError
/// when the matrices do not fit in memory.
template <Scalar T = float>
FashionMnist<T> LoadFashionMnist(const std::string& dir,
                                 const IdxLimits& limits = kFashionMnistLimits) {
  FashionMnist<T> data;
  internal::LoadFashionMnistPart<T>(dir, "train", limits, data.train_images, data.train_labels);
  internal::LoadFashionMnistPart<T>(dir, "t10k", limits, data.test_images, data.test_labels);
  return data;
}

/// DLB_COMPILED_FASHION_MNIST(EXTERN, T): what dlb::compiled instantiates of this header for T
/// (src/compiled/files.cpp): the reader, and with it the IDX and gzip code it calls.
#define DLB_COMPILED_FASHION_MNIST(EXTERN, T) \
  EXTERN template FashionMnist<T> LoadFashionMnist<T>(const std::string&, const IdxLimits&);
#if defined(DLB_COMPILED) && !defined(DLB_COMPILED_DEFINITIONS)
DLB_COMPILED_FASHION_MNIST(extern, float)
DLB_COMPILED_FASHION_MNIST(extern, double)
#endif

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/data/impl/fashion_mnist.ipp"
#endif
