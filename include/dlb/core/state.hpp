#pragma once
/// \file
/// Named state: the one mechanism that enumerates everything a model, an optimizer, a data
/// set or a training callback must keep to be saved, restored, resumed or averaged across
/// processes (PyTorch's state_dict idea).
///
/// Two halves:
/// - StateRef<T>: a *view* of one piece of live state (a parameter, a batch-norm statistic,
///   a step counter, a random generator), named and typed. Objects list their state as a
///   std::vector<StateRef<T>>; nothing is copied.
/// - StateDict: an *owning*, ordered map from dotted names ("0.weight", "1.running_mean",
///   "optimizer.0.weight.exp_avg") to Tensors in PyTorch's layout (row-major, little-endian
///   bytes, PyTorch's shape), what a file holds. CollectState copies views into a StateDict,
///   RestoreState copies a StateDict back, checking names, dtypes and shapes and reporting
///   every missing and unexpected name at once.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/linkage.hpp"
#include "dlb/core/printable.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/types.hpp"

namespace dlb {

static_assert(std::endian::native == std::endian::little,
              "dlb/core/state.hpp stores tensors as little-endian bytes in memory order");
static_assert(std::is_same_v<Index, std::int64_t> || sizeof(Index) == sizeof(std::int64_t),
              "Index must be 64 bits");

/// Element type of a Tensor, named as in the safetensors format.
enum class DType { F32, F64, I64, U64 };

/// "F32", "F64", "I64", "U64".
DLB_INLINE const char* DTypeName(DType dtype);

/// Bytes per element of `dtype`.
inline std::size_t DTypeSize(DType dtype) { return dtype == DType::F32 ? 4 : 8; }

/// The DType of a floating-point scalar type (float or double).
template <Scalar T>
constexpr DType DTypeOf() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "state is stored as F32 or F64: the scalar type must be float or double");
  return std::is_same_v<T, float> ? DType::F32 : DType::F64;
}

/// "[3, 4]"; "[]" for a scalar.
DLB_INLINE std::string ShapeText(const std::vector<std::int64_t>& shape);

/// An owned tensor in PyTorch's layout.
///
/// Represents: `shape` (empty for a scalar), elements of `dtype` in row-major order (the
/// last dimension varies fastest), stored as little-endian bytes.
/// Ensures (when built by the functions below): data.size() == NumElements() * DTypeSize.
struct Tensor {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> data;

  /// Product of the shape (1 for a scalar); -1 when an extent is negative or the product
  /// exceeds kMaxValues (a shape read from a file such as [2^62, 4, 0] must not wrap around).
  std::int64_t NumElements() const { return ProductOrInvalid(shape); }

  /// The elements as U (which must be 8 or 4 bytes like the dtype), copied out.
  template <class U>
  std::vector<U> Values() const {
    std::vector<U> values(data.size() / sizeof(U));
    if (!values.empty()) std::memcpy(values.data(), data.data(), values.size() * sizeof(U));
    return values;
  }

  /// A tensor of `dtype` and `shape` holding `values` (row-major).
  template <class U>
  static Tensor FromValues(DType dtype, std::vector<std::int64_t> shape,
                           const std::vector<U>& values) {
    Tensor tensor{dtype, std::move(shape), std::vector<std::uint8_t>(values.size() * sizeof(U))};
    if (!values.empty()) std::memcpy(tensor.data.data(), values.data(), tensor.data.size());
    return tensor;
  }
};

/// An ordered map from names to tensors: insertion order is kept (it is the order of the
/// model's layers, as in PyTorch), names are unique.
class StateDict {
 public:
  using Entry = std::pair<std::string, Tensor>;

  /// Adds `name`; throws StateError if it is already present.
  DLB_INLINE void Insert(std::string name, Tensor tensor);

  /// Adds or replaces `name`.
  DLB_INLINE void InsertOrAssign(std::string name, Tensor tensor);

  /// The tensor called `name`, or null.
  DLB_INLINE const Tensor* Find(const std::string& name) const;
  DLB_INLINE Tensor* Find(const std::string& name);

  /// The tensor called `name`; throws StateError naming it when absent.
  DLB_INLINE const Tensor& At(const std::string& name) const;

  /// Makes room for `count` entries in all, so that adding up to that many allocates only
  /// their names and tensors: a reader that knows how many it will add needs no spare room.
  DLB_INLINE void Reserve(std::size_t count);

  DLB_INLINE bool Contains(const std::string& name) const;
  std::size_t Size() const { return entries_.size(); }
  bool Empty() const { return entries_.empty(); }
  const std::vector<Entry>& Entries() const { return entries_; }

  /// Copies every entry of `other` in, each name prefixed with `prefix` ("optimizer.").
  DLB_INLINE void Merge(const StateDict& other, const std::string& prefix = "");

  /// The entries whose names start with `prefix`, with the prefix removed.
  DLB_INLINE StateDict WithPrefix(const std::string& prefix) const;

  /// The entries whose names start with none of `prefixes`.
  DLB_INLINE StateDict Without(const std::vector<std::string>& prefixes) const;

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

/// What a piece of state is for, which decides where it is saved.
enum class StateKind {
  Parameter,  ///< trainable (in PyTorch's state_dict; what the optimizer updates)
  Buffer,     ///< non-trainable but part of the model (batch-norm statistics; in state_dict)
  Resume,     ///< needed only to resume training bit for bit (random generators, counters)
};

/// Which state SaveState/LoadState cover.
enum class StateScope {
  Weights,     ///< parameters and buffers: PyTorch's state_dict of the equivalent model
  Checkpoint,  ///< also the Resume state
};

/// A named view of one piece of live state.
///
/// Represents: `*value` under the name `name`, of kind `kind`.
/// - Matrix<T>*: a floating tensor. Its PyTorch shape is `shape` when given (its first extent
///   must equal rows() and the product of the rest cols(), e.g. a convolution weight
///   {out, in, kh, kw} stored as out x (in kh kw)); otherwise {rows} for a column vector and
///   {rows, cols} for a matrix. Saved row-major, as PyTorch stores it.
/// - std::int64_t*: an integer scalar (a step or batch counter), saved as I64 with shape [].
/// - double*: a real scalar (a learning rate, a best loss so far), saved as F64 with shape [].
/// - Generator*: a random generator's full state, saved as U64 with shape [words].
/// - std::vector<std::int64_t>*: an integer list (a sample order), saved as I64 [n]; loading
///   takes the saved length.
template <Scalar T>
struct StateRef {
  using Value = std::variant<Matrix<T>*, std::int64_t*, double*, Generator*,
                             std::vector<std::int64_t>*>;

  std::string name;
  Value value;
  StateKind kind = StateKind::Buffer;
  std::vector<std::int64_t> shape = {};
};

namespace internal {

/// The generator's state words, as a vector.
DLB_INLINE std::vector<std::uint64_t> GeneratorWords(const Generator& gen);

/// Throws StateError, naming the state and the problem, unless `words` can be a generator's
/// state (Generator::WordsProblem).
DLB_INLINE void RequireGeneratorWords(const std::vector<std::uint64_t>& words, const std::string& name);

/// Sets `gen` to the state `words` (RequireGeneratorWords first).
DLB_INLINE void SetGeneratorWords(Generator& gen, const std::vector<std::uint64_t>& words,
                                  const std::string& name);

template <Scalar T>
std::vector<std::int64_t> MatrixShape(const Matrix<T>& m, const std::vector<std::int64_t>& shape) {
  if (!shape.empty()) return shape;
  if (m.cols() == 1) return {static_cast<std::int64_t>(m.rows())};
  return {static_cast<std::int64_t>(m.rows()), static_cast<std::int64_t>(m.cols())};
}

/// Copies the row-major elements of `tensor` (F32 or F64) into `m` (rows x cols), converting
/// the element type when it differs from T.
template <Scalar T, class Source>
void ReadRowMajor(const Tensor& tensor, Matrix<T>& m) {
  const Index rows = m.rows(), cols = m.cols();
  for (Index r = 0; r < rows; ++r) {
    for (Index c = 0; c < cols; ++c) {
      Source value;
      std::memcpy(&value, tensor.data.data() + (r * cols + c) * sizeof(Source), sizeof(Source));
      m(r, c) = static_cast<T>(value);
    }
  }
}

}  // namespace internal

/// The PyTorch shape `ref` is saved with.
template <Scalar T>
std::vector<std::int64_t> StateShape(const StateRef<T>& ref) {
  return std::visit(
      [&](auto* value) -> std::vector<std::int64_t> {
        using V = std::remove_pointer_t<decltype(value)>;
        if constexpr (std::is_same_v<V, Matrix<T>>) {
          return internal::MatrixShape(*value, ref.shape);
        } else if constexpr (std::is_same_v<V, std::int64_t> || std::is_same_v<V, double>) {
          return {};
        } else if constexpr (std::is_same_v<V, Generator>) {
          return {static_cast<std::int64_t>(internal::GeneratorWords(*value).size())};
        } else {
          return {static_cast<std::int64_t>(value->size())};
        }
      },
      ref.value);
}

/// A copy of the state `ref` views, in PyTorch's layout.
template <Scalar T>
Tensor ToTensor(const StateRef<T>& ref) {
  return std::visit(
      [&](auto* value) -> Tensor {
        using V = std::remove_pointer_t<decltype(value)>;
        if constexpr (std::is_same_v<V, Matrix<T>>) {
          // Row-major order of the rows x cols matrix is PyTorch's memory order.
          const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major = *value;
          std::vector<T> values(row_major.data(), row_major.data() + row_major.size());
          return Tensor::FromValues(DTypeOf<T>(), internal::MatrixShape(*value, ref.shape), values);
        } else if constexpr (std::is_same_v<V, std::int64_t>) {
          return Tensor::FromValues(DType::I64, {}, std::vector<std::int64_t>{*value});
        } else if constexpr (std::is_same_v<V, double>) {
          return Tensor::FromValues(DType::F64, {}, std::vector<double>{*value});
        } else if constexpr (std::is_same_v<V, Generator>) {
          const auto words = internal::GeneratorWords(*value);
          return Tensor::FromValues(DType::U64, {static_cast<std::int64_t>(words.size())}, words);
        } else {
          return Tensor::FromValues(DType::I64, {static_cast<std::int64_t>(value->size())}, *value);
        }
      },
      ref.value);
}

/// Throws StateError naming the tensor unless `tensor` can be copied into the state `ref`
/// views: floating tensors may be F32 or F64 whatever T is (converted) and must have the
/// shape StateShape(ref) gives; counters are I64 [], generators U64 of the generator's word
/// count, lists I64 [n]. `name` (the full dotted name) labels the error.
template <Scalar T>
void CheckTensorFits(const StateRef<T>& ref, const Tensor& tensor, const std::string& name) {
  const auto fail = [&](const std::string& expected) {
    throw StateError("state '" + name + "': expected " + expected + ", found " +
                     DTypeName(tensor.dtype) + " " + ShapeText(tensor.shape));
  };
  for (std::int64_t extent : tensor.shape) {
    if (extent < 0) fail("non-negative extents");
  }
  if (tensor.NumElements() < 0) fail("at most 2^48 elements");
  if (tensor.data.size() !=
      static_cast<std::size_t>(tensor.NumElements()) * DTypeSize(tensor.dtype)) {
    throw StateError("state '" + name + "': " + std::to_string(tensor.data.size()) +
                     " bytes do not hold " + DTypeName(tensor.dtype) + " " +
                     ShapeText(tensor.shape));
  }
  std::visit(
      [&](auto* value) {
        using V = std::remove_pointer_t<decltype(value)>;
        const auto expected = StateShape(ref);
        if constexpr (std::is_same_v<V, Matrix<T>>) {
          const bool floating = tensor.dtype == DType::F32 || tensor.dtype == DType::F64;
          if (!floating || tensor.shape != expected) fail("F32 or F64 " + ShapeText(expected));
        } else if constexpr (std::is_same_v<V, std::int64_t>) {
          if (tensor.dtype != DType::I64 || !tensor.shape.empty()) fail("I64 []");
        } else if constexpr (std::is_same_v<V, double>) {
          if (tensor.dtype != DType::F64 || !tensor.shape.empty()) fail("F64 []");
        } else if constexpr (std::is_same_v<V, Generator>) {
          if (tensor.dtype != DType::U64 || tensor.shape != expected) fail("U64 " + ShapeText(expected));
          internal::RequireGeneratorWords(tensor.Values<std::uint64_t>(), name);
        } else {
          if (tensor.dtype != DType::I64 || tensor.shape.size() != 1) fail("I64 [n]");
        }
      },
      ref.value);
}

/// Copies `tensor` into the state `ref` views, after CheckTensorFits (which throws
/// StateError and leaves the state unchanged when it does not fit).
template <Scalar T>
void AssignFromTensor(const StateRef<T>& ref, const Tensor& tensor, const std::string& name) {
  CheckTensorFits(ref, tensor, name);
  std::visit(
      [&](auto* value) {
        using V = std::remove_pointer_t<decltype(value)>;
        if constexpr (std::is_same_v<V, Matrix<T>>) {
          if (tensor.dtype == DType::F32) {
            internal::ReadRowMajor<T, float>(tensor, *value);
          } else {
            internal::ReadRowMajor<T, double>(tensor, *value);
          }
        } else if constexpr (std::is_same_v<V, std::int64_t>) {
          *value = tensor.Values<std::int64_t>()[0];
        } else if constexpr (std::is_same_v<V, double>) {
          *value = tensor.Values<double>()[0];
        } else if constexpr (std::is_same_v<V, Generator>) {
          internal::SetGeneratorWords(*value, tensor.Values<std::uint64_t>(), name);
        } else {
          *value = tensor.Values<std::int64_t>();
        }
      },
      ref.value);
}

/// Copies every piece of state in `refs` whose kind `scope` covers into `out`, named
/// prefix + ref.name.
template <Scalar T>
void CollectState(const std::vector<StateRef<T>>& refs, StateScope scope, StateDict& out,
                  const std::string& prefix = "") {
  for (const auto& ref : refs) {
    if (ref.kind == StateKind::Resume && scope == StateScope::Weights) continue;
    out.Insert(prefix + ref.name, ToTensor(ref));
  }
}

/// Copies `state` into the views `refs` covered by `scope`; `state` must hold exactly their
/// names (prefix + ref.name). Checks everything before changing anything: throws StateError
/// listing all missing and unexpected names together, or naming the first tensor whose
/// dtype or shape does not fit; the live state is then unchanged. `what` names the receiver
/// in messages ("ModelNN", "Optimizer").
template <Scalar T>
void RestoreState(const std::vector<StateRef<T>>& refs, StateScope scope, const StateDict& state,
                  const std::string& what, const std::string& prefix = "") {
  std::vector<const StateRef<T>*> wanted;
  std::vector<std::string> missing, unexpected;
  std::unordered_map<std::string, bool> known;
  for (const auto& ref : refs) {
    if (ref.kind == StateKind::Resume && scope == StateScope::Weights) continue;
    const std::string name = prefix + ref.name;
    known.emplace(name, true);
    wanted.push_back(&ref);
    if (!state.Contains(name)) missing.push_back(name);
  }
  for (const auto& [name, tensor] : state.Entries()) {
    if (name.compare(0, prefix.size(), prefix) == 0 && known.count(name) == 0) {
      unexpected.push_back(name);
    }
  }
  if (!missing.empty() || !unexpected.empty()) {
    // The names may come from a stranger's file: escaped, and at most kListed of them, so
    // that a file of a million unexpected tensors gives a message of one line.
    auto list = [](const std::vector<std::string>& names) {
      constexpr std::size_t kListed = 20;
      std::string text;
      for (std::size_t i = 0; i < names.size() && i < kListed; ++i) {
        text += (i ? ", " : "") + EscapeForTerminal(names[i], kMaxQuotedBytes);
      }
      if (names.size() > kListed) text += " and " + std::to_string(names.size() - kListed) + " more";
      return text;
    };
    std::string message = what + ": the saved state does not fit:";
    if (!missing.empty()) message += " missing " + list(missing) + ";";
    if (!unexpected.empty()) message += " unexpected " + list(unexpected) + ";";
    message.pop_back();
    throw StateError(message);
  }
  // Check every tensor first, so that a mismatch leaves the live state intact.
  for (const StateRef<T>* ref : wanted) {
    CheckTensorFits(*ref, state.At(prefix + ref->name), prefix + ref->name);
  }
  for (const StateRef<T>* ref : wanted) AssignFromTensor(*ref, state.At(prefix + ref->name), prefix + ref->name);
}

}  // namespace dlb

#if DLB_HEADER_DEFINITIONS
#include "dlb/core/impl/state.ipp"
#endif
