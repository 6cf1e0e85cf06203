#pragma once
/// \file
/// The library's runtime errors. Every error the library throws derives from dlb::Error
/// (itself a std::runtime_error), and its message says what was wrong and where.
///
/// | type            | thrown by                                                         |
/// |-----------------|-------------------------------------------------------------------|
/// | FileError       | file loaders (IDX, Fashion-MNIST): path, byte offset, expected/found |
/// | ShapeError      | layers, model, losses, data sets: a size that does not fit          |
/// | ArgumentError   | constructors and setters given an invalid value (lr < 0, p >= 1 ...) |
/// | StateError      | loading saved state whose names, dtypes or shapes do not fit       |
/// | DivergenceError | training when the loss or a gradient stops being finite            |

#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "dlb/core/printable.hpp"

namespace dlb {

/// Base of every error thrown by the library.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A file could not be read or does not hold what it should.
/// what() reads "<path>: at byte <offset>: <problem>" (the offset part only when known), the
/// path passed through EscapeForTerminal: a file name can come from a stranger too (an
/// archive, a download). Whoever builds `problem` quotes what it takes from the file with
/// QuoteForTerminal (dlb/core/printable.hpp).
class FileError : public Error {
 public:
  FileError(std::string path, std::optional<std::uint64_t> offset, const std::string& problem)
      : Error(Format(path, offset, problem)), path_(std::move(path)), offset_(offset) {}

  /// The file the problem was found in.
  const std::string& Path() const noexcept { return path_; }
  /// Byte offset of the problem in the (decompressed) content, when it has one.
  std::optional<std::uint64_t> Offset() const noexcept { return offset_; }

 private:
  static std::string Format(const std::string& path, std::optional<std::uint64_t> offset,
                            const std::string& problem) {
    std::ostringstream out;
    out << EscapeForTerminal(path) << ": ";
    if (offset) out << "at byte " << *offset << ": ";
    out << problem;
    return out.str();
  }

  std::string path_;
  std::optional<std::uint64_t> offset_;
};

/// A matrix, batch or layer chain whose sizes do not fit together.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A layer inside a model or a block does not accept the shape it is given, or produces an
/// invalid one: Path() is the layer's dotted name within the block ("layer1.0.conv2", "3"),
/// LayerName() its Name() ("Conv2D(16 -> 16, 3x3)"), Problem() what it needs ("needs 16 input
/// channels, got 32 x 14 x 14"). Blocks prefix the path of a child's error with their own
/// name as it travels up.
class LayerShapeError : public ShapeError {
 public:
  LayerShapeError(std::string path, std::string layer_name, std::string problem)
      : ShapeError(path + " (" + layer_name + ") " + problem),
        path_(std::move(path)),
        layer_name_(std::move(layer_name)),
        problem_(std::move(problem)) {}

  const std::string& Path() const noexcept { return path_; }
  const std::string& LayerName() const noexcept { return layer_name_; }
  const std::string& Problem() const noexcept { return problem_; }

 private:
  std::string path_;
  std::string layer_name_;
  std::string problem_;
};

/// An argument outside its valid range (learning rate, probability, batch size ...).
class ArgumentError : public Error {
 public:
  using Error::Error;
};

/// Saved state (a state dict, a checkpoint) whose names, element types or shapes do not fit
/// the object it is loaded into. The message lists every missing and unexpected name.
class StateError : public Error {
 public:
  using Error::Error;
};

/// Training produced a non-finite loss or gradient. The parameters were left at their last
/// finite values.
class DivergenceError : public Error {
 public:
  DivergenceError(int epoch, std::int64_t batch, const std::string& problem)
      : Error("training diverged at epoch " + std::to_string(epoch) + ", batch " +
              std::to_string(batch) + ": " + problem),
        epoch_(epoch),
        batch_(batch) {}

  /// 1-based epoch in which the non-finite value appeared.
  int Epoch() const noexcept { return epoch_; }
  /// 1-based batch within that epoch.
  std::int64_t BatchNumber() const noexcept { return batch_; }

 private:
  int epoch_;
  std::int64_t batch_;
};

}  // namespace dlb
