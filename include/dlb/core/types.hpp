#pragma once
/// \file
/// Basic vocabulary shared by every block: matrix aliases, the batch layout and the
/// training/inference mode.
///
/// Layout: a batch is a matrix with one *column per sample* (features x batch), which is
/// Eigen's column-major default, so a sample is a contiguous column.

#include <Eigen/Core>

#include <concepts>
#include <cstdint>

namespace dlb {

/// Signed index type used for every size and position (Eigen's).
using Index = Eigen::Index;

/// Scalar types the library is instantiated for: any IEEE floating-point type.
template <class T>
concept Scalar = std::floating_point<T>;

/// Dense column-major matrix; batches are features x batch.
template <Scalar T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

/// Dense column vector.
template <Scalar T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

/// Read-only view of a matrix or of a contiguous block of columns of one (no copy).
template <Scalar T>
using ConstMatrixRef = Eigen::Ref<const Matrix<T>>;

/// Class labels, one per sample (column) of a batch; values 0 .. classes-1.
using Label = std::int32_t;
using Labels = Eigen::Matrix<Label, Eigen::Dynamic, 1>;

/// Whether a forward pass is part of training (dropout active) or inference.
enum class Mode { Train, Inference };

}  // namespace dlb
