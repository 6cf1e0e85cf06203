#pragma once
/// \file
/// The templates that the compiled part of DLBlocks (the CMake target dlb::compiled, library
/// dlb_compiled) instantiates once for float and double, declared `extern template` so that a
/// translation unit which includes this header does not instantiate them again: its compiler
/// skips the layers' Forward/Backward (Eigen's matrix products), the model, the optimizers'
/// update rules and the training loop, and the linker takes them from the library.
///
/// An extern declaration does not cover inline functions, and a member function defined in
/// its class is inline: compilers instantiate it wherever a program calls it (and at -O1 and
/// above compile its body for inlining). So the members a program calls directly and that do
/// real work (ModelNN's constructor, AddPointer and Summary, Linear's constructor, the
/// optimizer's rule holder's constructor) are defined after their class instead; members a
/// program reaches only through a virtual call (a layer's Forward and Backward, behind
/// LayerAdapter) need not be, since the vtable that names them is the library's.
///
/// Requires: the program links dlb::compiled (built from src/compiled/*.cpp with the same
/// DLBlocks headers, the same DLB_HAVE_BLAS and compatible flags: an Eigen object must look the
/// same to both, so build the library with the program's -march). <dlb/dlb.hpp> includes this
/// header when DLB_COMPILED is defined, which linking dlb::compiled does; including it by hand
/// without the library gives undefined references at link time.
///
/// Ensures: a program whose Eigen aligns matrix data differently from the library's (another
/// -march: 16 bytes for SSE, 32 for AVX, 64 for AVX-512), or that differs in DLB_HAVE_BLAS,
/// fails to link, naming the configuration it wanted
/// (dlb_compiled_abi_eigen_align_32_static_32_blas_1_malloc_1), instead of crashing on an aligned load
/// of a matrix the library allocated.

#include "dlb/layers/activations.hpp"
#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/losses/mse.hpp"
#include "dlb/model/builtin_layers.hpp"
#include "dlb/model/model.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/data/standardize.hpp"
#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/adamw.hpp"
#include "dlb/optimizers/momentum.hpp"
#include "dlb/optimizers/nesterov.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/optimizers/sgd.hpp"
#include "dlb/training/train.hpp"

#ifdef DLB_HAVE_BLAS
#define DLB_COMPILED_BLAS_ 1
#else
#define DLB_COMPILED_BLAS_ 0
#endif
// EIGEN_MALLOC_ALREADY_ALIGNED too: it decides how Eigen frees what it allocated (plain free,
// or its own offset), and it differs for instance between builds with and without ASan.
#define DLB_COMPILED_ABI_JOIN2_(align, static_align, blas, malloc_aligned)                      \
  dlb_compiled_abi_eigen_align_##align##_static_##static_align##_blas_##blas##_malloc_##malloc_aligned
#define DLB_COMPILED_ABI_JOIN_(align, static_align, blas, malloc_aligned) \
  DLB_COMPILED_ABI_JOIN2_(align, static_align, blas, malloc_aligned)
/// The symbol the library defines for the configuration it was compiled with.
#define DLB_COMPILED_ABI_SYMBOL                                                    \
  DLB_COMPILED_ABI_JOIN_(EIGEN_MAX_ALIGN_BYTES, EIGEN_MAX_STATIC_ALIGN_BYTES, DLB_COMPILED_BLAS_, \
                         EIGEN_MALLOC_ALREADY_ALIGNED)

extern "C" const int DLB_COMPILED_ABI_SYMBOL;

/// DLB_COMPILED_LAYER(EXTERN, L): the layer L and its type-erased holder in a ModelNN.
#define DLB_COMPILED_LAYER(EXTERN, ...)         \
  EXTERN template class __VA_ARGS__;            \
  EXTERN template class ::dlb::internal::LayerAdapter<__VA_ARGS__>;

/// DLB_COMPILED_RULE(EXTERN, T, R): the update rule R<T> and the optimizer's holder of it.
#define DLB_COMPILED_RULE(EXTERN, T, R) \
  EXTERN template class ::dlb::R<T>;   \
  EXTERN template struct ::dlb::Optimizer<T>::RuleHolder<::dlb::R<T>>;

/// DLB_COMPILED_LOSS(EXTERN, T, L): the loss L<T> and the training functions that use it.
#define DLB_COMPILED_LOSS(EXTERN, T, L)                                                          \
  EXTERN template class ::dlb::L<T>;                                                             \
  EXTERN template ::dlb::PassResult dlb::Evaluate<T, ::dlb::L<T>>(                              \
      ::dlb::ModelNN<T>&, ::dlb::DataSet<T>&, ::dlb::L<T>&);                                     \
  EXTERN template ::dlb::TrainResult dlb::TrainModel<T, ::dlb::L<T>>(                           \
      ::dlb::ModelNN<T>&, ::dlb::DataSet<T>&, ::dlb::DataSet<T>&, ::dlb::L<T>&,                  \
      ::dlb::Optimizer<T>&, const ::dlb::TrainOptions&, const std::vector<::dlb::Callback<T>*>&);

/// DLB_COMPILED_TEMPLATES(EXTERN, T): everything dlb::compiled instantiates for scalar T;
/// EXTERN is `extern` for the declarations and empty for the definitions (src/compiled/).
#define DLB_COMPILED_TEMPLATES(EXTERN, T)                                               \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::Linear<T>)                                          \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::ElementwiseActivation<T, ::dlb::internal::ReluFunction<T>>) \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::ElementwiseActivation<T, ::dlb::internal::LeakyReluFunction<T>>) \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::ElementwiseActivation<T, ::dlb::internal::SigmoidFunction<T>>) \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::ElementwiseActivation<T, ::dlb::internal::TanhFunction<T>>) \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::Dropout<T>)                                         \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::Conv2D<T>)                                          \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::MaxPool2D<T>)                                       \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::AvgPool2D<T>)                                       \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::GlobalAvgPool<T>)                                   \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::BatchNorm<T, ::dlb::NormalizeOver::Features>)       \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::BatchNorm<T, ::dlb::NormalizeOver::Channels>)       \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::Sequential<T>)                                      \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::Residual<T>)                                        \
  DLB_COMPILED_LAYER(EXTERN, ::dlb::Concat<T>)                                          \
  EXTERN template class ::dlb::ModelNN<T>;                                              \
  EXTERN template class ::dlb::Optimizer<T>;                                            \
  DLB_COMPILED_RULE(EXTERN, T, SGD)                                                     \
  DLB_COMPILED_RULE(EXTERN, T, Momentum)                                                \
  DLB_COMPILED_RULE(EXTERN, T, Nesterov)                                                \
  DLB_COMPILED_RULE(EXTERN, T, Adam)                                                    \
  DLB_COMPILED_RULE(EXTERN, T, AdamW)                                                   \
  EXTERN template class ::dlb::DataSet<T>;                                              \
  EXTERN template class ::dlb::Callback<T>;                                             \
  EXTERN template class ::dlb::Standardizer<T>;                                         \
  DLB_COMPILED_LOSS(EXTERN, T, CrossEntropyLoss)                                        \
  DLB_COMPILED_LOSS(EXTERN, T, MseLoss)

#ifndef DLB_COMPILED_DEFINITIONS
DLB_COMPILED_TEMPLATES(extern, float)
DLB_COMPILED_TEMPLATES(extern, double)

namespace dlb::internal {
namespace {
// A reference to the library's configuration symbol from every translation unit that
// declares the instantiations extern: a constant address, so no code runs for it.
[[maybe_unused]] __attribute__((used)) const int* const kCompiledAbiCheck =
    &DLB_COMPILED_ABI_SYMBOL;
}  // namespace
}  // namespace dlb::internal
#endif
